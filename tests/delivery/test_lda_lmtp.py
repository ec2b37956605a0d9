"""The LDA's fast path (sieve.delivery.lda_lmtp): `owlery lda` handing the message to lmtpd.

Proves: with lda_lmtp_endpoint set, or with nothing but the lmtpd_listen the daemon itself
reads (no extra setting; lda_lmtp_handoff = false turns it off), `owlery lda`, `owlery-lda`
(the pipe command `owlery postfix` prints) and `python -I -S lda_lmtp.py` deliver through
a real `owlery lmtpd` (the message lands in lmtpd's Maildir, not the LDA config's); LMTP replies
map to sysexits (2xx 0, 4xx 75, 5.1.1 67, other 5xx 77) with the reply text on stderr, against a
scripted LMTP server; a daemon that is absent or not ready (refused, 421 greeting, 4xx to MAIL)
means an in-process delivery, never a loss or a false 5xx; silence after DATA is 75;
`-a ADDRESS -d USER` goes to lmtpd as RCPT TO:<ADDRESS> X-OWLERY-USER=USER and stores what the
in-process LDA stores (an lmtpd without that parameter: in-process).
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from owlery.app.postfix import lda_command
from sieve.delivery import lda_lmtp, mta_input
from tests.delivery.daemon import Lmtpd

ROOT = Path(__file__).resolve().parents[2]
OWLERY = str(ROOT / ".venv" / "bin" / "owlery")
SCRIPT = str(ROOT / "sieve" / "delivery" / "lda_lmtp.py")
COMMANDS = {"owlery lda": [OWLERY, "lda"], "owlery-lda": [OWLERY + "-lda"],
            "pipe command": lda_command(OWLERY).split()}      # PYTHON -I -S .../owlery-lda
MSG = b"Subject: t\n\nhello\n.dot line\n"


def config(tmp_path, extra=""):
    """An LDA settings file; lmtpd_listen points where nobody listens unless `extra` says more
    (so a real lmtpd on the test host, at the default socket, never takes these messages)."""
    conf = tmp_path / "lda.toml"
    listen = "" if "lmtpd_listen" in extra else f'lmtpd_listen = ["unix:{tmp_path}/no-lmtpd-here.sock"]'
    conf.write_text(f"""
{listen}
maildir_path_template = "{tmp_path}/lda-mail/{{domain}}/{{localpart}}/Maildir"
delivery_sieve_script_template = "{tmp_path}/lda-mail/{{domain}}/{{localpart}}/sieve/active.sieve"
state_backend = "memory"
delivery_use_directory = false
{extra}
""")
    return str(conf)


def stored(base: Path) -> list[Path]:
    return [p for sub in ("new", "cur") if (base / sub).exists() for p in (base / sub).iterdir()]


def run_lda(argv, message=MSG):
    return subprocess.run(argv, input=message, capture_output=True, timeout=60)


# --- tables ---------------------------------------------------------------------------

@pytest.mark.parametrize("code,text,status", [
    (250, "2.0.0 <a@b> Ok", 0),
    (451, "4.3.0 try later", 75),
    (452, "4.2.2 Mailbox full", 75),
    (550, "5.1.1 <a@b> User unknown", 67),
    (552, "5.2.2 Mailbox full", 77),
    (554, "5.7.1 Rejected by Sieve", 77),
    (399, "odd", 75),
])
def test_reply_to_exit_status(code, text, status):
    assert lda_lmtp._exit_for(code, text) == status


@pytest.mark.parametrize("argv,expected", [
    (["-f", "s@x", "-d", "a@b"], {"sender": "s@x", "user": "a@b"}),
    (["-fs@x", "-da@b", "-c", "/c"], {"sender": "s@x", "user": "a@b", "config": "/c"}),
    (["--config=/c", "-a", "a@b"], {"config": "/c", "recipient": "a@b"}),
    (["-d"], None),
    (["--help"], None),
    (["-d", "a@b", "-d", "c@d"], None),
    (["-x", "1"], None),
    (["-e", "-k", "-d", "a@b", "-p", "/m", "-r", "r@b"],
     {"stderr_rejection": "1", "keep_environment": "1", "user": "a@b", "path": "/m", "final_recipient": "r@b"}),
    (["-e", "-e", "-d", "a@b"], None),
])
def test_parse_args(argv, expected):
    assert lda_lmtp.parse_args(argv) == expected


def test_dot_stuffing_and_crlf():
    assert lda_lmtp.dot_stuff(b".a\nb\n..c\nd") == b"..a\r\nb\r\n...c\r\nd\r\n.\r\n"


def test_pipe_trace_lines_are_stripped_only_when_lmtpd_writes_the_same():
    msg = b"Return-Path: <s@x>\nDelivered-To: a@b\nDelivered-To: a@b\nSubject: t\n\nx\n"
    assert mta_input.strip_pipe_trace(msg, "s@x", "A@B") == b"Delivered-To: a@b\nSubject: t\n\nx\n"
    other = b"Return-Path: <other@x>\nSubject: t\n\nx\n"
    assert mta_input.strip_pipe_trace(other, "s@x", "a@b") == other
    # local(8)'s order: X-Original-To between them stays (lmtpd does not write it)
    local8 = b"Return-Path: <s@x>\nX-Original-To: a@b\nDelivered-To: a@b\nSubject: t\n\nx\n"
    assert mta_input.strip_pipe_trace(local8, "s@x", "a@b") == b"X-Original-To: a@b\nSubject: t\n\nx\n"
    # a Delivered-To below the MTA's run came with the message
    below = b"Return-Path: <s@x>\nSubject: t\nDelivered-To: a@b\n\nx\n"
    assert mta_input.strip_pipe_trace(below, "s@x", "a@b") == b"Subject: t\nDelivered-To: a@b\n\nx\n"


def test_constants_match_the_declared_settings():
    from owlery import settings as settings_mod
    from sieve.delivery import lda   # noqa: F401  (declares the lda_ settings)
    s = settings_mod.Settings()
    assert lda_lmtp.DEFAULT_CONFIG_PATH == settings_mod.DEFAULT_CONFIG_PATH
    assert lda_lmtp.DEFAULT_MESSAGE_SIZE_LIMIT == s.lda_message_size_limit
    assert lda_lmtp.DEFAULT_TIMEOUT == s.lda_lmtp_timeout
    assert s.lda_lmtp_endpoint is None and s.lda_lmtp_handoff is True
    from sieve.delivery import lmtpd  # noqa: F401  (declares lmtpd_listen)
    assert [lda_lmtp.DEFAULT_LMTPD_LISTEN] == list(settings_mod.Settings().lmtpd_listen)


def test_no_lmtpd_listening_reads_no_stdin(tmp_path):
    stdin = io.BytesIO(MSG)
    assert lda_lmtp.run(["-c", config(tmp_path), "-d", "a@b"], stdin=stdin) is None
    assert stdin.tell() == 0


@pytest.mark.parametrize("config_values,endpoint", [
    ({}, lda_lmtp.DEFAULT_LMTPD_LISTEN),                          # lmtpd's own default socket
    ({"lmtpd_listen": ["unix:/run/l.sock"]}, "unix:/run/l.sock"),
    ({"lmtpd_listen": "tcp:127.0.0.2:24"}, "tcp:127.0.0.2:24"),
    ({"lmtpd_listen": ["systemd:lmtp", "tcp:0.0.0.0:2424"]}, "tcp:127.0.0.1:2424"),  # wildcard: loopback
    ({"lmtpd_listen": ["tcp:[::]:2424"]}, "tcp:[::1]:2424"),
    ({"lmtpd_listen": ["systemd:lmtp"]}, None),                   # nothing the LDA can reach
    ({"lmtpd_listen": ["unix:/a"], "lda_lmtp_endpoint": "tcp:127.0.0.1:1"}, "tcp:127.0.0.1:1"),
    ({"lmtpd_listen": ["unix:/a"], "lda_lmtp_handoff": False}, None),
    ({"lda_lmtp_endpoint": "unix:/b", "lda_lmtp_handoff": False}, None),
])
def test_handoff_endpoint(config_values, endpoint):
    assert lda_lmtp.handoff_endpoint(config_values) == endpoint


# --- a scripted LMTP server -------------------------------------------------------------

class FakeLMTP:
    """Answers from a table: {"greeting": ..., "MAIL": ..., "RCPT": ..., "DATA": ..., "END": ...};
    "END" None hangs up after reading the message."""

    def __init__(self, path: Path, answers: dict, pipelining: bool = False):
        self.path = str(path)
        self.answers = {"greeting": "220 fake", "LHLO": "250 fake", "MAIL": "250 2.1.0 Ok",
                        "RCPT": "250 2.1.5 Ok", "DATA": "354 go", "END": "250 2.0.0 Ok", **answers}
        # pipelining: LHLO advertises PIPELINING, and MAIL, RCPT and DATA are answered only once
        # all three have arrived (a client waiting for each reply in turn waits in vain).
        self.pipelining = pipelining
        if pipelining:
            self.answers["LHLO"] = "250-fake\r\n250 PIPELINING"
        self.seen: list[bytes] = []
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(self.path)
        self.sock.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        try:
            self._converse(conn)
        except OSError:
            pass        # the client hung up: what a test may want
        finally:
            conn.close()

    def _converse(self, conn):
        f = conn.makefile("rb")
        conn.sendall(self.answers["greeting"].encode() + b"\r\n")
        if not self.answers["greeting"].startswith("220"):
            return
        while True:
            line = f.readline()
            if not line:
                return
            self.seen.append(line)
            verb = line.split()[0].decode().upper()
            if verb == "QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            if verb == "MAIL" and self.pipelining:
                self.seen += [f.readline(), f.readline()]
                assert [v.split()[0] for v in self.seen[-3:]] == [b"MAIL", b"RCPT", b"DATA"], self.seen
                mail, rcpt = self.answers["MAIL"], self.answers["RCPT"]
                data = self.answers["DATA"] if mail[0] == rcpt[0] == "2" else "503 5.5.1 No valid recipients"
                conn.sendall(f"{mail}\r\n{rcpt}\r\n{data}\r\n".encode())
                verb = "DATA"
                if not data.startswith("354"):
                    continue
            else:
                conn.sendall(self.answers[verb].encode() + b"\r\n")
            if verb == "DATA" and self.answers["DATA"].startswith("354"):
                while (body := f.readline()) not in (b".\r\n", b""):
                    self.seen.append(body)
                if self.answers["END"] is None:
                    return
                conn.sendall(self.answers["END"].encode() + b"\r\n")

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("answers,status,first_line", [
    ({}, 0, ""),
    ({"RCPT": "550 5.1.1 <a@example.org> User unknown"}, 67, "5.1.1 <a@example.org> User unknown"),
    ({"RCPT": "451 4.3.0 Directory unavailable"}, 75, "4.3.0 Directory unavailable"),
    ({"END": "552 5.2.2 Mailbox full"}, 77, "5.2.2 Mailbox full"),
    ({"END": "452 4.2.2 Mailbox full"}, 75, "4.2.2 Mailbox full"),
    ({"END": None}, 75, "4.4.2 owlery lda: lmtpd"),
])
@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelining"])
def test_lmtp_replies_become_sysexits(tmp_path, answers, status, first_line, command, pipelining):
    """With PIPELINING advertised, MAIL, RCPT and DATA go in one write (the server answers
    none of them before it has all three) and the replies mean what they mean one by one."""
    server = FakeLMTP(tmp_path / "lmtp.sock", answers, pipelining)
    conf = config(tmp_path, f'lda_lmtp_endpoint = "unix:{server.path}"\nlda_lmtp_timeout = 10')
    try:
        r = run_lda([*COMMANDS[command], "-c", conf, "-f", "s@remote.test", "-d", "a@example.org"])
    finally:
        server.close()
    assert r.returncode == status, r.stderr
    assert r.stderr.decode().startswith(first_line)
    assert not stored(tmp_path / "lda-mail/example.org/a/Maildir")    # the daemon's answer stands
    if status == 0:
        assert b"..dot line\r\n" in server.seen             # dot-stuffed, CRLF


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("answers", [
    {"greeting": "421 4.3.2 shutting down"},
    {"MAIL": "421 4.3.2 shutting down"},           # after stdin was read: the bytes go in-process
    {"DATA": "451 4.3.0 not now"},
])
@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelining"])
def test_daemon_not_ready_means_in_process_delivery(tmp_path, answers, command, pipelining):
    server = FakeLMTP(tmp_path / "lmtp.sock", answers, pipelining)
    conf = config(tmp_path, f'lda_lmtp_endpoint = "unix:{server.path}"')
    try:
        r = run_lda([*COMMANDS[command], "-c", conf, "-f", "s@remote.test", "-d", "alice@example.org"])
    finally:
        server.close()
    assert r.returncode == 0, r.stderr
    [f] = stored(tmp_path / "lda-mail/example.org/alice/Maildir")
    assert f.read_bytes().endswith(MSG)


def test_daemon_absent_means_in_process_delivery_with_the_bare_script(tmp_path):
    conf = config(tmp_path, f'lda_lmtp_endpoint = "unix:{tmp_path}/nobody-listens.sock"')
    r = run_lda([sys.executable, "-I", "-S", SCRIPT, "-c", conf, "-f", "s@remote.test",
                 "-d", "alice@example.org"])
    assert r.returncode == 0, r.stderr
    [f] = stored(tmp_path / "lda-mail/example.org/alice/Maildir")
    assert f.read_bytes() == b"Return-Path: <s@remote.test>\nDelivered-To: alice@example.org\n" + MSG


# --- through a real lmtpd -------------------------------------------------------------

@pytest.fixture(scope="module")
def lmtpd(tmp_path_factory):
    work = tmp_path_factory.mktemp("lda-lmtpd")
    os.chmod(work, 0o755)
    lmtpd = Lmtpd(work, f"""
