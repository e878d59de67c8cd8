"""Host-side access to swtpm TPM 2.0 state directories, through a real swtpm.

A backup point's TPM state is opaque (swtpm's tpm2-00.permall); the only
faithful reader is swtpm itself. SwtpmOn starts `swtpm socket` on a state
directory and sends raw TPM 2.0 commands on its data socket:

    with SwtpmOnCopy("/var/lib/libvirt/swtpm/<uuid>/tpm2") as tpm:
        tpm.nv_read_counter(0x01500010)

- On a COPY (default): for reading a running VM's or a backup point's state
  without touching it. swtpm runs as root on a private copy.
- On the real directory (copy=False): for seeding a shut-off VM's TPM. The
  VM must be off (swtpm's .lock would refuse a second instance anyway).
  swtpm runs as the directory's owner (tss on Debian) with mode=0600 so every
  file it writes keeps the owner and mode libvirt gave them.

Facts (swtpm 0.7.1): `--flags not-need-init,startup-clear` makes swtpm
initialize itself and send TPM2_Startup(CLEAR); the control socket takes
one command per connection; a command's size field counts its own 10-byte
header, and so does a response's. NV indexes defined with NO_DA can be read
from a copy of a running VM's state without dictionary-attack lockout.
"""

import os
import pwd
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

# TPM 2.0 constants (TPM 2.0 Library, Part 2).
TPM_ST_NO_SESSIONS = 0x8001
TPM_ST_SESSIONS = 0x8002
TPM_CC_NV_UndefineSpace = 0x0122
TPM_CC_NV_DefineSpace = 0x012A
TPM_CC_NV_Increment = 0x0134
TPM_CC_NV_Write = 0x0137
TPM_CC_NV_Read = 0x014E
TPM_CC_Shutdown = 0x0145
TPM_CC_NV_ReadPublic = 0x0169
TPM_CC_GetRandom = 0x017B
TPM_RH_OWNER = 0x40000001
TPM_RS_PW = 0x40000009
TPM_ALG_SHA256 = 0x000B
TPM_SU_CLEAR = 0x0000
TPM_RC_NV_UNINITIALIZED = 0x014A
TPM_RC_NV_DEFINED = 0x014C

TPMA_NV_OWNERWRITE = 1 << 1
TPMA_NV_AUTHWRITE = 1 << 2
TPMA_NV_COUNTER = 1 << 4          # TPM_NT (bits 7:4) = counter
TPMA_NV_OWNERREAD = 1 << 17
TPMA_NV_AUTHREAD = 1 << 18
TPMA_NV_NO_DA = 1 << 25
# Owner or the index's own empty auth may read and write; NO_DA so reads and
# writes never count towards (or are blocked by) dictionary-attack lockout.
NV_ATTRS = (TPMA_NV_OWNERWRITE | TPMA_NV_AUTHWRITE | TPMA_NV_OWNERREAD
            | TPMA_NV_AUTHREAD | TPMA_NV_NO_DA)

# swtpm control channel commands (swtpm's tpm_ioctl.h).
CMD_SHUTDOWN = 0x03

# Bytes per NV_Read/NV_Write; below every TPM's TPM_PT_NV_BUFFER_MAX.
NV_CHUNK = 512

# The empty-password session: authorizes the owner hierarchy (a fresh TPM's
# owner auth is empty, and OVMF/Linux leave it so) and indexes with empty auth.
PW_SESSION = struct.pack(">IIHBH", 9, TPM_RS_PW, 0, 0, 0)


class TpmError(RuntimeError):
    def __init__(self, what, rc):
        super().__init__(f"{what}: TPM rc 0x{rc:03x}")
        self.rc = rc


def _command(tag, cc, body):
    return struct.pack(">HII", tag, 10 + len(body), cc) + body


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("swtpm closed the connection")
        buf += chunk
    return buf


def _copy_state(src, dst):
    """Copy a state tree, leaving out swtpm's lock and any temp file of an
    in-progress atomic write (the permall before it is the consistent one)."""
    shutil.copytree(src, dst, ignore=lambda _d, names: [
        n for n in names if n == ".lock" or n.startswith("TMP")])


