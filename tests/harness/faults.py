"""Fault injection under load: Postfix wired with Owlery and its servers, kill -9 and restart while mail flows.

`FaultStack(workdir, servers=..., daemons=...)` starts on loopback the servers named (slapd,
redis, clamd, spamd, postgres: the harness classes; Redis and PostgreSQL are always private
ones, since they get killed), `owlery policyd|milter|lmtpd` (OwleryDaemons) with one
settings file wired to them, and a private Postfix whose Owlery lines come from
owlery.app.postfix (what `owlery postfix` prints). With slapd the directory is LDAP, and
those lines have Postfix read its domains and aliases through `owlery socketmap`: it is
then started too (named in `daemons` or not), and killed and restarted like the others.
`kill(name)` sends SIGKILL to the whole process group of a server or daemon;
`restart(name)` brings it back on the same port and waits until it answers. Greylisting runs with no delay and no in-process memory (every RCPT
asks Redis); rate limits count every message in Redis; every 10th message is GTUBE, which
the milter quarantines in PostgreSQL (when those are there). PostgreSQL commits
synchronously here, as Owlery expects (the harness turns that off for speed), so a killed
server keeps every commit it acknowledged.
`Load(stack)` is the sending MTA: threads submitting distinct messages (Message-ID and
Subject carry the number) through smtpd as an outside client (XCLIENT ADDR=192.0.2.44),
retrying 4xx answers and dropped connections later like an MTA would, recording every
reply under the current phase label. `account(stack, load)` counts per message: delivered
once / more than once (Maildir files by Message-ID, quarantine rows), still in Postfix's
queue, bounced, 5xx, never accepted, lost.
Used by bench/bench_faults.py and tests/e2e/test_fault_injection.py.
"""

from __future__ import annotations

import email.utils
import heapq
import os
import pwd
import re
import signal
import smtplib
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from .owlery_daemons import OwleryDaemons
from .postfix import PostfixInstance
from .procs import HarnessError, make_dir, wait_for_tcp, wait_until

DOMAIN = "example.test"
RCPT = f"alice@{DOMAIN}"
SENDER = "news@outside.test"
OUTSIDE = {"ADDR": "192.0.2.44", "NAME": "mx.outside.test"}
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
MAIL_USER = "nobody"          # owns the Maildirs (maildir_owner), as in tests/e2e/test_wiring_e2e.py
PG_SCHEMA = "owlery_faults"
ALL_SERVERS = ("slapd", "redis", "clamd", "spamd", "postgres")
ALL_DAEMONS = ("policyd", "milter", "lmtpd", "socketmap")   # socketmap: only with slapd (see daemons_for)
_MID_RE = re.compile(rb"^message-id:[ \t]*<([^>\r\n]+)>", re.I | re.M)
_BOUNCED_RE = re.compile(r"\b([0-9A-F]{6,}): to=<[^>]*>.*\bstatus=bounced")


def daemons_for(servers, daemons):
    """The Owlery daemons to start: those named, with `owlery socketmap` when the wiring needs
    it (slapd: an LDAP directory, which Postfix reads through the socketmap; see
    owlery.app.postfix.uses_socketmap) and without it otherwise (nothing would ask it)."""
    needed = "slapd" in servers
    names = [n for n in daemons if n != "socketmap" or needed]
    if needed and "socketmap" not in names:
        names.append("socketmap")
    return tuple(names)