maildir_path_template = "{work}/mail/{{domain}}/{{localpart}}/Maildir"
delivery_sieve_script_template = "{work}/mail/{{domain}}/{{localpart}}/active.sieve"
state_backend = "memory"
delivery_use_directory = false
""")
    try:
        yield lmtpd.start().port, work
    finally:
        lmtpd.stop()


@pytest.mark.parametrize("found_by", ["lda_lmtp_endpoint", "lmtpd_listen"])
@pytest.mark.parametrize("entry", ["owlery", "owlery-lda", "script"])
def test_delivers_through_lmtpd(tmp_path, lmtpd, entry, found_by):
    port, work = lmtpd
    box = f"{entry}-{found_by[:4]}"
    user = f"{box}@example.org"
    # lmtpd_listen: what the file shared with the daemon says anyway (wildcard -> loopback)
    conf = config(tmp_path, f'lda_lmtp_endpoint = "tcp:127.0.0.1:{port}"' if found_by == "lda_lmtp_endpoint"
                  else f'lmtpd_listen = ["systemd:lmtp", "tcp:0.0.0.0:{port}"]')
    head = {"owlery": COMMANDS["owlery lda"], "owlery-lda": COMMANDS["owlery-lda"],
            "script": [sys.executable, "-I", "-S", SCRIPT]}[entry]
    # As pipe(8) with flags DR hands it over: lmtpd writes those two lines itself, once.
    msg = f"Return-Path: <s@remote.test>\nDelivered-To: {user}\n".encode() + MSG
    r = run_lda([*head, "-c", conf, "-f", "s@remote.test", "-a", user, "-d", user], message=msg)
    assert r.returncode == 0, r.stderr
    assert not stored(tmp_path / f"lda-mail/example.org/{box}/Maildir")
    [f] = stored(work / f"mail/example.org/{box}/Maildir")
    data = f.read_bytes()
    assert data.startswith(f"Return-Path: <s@remote.test>\nDelivered-To: {user}\n".encode())
    assert data.count(b"Return-Path:") == 1 and data.count(b"Delivered-To:") == 1
    assert data.endswith(MSG)


def test_handoff_off_delivers_in_process_although_lmtpd_runs(tmp_path, lmtpd):
    port, work = lmtpd
    conf = config(tmp_path, f'lmtpd_listen = ["tcp:127.0.0.1:{port}"]\nlda_lmtp_handoff = false')
    r = run_lda([*COMMANDS["owlery-lda"], "-c", conf, "-f", "s@remote.test", "-d", "off@example.org"])
    assert r.returncode == 0, r.stderr
    assert stored(tmp_path / "lda-mail/example.org/off/Maildir")
    assert not stored(work / "mail/example.org/off/Maildir")


@pytest.mark.parametrize("text", [
    'lmtpd_listen = ["unix:/run/l.sock", \'tcp:127.0.0.1:24\']  # two\nlda_lmtp_handoff = false\n',
    'lmtpd_listen = "tcp:127.0.0.1:24"\nlda_lmtp_handoff = true\n',
    'lmtpd_listen = ["tcp:[::1]:24"]\n',                                # "]" inside: tomllib decides
    'lmtpd_listen = ["unix:/a,b", "tcp:h:1"]\n',                         # "," inside: tomllib decides
    'lmtpd_listen = [\n  "unix:/a",\n]\n',                               # multi-line: tomllib decides
    'lda_lmtp_endpoint = "unix:/run/owlery/lmtp"\nlda_lmtp_timeout = 30  # s\n',
    "lda_lmtp_endpoint = 'tcp:127.0.0.1:24'\nlda_message_size_limit = \"10M\"\nother = [1, 2]\n",
    'x = 1\n[table]\nlda_lmtp_endpoint = "unix:/a"\n',                  # a table: tomllib decides
    'lda_lmtp_endpoint = "unix:/a\\"b"\n',                                # an escape: tomllib decides
    'y = """\nlda_lmtp_endpoint = "unix:/not/this"\n"""\n',              # inside a multi-line string
])
def test_line_scan_agrees_with_tomllib(tmp_path, text):
    import tomllib
    path = tmp_path / "c.toml"
    path.write_text(text)
    expected = {k: v for k, v in tomllib.loads(text).items() if k in lda_lmtp.FAST_KEYS}
    got = lda_lmtp.read_config(str(path))
    assert {k: v for k, v in got.items() if k in lda_lmtp.FAST_KEYS} == expected


# --- -a ADDRESS -d USER: X-OWLERY-USER ---------------------------------------------------

def test_user_parameter_in_the_lmtp_machine():
    from owlery.reply import Reply
    from sieve.delivery import lmtp
    assert lda_lmtp.USER_PARAM == lmtp.USER_PARAM
    m = lmtp.LMTPServer("mx.test")
    m.start()
    [hello] = m.feed(b"LHLO c\r\n")
    assert b"250 X-OWLERY-USER\r\n" in hello.data
    m.feed(b"MAIL FROM:<s@remote.test>\r\n")
    [check] = m.feed(f"RCPT TO:<info@example.org> X-OWLERY-USER={lda_lmtp.xtext('a+b=c@example.org')}\r\n".encode())
    assert check == lmtp.CheckRecipient("info@example.org", "s@remote.test", "a+b=c@example.org")
    m.recipient_checked(Reply(250, "2.1.5", "Ok"), "user")
    for bad in ("X-OWLERY-USER=a+2", "X-OWLERY-USER=a+20b", "X-OWLERY-USER=a+3Cb", "NOTIFY=NEVER"):
        [reply] = m.feed(f"RCPT TO:<x@example.org> {bad}\r\n".encode())
        assert reply.data.startswith(b"555 5.5.4"), (bad, reply)


SUBADDRESS_SCRIPT = """require ["envelope", "subaddress", "fileinto", "mailbox"];
if envelope :detail "to" "x" { fileinto :create "Detail"; }
"""


def test_address_differing_from_user_goes_through_lmtpd_like_in_process(tmp_path, lmtpd):
    """dovecot-lda's -a/-d: USER's mailbox and script, ADDRESS as the envelope recipient (Sieve's
    envelope :detail sees "x", Delivered-To names it). Through lmtpd the stored message is the
    in-process LDA's, plus lmtpd's Received line."""
    port, work = lmtpd
    (work / "mail/example.org/sub").mkdir(parents=True, exist_ok=True)
    (work / "mail/example.org/sub/active.sieve").write_text(SUBADDRESS_SCRIPT)
    (tmp_path / "lda-mail/example.org/sub/sieve").mkdir(parents=True)
    (tmp_path / "lda-mail/example.org/sub/sieve/active.sieve").write_text(SUBADDRESS_SCRIPT)
    args = ["-f", "s@remote.test", "-a", "sub+x@example.org", "-d", "sub@example.org"]
    fast = run_lda([*COMMANDS["owlery-lda"], "-c", config(tmp_path, f'lda_lmtp_endpoint = "tcp:127.0.0.1:{port}"'),
                    *args])
    assert fast.returncode == 0, fast.stderr
    in_process = run_lda([*COMMANDS["owlery-lda"], "-c", config(tmp_path), *args])
    assert in_process.returncode == 0, in_process.stderr
    [via] = stored(work / "mail/example.org/sub/Maildir/.Detail")
    [local] = stored(tmp_path / "lda-mail/example.org/sub/Maildir/.Detail")
    head = b"Return-Path: <s@remote.test>\nDelivered-To: sub+x@example.org\n"
    assert local.read_bytes() == head + MSG
    data = via.read_bytes()
    assert data.startswith(head + b"Received: ") and data.endswith(MSG) and data.count(b"Delivered-To") == 1


def test_lmtpd_without_the_user_parameter_means_in_process(tmp_path):
    server = FakeLMTP(tmp_path / "lmtp.sock", {})      # an older lmtpd: LHLO lists no X-OWLERY-USER
    conf = config(tmp_path, f'lda_lmtp_endpoint = "unix:{server.path}"')
    try:
        r = run_lda([*COMMANDS["owlery-lda"], "-c", conf, "-f", "s@remote.test", "-a", "alice+x@example.org",
                     "-d", "alice@example.org"])
    finally:
        server.close()
    assert r.returncode == 0, r.stderr
    assert not any(line.startswith(b"RCPT") for line in server.seen)
    [f] = stored(tmp_path / "lda-mail/example.org/alice/Maildir")
    assert f.read_bytes().startswith(b"Return-Path: <s@remote.test>\nDelivered-To: alice+x@example.org\n")


def test_site_runs_when_an_import_needs_it():
    """In-process without site (python -I -S): the package root is on sys.path, and site (~16 ms
    with an editable install's import hook) runs only when an import finds nothing without it,
    then that import succeeds as after a normal start-up; the standard library's probes for
    other platforms' modules (copy.py's `org.python.core`) do not run it."""
    child = (f"import sys; sys.path.insert(0, {str(ROOT / 'sieve' / 'delivery')!r}); import lda_lmtp; "
             "lda_lmtp._enable_site(); import copy, sieve.delivery.executor; "
             "assert 'site' not in sys.modules, 'site ran early'; "
             "import twisted; assert 'site' in sys.modules; print(twisted.__name__)")
    r = subprocess.run([sys.executable, "-I", "-S", "-c", child], capture_output=True, timeout=60)
    assert r.returncode == 0 and r.stdout == b"twisted\n", r.stderr


def test_in_process_delivery_ends_with_its_log_written(tmp_path):
    """The in-process path ends the process without the interpreter's tear-down: logging's
    atexit hook still runs first, so the log file has the delivery's line."""
    log = tmp_path / "lda.log"
    conf = config(tmp_path, f'lda_log_path = "{log}"\nlda_lmtp_handoff = false\nlog_level = "info"')
    r = run_lda([*COMMANDS["pipe command"], "-c", conf, "-f", "s@remote.test", "-d", "logged@example.org"])
    assert r.returncode == 0, r.stderr
    assert len(stored(tmp_path / "lda-mail/example.org/logged/Maildir")) == 1
    assert "logged@example.org" in log.read_text()
