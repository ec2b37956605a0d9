"""Nothing lost when the machine runs out of something: real lmtpd and LDA on a full file system.

Each test mounts a small tmpfs (root, mount(2)) inside its own tmp directory where the Maildirs
(or the state store) live, fills it, delivers, and unmounts it in a finaliser. Proves:
  - LMTP, three recipients, room for one copy: each recipient gets its own reply, 250 only
    for a copy that is whole in new/, 451 4.3.0 (never 5xx) for the others, which have nothing
    in new/, cur/ or tmp/; maildirsize agrees with the messages; one log line each; the daemon
    serves the next transaction once space is back;
  - the same with the inodes used up;
  - `owlery lda` on a full file system exits 75 (EX_TEMPFAIL) with a 4.3.0 line, storing nothing;
  - Sieve `fileinto :create` of a folder that cannot be made: 451; once space is back the
    folder is made whole and subscribed;
  - vacation whose duplicate-tracking write fails (the state store's file system is full):
    the message is delivered (250) and the reply skipped with a WARNING, as RFC 5230 4.2 allows;
  - policyd greylisting with its SQLite file system full: a first sight is still
    DEFER_IF_PERMIT 4.7.1 (never DUNNO, never 5xx), the failed flush is one WARNING a retry
    interval (no busy loop), and once space is back the kept first sight is stored; policyd
    started on a full state file system answers DEFER_IF_PERMIT 4.x.x instead of not starting;
  - lmtpd and policyd at their open-files limit (prlimit 48): the connections they hold are
    served, the rest closed at once (the listen queue drains: no accept() busy loop at 100% CPU,
    twisted/twisted#5368), one WARNING line says so, and they serve again once connections close.
Helpers (mounted_tmpfs, fill, free_pages, fill_inodes): tests/delivery/test_exhaustion_units_s22.py.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from owlery import maildirsize
from owlery.maildir import Maildir
from owlery.state.sqlite_store import SQLiteStore
from policyd.cli import query
from tests.delivery.daemon import Lmtpd, base_config, remove_workdir, shared_workdir
from tests.delivery.test_exhaustion_units_s22 import PAGE, fill, fill_inodes, free_pages, mounted_tmpfs
from tests.delivery.test_lmtpd import converse
from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.procs import wait_until

ROOT = Path(__file__).resolve().parents[2]
OWLERY = str(ROOT / ".venv" / "bin" / "owlery")
USERS = ("ann", "ben", "cyd")
CONFIG = """
delivery_use_directory = false
delivery_quota_size = "1M"
submission_method = "sendmail"
submission_sendmail_command = ["/bin/sh", "-c", "cat > /dev/null"]
"""


@pytest.fixture(scope="module")
def lmtpd():
    work = shared_workdir("owlery-exh-")
    (work / "mail").mkdir()
    (work / "state").mkdir()
    daemon = Lmtpd(work, base_config(work) + CONFIG)
    try:
        yield work, daemon.start()
    finally:
        daemon.stop()
        remove_workdir(work)


@pytest.fixture
def mail_fs(lmtpd):
    work, _ = lmtpd
    with mounted_tmpfs("size=512k,nr_inodes=400", work / "mail") as fs:
        yield fs


def transaction(port: int, sender: str, users, body: bytes) -> list[str]:
    """One LMTP transaction to users@example.org; the replies after DATA, one per recipient."""
    rcpts = [f"RCPT TO:<{u}@example.org>" for u in users]
    got = converse(port, ["LHLO exhaustion.test", f"MAIL FROM:<{sender}>", *rcpts, "DATA"],
                   body + b"\r\n.\r\n", replies_after_data=len(users))
    return got[-1 - len(users):-1]


def maildir(fs: Path, user: str) -> Path:
    return fs / "example.org" / user / "Maildir"


def files(root: Path, folder: str = "") -> dict[str, list[Path]]:
    base = root / folder if folder else root
    return {sub: sorted((base / sub).iterdir()) if (base / sub).is_dir() else [] for sub in ("new", "cur", "tmp")}


def assert_quota_file_agrees(root: Path) -> None:
    """maildirsize absent (recounted at the next delivery) or trusted and equal to the messages."""
    ms = maildirsize.read(str(root))
    if ms is None:
        return
    on_disk = Maildir(str(root)).count()
    assert not ms.suspect and (ms.used_bytes, ms.used_messages) == (on_disk.bytes, on_disk.messages)


def reply_map(replies: list[str]) -> dict[str, str]:
    out = {}
    for line in replies:
        m = re.match(r"(\d{3} \d\.\d\.\d) <(\w+)@example\.org>", line)
        assert m, replies
        out[m.group(2)] = m.group(1)
    return out


def test_lmtp_recipients_each_get_250_only_for_a_whole_copy(lmtpd, mail_fs):
    work, daemon = lmtpd
    assert set(reply_map(transaction(daemon.port, "first@remote.test", USERS, b"Subject: hi\r\n\r\nhello"))
               .values()) == {"250 2.0.0"}
    filler = fill(mail_fs)
    free_pages(filler, 3)                 # room for one 2-page copy (and its delta line), not three
    body = b"Subject: big\r\n\r\n" + b"z" * (PAGE + 500)
    got = reply_map(transaction(daemon.port, "big@remote.test", USERS, body))
    assert set(got.values()) <= {"250 2.0.0", "451 4.3.0"} and "451 4.3.0" in got.values(), got
    for user in USERS:
        root = maildir(mail_fs, user)
        stored = [p for p in files(root)["new"] if p.read_bytes().endswith(b"z" * (PAGE + 500) + b"\n")]
        partial = [p for p in files(root)["new"] + files(root)["cur"] if p.stat().st_size != int(
            re.search(r",S=(\d+)", p.name).group(1))]
        assert not partial and not files(root)["tmp"] and not files(root)["cur"], user
        assert len(stored) == (1 if got[user] == "250 2.0.0" else 0), (user, got)
        assert_quota_file_agrees(root)
    failed = [u for u, r in got.items() if r != "250 2.0.0"]
    for user in failed:
        daemon.wait_log(re.compile(rf"tempfail: 451 4\.3\.0 <{user}@example\.org> .*from=<big@remote\.test>.*"
                                   rf"No space left on device"))
    filler.unlink()
    # The daemon is alive and delivers the retry.
    assert set(reply_map(transaction(daemon.port, "big@remote.test", failed, body)).values()) == {"250 2.0.0"}
    for user in USERS:
        assert_quota_file_agrees(maildir(mail_fs, user))


def test_lmtp_out_of_inodes_is_451_for_each_recipient(lmtpd, mail_fs):
    work, daemon = lmtpd
    transaction(daemon.port, "first@remote.test", USERS, b"Subject: hi\r\n\r\nhello")
    before = {u: files(maildir(mail_fs, u)) for u in USERS}
    fill_inodes(mail_fs)
    got = reply_map(transaction(daemon.port, "later@remote.test", USERS, b"Subject: hi\r\n\r\nagain"))
    assert got == dict.fromkeys(USERS, "451 4.3.0")
    assert {u: files(maildir(mail_fs, u)) for u in USERS} == before


def _lda(work: Path, *args: str, message: bytes) -> subprocess.CompletedProcess:
    conf = work / "lda.toml"
    conf.write_text(base_config(work) + CONFIG + 'state_backend = "memory"\nlda_lmtp_handoff = false\n')
    return subprocess.run([OWLERY, "lda", "-c", str(conf), "-f", "b@remote.test", *args], input=message,
                          capture_output=True, timeout=30)


@pytest.mark.parametrize("exhaust", ["space", "inodes"])
def test_lda_exits_75_and_stores_nothing(lmtpd, mail_fs, exhaust):
    work, _ = lmtpd
    first = _lda(work, "-d", "dee@example.org", message=b"Subject: t\n\nhello\n")
    assert first.returncode == 0, first.stderr
    root = maildir(mail_fs, "dee")
    before = files(root)
    if exhaust == "space":
        fill(mail_fs)
    else:
        fill_inodes(mail_fs)
    for extra in ((), ("-m", "Archive")):
        r = _lda(work, "-d", "dee@example.org", *extra, message=b"Subject: t\n\n" + b"y" * 3 * PAGE)
        assert r.returncode == 75, r
        assert r.stderr.startswith(b"4.3.0 <dee@example.org> "), r.stderr
    assert files(root) == before and files(root, ".Archive") == {"new": [], "cur": [], "tmp": []}
    assert_quota_file_agrees(root)


def test_sieve_fileinto_create_on_a_full_disk_then_vacation_with_a_full_state_store(lmtpd, mail_fs):
    work, daemon = lmtpd
    script = maildir(mail_fs, "eve").parent / "sieve" / "active.sieve"
    script.parent.mkdir(parents=True)
    script.write_text('require ["fileinto", "mailbox", "vacation"];\n'
                      'vacation :days 1 "away";\nfileinto :create "Projects";\n')
    message = b"From: x@remote.test\r\nTo: eve@example.org\r\nSubject: hi\r\n\r\nhello"
    with mounted_tmpfs("size=512k", work / "state"):
        assert transaction(daemon.port, "one@remote.test", ["eve"], message)[0].startswith("250 ")
        daemon.wait_log(re.compile(r"delivered: 250 .*from=<one@remote\.test>.*vacation=sent"))
        root = maildir(mail_fs, "eve")
        # Full Maildir file system: the folder cannot be made, 451, nothing stored.
        filler = fill(mail_fs)
        (root / ".Projects").rename(root / ".Gone")     # so that the next one must create it
        assert transaction(daemon.port, "two@remote.test", ["eve"], message)[0].startswith("451 4.3.0 ")
        assert not list(root.glob(".Projects/*/*"))
        filler.unlink()
        # Full state store: the duplicate mark cannot be written; the message is delivered and
        # the reply skipped (RFC 5230 4.2: a reply may be skipped, a message never dropped).
        fill(work / "state")
        assert transaction(daemon.port, "three@remote.test", ["eve"], message)[0].startswith("250 2.0.0 ")
        daemon.wait_log(re.compile(r"vacation reply to <three@remote\.test> not sent: .*full"))
        daemon.wait_log(re.compile(r"delivered: 250 .*from=<three@remote\.test>"))
    assert sorted(p.name for p in (root / ".Projects").iterdir()) == ["cur", "maildirfolder", "new", "tmp"]
    assert len(files(root, ".Projects")["new"]) == 1
    assert "Projects" in (root / "subscriptions").read_text().splitlines()


def _greylist_keys(db: Path) -> list[str]:
    store = SQLiteStore(str(db))
    try:
        return sorted(e.key.rsplit("/", 1)[1] for e in store.scan("gl:t:", 0))
    finally:
        store.close()


def test_greylist_first_sight_with_a_full_state_store_is_deferred_and_kept(harness_dirs):
    work = harness_dirs("exhaustion-greylist")
    (work / "state").mkdir()
    with mounted_tmpfs("size=512k", work / "state") as fs:
        db = fs / "state.sqlite"
        config = ('policyd_checks = { RCPT = ["greylist"] }\n' f'state_sqlite_path = "{db}"\n'
                  "greylist_flush_interval = 0.05\n"
                  "greylist_whitelist_clients = []\ngreylist_whitelist_recipients = []\n")
        daemons = OwleryDaemons(work / "d", which=("policyd",), extra_config=config).start()
        try:
            endpoint = f"tcp:127.0.0.1:{daemons.ports['policyd']}"

            def ask(rcpt: str, n: int) -> str:
                return query(endpoint, {"request": "smtpd_access_policy", "protocol_state": "RCPT",
                                        "client_address": "192.0.2.7", "client_name": "mail.sender.example",
                                        "sender": "news@sender.example", "recipient": rcpt, "instance": f"i.{n}"})

            assert ask("a@example.test", 1).startswith("DEFER_IF_PERMIT 4.7.1 Greylisted")
            wait_until(lambda: _greylist_keys(db) == ["a@example.test"], 10, "first sight stored")
            filler = fill(fs)
            for n in (2, 3):       # first sight, then an early retry: deferred both times
                assert ask("b@example.test", n).startswith("DEFER_IF_PERMIT 4.7.1 Greylisted")
            daemons.wait_log("policyd", re.compile(r"WARNING policyd: greylist: storing \d+ writes failed: .*full; kept"))
            filler.unlink()
            wait_until(lambda: _greylist_keys(db) == ["a@example.test", "b@example.test"], 10,
                       "the kept first sight stored once space is back")
            assert ask("b@example.test", 4).startswith("DEFER_IF_PERMIT 4.7.1 Greylisted")
        finally:
            daemons.stop()
    log = daemons.log("policyd")
    assert daemons.procs["policyd"].popen.returncode == 0
    # One WARNING per failed flush, retried every second, not a busy loop.
    assert log.count("greylist: storing") <= 5, log


def test_policyd_starting_on_a_full_state_store_defers_then_recovers(harness_dirs):
    """A full file system at start-up is a passing condition, not a bad path: policyd starts and
    answers a temporary DEFER_IF_PERMIT 4.x.x (greylisting cannot be skipped by accident, even
    behind a fail-open smtpd_policy_service_default_action), then greylists once space is back.
    Before: "policyd: cannot start: ... database or disk is full", connections refused."""
    work = harness_dirs("exhaustion-greylist-start")
    (work / "state").mkdir()
    with mounted_tmpfs("size=512k", work / "state") as fs:
        db = fs / "state.sqlite"
        filler = fill(fs)
        config = ('policyd_checks = { RCPT = ["greylist"] }\n' f'state_sqlite_path = "{db}"\n'
                  "greylist_whitelist_clients = []\ngreylist_whitelist_recipients = []\n")
        daemons = OwleryDaemons(work / "d", which=("policyd",), extra_config=config).start()
        try:
            endpoint = f"tcp:127.0.0.1:{daemons.ports['policyd']}"

            def ask(n: int) -> str:
                return query(endpoint, {"request": "smtpd_access_policy", "protocol_state": "RCPT",
                                        "client_address": "192.0.2.9", "client_name": "mail.sender.example",
                                        "sender": "news@sender.example", "recipient": "c@example.test",
                                        "instance": f"s.{n}"})

            answer = ask(1)
            assert re.match(r"DEFER_IF_PERMIT 4\.\d\.\d ", answer), answer
            daemons.wait_log("policyd", re.compile(r"WARNING policyd: .*state.sqlite.*full"))
            filler.unlink()
            assert ask(2).startswith("DEFER_IF_PERMIT 4.7.1 Greylisted")
            wait_until(lambda: _greylist_keys(db) == ["c@example.test"], 10, "first sight stored")
        finally:
            daemons.stop()
    assert daemons.procs["policyd"].popen.returncode == 0


NOFILE = 48
CONNECTIONS = 80


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _flood(port: int, first_line: bytes | None) -> tuple[list[socket.socket], int]:
    """Open CONNECTIONS connections; those the daemon keeps (answering `first_line` first, or
    still open), and how many it closed. Each is read with a deadline: none may hang unread."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(CONNECTIONS)]
    kept, closed = [], 0
    for s in socks:
        try:
            if first_line is None:
                s.sendall(b"request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.1\n"
                          b"sender=a@remote.test\nrecipient=b@example.test\n\n")
            got = s.recv(200)
        except (ConnectionResetError, BrokenPipeError):
            got = b""
        if got:
            assert first_line is None or got.startswith(first_line), got
            kept.append(s)
        else:
            closed += 1
            s.close()
    return kept, closed


