"""A private OpenLDAP slapd (back-mdb) with the seed test directory, for directory tests.

Runs /usr/sbin/slapd with its own slapd.conf, mdb database and pid file in workdir, on a free
loopback port; ready when an anonymous LDAP bind succeeds. stop()/start() keep the port and
the data (tests stop it mid-test to check 4xx answers). Schema: data/mailfilter.schema
(qmail-ldap names, plus amavis' spam level attributes and owlerySpamRejectLevel in class
amavisAccount) beside Debian's core/cosine/inetorgperson/nis/misc.
Tested by tests/harness_selftest/test_servers.py.

Seed data (data/directory.ldif), suffix dc=example,dc=test, admin
cn=admin,dc=example,dc=test / secret (rootdn, no entry). Users under ou=people, all with
objectClass inetOrgPerson + qmailUser, userPassword "<uid>pw":

- alice: mail alice@example.test; mailAlternateAddress postmaster@example.test and
  alice.example@example.test; mailLocalAddress alice@alias.example.test; mailQuotaSize
  10485760; accountStatus active; spam levels (class amavisAccount) amavisSpamTagLevel -999,
  amavisSpamTag2Level 4.5, amavisSpamKillLevel 12.5, owlerySpamRejectLevel 30.
- bob: mail bob@example.test; mailForwardingAddress bob@elsewhere.test; mailRoutingAddress
  bob@mailhost2.example.test; mailQuotaSize 52428800; active; amavisSpamKillLevel 3 (a low
  kill level, nothing else).
- carol: mail carol@example.test; mailQuotaSize 1 (the over-quota user: any message exceeds
  it); active.
- dave: mail dave@example.test; mailAlternateAddress dave.alias@example.test; mailQuotaSize
  10485760; accountStatus disabled (the disabled user).
- erin: mail erin@example.test; mailAlternateAddress erin@alias.example.test;
  mailForwardingAddress erin@elsewhere.test and erin.backup@elsewhere.test; no quota; active.
- frank: mail frank@levels.example.test; active; amavisSpamTag2Level 2.5 only.
- cn=levels.example.test,ou=domains (organizationalRole + qmailUser + amavisAccount): mail
  @levels.example.test, the domain default (and catch-all) of levels.example.test:
  amavisSpamTag2Level 4, amavisSpamKillLevel 8.

Groups under ou=groups (with qmailUser for their mail attribute):
- cn=csall: groupOfNames, mail csall@example.test, member = alice, bob, dave (DNs
  uid=<uid>,ou=people,dc=example,dc=test).
- cn=staff: groupOfUniqueNames, mail staff@example.test, mailAlternateAddress
  team@example.test, uniqueMember = alice, erin.
Nothing exists for e.g. nobody@example.test (unknown user).
ACL: userPassword only for self/auth; everything else readable anonymously.

TLS mode (Slapd(..., tls=True)): at first start a throw-away CA and a server certificate for
`tls_names` (default localhost and 127.0.0.1) are made with `cryptography` (ECDSA P-256, valid
from a day ago for 30 days) into workdir/tls; slapd.conf gets TLSCACertificateFile /
TLSCertificateFile / TLSCertificateKeyFile (the slapd.conf names of cn=config's olcTLS*; Debian's
slapd uses GnuTLS) and slapd listens on ldap://127.0.0.1:port (StartTLS offered) and
ldaps://127.0.0.1:ldaps_port. The key is 0600 and owned by the user running the tests: the
harness starts slapd without -u, so slapd never drops to another user. ca_file names the CA
certificate clients should trust; make_ca()/issue_certificate() are usable on their own (e.g.
a second CA the server's certificate is not signed by). Ready when the plain port answers an
anonymous bind and the ldaps port answers one over a verified TLS handshake.
"""

import datetime
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

from .procs import (LOOPBACK, HarnessError, ManagedProcess, ServerProcess, free_port, free_ports, make_dir,
                    wait_until)

DATA_DIR = Path(__file__).resolve().parent / "data"
SCHEMA_PATH = DATA_DIR / "mailfilter.schema"
DIRECTORY_LDIF = DATA_DIR / "directory.ldif"
SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"
LDAPMODIFY = shutil.which("ldapmodify") or "/usr/bin/ldapmodify"
SYSTEM_SCHEMAS = ("core", "cosine", "inetorgperson", "nis", "misc")

