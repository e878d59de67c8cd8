"""The tiny test guest under libvirt: build, domain XML, guest agent, lifecycle.

Plain functions (no pytest dependency) so that tests, fixtures and ad-hoc
scripts share them. The guest itself is built by tests/guest/build.sh: a
Debian kernel booted directly by OVMF (with SMM) plus an initramfs running
qemu-guest-agent, with an ext4 data disk at /data, a swtpm TPM 2.0 (CRB) and
/bin/gtool for TPM NV counters and EFI variables (tests/guest/gtool.c).

Facts this relies on (measured on Debian 12, libvirt 9.0, QEMU 7.2, TCG):
- 256 MiB of memory works; 128 MiB crashes OVMF under TCG.
- Boot to the agent's first answer takes 13-20 s (up to 30 s on a busy host).
- The agent refuses guest-exec while frozen, and every command while the VM
  is paused.
- With <os firmware='efi'> the <nvram> path is only in the live XML.
"""

import base64
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import libvirt
import libvirt_qemu

URI = "qemu:///system"
GUEST_DIR = Path(__file__).resolve().parent.parent / "guest"
NAME_PREFIX = "sptest-guest-"
# Where disk images go: QEMU runs as libvirt-qemu and must reach them, which
# rules out pytest's private (0700) temp dirs. This dir is 0711 root.
IMAGES_ROOT = Path("/var/lib/libvirt/images")
SERIAL_LOG_DIR = Path("/var/log/libvirt/qemu")

# Undefine everything libvirt keeps beside the domain: NVRAM file,
# checkpoint and snapshot metadata, and the swtpm state directory.
UNDEFINE_ALL = (libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
                | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                | libvirt.VIR_DOMAIN_UNDEFINE_TPM)


class AgentError(RuntimeError):
    """The guest agent answered with an error or not at all."""


# ---------------------------------------------------------------- build


def build_guest(cache_root=None):
    """Build (or reuse) the guest; returns the directory holding vmlinuz,
    initrd.img and kver. Cached builds return in milliseconds."""
    cmd = [str(GUEST_DIR / "build.sh")]
    if cache_root is not None:
        cmd.append(str(cache_root))
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def make_data_disk(path, size="64M"):
    """An ext4 filesystem on a whole qcow2 disk (see tests/guest/mkdata.sh)."""
    subprocess.run([str(GUEST_DIR / "mkdata.sh"), str(path), size], check=True)
    return Path(path)


# ---------------------------------------------------------------- domain XML


def _disk_xml(path, target):
    # File disks: pull-mode backup needs type='file'. qcow2 unless the name
    # says raw, so tests can also attach a raw disk to check the fallback.
    fmt = "raw" if str(path).endswith((".raw", ".img")) else "qcow2"
    return (f"<disk type='file' device='disk'>"
            f"<driver name='qemu' type='{fmt}'/>"
            f"<source file={quoteattr(str(path))}/>"
            f"<target dev='{target}' bus='virtio'/></disk>")


def serial_log_path(name):
    return SERIAL_LOG_DIR / f"{name}-serial.log"


