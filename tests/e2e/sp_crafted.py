"""A library of crafted points: real points changed the way an attacker with
write access to a backup would change them (docs/design.md, "Threat model"),
consistent with themselves (SHA256SUMS re-stamped) so that what refuses them
is the check under test; and listings of the host that prove nothing was
written or removed outside a restore's destination.

Never craft an image whose header names a real host file with qemu-img:
`qemu-img create -o data_file=PATH` creates or truncates PATH. Images here are
made with a scratch data file and the name patched in afterwards.
"""
import json
import os
import shutil
import stat
import subprocess
import tempfile

import sp_points as spp

ROOTS = ("/etc", "/var/lib/libvirt", "/root")


def copy_domain(point, dest, name=None):
    """A copy of a point's whole domain directory (so chains resolve) under
    dest, 0700 like a target, named name (default: as it is); returns the
    copy of point."""
    src = os.path.dirname(point)
    dst = os.path.join(str(dest), name or os.path.basename(src))
    shutil.copytree(src, dst)
    os.chmod(dest, 0o700)
    return os.path.join(dst, os.path.basename(point))


def restamp(point):
    """SHA256SUMS recomputed for every file it lists, as an attacker would."""
    sums = os.path.join(point, "SHA256SUMS")
    lines = []
    for line in open(sums).read().splitlines():
        rel = line[66:]
        lines.append(f"{spp.sha256(os.path.join(point, rel))}  {rel}\n")
    open(sums, "w").write("".join(lines))


def edit_manifest(point, change):
    p = os.path.join(point, "manifest.json")
    j = json.load(open(p))
    change(j)
    json.dump(j, open(p, "w"), indent=1)
    restamp(point)


def edit_domain_xml(point, change):
    """change(text) -> text, on the point's domain.xml."""
    p = os.path.join(point, "domain.xml")
    text = open(p).read()
    open(p, "w").write(change(text))
    restamp(point)


def set_disk_source(point, target, source):
    """The manifest and domain.xml both say the disk was at source: a point
    that agrees with itself."""
    old = [d["source"] for d in spp.manifest(point)["disks"] if d["target"] == target][0]
    edit_manifest(point, lambda j: [d.__setitem__("source", source) for d in j["disks"]
                                    if d["target"] == target])
    edit_domain_xml(point, lambda x: x.replace(f"'{old}'", f"'{source}'"))


def qcow2_naming(path, data_file=None, size="64M"):
    """Writes a qcow2 image at path whose header names data_file as its
    external data file, without qemu-img ever touching data_file: a scratch
    data file with a relative name of the same length stands in, then the
    name is patched."""
    scratch = tempfile.mkdtemp(prefix="sptest-df-", dir="/var/tmp")
    try:
        stand_in = "d" * len(data_file)
        img = os.path.join(scratch, "img.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o",
                        f"data_file={stand_in}", img, size], check=True, cwd=scratch)
        b = open(img, "rb").read()
        assert b.count(stand_in.encode()) == 1
        open(path, "wb").write(b.replace(stand_in.encode(), data_file.encode()))
    finally:
        shutil.rmtree(scratch)


def header_naming(data_file):
    """The first 64 KiB of a qcow2 image naming data_file: what a guest
    writes at LBA 0 of its own disk."""
    d = tempfile.mkdtemp(prefix="sptest-hdr-", dir="/var/tmp")
    try:
        p = os.path.join(d, "h.qcow2")
        qcow2_naming(p, data_file)
        return open(p, "rb").read()[:65536]
    finally:
        shutil.rmtree(d)


class Listing:
    """Every entry below /etc, /var/lib/libvirt, /root and the given paths,
    with type, mode, size, mtime and inode, so that a comparison shows
    anything written, removed or replaced. Other tests' VMs run at the same
    time (libvirt's per-domain runtime files, their TPM state, their XML),
    other tests ssh to localhost (known_hosts) and install stillpoint's own
    hook link, and the machine's own tools keep their state under /root
    (toolchains, caches, the session machinery): those entries are left out,
    never even listed."""

    TOOLS = ("/root/.pyenv", "/root/.cache", "/root/.cargo", "/root/.rustup", "/root/.npm",
             "/root/.npmrc", "/root/.claude")

    def __init__(self, *extra, mine=()):
        self.roots = [*ROOTS, *[str(x) for x in extra]]
        self.mine = set(mine)
        self.entries = self._take()

    def _skip(self, path):
        parts = path.split("/")
        if any(p in self.mine for p in parts):
            return False
        if any(p.startswith(("sptest-", "stillpoint-test", "domain-")) for p in parts):
            return True
        if path.startswith("/var/lib/libvirt/swtpm/") or "/dnsmasq" in path:
            return True  # other VMs' TPM state churns; ours is named in mine
        if any(path == t or path.startswith(t + "/") for t in self.TOOLS):
            return True
        return path in ("/root/.ssh/known_hosts", "/root/.ssh/known_hosts.old",
                        "/etc/libvirt/hooks/qemu.d/stillpoint")

    def _take(self):
        out = {}
        for root in self.roots:
            for dirpath, dirs, files in os.walk(root):
                dirs[:] = [d for d in dirs if not self._skip(os.path.join(dirpath, d))]
                for name in dirs + files:
                    p = os.path.join(dirpath, name)
                    if self._skip(p):
                        continue
                    try:
                        st = os.lstat(p)
                    except FileNotFoundError:
                        continue
                    kind = stat.S_IFMT(st.st_mode)
                    size = st.st_size if not stat.S_ISDIR(st.st_mode) else 0
                    mtime = st.st_mtime_ns if not stat.S_ISDIR(st.st_mode) else 0
                    out[p] = (kind, st.st_mode & 0o7777, size, mtime, st.st_ino)
        return out

    def changes(self, allowed=()):
        """Paths added, removed or changed since, outside allowed prefixes."""
        now = self._take()
        diff = sorted(p for p in set(now) | set(self.entries)
                      if now.get(p) != self.entries.get(p))
        return [p for p in diff if not any(p == a or p.startswith(a.rstrip("/") + "/")
                                           for a in allowed)]