# LDAPv3 anonymous simple BindRequest, message id 1 (RFC 4511): the readiness probe.
_ANON_BIND = bytes.fromhex("300c020101600702010304008000")


def seed_ldif():
    """Text of the shipped seed directory (data/directory.ldif)."""
    return DIRECTORY_LDIF.read_text()


def ldap_bind_ok(port, host=LOOPBACK, timeout=1.0):
    """True if an anonymous LDAP bind to host:port returns resultCode success."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(_ANON_BIND)
            data = s.recv(256)
    except OSError:
        return False
    # BindResponse: 30 len 02 01 01 61 len 0a 01 <resultCode> ...
    i = data.find(b"\x61")
    return i > 0 and data[i + 2:i + 5] == b"\x0a\x01\x00"


def ldaps_bind_ok(port, ca_file, host=LOOPBACK, server_hostname=None, timeout=1.0):
    """True if an anonymous bind over LDAPS (certificate verified against ca_file) succeeds."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname=server_hostname or host) as s:
                s.sendall(_ANON_BIND)
                data = s.recv(256)
    except (OSError, ssl.SSLError):
        return False
    i = data.find(b"\x61")
    return i > 0 and data[i + 2:i + 5] == b"\x0a\x01\x00"


# ---- throw-away certificates ---------------------------------------------------------------
def _write_private(path, data):
    """Write a key file 0600 from the start (never briefly world-readable)."""
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def _validity(builder):
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(
        now + datetime.timedelta(days=30))


