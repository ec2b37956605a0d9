"""Small hardening of the milter side: terminal-safe quarantine CLI, DKIM key ownership and modes,
private quarantine files, over-size mail and clamd, one shared message buffer for the stages.

Each test reproduces a weakness of the code before the fix:
- `owlery quarantine show|list` printed hostile control characters (terminal escapes) as they
  came, and `show --raw` wrote the raw bytes to a terminal;
- `owlery dkim genkey` run as root left the key to root (the milter's daemon_user could not read
  it); the key loader accepted world-readable keys and keys owned by another user silently;
- the quarantine directory store created its files and directories group-readable (the milter
  runs with group postfix) and its index with the process umask;
- a message the milter truncated was scanned in part and marked clean; mail not scanned for its
  size left no log line and had one fixed outcome;
- each content stage built its own copy of the message (and the clamd and spamd clients one more).
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import pty
import pwd
import select
import socket
import stat
import sys
import threading
import time
import tracemalloc

import pytest

from milters import dkimkeys
from milters import effects as fx
from milters.clients.clamav import ClamdClient, ScanResult
from owlery.quarantine import ListFilter, QuarantineRecord, RecipientState, new_id
from owlery.quarantine.directory import DirectoryStore
from milters.session import MilterSession
from milters.stages import ConfigError, Services
from milters.stages.antivirus import AntivirusStage
from milters.stages.spam import SpamStage
from milters.testing import split_message
from owlery.app.cli import main
from owlery.settings import Settings
from tests.milters.session_driver import FixedPipeline, run_session

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown)")
NOBODY = pwd.getpwnam("nobody")
HOSTILE = "\x1b]0;owned\x07\x1b[2J\x9b31m\u202e"     # title change, clear screen, C1 CSI, RLO


# --- 1. the quarantine CLI is safe for a terminal ----------------------------------------

def _record(**kw):
    values = dict(mail_id=new_id(), secret_id=new_id(), created=time.time(), reason="spam", detail="score 12",
                  sender="src@sender.test", recipients=(RecipientState("bob@example.test"),), size=10,
                  client_addr="192.0.2.7", client_name="mx.sender.test", helo="mx.sender.test", host="mx1",
                  subject="Cheap pills", header_from="src@sender.test", score=12.0,
                  symbols=(("SPAMD", 12.0, "BAYES_99"),))
    values.update(kw)
    return QuarantineRecord(**values)


HOSTILE_MSG = (b"From: src@sender.test\r\nSubject: =?x?q?hi?= \x1b]0;owned\x07\x1b[2Jhello\r\n"
               b"X-Evil: \xc2\x9b31m red \r\n\r\nbody \x1b[2J\r\n")


@pytest.fixture
def qcli(tmp_path):
    config = tmp_path / "owlery.toml"
    config.write_text(f'quarantine_directory = "{tmp_path / "q"}"\n')
    store = DirectoryStore(str(tmp_path / "q"))
    rec = _record(sender=f"evil{HOSTILE}@sender.test", subject=f"Win {HOSTILE}", detail=f"score {HOSTILE}",
                  client_name=f"mx{HOSTILE}", helo=f"helo{HOSTILE}",
                  recipients=(RecipientState(f"bob{HOSTILE}@example.test"),),
                  symbols=(("SPAMD", 12.0, f"BAYES{HOSTILE}"),))
    store.put(rec, HOSTILE_MSG)

    def run(*argv):
        return main(list(argv[:2]) + ["--config", str(config)] + list(argv[2:]))
    run.rec = rec
    return run


def _no_controls(text):
    return [c for c in text if (ord(c) < 0x20 and c not in "\t\n") or 0x7f <= ord(c) < 0xa0 or c == "\u202e"]


def test_show_escapes_control_characters(qcli, capsys):
    assert qcli("quarantine", "show", qcli.rec.mail_id) == 0
    out = capsys.readouterr().out
    assert _no_controls(out) == []
    # visible, not dropped: the admin sees that something was there
    assert "evil\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\u202e@sender.test" in out
    assert "Subject: =?x?q?hi?= \\x1b]0;owned\\x07\\x1b[2Jhello" in out
    assert "X-Evil: \\x9b31m red" in out


def test_list_escapes_control_characters(qcli, capsys):
    assert qcli("quarantine", "list") == 0
    out = capsys.readouterr().out
    assert qcli.rec.mail_id in out and _no_controls(out) == []
    assert "<evil\\x1b]0;owned" in out


def test_show_raw_goes_to_a_pipe_unchanged(qcli, capfdbinary):
    assert qcli("quarantine", "show", qcli.rec.mail_id, "--raw") == 0
    assert capfdbinary.readouterr().out == HOSTILE_MSG


@contextlib.contextmanager
def _stdout_on_a_tty(monkeypatch):
    master, slave = pty.openpty()
    out = os.fdopen(slave, "w", encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", out)
    try:
        yield master
    finally:
        out.close()
        os.close(master)


def _read_until(fd, marker, timeout=10.0):
    """What the terminal got up to `marker` (which the test writes after the command's output)."""
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {marker!r} on the terminal; got {data!r}"
        if select.select([fd], [], [], remaining)[0]:
            data += os.read(fd, 65536)
    return data


def test_show_raw_refuses_a_terminal_unless_forced(qcli, monkeypatch, capsys):
    with _stdout_on_a_tty(monkeypatch) as master:
        assert qcli("quarantine", "show", qcli.rec.mail_id, "--raw") == 1
        print("MARK1", flush=True)
        assert b"\x1b" not in _read_until(master, b"MARK1")
        assert "terminal" in capsys.readouterr().err
        assert qcli("quarantine", "show", qcli.rec.mail_id, "--raw", "--force") == 0
        print("MARK2", flush=True)
        assert b"body \x1b[2J" in _read_until(master, b"MARK2")


# --- 2. DKIM keys: owner and mode ---------------------------------------------------------

@ROOT_ONLY
def test_genkey_as_root_gives_the_key_to_daemon_user(tmp_path, capsys):
    config = tmp_path / "owlery.toml"
    config.write_text('daemon_user = "nobody"\n')
    keys = tmp_path / "dkim"
    assert main(["dkim", "genkey", "example.org", "s1", "--directory", str(keys), "--config", str(config)]) == 0
    st = os.stat(keys / "example.org.s1.key")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY.pw_uid, NOBODY.pw_gid, 0o600)
    d = os.stat(keys)                      # a directory genkey made: the daemon can get in, nobody else
    assert (d.st_uid, stat.S_IMODE(d.st_mode)) == (NOBODY.pw_uid, 0o700)
    assert "owned by nobody" in capsys.readouterr().err
    # --owner wins over daemon_user; the milter started as root with daemon_user loads it
    assert main(["dkim", "genkey", "example.org", "s2", "--directory", str(keys), "--owner", "daemon"]) == 0
    assert os.stat(keys / "example.org.s2.key").st_uid == pwd.getpwnam("daemon").pw_uid
    from milters.stages.dkim_sign import DkimSign
    from .conftest import make_settings
    stage = DkimSign(make_settings(keys, dkim_sign_keys={"example.org": ["s1"]}, daemon_user="nobody"),
                     Services(None))
    assert stage.keys["example.org"][0].selector == "s1"