class FaultStack:
    """The servers, the Owlery daemons and Postfix, each of which can be killed and restarted."""

    def __init__(self, workdir, servers=ALL_SERVERS, daemons=ALL_DAEMONS):
        self.workdir = make_dir(workdir)
        self.server_names = tuple(servers)
        self.daemon_names = daemons_for(self.server_names, daemons)
        self.servers = {}
        self.daemons = None
        self.pf = None
        self.mail = self.workdir / "mail"
        self.maildir = self.mail / DOMAIN / "alice" / "Maildir"

    # ---- start / stop ------------------------------------------------------------------
    def start(self):
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self):
        from .clamd import Clamd
        from .slapd import Slapd
        from .spamd import Spamd
        from .stores import PostgresServer, RedisServer
        makers = {"slapd": Slapd, "redis": RedisServer, "clamd": Clamd, "spamd": Spamd, "postgres": PostgresServer}
        for name in self.server_names:
            self.servers[name] = makers[name](self.workdir / name).start()
        if "postgres" in self.servers:
            self._durable_commits(self.servers["postgres"].dsn)
        nobody = pwd.getpwnam(MAIL_USER)
        for d in (self.mail, self.workdir / "state"):
            d.mkdir(exist_ok=True)
            os.chown(d, nobody.pw_uid, nobody.pw_gid)
        self.daemons = OwleryDaemons(self.workdir / "owlery", extra_config=self.config(), which=self.daemon_names)
        self.daemons.start()
        main = {**self.daemons.main_cf([DOMAIN]), "relay_domains": ""}   # the harness relays example.test
        if "milter" not in self.daemon_names:
            main.update(smtpd_milters=None, non_smtpd_milters=None)
        if "policyd" not in self.daemon_names:
            main.update(smtpd_recipient_restrictions=None, smtpd_data_restrictions=None,
                        smtpd_end_of_data_restrictions=None)
        self.pf = PostfixInstance(self.workdir / "postfix", main_cf=main).start()

    @staticmethod
    def _durable_commits(dsn):
        """The harness runs PostgreSQL with synchronous_commit off (fast tests): a commit it
        acknowledged may then vanish when the server is killed, which would count as a lost
        message. Owlery relies on the default (on): the database's setting, which overrides
        the server's command line for every new session, puts it back. fsync stays off: the
        killed processes lose nothing the kernel holds; only a machine crash would."""
        import psycopg
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ALTER DATABASE test SET synchronous_commit TO on")
        with psycopg.connect(dsn) as conn:
            value = conn.execute("SHOW synchronous_commit").fetchone()[0]
        if value != "on":
            raise HarnessError(f"postgres: synchronous_commit is {value!r} for new sessions, not 'on'")

    def config(self):
        """The Owlery settings file text (beside the listen lines OwleryDaemons writes)."""
        s = self.servers
        lines = [f'maildir_path_template = "{self.mail}/{{domain}}/{{localpart}}/Maildir"',
                 f'delivery_sieve_script_template = "{self.workdir}/sieve/{{localpart}}.sieve"',
                 f'maildir_owner = "{MAIL_USER}"',
                 f'state_sqlite_path = "{self.workdir}/state/state.sqlite"',
                 # every lookup asks the directory, so that its outage is met by mail
                 "directory_cache_positive_ttl = 0", "directory_cache_negative_ttl = 0"]
        if "slapd" in s:
            lines += ['directory_backend = "ldap"', f'ldap_servers = ["{s["slapd"].url}"]',
                      f'ldap_base_dn = "{s["slapd"].base_dn}"', f'ldap_domains = ["{DOMAIN}"]']
        else:
            mailboxes = self.workdir / "mailboxes"
            mailboxes.write_text(f"{RCPT} {DOMAIN}/alice/Maildir\n")
            lines += [f'files_mailboxes = "{mailboxes}"', f'files_maildir_base = "{self.mail}"']
        if "redis" in s:
            lines += ['state_backend = "redis"', f'state_redis_url = "{s["redis"].url}"',
                      'state_key_prefix = "owlery-faults:"',
                      'policyd_checks = { RCPT = ["recipient", "greylist"], "END-OF-MESSAGE" = ["ratelimit"] }',
                      # mail flows: no delay (a new triplet is deferred once), and no per-process
                      # memory, so that every RCPT asks Redis
                      "greylist_delay = 0", "greylist_memory_entries = 0",
                      "greylist_whitelist_clients = []", "greylist_whitelist_recipients = []",
                      'greylist_hostname = "mx.example.test"',
                      'ratelimit_messages = { client_address = "1000000/1h" }']
        else:
            lines.append('policyd_checks = { RCPT = ["recipient"] }')
        stages = [st for st, srv in (("antivirus", "clamd"), ("banned", None), ("spam", "spamd"), ("quarantine", None))
                  if srv is None or srv in s]
        lines.append(f"milter_inbound_stages = {stages!r}".replace("'", '"'))
        if "clamd" in s:
            lines += [f'clamd_endpoint = "tcp:127.0.0.1:{s["clamd"].port}"', 'clamd_timeout = "10s"']
        if "spamd" in s:
            lines += [f'spamd_endpoint = "tcp:127.0.0.1:{s["spamd"].port}"', 'spamd_timeout = "20s"',
                      "spam_quarantine_level = 6.9"]
            if "slapd" in s:
                lines.append("spam_directory_levels = true")
        if "postgres" in s:
            lines += ['quarantine_backend = "postgresql"', f'quarantine_pg_dsn = "{s["postgres"].dsn}"',
                      f'quarantine_pg_schema = "{PG_SCHEMA}"', 'quarantine_db_timeout = "5s"']
        else:
            lines.append(f'quarantine_directory = "{self.workdir}/quarantine"')
        lines.append('quarantine_host_name = "mx.example.test"')
        return "\n".join(lines) + "\n"

    def stop(self):
        if self.pf is not None:
            self.pf.stop()
        if self.daemons is not None:
            self.daemons.stop()
        for server in self.servers.values():
            server.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- faults --------------------------------------------------------------------------
    @property
    def fault_names(self):
        """What can be killed, in the order of the issue: servers, then Owlery's daemons."""
        return [n for n in ALL_SERVERS if n in self.servers] + [n for n in ALL_DAEMONS if n in self.daemon_names]

    def _proc(self, name):
        if name in self.servers:
            return self.servers[name].proc
        return self.daemons.procs[name]

    def kill(self, name):
        """kill -9 the server or daemon: SIGKILL to its whole process group, then reap it."""
        proc = self._proc(name)
        if not proc.alive():
            raise HarnessError(f"{name} is not running")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.popen.wait(10)

    def restart(self, name, timeout=90.0):
        """Start `name` again on the same port with the same data; return when it answers."""
        from .stores import pg_ping, redis_ping
        if name in ("slapd", "clamd", "spamd"):
            self.servers[name].start()            # these keep their port and data across start()
        elif name == "redis":
            server = self.servers[name]
            server.proc.start()
            wait_until(lambda: redis_ping(server.host, server.port), timeout, "redis-server restart", server.proc)
        elif name == "postgres":
            server = self.servers[name]
            server.proc.start()
            wait_until(lambda: pg_ping(server.dsn, 1), timeout, "postgres restart (crash recovery)", server.proc)
        else:
            proc = self.daemons.procs[name].start()
            wait_for_tcp(self.daemons.ports[name], timeout=timeout, proc=proc, what=f"owlery {name} restart")

    # ---- where mail ended up -------------------------------------------------------------------
    def maildir_message_ids(self):
        """Counter of Message-IDs over every file in alice's Maildir (all folders, new/ and cur/)."""
        found = Counter()
        if not self.maildir.is_dir():
            return found
        for path in self.maildir.rglob("*"):
            if path.parent.name in ("new", "cur") and path.is_file():
                with open(path, "rb") as f:
                    head = f.read(16384).split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
                m = _MID_RE.search(head)
                found[m.group(1).decode("ascii", "replace") if m else "?"] += 1
        return found

    def quarantined_message_ids(self):
        """Counter of Message-IDs in the quarantine, read through the milter's own store
        (PostgreSQL, or the directory store), as `owlery quarantine list` does."""
        from owlery.quarantine import ListFilter, open_store
        store = open_store(self.daemons.settings)
        try:
            return Counter(r.message_id.strip().strip("<>") for r in store.list(ListFilter(), time.time()))
        finally:
            store.close()

    def queued_ids(self):
        """Queue ids Postfix still holds (postqueue -j), with the first delay reason of each."""
        return {e["queue_id"]: (e["recipients"][0].get("delay_reason", "") if e.get("recipients") else "")
                for e in self.pf.queue()}

    def bounced_ids(self):
        return set(_BOUNCED_RE.findall(self.pf.maillog()))

    def drain(self, timeout=120.0, stable=15.0):
        """`postqueue -f`, then wait (deadline `timeout`) until the queue is empty, or has not
        changed for `stable` seconds; returns the seconds it took."""
        t0 = time.monotonic()
        self.pf.flush()
        last = {"ids": None, "since": t0}

        def settled():
            ids = frozenset(self.pf.queue_files(include_hold=True))
            now = time.monotonic()
            if ids != last["ids"]:
                last.update(ids=ids, since=now)
            return not ids or now - last["since"] >= stable
        try:
            wait_until(settled, timeout, "postfix queue empty or stable", interval=0.2)
        except HarnessError:
            pass                       # what is still queued is counted as queued
        return time.monotonic() - t0


