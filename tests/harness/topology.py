"""Two MX relays and two back ends on loopback, routed by one LDAP directory: the topology of issue 15.

Starts a private Slapd (the seed directory plus TOPOLOGY_LDIF: users with a misc.schema
`mailHost`), two back ends and two relays, all reading it:
- back end X (A = 127.0.0.2, B = 127.0.0.3): `owlery policyd` (quota only, on
  127.0.0.x:quota_port, policyd_client_networks = 127.0.0.0/8), `owlery lmtpd` (Maildir
  files owned by Dovecot's mail user) and `owlery socketmap`; a private Dovecot (IMAP) over
  the same Maildirs for the back end's users (USERS); a private Postfix with socketmap_tables(settings, "backend"), virtual_transport
  to its lmtpd and an extra smtpd on 127.0.0.x:backend_smtp_port (the same port on both: a
  relay's transport_maps answer is one template, smtp:[{host}]:PORT);
- relay N (relay1, relay2): `owlery policyd` (recipient, lists, quota asking
  tcp:{host}:quota_port, greylist with delay 0 in the shared Redis under a prefix of its own,
  the outside test client 192.0.2.44 whitelisted), `owlery milter` and `owlery socketmap`; a
  private Postfix with socketmap_tables(settings, "relay") and the policy/milter lines of
  owlery.app.postfix.main_cf, and max_use = 1 (see _start_relay: a retry right after slapd is
  back must not meet the smtpd that cached the failed lookup).
Used by tests/e2e/test_topology_e2e.py. Processes are the harness's (postfix.py,
owlery_daemons.py, slapd.py); stop() ends them all and drops the Redis keys.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from owlery.app.postfix import socketmap_tables

from .dovecot import DovecotInstance
from .owlery_daemons import OwleryDaemons
from .procs import HarnessError, wait_for_tcp, wait_until
from .slapd import Slapd, seed_ldif
from .stores import drop_redis_prefix, unique_name

BACKEND_HOSTS = {"a": "127.0.0.2", "b": "127.0.0.3"}
DOMAIN = "example.test"
OUTSIDE_WHITELISTED = "192.0.2.44"


def _user(uid, host, extra=""):
    return (f"dn: uid={uid},ou=people,dc=example,dc=test\n"
            "objectClass: inetOrgPerson\nobjectClass: inetLocalMailRecipient\nobjectClass: qmailUser\n"
            f"uid: {uid}\ncn: {uid.title()} Topology\nsn: Topology\nmail: {uid}@{DOMAIN}\n"
            f"mailHost: {host}\naccountStatus: active\nmailQuotaSize: 10485760\n{extra}\n")


def _group(cn, members, extra=""):
    return (f"dn: cn={cn},ou=groups,dc=example,dc=test\nobjectClass: groupOfNames\nobjectClass: qmailUser\n"
            f"cn: {cn}\nmail: {cn}@{DOMAIN}\n"
            + "".join(f"member: uid={m},ou=people,dc=example,dc=test\n" for m in members) + extra + "\n")


# ann and dora on A; ben and cyd (over quota: 1000 bytes, its maildirsize says 5000 used) on B.
# allhands is open to anyone (businessCategory is the list policy attribute here); board is a
# protected list (the default policy: members and authenticated senders).
TOPOLOGY_LDIF = (_user("ann", BACKEND_HOSTS["a"]) + _user("dora", BACKEND_HOSTS["a"])
                 + _user("ben", BACKEND_HOSTS["b"])
                 + _user("cyd", BACKEND_HOSTS["b"]).replace("mailQuotaSize: 10485760", "mailQuotaSize: 1000")
                 + _group("allhands", ["ann", "ben"], "businessCategory: 0.0.0.0/0\n")
                 + _group("board", ["ann", "ben"]))
OVER_QUOTA = {"b": {"cyd": "1000S\n5000 5\n"}}
USERS = {"a": ("ann", "dora"), "b": ("ben", "cyd")}
MAILDIR_OWNER = "nobody"      # Dovecot's mail user (tests/harness/dovecot.py): lmtpd writes as it


def _port_free_on(port, hosts):
    for host in hosts:
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def shared_free_port(hosts):
    """A TCP port free on every address in hosts (bind to 0 on the first, check the others)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        if _port_free_on(port, hosts):
            return port
    raise HarnessError(f"no port free on all of {hosts}")