def _key(tmp_path, mode, uid=None, gid=None):
    path, _ = dkimkeys.generate("example.org", "k", str(tmp_path), algorithm="ed25519", force=True)
    os.chmod(path, mode)
    if uid is not None or gid is not None:
        os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o602], ids=oct)
def test_key_usable_by_others_is_refused_at_start(tmp_path, mode):
    path = _key(tmp_path, mode)
    with pytest.raises(ValueError, match=f"{path}: .*others.*chmod 0600"):
        dkimkeys.load_key(path, "example.org", "k")
    from milters.stages.dkim_sign import DkimSign
    from .conftest import make_settings
    with pytest.raises(ConfigError, match=str(path)):
        DkimSign(make_settings(tmp_path, dkim_sign_keys={"example.org": ["k"]}), Services(None))


@ROOT_ONLY
def test_key_owned_by_another_user_is_refused(tmp_path):
    path = _key(tmp_path, 0o600, uid=NOBODY.pw_uid)
    with pytest.raises(ValueError, match=f"{path}: .*owned by nobody"):
        dkimkeys.load_key(path, "example.org", "k")
    # ... unless that user is the daemon's
    owner = dkimkeys.KeyOwner.for_daemon("nobody", None)
    assert dkimkeys.load_key(path, "example.org", "k", owner=owner).algorithm == "ed25519-sha256"