@pytest.mark.parametrize("daemon", ["lmtpd", "policyd"])
def test_open_files_limit_refuses_the_surplus_and_recovers(harness_dirs, daemon):
    work = harness_dirs(f"exhaustion-nofile-{daemon}")
    if daemon == "lmtpd":
        proc = Lmtpd(work, base_config(work) + CONFIG).start()
        port, pid, log = proc.port, proc.proc.popen.pid, proc.log
    else:
        d = OwleryDaemons(work / "d", which=("policyd",), extra_config='policyd_checks = { RCPT = [] }\n').start()
        proc, port, pid = d, d.ports["policyd"], d.procs["policyd"].popen.pid
        log = lambda: d.log("policyd")     # noqa: E731
    try:
        subprocess.run(["prlimit", "--pid", str(pid), f"--nofile={NOFILE}:{NOFILE}"], check=True)
        cpu_before = _cpu_seconds(pid)
        kept, closed = _flood(port, b"220 " if daemon == "lmtpd" else None)
        assert kept and closed and len(kept) + closed == CONNECTIONS, (len(kept), closed)
        assert len(kept) < NOFILE
        wait_until(lambda: re.search(rf"WARNING {daemon}: out of file descriptors .*closed \d+ new connection",
                                     log()), 10, "one WARNING line about the descriptor shortage")
        # The ones it holds are served: a delivery that needs descriptors it cannot have is a
        # 451 (never a 5xx, never silence), one that gets them is whole on disk.
        if daemon == "lmtpd":
            reply = _deliver_on(kept[0])
            assert reply.startswith((b"250 2.0.0 <fay@example.org>", b"451 4.3.0 <fay@example.org>")), reply
            if reply.startswith(b"250"):
                [stored] = files(work / "mail/example.org/fay/Maildir")["new"]
                assert stored.read_bytes().endswith(b"\nhello\n")
        else:
            kept[0].sendall(b"request=smtpd_access_policy\nprotocol_state=RCPT\n\n")
            assert kept[0].recv(200).startswith(b"action=")
        for s in kept:
            s.close()
        # Recovered: a new connection is served (waited for: the closes reach it asynchronously).
        if daemon == "lmtpd":
            wait_until(lambda: _served_lhlo(port), 10, "lmtpd serving again")
        else:
            wait_until(lambda: query(f"tcp:127.0.0.1:{port}", {"request": "smtpd_access_policy",
                                                               "protocol_state": "RCPT"}) == "DUNNO",
                       10, "policyd serving again")
        # No busy loop: the whole flood cost the daemon well under a second of CPU.
        assert _cpu_seconds(pid) - cpu_before < 1.0
        assert len(re.findall(r"out of file descriptors", log())) == 1, log()
    finally:
        proc.stop()


def _served_lhlo(port: int) -> bool:
    try:
        return converse(port, ["LHLO again"])[1].startswith("250")
    except (OSError, IndexError):
        return False


def _deliver_on(sock: socket.socket) -> bytes:
    """One LMTP transaction on a greeted connection; the reply after DATA."""
    f = sock.makefile("rb")
    for line in (b"LHLO x", b"MAIL FROM:<s@remote.test>", b"RCPT TO:<fay@example.org>", b"DATA"):
        sock.sendall(line + b"\r\n")
        while (got := f.readline())[3:4] == b"-":
            pass
        assert got[:1] in (b"2", b"3"), got
    sock.sendall(b"Subject: t\r\n\r\nhello\r\n.\r\n")
    return f.readline()