class SwtpmOn:
    """Context manager running swtpm on state_dir (a copy of it by default)."""

    def __init__(self, state_dir, copy=True):
        self.state_dir = Path(state_dir)
        self.copy = copy
        self.tmp = None
        self.proc = None
        self.sock = None

    # -- lifecycle

    def __enter__(self):
        if not (self.state_dir / "tpm2-00.permall").is_file():
            raise FileNotFoundError(f"no TPM 2.0 state (tpm2-00.permall) in {self.state_dir}")
        self.tmp = Path(tempfile.mkdtemp(prefix="sp-swtpm-"))
        try:
            self._start()
        except BaseException:
            self._cleanup()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _start(self):
        cmd = ["swtpm", "socket", "--tpm2"]
        if self.copy:
            state = self.tmp / "state"
            _copy_state(self.state_dir, state)
        else:
            state = self.state_dir
            st = state.stat()
            # Run as the state's owner: files swtpm (re)writes, atomically
            # through a temp file, are then created with that owner.
            cmd += ["--runas", pwd.getpwuid(st.st_uid).pw_name]
            # The sockets and log are created after swtpm dropped root.
            os.chown(self.tmp, st.st_uid, st.st_gid)
        self.data_path = self.tmp / "data.sock"
        self.ctrl_path = self.tmp / "ctrl.sock"
        self.log_path = self.tmp / "swtpm.log"
        cmd += ["--tpmstate", f"dir={state},mode=0600",
                "--server", f"type=unixio,path={self.data_path}",
                "--ctrl", f"type=unixio,path={self.ctrl_path}",
                "--flags", "not-need-init,startup-clear",
                "--log", f"file={self.log_path},level=1"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"swtpm exited {self.proc.returncode}: {self._log()}")
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(str(self.data_path))
                self.sock = s
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"swtpm did not open its socket: {self._log()}")
                time.sleep(0.02)
        self._probe()

    def _probe(self):
        """swtpm listens before it has locked and loaded its state; a second
        instance on a locked state accepts the connection and only then
        exits. One harmless command tells a working TPM from one that is
        going away."""
        try:
            self.transact(_command(TPM_ST_NO_SESSIONS, TPM_CC_GetRandom,
                                   struct.pack(">H", 8)), "GetRandom")
        except (OSError, ConnectionError):
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"swtpm does not answer: {self._log()}") from None
            raise RuntimeError(f"swtpm exited {self.proc.returncode}: {self._log()}") from None

    def _log(self):
        try:
            return self.log_path.read_text(errors="replace").strip()
        except OSError:
            return "(no log)"

    def close(self):
        """Orderly TPM2_Shutdown, then stop swtpm through its control socket."""
        if self.proc is None:
            return
        try:
            if self.sock is not None:
                # An orderly shutdown: the next Startup of this state (by the
                # VM) is not counted as an unorderly one.
                self.transact(_command(TPM_ST_NO_SESSIONS, TPM_CC_Shutdown,
                                       struct.pack(">H", TPM_SU_CLEAR)), "Shutdown")
                self.sock.close()
                self.sock = None
            self._ctrl(CMD_SHUTDOWN)
            self.proc.wait(timeout=10)
        finally:
            self._cleanup()

    def _cleanup(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def _ctrl(self, code, payload=b""):
        """One control channel command per connection; returns its result."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(self.ctrl_path))
            s.sendall(struct.pack(">I", code) + payload)
            return struct.unpack(">I", _recv_exact(s, 4))[0]

    # -- raw commands

    def transact(self, cmd, what="command", ok=(0,)):
        """Send one command; returns (rc, response bytes after the header).
        Raises TpmError unless rc is in ok."""
        self.sock.sendall(cmd)
        hdr = _recv_exact(self.sock, 10)
        _tag, size, rc = struct.unpack(">HII", hdr)
        body = _recv_exact(self.sock, size - 10)
        if rc not in ok:
            raise TpmError(what, rc)
        return rc, body

    def _nv_define(self, idx, attrs, size, exist_ok):
        public = struct.pack(">IHIHH", idx, TPM_ALG_SHA256, attrs, 0, size)
        body = (struct.pack(">I", TPM_RH_OWNER) + PW_SESSION
                + struct.pack(">H", 0)                       # auth: empty
                + struct.pack(">H", len(public)) + public)
        ok = (0, TPM_RC_NV_DEFINED) if exist_ok else (0,)
        self.transact(_command(TPM_ST_SESSIONS, TPM_CC_NV_DefineSpace, body),
                      f"NV_DefineSpace 0x{idx:08x}", ok)

    def _nv_auth(self, idx):
        # authHandle = the index itself with its empty auth, then the index.
        return struct.pack(">II", idx, idx) + PW_SESSION

    # -- NV API

    def nv_define_counter(self, idx, exist_ok=False):
        """An 8-byte NV counter. Its first increment sets it to the highest
        value any counter of this TPM has had, plus one: counters never
        go back, not even through undefine and define."""
        self._nv_define(idx, NV_ATTRS | TPMA_NV_COUNTER, 8, exist_ok)

    def nv_define_ordinary(self, idx, size, exist_ok=False):
        self._nv_define(idx, NV_ATTRS, size, exist_ok)

    def nv_undefine(self, idx):
        body = struct.pack(">II", TPM_RH_OWNER, idx) + PW_SESSION
        self.transact(_command(TPM_ST_SESSIONS, TPM_CC_NV_UndefineSpace, body),
                      f"NV_UndefineSpace 0x{idx:08x}")

    def nv_public(self, idx):
        """(attributes, data size) of an NV index (TPM2_NV_ReadPublic)."""
        _rc, body = self.transact(
            _command(TPM_ST_NO_SESSIONS, TPM_CC_NV_ReadPublic, struct.pack(">I", idx)),
            f"NV_ReadPublic 0x{idx:08x}")
        # TPM2B_NV_PUBLIC: size, nvIndex, nameAlg, attributes, authPolicy, dataSize
        _size, _idx, _alg, attrs, policy_len = struct.unpack_from(">HIHIH", body)
        (data_size,) = struct.unpack_from(">H", body, 14 + policy_len)
        return attrs, data_size

    def nv_write(self, idx, data, offset=0):
        for pos in range(0, len(data), NV_CHUNK):
            chunk = data[pos:pos + NV_CHUNK]
            body = (self._nv_auth(idx) + struct.pack(">H", len(chunk)) + chunk
                    + struct.pack(">H", offset + pos))
            self.transact(_command(TPM_ST_SESSIONS, TPM_CC_NV_Write, body),
                          f"NV_Write 0x{idx:08x}")

    def nv_read(self, idx, size, offset=0):
        out = b""
        while len(out) < size:
            n = min(NV_CHUNK, size - len(out))
            body = self._nv_auth(idx) + struct.pack(">HH", n, offset + len(out))
            _rc, resp = self.transact(_command(TPM_ST_SESSIONS, TPM_CC_NV_Read, body),
                                      f"NV_Read 0x{idx:08x}")
            # parameterSize (4), TPM2B_MAX_NV_BUFFER: size (2) + data
            (got,) = struct.unpack_from(">H", resp, 4)
            out += resp[6:6 + got]
        return out

    def nv_increment(self, idx):
        self.transact(_command(TPM_ST_SESSIONS, TPM_CC_NV_Increment, self._nv_auth(idx)),
                      f"NV_Increment 0x{idx:08x}")

    def nv_read_counter(self, idx):
        """The counter's value; TpmError with rc TPM_RC_NV_UNINITIALIZED
        if it was never incremented."""
        return int.from_bytes(self.nv_read(idx, 8), "big")


class SwtpmOnCopy(SwtpmOn):
    """SwtpmOn on a private copy of state_dir; the original is never touched."""

    def __init__(self, state_dir):
        super().__init__(state_dir, copy=True)


def read_nv_counter(state_dir, idx):
    """Value of NV counter idx in a TPM state dir, read from a copy."""
    with SwtpmOnCopy(state_dir) as tpm:
        return tpm.nv_read_counter(idx)