@ROOT_ONLY
def test_group_readable_key_warns_unless_the_group_is_the_daemons(tmp_path, caplog):
    daemon_gid = grp.getgrnam("daemon").gr_gid
    path = _key(tmp_path, 0o640, gid=daemon_gid)
    with caplog.at_level(logging.WARNING, logger="owlery"):
        dkimkeys.load_key(path, "example.org", "k")
    assert [r for r in caplog.records if path in r.getMessage() and "group daemon" in r.getMessage()]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="owlery"):
        dkimkeys.load_key(path, "example.org", "k", owner=dkimkeys.KeyOwner.for_daemon("nobody", "daemon"))
    assert not [r for r in caplog.records if path in r.getMessage()]


# --- 3. the quarantine directory store is private -------------------------------------------

def _modes(top):
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, top)] = stat.S_IMODE(os.lstat(p).st_mode)
    return out


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o007])
def test_quarantine_store_files_are_private_whatever_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        store = DirectoryStore(str(tmp_path / "q"))
        rec = _record()
        store.put(rec, b"Subject: x\r\n\r\nsecret\r\n")
        assert store.message(rec.mail_id).endswith(b"secret\r\n")
        modes = _modes(tmp_path / "q")
        modes[""] = stat.S_IMODE(os.stat(tmp_path / "q").st_mode)
    finally:
        os.umask(old)
    assert {"msg", "tmp", "index.sqlite3", f"msg/{rec.mail_id[:2]}/{rec.mail_id}"} <= set(modes)
    bad = {p: oct(m) for p, m in modes.items()
           if m & 0o077 or m != (0o700 if os.path.isdir(tmp_path / "q" / p) else 0o600)}
    assert bad == {}


def test_quarantine_store_below_missing_directories_is_still_made(tmp_path):
    store = DirectoryStore(str(tmp_path / "var" / "lib" / "q"))
    assert store.list(ListFilter(), time.time()) == []
    assert stat.S_IMODE(os.stat(tmp_path / "var" / "lib" / "q").st_mode) == 0o700


def test_quarantine_store_tightens_an_existing_group_readable_store(tmp_path):
    top = tmp_path / "q"
    for sub in ("", "msg", "tmp"):
        os.makedirs(top / sub, exist_ok=True)
        os.chmod(top / sub, 0o750)
    (top / "index.sqlite3").touch(mode=0o640)
    os.chmod(top / "index.sqlite3", 0o640)
    DirectoryStore(str(top)).list(ListFilter(), time.time())
    modes = _modes(top)
    modes[""] = stat.S_IMODE(os.stat(top).st_mode)
    assert {p: oct(m) for p, m in modes.items() if m & 0o077} == {}


@ROOT_ONLY
def test_quarantine_store_created_by_root_belongs_to_the_directory_owner(tmp_path):
    """`owlery quarantine list` run by root before the milter ever stored anything must not leave
    a store the milter (owner of the state directory) cannot write."""
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, NOBODY.pw_uid, NOBODY.pw_gid)
    store = DirectoryStore(str(state / "quarantine"))
    rec = _record()
    store.put(rec, b"Subject: x\r\n\r\nhi\r\n")
    owners = {}
    for dirpath, dirnames, filenames in os.walk(state / "quarantine"):
        for name in dirnames + filenames + [""]:
            p = os.path.join(dirpath, name)
            owners[os.path.relpath(p, state)] = os.lstat(p).st_uid
    assert set(owners.values()) == {NOBODY.pw_uid}, owners


# --- 5. over-size mail and clamd -------------------------------------------------------------