# ---- the sending MTA --------------------------------------------------------------------------
@dataclass
class Message:
    n: int
    kind: str                       # "clean" -> Maildir, "spam" (GTUBE) -> quarantine
    mid: str
    raw: bytes
    first_phase: str
    phase: str = ""                 # where the message is counted: the phase of its first 250
    tries: int = 0
    accepted: list = field(default_factory=list)     # queue ids of every 250 at DATA
    fivexx: list = field(default_factory=list)       # (stage, code, text)
    tempfails: list = field(default_factory=list)    # (stage, code, text)


@dataclass
class PhaseStats:
    tries: int = 0
    ok: int = 0
    tempfail: int = 0
    fivexx: int = 0
    dropped: int = 0                                 # connection lost / timed out, no reply
    replies: Counter = field(default_factory=Counter)


def make_message(n, run, kind):
    mid = f"fault-{run}-{n}@bench.example.test"
    body = GTUBE if kind == "spam" else f"Message number {n} of fault-injection run {run}."
    text = (f"From: <{SENDER}>\r\nTo: <{RCPT}>\r\nSubject: fault run {run} message {n}\r\n"
            f"Date: {email.utils.formatdate()}\r\nMessage-ID: <{mid}>\r\n\r\n{body}\r\n")
    return mid, text.encode()


