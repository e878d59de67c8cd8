"""Throwaway libvirt VMs for the end-to-end tests, the demo and the benchmarks.

A VM here is real: q35, OVMF with SMM (Secure Boot firmware, enrolled keys
off), an swtpm TPM 2.0 CRB, qcow2 and raw virtio disks. It needs no guest OS:
it sits in the firmware, and the tests write into its disks from the host with
HMP qemu-io. Every VM is named with a unique prefix and removed with its
NVRAM, TPM state, checkpoints and images.
"""
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET

import libvirt

URI = "qemu:///system"
PREFIX = "sptest-"
MiB = 1 << 20


def virsh(*args, check=True, timeout=120):
    """Runs virsh against the system daemon; arguments never pass a shell."""
    return subprocess.run(["virsh", "-c", URI, *args], check=check, timeout=timeout,
                          capture_output=True, text=True)


def ensure_libvirt():
    """Starts virtlogd and libvirtd when libvirt does not answer (no systemd here)."""
    if subprocess.run(["virsh", "-c", URI, "version"], capture_output=True).returncode == 0:
        return
    for daemon in ("virtlogd", "libvirtd"):
        if subprocess.run(["pgrep", "-x", daemon], capture_output=True).returncode != 0:
            subprocess.run([daemon, "-d"], check=True)
    for _ in range(100):
        if subprocess.run(["virsh", "-c", URI, "version"], capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError("libvirtd did not come up")


def unique_name(tag="vm"):
    return f"{PREFIX}{tag}-{secrets.token_hex(3)}"


def domain_xml(name, disks, tpm=True, efi=True, memory_mib=256, extra_devices="",
               enrolled_keys=False):
    """disks: list of (target, path, format, extra_xml). enrolled_keys: the
    Secure Boot firmware whose NVRAM template has Microsoft's keys enrolled."""
    keys = ("<feature enabled='yes' name='secure-boot'/>"
            "<feature enabled='yes' name='enrolled-keys'/>" if enrolled_keys
            else "<feature enabled='no' name='enrolled-keys'/>")
    disk_xml = "".join(
        f"""<disk type='file' device='disk'{extra}><driver name='qemu' type='{fmt}'/>
        <source file='{path}'/><target dev='{target}' bus='virtio'/></disk>\n"""
        for target, path, fmt, extra in disks)
    os_xml = (f"""<os firmware='efi'><type arch='x86_64' machine='q35'>hvm</type>
                 <firmware>{keys}</firmware></os>
                 <features><acpi/><smm state='on'/></features>""" if efi else
              "<os><type arch='x86_64' machine='q35'>hvm</type></os>")
    tpm_xml = ("<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>"
               if tpm else "")
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  {os_xml}
  <devices>
    {disk_xml}
    {tpm_xml}
    <serial type='pty'/>
    {extra_devices}
  </devices>
</domain>"""


class TestVM:
    """A defined (and usually running) throwaway domain with its images."""

    __test__ = False  # not a pytest class

    DEFAULT_DISKS = (("vda", "qcow2", 64 * MiB), ("vdb", "qcow2", 32 * MiB),
                     ("vdc", "raw", 16 * MiB))

    def __init__(self, conn, tag="vm", disks=DEFAULT_DISKS, tpm=True, efi=True,
                 workdir=None, extra_devices="", disk_extra=None, enrolled_keys=False):
        self.conn = conn
        self.name = unique_name(tag)
        # libvirt-qemu must reach the images: 0711 on the directory.
        base = workdir or "/var/tmp"
        self.workdir = tempfile.mkdtemp(prefix=f"{self.name}-", dir=base)
        os.chmod(self.workdir, 0o711)
        self.disks = {}
        spec = []
        for target, fmt, size in disks:
            path = os.path.join(self.workdir, f"{target}.{fmt}")
            subprocess.run(["qemu-img", "create", "-q", "-f", fmt, path, str(size)], check=True)
            self.disks[target] = path
            spec.append((target, path, fmt, (disk_extra or {}).get(target, "")))
        self.formats = {t: f for t, f, _ in disks}
        self.sizes = {t: s for t, _, s in disks}
        self.dom = conn.defineXML(domain_xml(self.name, spec, tpm=tpm, efi=efi,
                                             extra_devices=extra_devices,
                                             enrolled_keys=enrolled_keys))
        self.uuid = self.dom.UUIDString()

    # -- lifecycle ---------------------------------------------------------
    def start(self, paused=False):
        self.dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED if paused else 0)
        return self

    def state(self):
        return self.dom.state()[0]

    def is_running(self):
        return self.state() == libvirt.VIR_DOMAIN_RUNNING

    def is_paused(self):
        return self.state() == libvirt.VIR_DOMAIN_PAUSED

    def remove(self):
        """Destroys and undefines with NVRAM, TPM state and checkpoint metadata."""
        try:
            try:
                if self.dom.isActive():
                    self.dom.destroy()
            except libvirt.libvirtError:
                pass
            flags = (libvirt.VIR_DOMAIN_UNDEFINE_NVRAM |
                     libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA |
                     libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
            flags |= getattr(libvirt, "VIR_DOMAIN_UNDEFINE_TPM", 0)
            try:
                self.dom.undefineFlags(flags)
            except libvirt.libvirtError:
                pass
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
            for log in (f"/var/log/libvirt/qemu/{self.name}.log",
                        f"/var/log/swtpm/libvirt/qemu/{self.name}-swtpm.log"):
                try:
                    os.unlink(log)
                except OSError:
                    pass

    # -- where its state lives -----------------------------------------------
    def live_xml(self):
        return ET.fromstring(self.dom.XMLDesc(0))

    @property
    def nvram_path(self):
        node = self.live_xml().find("./os/nvram")
        return node.text.strip() if node is not None and node.text else None

    @property
    def tpm_dir(self):
        return f"/var/lib/libvirt/swtpm/{self.uuid}/tpm2"

    def wait_settled(self, paths=None, quiet_s=2.0, timeout=60):
        """Waits until NVRAM and TPM files stop changing (OVMF under TCG keeps
        writing them for seconds after a start)."""
        paths = paths or [self.nvram_path, self.tpm_dir]
        def stamp():
            out = []
            for p in paths:
                for root, _, files in os.walk(p) if os.path.isdir(p) else [("", [], [p])]:
                    for f in files:
                        full = os.path.join(root, f)
                        try:
                            st = os.stat(full)
                            out.append((full, st.st_mtime_ns, st.st_size))
                        except FileNotFoundError:
                            pass
            return sorted(out)
        deadline = time.time() + timeout
        last, since = stamp(), time.time()
        while time.time() < deadline:
            time.sleep(0.25)
            cur = stamp()
            if cur != last:
                last, since = cur, time.time()
            elif time.time() - since >= quiet_s:
                return
        raise TimeoutError(f"{self.name}: state files kept changing for {timeout}s")

    # -- guest writes from the host ----------------------------------------------
    def qemu_io(self, target, command):
        """Runs a qemu-io command on a disk of the running VM (HMP). qemu-io's
        own errors go to the domain log only, so the log is checked."""
        index = list(self.disks).index(target)
        log = f"/var/log/libvirt/qemu/{self.name}.log"
        before = os.path.getsize(log) if os.path.exists(log) else 0
        hmp = (f'qemu-io -d /machine/peripheral/virtio-disk{index}/virtio-backend '
               f'"{command}"')
        out = virsh("qemu-monitor-command", self.name, "--hmp", hmp).stdout
        if out.strip():
            raise RuntimeError(f"qemu-io {command!r} on {target}: {out.strip()}")
        with open(log, "rb") as f:
            f.seek(before)
            tail = f.read().decode(errors="replace")
        if re.search(r"failed|error", tail, re.I):
            raise RuntimeError(f"qemu-io {command!r} on {target}: {tail.strip()}")

    def write(self, target, pattern, offset, length):
        self.qemu_io(target, f"write -P 0x{pattern:02x} {offset} {length}")

    def zero(self, target, offset, length):
        self.qemu_io(target, f"write -z {offset} {length}")

    def discard(self, target, offset, length):
        self.qemu_io(target, f"discard {offset} {length}")

    def snapshot_disk(self, target, dest):
        """A copy of a disk's current guest-visible content (raw), taken while the
        VM is paused so nothing moves under it."""
        subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", self.disks[target], dest],
                       check=True)
        return dest


# -- libvirt lifecycle events ----------------------------------------------------
_event_loop_started = False


def start_event_loop():
    """libvirt's default event loop in a daemon thread. Must run before the
    connection that registers callbacks is opened."""
    global _event_loop_started
    if _event_loop_started:
        return
    import threading
    libvirt.virEventRegisterDefaultImpl()

    def loop():
        while True:
            libvirt.virEventRunDefaultImpl()

    threading.Thread(target=loop, daemon=True, name="libvirt-events").start()
    _event_loop_started = True


class EventWatcher:
    """Records (monotonic time, event, detail) of one domain's lifecycle
    events, as libvirt delivers them, on a connection of its own."""

    SUSPENDED = libvirt.VIR_DOMAIN_EVENT_SUSPENDED
    RESUMED = libvirt.VIR_DOMAIN_EVENT_RESUMED

    def __init__(self, uuid):
        start_event_loop()
        self.uuid = uuid
        self.events = []
        self.conn = libvirt.open(URI)
        self.cb = self.conn.domainEventRegisterAny(
            self.conn.lookupByUUIDString(uuid), libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
            self._on_event, None)

    def _on_event(self, conn, dom, event, detail, opaque):
        self.events.append((time.monotonic(), event, detail))

    def close(self):
        try:
            self.conn.domainEventDeregisterAny(self.cb)
        finally:
            self.conn.close()

    def clear(self):
        self.events.clear()

    def kinds(self):
        return [e for _, e, _ in self.events]

    def wait_for(self, kind, timeout=10.0, after=0):
        """Waits until an event of kind arrives (the after-th onwards)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [t for t, e, _ in self.events if e == kind]
            if len(hits) > after:
                return hits[after]
            time.sleep(0.01)
        raise TimeoutError(f"no lifecycle event {kind} within {timeout}s: {self.events}")

    def pauses_ms(self):
        """Suspended -> resumed spans, in ms, in order."""
        spans, start = [], None
        for t, e, _ in self.events:
            if e == self.SUSPENDED and start is None:
                start = t
            elif e == self.RESUMED and start is not None:
                spans.append((t - start) * 1000.0)
                start = None
        return spans


def checkpoints(dom):
    return sorted(c.getName() for c in dom.listAllCheckpoints())


def qemu_ids():
    """uid, gid QEMU runs as (Debian: libvirt-qemu)."""
    import grp
    import pwd
    return pwd.getpwnam("libvirt-qemu").pw_uid, grp.getgrnam("libvirt-qemu").gr_gid