CLEAN = (b"From: Alice <alice@sender.test>\r\nTo: bob@example.test\r\nSubject: hello\r\n"
         b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <1@sender.test>\r\n\r\n")


def drive(settings, stages, raw, chunk=65536):
    return run_session(settings, stages, raw, queue_id="QID7", chunk=chunk)


class RecordingClamd:
    """Answers like clamd would for what it is given (a stream within max_size is clean)."""

    def __init__(self, max_size=10_000):
        self.max_size, self.seen = max_size, []

    def scan(self, data):
        self.seen.append(bytes(data))
        if len(data) > self.max_size:
            return ScanResult(False, scanned=False)
        return ScanResult(False)


def _headers(outcome, name):
    return [e.value for e in outcome.effects if isinstance(e, fx.AddHeader) and e.name == name]


@pytest.fixture
def av_settings(tmp_path):
    return Settings().replace(quarantine_directory=str(tmp_path / "q"), milter_authserv_id="mx.owlery.test")


def test_truncated_message_is_not_marked_clean(av_settings, caplog):
    """A message cut at milter_message_size_limit must not be reported scanned from its first part."""
    s = av_settings.replace(milter_message_size_limit=1000)
    clamd = RecordingClamd(max_size=100_000)
    with caplog.at_level(logging.WARNING, logger="owlery.milter"):
        out = drive(s, [AntivirusStage(s, Services(None), client=clamd)], CLEAN + b"x" * 5000 + b"\r\n")
    assert _headers(out, "X-Virus-Scanned") == []
    assert _headers(out, "X-Virus-Status") == ["unchecked (message too large)"]
    assert [sym.name for sym in out.symbols] == ["CLAMAV_UNCHECKED"]
    assert any("QID7" in r.getMessage() and "not scanned" in r.getMessage() for r in caplog.records)


def test_oversize_is_logged_scored_and_accepted_by_default(av_settings, caplog):
    s = av_settings.replace(milter_symbol_scores={"CLAMAV_UNCHECKED": 1.5})
    with caplog.at_level(logging.WARNING, logger="owlery.milter"):
        out = drive(s, [AntivirusStage(s, Services(None), client=RecordingClamd())], CLEAN + b"y" * 20_000)
    assert out.action == fx.ACCEPT
    assert _headers(out, "X-Virus-Status") == ["unchecked (message too large)"]
    assert [(sym.name, sym.score) for sym in out.symbols] == [("CLAMAV_UNCHECKED", 1.5)]
    [line] = [r.getMessage() for r in caplog.records if "not scanned" in r.getMessage()]
    assert "QID7" in line and "over clamd_max_size" in line and "action=accept" in line


@pytest.mark.parametrize("action, expected, code", [
    ("tempfail", fx.TEMPFAIL, 452), ("reject", fx.REJECT, 552), ("quarantine", fx.DISCARD, None)])
def test_oversize_action_setting(av_settings, tmp_path, action, expected, code):
    s = av_settings.replace(antivirus_oversize_action=action)
    out = drive(s, [AntivirusStage(s, Services(None), client=RecordingClamd())], CLEAN + b"y" * 20_000)
    assert out.action == expected
    assert "CLAMAV_UNCHECKED" in [sym.name for sym in out.symbols]
    if code:
        assert out.reply.code == code and out.reply.dsn.endswith(".3.4")
    else:
        [rec] = DirectoryStore(str(tmp_path / "q")).list(ListFilter(), 2e9)
        assert rec.reason == "unchecked" and rec.size > 20_000


def test_truncated_message_to_quarantine_is_held_not_stored_in_part(av_settings, tmp_path):
    s = av_settings.replace(milter_message_size_limit=1000, antivirus_oversize_action="quarantine")
    out = drive(s, [AntivirusStage(s, Services(None), client=RecordingClamd())], CLEAN + b"z" * 5000)
    assert any(isinstance(e, fx.Hold) for e in out.effects)
    assert not (tmp_path / "q" / "index.sqlite3").exists() or \
        DirectoryStore(str(tmp_path / "q")).list(ListFilter(), 2e9) == []


class FakeUnixServer:
    """One connection on a unix socket, served in a thread by `self.handle(conn, buf)`; what it
    reads goes through one small buffer (counted in `received`, not kept), so the server adds
    nothing to the memory measured in the client."""

    def __init__(self, path):
        self.received = 0
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen(2)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def read(self, conn, buf, n):
        got = 0
        view = memoryview(buf)
        while got < n:
            r = conn.recv_into(view[got:n])
            if not r:
                raise EOFError
            got += r
        return bytes(buf[:n])

    def skip(self, conn, buf, n):
        while n:
            step = min(n, len(buf))
            self.read(conn, buf, step)
            n -= step
            self.received += step

    def _serve(self):
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(10)
            with contextlib.suppress(EOFError, OSError):
                self.handle(conn, bytearray(65536))

    def close(self):
        self.thread.join(10)
        self.sock.close()


class FakeClamd(FakeUnixServer):
    """clamd: reads an INSTREAM (up to `limit` bytes), then answers."""

    def __init__(self, path, answer=b"stream: OK\0", limit=None):
        self.answer, self.limit = answer, limit
        super().__init__(path)

    def handle(self, conn, buf):
        cmd = b""
        while not cmd.endswith(b"\0"):
            cmd += conn.recv(1)
        while self.limit is None or self.received <= self.limit:
            n = int.from_bytes(self.read(conn, buf, 4), "big")
            if n == 0:
                break
            self.skip(conn, buf, n)
        conn.sendall(self.answer)


class FakeSpamd(FakeUnixServer):
    """spamd: reads one request and its Content-length bytes, answers a REPORT with score 1."""

    def handle(self, conn, buf):
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += conn.recv(1)
        length = int(head.split(b"Content-length: ", 1)[1].split(b"\r\n", 1)[0])
        self.skip(conn, buf, length)
        conn.sendall(b"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: False ; 1.0 / 5.0\r\n\r\n")


def test_clamd_stream_limit_is_unchecked_with_a_reason(tmp_path, av_settings, caplog):
    server = FakeClamd(str(tmp_path / "clamd.sock"), b"INSTREAM size limit exceeded. ERROR\0", limit=100_000)
    client = ClamdClient(f"unix:{tmp_path / 'clamd.sock'}", timeout=10, max_size=10_000_000)
    try:
        with caplog.at_level(logging.WARNING, logger="owlery.milter"):
            out = drive(av_settings, [AntivirusStage(av_settings, Services(None), client=client)],
                        CLEAN + b"w" * 300_000)
    finally:
        server.close()
    assert out.action == fx.ACCEPT and _headers(out, "X-Virus-Status") == ["unchecked (message too large)"]
    [line] = [r.getMessage() for r in caplog.records if "not scanned" in r.getMessage()]
    assert "StreamMaxLength" in line


# --- 6. one message buffer for all the stages ---------------------------------------------

def test_stages_share_one_copy_of_the_message(tmp_path):
    """A 20 MB message through antivirus and spam, a clamd and a spamd reading every byte: the
    peak of Python allocations during end-of-message stays under twice the message size (1.26
    times now; 4.26 times before: a body copy plus a concatenated copy per stage, the clamd
    client's chunk list, the spamd client's request buffer)."""
    size = 20 * 1024 * 1024
    clamd_server = FakeClamd(str(tmp_path / "clamd.sock"))
    spamd_server = FakeSpamd(str(tmp_path / "spamd.sock"))
    s = Settings().replace(milter_authserv_id="mx.owlery.test", clamd_max_size=2 * size,
                           spamd_max_size=2 * size, milter_spool_directory=str(tmp_path),
                           spamd_endpoint=f"unix:{tmp_path}/spamd.sock")
    clamd = ClamdClient(f"unix:{tmp_path / 'clamd.sock'}", timeout=20, max_size=2 * size)
    stages = [AntivirusStage(s, Services(None), client=clamd), SpamStage(s, Services(None))]
    session = MilterSession(s, FixedPipeline(stages))
    session.connect("mx.sender.test", "203.0.113.5", {})
    session.mail_from("<alice@sender.test>", (), {})
    session.rcpt("<bob@example.test>", (), {"i": "QID9"})
    for name, value in split_message(CLEAN)[0]:
        session.header(name, value)
    session.end_of_headers({})
    line = b"x" * 998 + b"\r\n"
    for _ in range(size // len(line)):
        session.body(line)
    tracemalloc.start()
    try:
        out = session.end_of_message({})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        clamd_server.close()
        spamd_server.close()
    whole = size // len(line) * len(line) + len(CLEAN)
    assert out.action == fx.ACCEPT and _headers(out, "X-Virus-Scanned")
    # spamd gets the Received field Postfix will add as a first chunk (same length whatever the date)
    from milters.received import received_header
    trace = len(received_header({"i": "QID9"}, client_name="mx.sender.test", client_address="203.0.113.5",
                                helo="", recipients=["bob@example.test"], now=0))
    assert (clamd_server.received, spamd_server.received) == (whole, whole + trace)
    assert ("SPAMD", 1.0) in [(sym.name, sym.score) for sym in out.symbols]
    assert peak < 2 * size, f"peak {peak / size:.2f} x the message size"


def test_as_bytes_is_built_once_and_matches_the_wire_form(tmp_path):
    s = Settings().replace(milter_body_memory_size=100, milter_spool_directory=str(tmp_path))
    got = []

    class Twice:
        name = "twice"

        def check(self, message, report):
            got.append(message.as_bytes())
            got.append(message.as_bytes())
            got.append(message.body_bytes())

    drive(s, [Twice()], CLEAN + b"line one\r\nline two\r\n" * 50, chunk=7)
    assert got[0] is got[1]
    assert got[0] == CLEAN + b"line one\r\nline two\r\n" * 50
    assert got[2] == b"line one\r\nline two\r\n" * 50