class Load:
    """Sender threads submitting new messages (`rate` a second at most) until stop_new(),
    retrying 4xx'd ones `retry_delay` later (as an MTA's queue would) until accepted, 5xx'd,
    or `give_up` seconds after stop_new()."""

    def __init__(self, stack, senders=2, rate=8.0, spam_every=10, retry_delay=0.5, smtp_timeout=60.0, max_messages=20000):
        self.pf = stack.pf
        self.spam_every = spam_every if "milter" in stack.daemon_names else 0
        self.rate = rate
        self._next_new_at = 0.0
        self.retry_delay = retry_delay
        self.smtp_timeout = smtp_timeout
        self.max_messages = max_messages
        self.run = os.urandom(4).hex()
        self.messages = []
        self.phases = {}
        self.phase = "warm-up"
        self.tries = 0
        self._retry = []                 # heap of (due, n)
        self._busy = 0
        self._producing = True
        self._give_up_at = None
        self._lock = threading.Condition()
        self._threads = [threading.Thread(target=self._worker, name=f"sender-{i}", daemon=True) for i in range(senders)]

    # ---- control --------------------------------------------------------------------------
    def start(self):
        for t in self._threads:
            t.start()
        return self

    def set_phase(self, name):
        with self._lock:
            self.phase = name

    def stop_new(self, give_up=120.0):
        with self._lock:
            self._producing = False
            self._give_up_at = time.monotonic() + give_up
            self._lock.notify_all()

    def join(self, timeout):
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def count(self, what):
        """Totals so far: "tries", "accepted" (messages with a 250), "started" (messages made)."""
        with self._lock:
            if what == "tries":
                return self.tries
            if what == "accepted":
                return sum(1 for m in self.messages if m.accepted)
            return len(self.messages)

    def wait_more(self, what, more, timeout, label, at_least_s=0.0, proc=None):
        """Wait (deadline `timeout`) until count(what) has grown by `more` from now, and at
        least `at_least_s` seconds have passed (how long an outage lasts, at least); fail at
        once if `proc` (a ManagedProcess) exits meanwhile."""
        start, t0 = self.count(what), time.monotonic()
        wait_until(lambda: self.count(what) - start >= more and time.monotonic() - t0 >= at_least_s,
                   timeout, label, proc)

    def pending(self):
        with self._lock:
            return len(self._retry) + self._busy

    # ---- workers --------------------------------------------------------------------------
    def _next(self):
        with self._lock:
            while True:
                now = time.monotonic()
                if self._give_up_at is not None and now >= self._give_up_at:
                    return None          # what is still refused then is counted as never accepted
                if self._retry and self._retry[0][0] <= now:
                    msg = self.messages[heapq.heappop(self._retry)[1]]
                    break
                if self._producing and len(self.messages) < self.max_messages and now >= self._next_new_at:
                    # new mail arrives at `rate` a second, outage or not; retries come on top
                    self._next_new_at = max(self._next_new_at, now - 0.5) + 1.0 / self.rate
                    n = len(self.messages)
                    kind = "spam" if self.spam_every and n % self.spam_every == self.spam_every - 1 else "clean"
                    mid, raw = make_message(n, self.run, kind)
                    msg = Message(n, kind, mid, raw, first_phase=self.phase)
                    self.messages.append(msg)
                    break
                if not self._retry and (not self._producing or len(self.messages) >= self.max_messages):
                    if self._busy == 0:
                        self._lock.notify_all()
                    return None
                # a 4xx'd message is retried later, as an MTA's queue manager would do
                due = [self._retry[0][0]] if self._retry else []
                if self._producing:
                    due.append(self._next_new_at)
                self._lock.wait(max(0.001, min([now + 0.5] + due) - now))
            self._busy += 1
            msg.tries += 1
            self.tries += 1
            return msg, self.phase

    def _worker(self):
        while True:
            job = self._next()
            if job is None:
                return
            msg, phase = job
            outcome, stage, code, text, qid = self._send(msg)
            with self._lock:
                self._busy -= 1
                st = self.phases.setdefault(phase, PhaseStats())
                st.tries += 1
                if outcome == "ok":
                    st.ok += 1
                    if not msg.accepted:
                        msg.phase = phase
                    msg.accepted.append(qid)
                else:
                    st.replies[f"{stage} {code} {text[:70]}".rstrip()] += 1
                    if outcome == "5xx":
                        st.fivexx += 1
                        msg.fivexx.append((stage, code, text))
                    else:
                        if outcome == "4xx":
                            st.tempfail += 1
                        else:
                            st.dropped += 1
                        msg.tempfails.append((stage, code, text))
                        heapq.heappush(self._retry, (time.monotonic() + self.retry_delay, msg.n))
                self._lock.notify_all()

    def _send(self, msg):
        """One SMTP transaction; (outcome "ok"|"4xx"|"5xx"|"dropped", stage, code, text, queue id)."""
        stage = "connect"
        try:
            with smtplib.SMTP("127.0.0.1", self.pf.port, local_hostname="client.outside.test",
                              timeout=self.smtp_timeout) as s:
                stage = "XCLIENT"
                code, resp = s.docmd("XCLIENT", " ".join(f"{k}={v}" for k, v in OUTSIDE.items()))
                if code == 220:
                    s.ehlo_resp = None
                    stage = "EHLO"
                    code, resp = s.ehlo("mx.outside.test")
                    if code == 250:
                        stage = "MAIL"
                        code, resp = s.mail(SENDER)
                        if code == 250:
                            stage = "RCPT"
                            code, resp = s.rcpt(RCPT)
                            if code == 250:
                                stage = "DATA"
                                code, resp = s.data(msg.raw)
                text = resp.decode("utf-8", "replace").replace("\n", " ")
                if code == 250 and stage == "DATA":
                    m = re.search(r"queued as ([0-9A-Za-z]+)", text)
                    return "ok", stage, code, text, m.group(1) if m else "?"
                if stage == "RCPT" and 400 <= code < 600:
                    s.rset()
        except smtplib.SMTPResponseException as e:   # e.g. 421 at connect
            code, text = e.smtp_code, e.smtp_error.decode("utf-8", "replace") if isinstance(e.smtp_error, bytes) \
                else str(e.smtp_error)
        except (smtplib.SMTPException, OSError, socket.timeout) as e:
            return "dropped", stage, 0, type(e).__name__, None
        if 500 <= code < 600:
            return "5xx", stage, code, text, None
        if 400 <= code < 500:
            return "4xx", stage, code, text, None
        return "dropped", stage, code, text, None