def guest_domain_xml(name, kernel, initrd, data_disk_path, extra_disks=(),
                     memory_mib=256, vcpus=1, cmdline=""):
    """Domain XML of the tiny guest.

    data_disk_path becomes vda (the guest mounts it at /data); extra_disks
    (paths) become vdb, vdc, ... OVMF with SMM and Secure Boot keys not
    enrolled, direct kernel boot, TPM 2.0 CRB on swtpm, the agent channel,
    and the serial console on a pty that is also logged to
    /var/log/libvirt/qemu/<name>-serial.log.
    """
    if memory_mib < 256:
        raise ValueError("OVMF under TCG crashes with less than 256 MiB")
    disks = [_disk_xml(data_disk_path, "vda")]
    for i, path in enumerate(extra_disks, start=1):
        disks.append(_disk_xml(path, "vd" + chr(ord("a") + i)))
    log = quoteattr(str(serial_log_path(name)))
    return f"""<domain type='qemu'>
  <name>{escape(name)}</name>
  <memory unit='MiB'>{int(memory_mib)}</memory>
  <vcpu>{int(vcpus)}</vcpu>
  <os firmware='efi'>
    <type arch='x86_64' machine='q35'>hvm</type>
    <firmware><feature enabled='no' name='enrolled-keys'/></firmware>
    <kernel>{escape(str(kernel))}</kernel>
    <initrd>{escape(str(initrd))}</initrd>
    <cmdline>{escape(("console=ttyS0 " + cmdline).strip())}</cmdline>
  </os>
  <features><acpi/><smm state='on'/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    {"".join(disks)}
    <serial type='pty'><log file={log} append='off'/><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def live_nvram_path(dom):
    """The NVRAM file of a running (or paused) domain: libvirt 9.0 puts it in
    the live XML only when the firmware is auto-selected."""
    node = ET.fromstring(dom.XMLDesc(0)).find("./os/nvram")
    if node is None or not (node.text or "").strip():
        raise RuntimeError(f"{dom.name()}: no <nvram> in the live XML")
    return Path(node.text.strip())


def tpm_state_dir(dom):
    """swtpm's state directory of the domain's TPM 2.0."""
    return Path("/var/lib/libvirt/swtpm") / dom.UUIDString() / "tpm2"


# ---------------------------------------------------------------- agent


def agent(dom, cmd, timeout=10):
    """Run one agent command ({"execute": ..., "arguments": ...}) and return
    its "return" value. Raises AgentError with libvirt's message."""
    try:
        out = libvirt_qemu.qemuAgentCommand(dom, json.dumps(cmd), int(timeout), 0)
    except libvirt.libvirtError as e:
        raise AgentError(f"{cmd.get('execute')}: {e}") from e
    reply = json.loads(out)
    if "error" in reply:
        raise AgentError(f"{cmd.get('execute')}: {reply['error']}")
    return reply.get("return")


def wait_for_agent(dom, timeout=120):
    """Wait until the agent answers guest-ping; returns the seconds waited.
    On timeout the error carries the end of the serial console log."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        try:
            agent(dom, {"execute": "guest-ping"}, timeout=2)
            return time.monotonic() - t0
        except AgentError as e:
            last = e
            time.sleep(0.5)
    tail = ""
    with contextlib.suppress(OSError):
        tail = serial_log_path(dom.name()).read_text(errors="replace")[-3000:]
    raise AgentError(f"{dom.name()}: no agent after {timeout} s ({last})\n"
                     f"--- serial console ---\n{tail}")


def guest_exec_start(dom, script, capture=False):
    """Start `/bin/sh -c script` in the guest; returns its pid at once.

    The script travels as one argv element in JSON: no shell on either side
    reinterprets it, so any bytes are safe."""
    ret = agent(dom, {"execute": "guest-exec",
                      "arguments": {"path": "/bin/sh", "arg": ["-c", script],
                                    "capture-output": bool(capture)}})
    return ret["pid"]


def guest_exec_status(dom, pid):
    """guest-exec-status with out-data/err-data decoded to str."""
    st = agent(dom, {"execute": "guest-exec-status", "arguments": {"pid": pid}})
    for k in ("out-data", "err-data"):
        if k in st:
            st[k] = base64.b64decode(st[k]).decode(errors="replace")
    return st


def guest_exec(dom, script, timeout=60):
    """Run a shell script in the guest and wait: (exitcode, stdout, stderr).
    A script killed by a signal reports exitcode -signal."""
    pid = guest_exec_start(dom, script, capture=True)
    deadline = time.monotonic() + timeout
    while True:
        st = guest_exec_status(dom, pid)
        if st["exited"]:
            code = st["exitcode"] if "exitcode" in st else -st.get("signal", 0)
            return code, st.get("out-data", ""), st.get("err-data", "")
        if time.monotonic() > deadline:
            raise AgentError(f"guest script still running after {timeout} s: {script!r}")
        time.sleep(0.1)


def guest_check(dom, script, timeout=60):
    """guest_exec that raises on a non-zero exit; returns stdout."""
    code, out, err = guest_exec(dom, script, timeout)
    if code != 0:
        raise AgentError(f"guest script exited {code}: {script!r}\n{out}{err}")
    return out


# ---------------------------------------------------------------- lifecycle


@dataclass
class TinyGuest:
    name: str
    uuid: str
    dom: "libvirt.virDomain"
    conn: "libvirt.virConnect"
    data_disk: Path
    workdir: Path
    kernel: Path
    initrd: Path
    boot_seconds: float = 0.0   # start to first agent answer, last start

    @property
    def serial_log(self):
        return serial_log_path(self.name)

    def exec(self, script, timeout=60):
        return guest_exec(self.dom, script, timeout)

    def check(self, script, timeout=60):
        return guest_check(self.dom, script, timeout)


def start_guest(guest, paused=False, timeout=120):
    """Start the defined guest; unless paused, wait for its agent."""
    guest.dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED if paused else 0)
    if not paused:
        guest.boot_seconds = wait_for_agent(guest.dom, timeout)
    return guest


def stop_guest(guest):
    """Power off at once (no guest shutdown); no error if already off."""
    if guest.dom.isActive():
        with contextlib.suppress(libvirt.libvirtError):
            guest.dom.destroy()


def remove_domain_named(conn, name):
    """remove_domain() of the domain called name, if there is one."""
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        return
    remove_domain(dom)


def remove_domain(dom):
    """Destroy and undefine with everything libvirt keeps for it, plus the
    logs libvirt leaves behind. Safe to call on a half-set-up domain."""
    name = dom.name()
    with contextlib.suppress(libvirt.libvirtError):
        if dom.isActive():
            dom.destroy()
    with contextlib.suppress(libvirt.libvirtError):
        dom.undefineFlags(UNDEFINE_ALL)
    for log in (SERIAL_LOG_DIR / f"{name}.log", serial_log_path(name),
                Path("/var/log/swtpm/libvirt/qemu") / f"{name}-swtpm.log"):
        with contextlib.suppress(OSError):
            log.unlink()


def new_workdir(prefix="stillpoint-test-"):
    """A fresh directory libvirt-qemu can reach (0755 under a 0711 parent)."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir=IMAGES_ROOT))
    d.chmod(0o755)
    return d


