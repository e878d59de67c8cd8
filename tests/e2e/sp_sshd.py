"""A real OpenSSH server on loopback for the remote-hypervisor tests: its own
config, port and host key, key login for root and for the unprivileged test
user, started and stopped by the tests. This machine is its own "remote"
hypervisor: libvirt is reached as qemu+ssh://root@127.0.0.1:<port>/system.

The host key goes into root's ~/.ssh/known_hosts between marker lines (libvirt's
ssh transport and OpenSSH read that file; neither takes another one from a
URI), and comes out again when the server stops."""
import os
import shutil
import socket
import subprocess
import tempfile
import time

MARK = "# stillpoint test sshd"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sshd:
    def __init__(self, users=("root",)):
        # Under /var/tmp, 0711: sshd reads the keys, the unprivileged user's
        # key must be readable by that user's ssh client in the tests.
        self.dir = tempfile.mkdtemp(prefix="sptest-sshd-", dir="/var/tmp")
        os.chmod(self.dir, 0o711)
        self.port = free_port()
        self.hostkey = os.path.join(self.dir, "hostkey")
        self.clientkey = os.path.join(self.dir, "clientkey")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.hostkey],
                       check=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.clientkey],
                       check=True)
        shutil.copy(self.clientkey + ".pub", os.path.join(self.dir, "authorized_keys"))
        os.chmod(os.path.join(self.dir, "authorized_keys"), 0o644)
        self.config = os.path.join(self.dir, "sshd_config")
        with open(self.config, "w") as f:
            f.write(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.hostkey}
PidFile {self.dir}/sshd.pid
AuthorizedKeysFile {self.dir}/authorized_keys
AllowUsers {' '.join(users)}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
AllowStreamLocalForwarding yes
StreamLocalBindUnlink yes
LogLevel VERBOSE
""")
        os.makedirs("/run/sshd", exist_ok=True)
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", self.config, "-E",
                                      os.path.join(self.dir, "sshd.log")])
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        self.known_hosts_entry = f"[127.0.0.1]:{self.port} " + " ".join(
            open(self.hostkey + ".pub").read().split()[:2])
        self.trust()

    def uri(self, user="root"):
        return f"qemu+ssh://{user}@127.0.0.1:{self.port}/system"

    # -- root's known_hosts ------------------------------------------------------
    def _kh(self):
        return os.path.expanduser("~root/.ssh/known_hosts")

    def _strip(self):
        path = self._kh()
        if not os.path.exists(path):
            return []
        lines = open(path).read().splitlines()
        out, skip = [], False
        for line in lines:
            if line == f"{MARK} {self.port} begin":
                skip = True
            elif line == f"{MARK} {self.port} end":
                skip = False
            elif not skip:
                out.append(line)
        return out

    def _write(self, entry):
        os.makedirs(os.path.dirname(self._kh()), mode=0o700, exist_ok=True)
        lines = self._strip()
        if entry:
            lines += [f"{MARK} {self.port} begin", entry, f"{MARK} {self.port} end"]
        with open(self._kh(), "w") as f:
            f.write("\n".join(lines) + ("\n" if lines else ""))

    def trust(self):
        self._write(self.known_hosts_entry)

    def distrust(self):
        """No entry at all: the host key is unknown."""
        self._write(None)

    def impostor(self):
        """Another key for the same host: what a man in the middle shows."""
        other = os.path.join(self.dir, "otherkey")
        if not os.path.exists(other):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other],
                           check=True)
        self._write(f"[127.0.0.1]:{self.port} " + " ".join(open(other + ".pub").read().split()[:2]))

    def ssh_pids(self):
        """PIDs of ssh clients connected to this server (tunnels among them)."""
        out = subprocess.run(["pgrep", "-f", f"ssh .*-p {self.port}"], capture_output=True,
                             text=True).stdout.split()
        return [int(p) for p in out]

    def stop(self):
        self.distrust()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