# ---- accounting ----------------------------------------------------------------------------------
OUTCOMES = ("once", "dup", "queued", "misfiled", "bounced", "5xx", "unsent", "lost")


def account(stack, load):
    """{message number: outcome} with outcome in OUTCOMES, plus details for the report.

    once: exactly one copy where it belongs (Maildir; quarantine for GTUBE); dup: more than
    one copy; queued: not delivered, still in Postfix's queue; misfiled: one copy, in the wrong
    place; bounced: Postfix bounced it; 5xx: refused permanently at SMTP time; unsent: never
    accepted (still 4xx when the sender gave up); lost: accepted with 250, and nowhere.
    """
    in_maildir = stack.maildir_message_ids()
    in_quarantine = stack.quarantined_message_ids()
    queued = stack.queued_ids()
    bounced = stack.bounced_ids()
    outcomes = {}
    for m in load.messages:
        home, other = (in_quarantine, in_maildir) if m.kind == "spam" else (in_maildir, in_quarantine)
        copies, wrong = home.get(m.mid, 0), other.get(m.mid, 0)
        if m.fivexx and not m.accepted:
            outcomes[m.n] = "5xx"
        elif not m.accepted:
            outcomes[m.n] = "unsent"
        elif copies + wrong > 1:
            outcomes[m.n] = "dup"
        elif copies == 1:
            outcomes[m.n] = "once"
        elif wrong == 1:
            outcomes[m.n] = "misfiled"
        elif any(q in queued for q in m.accepted):
            outcomes[m.n] = "queued"
        elif any(q in bounced for q in m.accepted):
            outcomes[m.n] = "bounced"
        else:
            outcomes[m.n] = "lost"
    return outcomes, {"queued": queued, "bounced": bounced}