@contextlib.contextmanager
def make_tiny_guest(conn, workdir=None, start=True, extra_disks=(),
                    memory_mib=256, data_size="64M"):
    """Define (and by default start and wait for) a fresh tiny guest named
    sptest-guest-<random hex>; yields a TinyGuest and always removes the
    domain, its NVRAM, TPM state, logs and the images it created.

    workdir: where the data disk goes (default: a new dir under
    /var/lib/libvirt/images, removed at the end); it must be reachable by
    libvirt-qemu."""
    build = build_guest()
    own_dir = workdir is None
    workdir = new_workdir() if own_dir else Path(workdir)
    name = NAME_PREFIX + secrets.token_hex(4)
    data_disk = make_data_disk(workdir / f"{name}-data.qcow2", data_size)
    dom = None
    try:
        xml = guest_domain_xml(name, build / "vmlinuz", build / "initrd.img",
                               data_disk, extra_disks=extra_disks,
                               memory_mib=memory_mib)
        dom = conn.defineXML(xml)
        guest = TinyGuest(name=name, uuid=dom.UUIDString(), dom=dom, conn=conn,
                          data_disk=data_disk, workdir=workdir,
                          kernel=build / "vmlinuz", initrd=build / "initrd.img")
        if start:
            start_guest(guest)
        yield guest
    finally:
        if dom is not None:
            remove_domain(dom)
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                data_disk.unlink()


# ---------------------------------------------------------------- reading disks