@dataclass
class Node:
    name: str
    daemons: OwleryDaemons
    pf: object = None
    mail: Path | None = None
    dovecot: DovecotInstance | None = None


class Topology:
    """Build with the session fixtures, then start(); attributes slapd, relays, backends (Node:
    name, daemons, pf, mail), backend_smtp_port, quota_port."""

    def __init__(self, postfix_factory, harness_dirs, dns_stub, redis_url):
        self.postfix_factory, self.harness_dirs = postfix_factory, harness_dirs
        self.dns_stub, self.redis_url = dns_stub, redis_url
        self.prefix = unique_name("owlery-test:") + ":"
        self.slapd = None
        self.relays, self.backends = [], []
        hosts = list(BACKEND_HOSTS.values())
        self.backend_smtp_port = shared_free_port(hosts)
        self.quota_port = shared_free_port(hosts)
        while self.quota_port == self.backend_smtp_port:
            self.quota_port = shared_free_port(hosts)

    def directory_config(self):
        return ('directory_backend = "ldap"\n'
                f'ldap_servers = ["{self.slapd.url}"]\n'
                f'ldap_base_dn = "{self.slapd.base_dn}"\n'
                f'ldap_domains = ["{DOMAIN}"]\n'
                'ldap_mail_host_attribute = "mailHost"\n'
                'ldap_list_policy_attribute = "businessCategory"\n'
                'ldap_connect_timeout = "2s"\nldap_timeout = "3s"\n'
                # Postfix keeps idle socketmap/policy connections open: do not wait 30 s on them
                'daemon_drain_timeout = "1s"\n')

    def start(self):
        self.slapd = Slapd(self.harness_dirs("topology-slapd"), ldif_text=seed_ldif() + "\n" + TOPOLOGY_LDIF).start()
        for name, host in BACKEND_HOSTS.items():
            self.backends.append(self._start_backend(name, host))
        for n in (1, 2):
            self.relays.append(self._start_relay(n))
        return self

    def _start_backend(self, name, host):
        workdir = self.harness_dirs(f"topology-backend-{name}")
        mail = workdir / "mail"
        mail.mkdir()
        for user, text in OVER_QUOTA.get(name, {}).items():
            maildir = mail / DOMAIN / user / "Maildir"
            for sub in ("new", "cur", "tmp"):
                (maildir / sub).mkdir(parents=True)
            (maildir / "maildirsize").write_text(text)
        config = (self.directory_config()
                  + f'maildir_path_template = "{mail}/{{domain}}/{{localpart}}/Maildir"\n'
                  f'delivery_sieve_script_template = "{workdir}/sieve/{{localpart}}.sieve"\n'
                  f'state_sqlite_path = "{workdir}/state.sqlite"\n'
                  f'maildir_owner = "{MAILDIR_OWNER}"\n'
                  'policyd_checks = { RCPT = ["quota"] }\n'
                  'policyd_client_networks = ["127.0.0.0/8"]\n')
        daemons = OwleryDaemons(workdir / "owlery", extra_config=config, which=("policyd", "lmtpd", "socketmap"),
                                listen={"policyd": (host, self.quota_port)})
        node = Node(name, daemons, mail=mail)
        # Dovecot first: it makes the users' homes and gives them to its mail user
        node.dovecot = DovecotInstance(workdir / "dovecot", {f"{u}@{DOMAIN}": str(mail / DOMAIN / u)
                                                             for u in USERS[name]}).start()
        try:
            daemons.start()
        except BaseException:
            node.dovecot.stop()
            raise
        try:
            main = dict(socketmap_tables(daemons.settings, "backend"))
            main.update(myhostname=f"backend-{name}.example.test", relay_domains="",
                        virtual_transport=f"lmtp:inet:127.0.0.1:{daemons.ports['lmtpd']}")
            listener = f"{host}:{self.backend_smtp_port} inet n - n - - smtpd\n"
            node.pf = self.postfix_factory(main_cf=main, master_cf_extra=listener, name=f"topology-postfix-{name}")
            wait_for_tcp(self.backend_smtp_port, host, timeout=15, what=f"back end {name} smtpd on {host}")
        except BaseException:
            daemons.stop()
            node.dovecot.stop()
            raise
        return node

    def _start_relay(self, n):
        workdir = self.harness_dirs(f"topology-relay{n}")
        whitelist = workdir / "greylist_whitelist_clients"
        whitelist.write_text(OUTSIDE_WHITELISTED + "\n")
        config = (self.directory_config()
                  + f'socketmap_transport_template = "smtp:[{{host}}]:{self.backend_smtp_port}"\n'
                  'policyd_checks = { RCPT = ["recipient", "lists", "quota", "greylist"] }\n'
                  f'quota_backend_endpoint = "tcp:{{host}}:{self.quota_port}"\n'
                  'quota_backend_timeout = "5s"\n'
                  'state_backend = "redis"\n'
                  f'state_redis_url = "{self.redis_url}"\n'
                  f'state_key_prefix = "{self.prefix}"\n'
                  'greylist_delay = 0\n'
                  f'greylist_whitelist_clients = ["{whitelist}"]\n'
                  'greylist_whitelist_recipients = []\n'
                  f'greylist_hostname = "relay{n}.example.test"\n'
                  f'maildir_path_template = "{workdir}/no-maildirs-here/{{domain}}/{{localpart}}/Maildir"\n'
                  # the milter's default inbound stages (SPF, DKIM, DMARC) ask the DNS stub, never real DNS
                  'dns_nameservers = ["127.0.0.1"]\n'
                  f'dns_port = {self.dns_stub.port}\n')
        daemons = OwleryDaemons(workdir / "owlery", extra_config=config, which=("policyd", "milter", "socketmap"))
        node = Node(f"relay{n}", daemons)
        daemons.start()
        try:
            wiring = {k: v for k, v in daemons.main_cf([DOMAIN]).items()
                      if k.startswith(("smtpd_", "milter_", "non_smtpd_milters"))}
            main = {**wiring, **dict(socketmap_tables(daemons.settings, "relay")), "myhostname": f"relay{n}.example.test",
                    # smtpd caches an address's resolution, a failed one too (smtpd_resolve.c), for
                    # its process life: a sender retrying minutes later meets a new smtpd (max_idle
                    # 100s); here the retry comes at once, so each smtpd serves one session
                    "max_use": "1"}
            node.pf = self.postfix_factory(main_cf=main, name=f"topology-postfix-relay{n}")
        except BaseException:
            daemons.stop()
            raise
        return node

    # ---- Maildirs ---------------------------------------------------------------------
    def backend(self, name):
        return next(b for b in self.backends if b.name == name)

    def maildir_hits(self, backend, user, subject):
        """Files in back end `backend`'s Maildir of `user` whose Subject is `subject`."""
        base = self.backend(backend).mail / DOMAIN / user / "Maildir"
        needle = f"Subject: {subject}\n".encode()
        return [p for sub in ("new", "cur") if (base / sub).is_dir()
                for p in sorted((base / sub).iterdir()) if needle in p.read_bytes()]

    def wait_delivered(self, backend, user, subject, timeout=30):
        """The Maildir files holding `subject` (waits for one; on timeout fails with the logs)."""
        try:
            return wait_until(lambda: self.maildir_hits(backend, user, subject), timeout,
                              f"{subject!r} in {user}'s Maildir on back end {backend}")
        except HarnessError as exc:
            raise HarnessError(f"{exc}\n{self.logs()}") from None

    def imap_subjects(self, backend, user):
        """Subjects in `user`'s INBOX as the back end's Dovecot serves it."""
        client = self.backend(backend).dovecot.imap(f"{user}@{DOMAIN}")
        try:
            client.select("INBOX", readonly=True)
            _, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            if data == [None]:
                return []
            return [part[1].decode().partition(":")[2].strip() for part in data if isinstance(part, tuple)]
        finally:
            client.logout()

    def settle(self, timeout=30):
        """Wait until every Postfix queue is empty (all delivered, nothing pending)."""
        for node in self.relays + self.backends:
            node.pf.wait_queue_empty(timeout)

    def logs(self):
        out = []
        for node in self.relays + self.backends:
            out.append(f"--- {node.name} maillog ---\n{node.pf.maillog()[-2000:] if node.pf else ''}")
            for d in node.daemons.which:
                out.append(f"--- {node.name} {d} ---\n{node.daemons.log(d)[-1500:]}")
        return "\n".join(out)

    def stop(self):
        # Postfix first: its idle socketmap/policy connections would hold the daemons' drain
        for node in self.relays + self.backends:
            if node.pf is not None:
                node.pf.stop()
        for node in self.relays + self.backends:
            node.daemons.stop()
            if node.dovecot is not None:
                node.dovecot.stop()
        if self.slapd is not None:
            self.slapd.stop()
        drop_redis_prefix(self.redis_url, self.prefix)
