"""Real X.509 certificates for the NBD-over-TLS tests (transport = tcp), made
with the openssl CLI: a CA, a server certificate for the hypervisor's name
(what QEMU's NBD server presents, read from qemu.conf's
backup_tls_x509_cert_dir) and a client certificate (what the copier presents:
libvirt's backup_tls_x509_verify defaults to 1, so QEMU asks for one).

The extensions are the ones QEMU checks (crypto/tlscredsx509.c): a CA with
keyCertSign, leaf certificates with digitalSignature and keyEncipherment and
the right extendedKeyUsage. Names go into subjectAltName, where libnbd's
GnuTLS looks the host up (an IP address as IP:, a name as DNS:)."""
import ipaddress
import os
import subprocess
import tempfile


def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, text=True)


def _san(names):
    out = []
    for n in names:
        try:
            ipaddress.ip_address(n)
            out.append(f"IP:{n}")
        except ValueError:
            out.append(f"DNS:{n}")
    return ",".join(out)


class CA:
    """A throwaway certificate authority in its own directory."""

    def __init__(self, cn="stillpoint test CA"):
        self.dir = tempfile.mkdtemp(prefix="sptest-ca-", dir="/var/tmp")
        self.key = os.path.join(self.dir, "ca-key.pem")
        self.cert = os.path.join(self.dir, "ca-cert.pem")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", self.key, "-out", self.cert, "-days", "2",
                 "-subj", f"/CN={cn}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def issue(self, kind, names, key_out, cert_out):
        """kind: 'server' or 'client'; names: subjectAltName entries (the first
        one is also the CN)."""
        csr = os.path.join(self.dir, f"{kind}.csr")
        ext = os.path.join(self.dir, f"{kind}.ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    f"extendedKeyUsage={'serverAuth' if kind == 'server' else 'clientAuth'}\n"
                    f"subjectAltName={_san(names)}\n")
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", key_out, "-out", csr, "-subj", f"/CN={names[0]}")
        _openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                 "-CAcreateserial", "-out", cert_out, "-days", "2", "-extfile", ext)

    def server_dir(self, dest, names, qemu_group="libvirt-qemu"):
        """ca-cert.pem, server-cert.pem, server-key.pem into dest, readable by
        QEMU's group (libvirt hands QEMU the paths; QEMU reads them itself)."""
        key, cert = os.path.join(dest, "server-key.pem"), os.path.join(dest, "server-cert.pem")
        self.issue("server", names, key, cert)
        with open(self.cert, "rb") as src, open(os.path.join(dest, "ca-cert.pem"), "wb") as dst:
            dst.write(src.read())
        import grp
        gid = grp.getgrnam(qemu_group).gr_gid
        for f, mode in (("ca-cert.pem", 0o644), ("server-cert.pem", 0o644),
                        ("server-key.pem", 0o640)):
            p = os.path.join(dest, f)
            os.chown(p, 0, gid)
            os.chmod(p, mode)

    def client_dir(self, dest, names=("stillpoint-backup-host",)):
        """ca-cert.pem, client-cert.pem, client-key.pem: libnbd's names."""
        os.makedirs(dest, mode=0o700, exist_ok=True)
        self.issue("client", list(names), os.path.join(dest, "client-key.pem"),
                   os.path.join(dest, "client-cert.pem"))
        with open(self.cert, "rb") as src, open(os.path.join(dest, "ca-cert.pem"), "wb") as dst:
            dst.write(src.read())
        os.chmod(os.path.join(dest, "client-key.pem"), 0o600)
        return dest


SERVER_FILES = ("ca-cert.pem", "server-cert.pem", "server-key.pem")


def clear_server_dir(dest):
    for f in SERVER_FILES:
        try:
            os.unlink(os.path.join(dest, f))
        except FileNotFoundError:
            pass