def make_ca(directory, name="Owlery test CA"):
    """A new self-signed CA in directory: (cert_path, key_path) as PEM files (key 0600)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    directory = make_dir(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (_validity(x509.CertificateBuilder())
            .subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return cert_path, key_path


def issue_certificate(ca, directory, names=("localhost", "127.0.0.1"), stem="server"):
    """A server certificate for `names` (DNS names or IP addresses) signed by ca
    (cert_path, key_path from make_ca): (cert_path, key_path) in directory (key 0600)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    directory = make_dir(directory)
    ca_cert = x509.load_pem_x509_certificate(Path(ca[0]).read_bytes())
    ca_key = serialization.load_pem_private_key(Path(ca[1]).read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    alt = []
    for n in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            alt.append(x509.DNSName(n))
    cert = (_validity(x509.CertificateBuilder())
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=True, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = directory / (stem + ".pem"), directory / (stem + ".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return cert_path, key_path


class Slapd(ServerProcess):
    """slapd with `ldif_text` (default: the seed directory) loaded by slapadd at first start.

    Attributes: url ("ldap://127.0.0.1:PORT"), host, port, base_dn, admin_dn, admin_password,
    workdir. Methods: start(), stop(), restart(), connection(admin=False) (ldap3, bound),
    modify_ldif(text) (ldapmodify as admin; "changetype: add" etc. in the text).
    With tls=True also: ldaps_url ("ldaps://127.0.0.1:LDAPS_PORT"), ldaps_port, ca_file (the
    CA to trust), cert_file, key_file; the server certificate names `tls_names`.
    """

    start_timeout = 15.0

    def __init__(self, workdir, ldif_text=None, base_dn="dc=example,dc=test",
                 admin_password="secret", tls=False, tls_names=("localhost", "127.0.0.1")):
        self.workdir = make_dir(workdir)
        self.ldif_text = seed_ldif() if ldif_text is None else ldif_text
        self.base_dn = base_dn
        self.admin_dn = "cn=admin," + base_dn
        self.admin_password = admin_password
        self.host = LOOPBACK
        self.conf_path = self.workdir / "slapd.conf"
        self.db_dir = self.workdir / "db"
        self.tls = tls
        self.tls_names = tuple(tls_names)
        self.ldaps_port = None
        self.ca_file = self.cert_file = self.key_file = None

    @property
    def url(self):
        return "ldap://%s:%d" % (self.host, self.port)

    @property
    def ldaps_url(self):
        if not self.tls:
            raise AttributeError("ldaps_url: this Slapd was made without tls=True")
        return "ldaps://%s:%d" % (self.host, self.ldaps_port)

    def _make_certificates(self):
        tls_dir = make_dir(self.workdir / "tls", 0o700)
        ca = make_ca(tls_dir)
        self.ca_file = ca[0]
        self.cert_file, self.key_file = issue_certificate(ca, tls_dir, self.tls_names)

    def _tls_conf(self):
        if not self.tls:
            return ""
        return ("TLSCACertificateFile %s\n" % self.ca_file +
                "TLSCertificateFile %s\n" % self.cert_file +
                "TLSCertificateKeyFile %s\n" % self.key_file)

    def _write_conf(self):
        includes = "".join("include /etc/ldap/schema/%s.schema\n" % s for s in SYSTEM_SCHEMAS)
        self.conf_path.write_text(
            includes +
            "include %s\n" % SCHEMA_PATH +
            "modulepath /usr/lib/ldap\n"
            "moduleload back_mdb\n"
            "pidfile %s\n" % (self.workdir / "slapd.pid") +
            "argsfile %s\n" % (self.workdir / "slapd.args") +
            "loglevel stats\n" +
            self._tls_conf() +
            "database mdb\n"
            "maxsize 104857600\n"
            'suffix "%s"\n' % self.base_dn +
            'rootdn "%s"\n' % self.admin_dn +
            "rootpw %s\n" % self.admin_password +
            "directory %s\n" % self.db_dir +
            "index objectClass eq\n"
            "index mail,mailAlternateAddress,mailLocalAddress,mailForwardingAddress,uid eq\n"
            "index member,uniqueMember eq\n"
            "access to attrs=userPassword by self write by anonymous auth by * none\n"
            "access to * by * read\n")

    def _load(self):
        if (self.db_dir / "data.mdb").exists():
            return
        make_dir(self.db_dir, 0o700)
        ldif = self.workdir / "seed.ldif"
        ldif.write_text(self.ldif_text)
        proc = subprocess.run([SLAPADD, "-q", "-f", str(self.conf_path), "-l", str(ldif)],
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise HarnessError("slapadd failed (exit %d):\n%s%s" % (proc.returncode, proc.stdout, proc.stderr))

    def _first_start(self):
        """Write slapd.conf and slapadd the LDIF (then start() picks the port)."""
        if self.tls:
            self._make_certificates()
        self._write_conf()
        self._load()

    def _pick_ports(self):
        if self.tls:
            self.port, self.ldaps_port = free_ports(2)
        else:
            self.port = free_port()

    def _spawn(self, timeout):
        # -d: stay in the foreground (our child); 256 = stats, one line per operation, to slapd.log.
        urls = "ldap://%s:%d/" % (self.host, self.port)
        if self.tls:
            urls += " ldaps://%s:%d/" % (self.host, self.ldaps_port)
        with self._started(ManagedProcess([SLAPD, "-h", urls, "-f", self.conf_path, "-d", "256"],
                                          "slapd", self.workdir / "slapd.log")) as proc:
            wait_until(lambda: ldap_bind_ok(self.port, self.host), timeout, "slapd on port %d" % self.port, proc)
            if self.tls:
                wait_until(lambda: ldaps_bind_ok(self.ldaps_port, self.ca_file, self.host,
                                                 server_hostname=self.tls_names[0]), timeout,
                           "slapd LDAPS on port %d" % self.ldaps_port, proc)

    def connection(self, admin=False, **kwargs):
        """A bound ldap3 Connection (anonymous, or as admin_dn) with a 5 s receive timeout."""
        import ldap3
        server = ldap3.Server(self.host, port=self.port, connect_timeout=5)
        if admin:
            kwargs.setdefault("user", self.admin_dn)
            kwargs.setdefault("password", self.admin_password)
        kwargs.setdefault("receive_timeout", 5)
        return ldap3.Connection(server, auto_bind=True, **kwargs)

    def modify_ldif(self, ldif_text):
        """Apply an LDIF change set as admin (ldapmodify -a: plain entries are added)."""
        proc = subprocess.run([LDAPMODIFY, "-a", "-x", "-H", self.url, "-D", self.admin_dn,
                               "-w", self.admin_password], input=ldif_text, capture_output=True,
                              text=True, timeout=30)
        if proc.returncode != 0:
            raise HarnessError("ldapmodify failed (exit %d): %s%s" % (proc.returncode, proc.stdout, proc.stderr))

    def __repr__(self):
        return "<Slapd %s>" % (self.url if self.port else self.workdir)