def read_guest_file(image, path, force_share=False, replay_journal=True):
    """Bytes of file `path` inside the ext4 filesystem on disk image `image`
    (qcow2 or raw, a backing chain is followed).

    The image is converted to a temporary raw copy (this machine has no nbd
    module), the journal is replayed there (e2fsck -E journal_only) so that
    metadata committed to the journal but not yet written home is seen, as
    the guest would see it after a crash, then debugfs reads the file.
    force_share reads an image a running QEMU holds open (qemu-img -U)."""
    if any(c.isspace() or c == '"' for c in path) or not path.startswith("/"):
        raise ValueError(f"unsupported path for debugfs: {path!r}")
    with tempfile.TemporaryDirectory(prefix="sp-read-") as tmp:
        raw = os.path.join(tmp, "disk.raw")
        cmd = ["qemu-img", "convert", "-O", "raw"]
        if force_share:
            cmd.append("-U")
        subprocess.run(cmd + [str(image), raw], check=True)
        if replay_journal:
            r = subprocess.run(["e2fsck", "-fy", "-E", "journal_only", raw],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            # 0: clean, 1: fixed (journal replayed); anything else is damage.
            if r.returncode not in (0, 1):
                raise RuntimeError(f"e2fsck {image}: exit {r.returncode}\n{r.stdout}")
        r = subprocess.run(["debugfs", "-R", f"cat {path}", raw],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # debugfs exits 0 even when the file is missing; it says so on stderr.
        if r.returncode != 0 or b"File not found" in r.stderr:
            raise FileNotFoundError(f"{path} in {image}: {r.stderr.decode(errors='replace')}")
        return r.stdout


# ---------------------------------------------------------------- the consistency loop

# `gtool loop` writes N to the data disk's /counter (fsync), increments TPM NV
# counter LOOP_IDX to N, then sets EFI variable LOOP_VAR-LOOP_GUID to N (8
# bytes LE), for N = base+1, base+2, ... (tests/guest/gtool.c).
LOOP_FILE = "/counter"          # /data/counter in the guest
LOOP_IDX = 0x01500010
LOOP_VAR = "SpLoop"
LOOP_GUID = "5b2a0c4e-7d1f-4e8a-9c3b-2f6d8e0a1b47"


def start_loop(dom, timeout=30):
    """Start the consistency loop in the background; returns its base (the
    counter's value before the first iteration). OVMF's variable store
    takes ~2,800 iterations per boot (about a minute): stop it before."""
    guest_check(dom, "rm -f /tmp/loop.out")
    guest_exec_start(dom, f"exec gtool loop /data{LOOP_FILE} {LOOP_IDX:#x} "
                          f"{LOOP_VAR} {LOOP_GUID} >/tmp/loop.out 2>&1")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = guest_check(dom, "cat /tmp/loop.out 2>/dev/null || true")
        if out.startswith("base "):
            return int(out.split()[1])
        if "gtool:" in out:
            raise AgentError(f"gtool loop failed: {out}")
        time.sleep(0.2)
    raise AgentError(f"gtool loop did not start within {timeout} s")


def stop_loop(dom):
    """Stop the loop; returns the error it printed, if any (e.g. a full
    EFI variable store), else ''."""
    guest_exec(dom, "killall gtool; while pidof gtool >/dev/null; do sleep 0.05; done")
    out = guest_check(dom, "cat /tmp/loop.out 2>/dev/null || true")
    return "\n".join(line for line in out.splitlines() if line.startswith("gtool:"))


def read_loop_values(disk_image, tpm_dir, nvram_file, force_share=False):
    """(disk, tpm, efi) values of the loop as stored in a data disk image, a
    TPM state dir and an NVRAM file: a live VM's or a backup point's."""
    import sp_ovmf
    import sp_tpm
    disk = int(read_guest_file(disk_image, LOOP_FILE, force_share=force_share))
    tpm = sp_tpm.read_nv_counter(tpm_dir, LOOP_IDX)
    var = sp_ovmf.get_var(nvram_file, LOOP_VAR, LOOP_GUID)
    if var is None:
        raise KeyError(f"{nvram_file}: no {LOOP_VAR}-{LOOP_GUID}")
    return disk, tpm, int.from_bytes(var[1], "little")


def loop_values_consistent(disk, tpm, efi):
    """True when the three come from one instant: the loop writes disk, then
    TPM, then EFI, so a pause can fall between any two of them."""
    return disk >= tpm >= efi >= disk - 1


def connect(uri=URI):
    return libvirt.open(uri)


# libvirt prints every error to stderr by default, even the ones callers
# expect and handle (e.g. "agent not connected" while waiting for boot);
# exceptions still carry the message.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
