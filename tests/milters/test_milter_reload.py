"""SIGHUP reloads the running `owlery milter`: new connections get the new settings, the pid stays.

Real milter processes (tests/harness/owlery_milter.py) driven by a small milter-protocol
client (version 6, no-reply steps not negotiated, so every command gets its answer), so a
connection can stay open across a reload. The visible setting is milter_authserv_id, which
the `authres` stage writes into the Authentication-Results header it inserts.
Before the reload existed a SIGHUP killed the process (status -1); libmilter's own signal
thread, which stops the milter on SIGHUP, must never get one (test_many_reloads...).
"""

import signal
import socket
import struct

import pytest

from tests.harness.owlery_milter import MilterProcess
from tests.harness.procs import HarnessError, wait_until

SMFIF_ALL = 0x1FF          # every action an MTA may allow (values of libmilter's mfdef.h)
REPLY_ENDS = {b"a", b"c", b"r", b"t", b"d", b"y"}   # accept, continue, reject, tempfail, discard, replycode
STEP_TIMEOUT = 10.0


def config(authserv_id, extra=""):
    return (f'milter_authserv_id = "{authserv_id}"\nmilter_spf_source = "none"\n'
            f'milter_inbound_stages = ["authres"]\nmilter_internal_networks = []\n{extra}')


class MilterClient:
    """The MTA side of one milter connection, step by step."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(STEP_TIMEOUT)
        self.sock.connect(path)
        self.buf = b""

    def send(self, cmd, data=b""):
        self.sock.sendall(struct.pack("!I", len(data) + 1) + cmd + data)

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("milter closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def packet(self):
        (length,) = struct.unpack("!I", self._read(4))
        body = self._read(length)
        return body[:1], body[1:]

    def step(self, cmd, data=b""):
        self.send(cmd, data)
        code, _ = self.packet()
        assert code == b"c", (cmd, code)

    def start(self, client_ip="192.0.2.10"):
        """Negotiate, then CONNECT/HELO/MAIL/RCPT: the message is open until finish()."""
        self.send(b"O", struct.pack("!III", 6, SMFIF_ALL, 0))
        code, _ = self.packet()
        assert code == b"O"
        self.send(b"D", b"C" + b"j\0mx.owlery.test\0")
        self.step(b"C", b"mail.example.net\0" + b"4" + struct.pack("!H", 25) + client_ip.encode() + b"\0")
        self.step(b"H", b"mail.example.net\0")
        self.step(b"M", b"<alice@example.net>\0")
        self.step(b"R", b"<bob@example.com>\0")
        return self

    def finish(self):
        """Headers, body, end-of-message: (final reply code, [(name, value) of added headers])."""
        self.step(b"T")
        self.step(b"L", b"From\0Alice <alice@example.net>\0")
        self.step(b"L", b"Subject\0hello\0")
        self.step(b"N")
        self.step(b"B", b"hello\r\n")
        self.send(b"D", b"E" + b"i\0RELOADQ1\0")
        self.send(b"E")
        added = []
        while True:
            code, data = self.packet()
            if code in (b"h", b"i"):               # addheader; insheader (4-byte index first)
                if code == b"i":
                    data = data[4:]
                name, value, _ = data.split(b"\0", 2)
                added.append((name.decode(), value.decode()))
            if code in REPLY_ENDS:
                return code, added

    def close(self):
        try:
            self.send(b"Q")
        except OSError:
            pass
        self.sock.close()


def authserv_of_new_message(milter):
    client = MilterClient(milter.path).start()
    try:
        code, added = client.finish()
    finally:
        client.close()
    assert code == b"a", (code, milter.log()[-2000:])
    values = [v for n, v in added if n == "Authentication-Results"]
    assert len(values) == 1, added
    return values[0].strip().split(";")[0]


def reloads_seen(milter):
    return milter.log().count("milter: settings reloaded from")


def hup_until_new_message_sees(milter, authserv_id):
    """SIGHUP, then wait until a new connection's header carries `authserv_id`. (Counting log
    lines would not do: a SIGHUP while the milter starts may log two reloads.)"""
    milter.proc.popen.send_signal(signal.SIGHUP)
    wait_until(lambda: authserv_of_new_message(milter) == authserv_id or None, STEP_TIMEOUT,
               f"a new message with authserv-id {authserv_id}", proc=milter.proc)


def hup_and_wait(milter, needle, count):
    """SIGHUP, then wait until the log holds `needle` `count` times (reload is asynchronous)."""
    milter.proc.popen.send_signal(signal.SIGHUP)
    try:
        wait_until(lambda: milter.log().count(needle) >= count or None, STEP_TIMEOUT,
                   f"{count} log lines {needle!r}", proc=milter.proc)
    except HarnessError as exc:
        raise HarnessError(f"{exc}\n--- log tail ---\n{milter.log()[-3000:]}") from None


@pytest.fixture
def milter(tmp_path):
    proc = MilterProcess(tmp_path, config("old.owlery.test"), listen="unix").start()
    yield proc
    proc.stop()


def rewrite(milter, authserv_id, extra=""):
    milter.config_path.write_text(f'milter_listen = "{milter.endpoint}"\n{config(authserv_id, extra)}\n')


def test_sighup_new_connection_sees_new_settings_same_pid(milter):
    pid = milter.proc.popen.pid
    assert authserv_of_new_message(milter) == "old.owlery.test"
    rewrite(milter, "new.owlery.test")
    hup_until_new_message_sees(milter, "new.owlery.test")
    assert "milter: settings reloaded from " + str(milter.config_path) in milter.log()
    assert milter.proc.popen.poll() is None and milter.proc.popen.pid == pid
    assert milter.stop() == 0, milter.log()
    assert "milter: stopped" in milter.log() and "Traceback" not in milter.log()


def test_bad_file_keeps_old_settings_and_logs_refusal(milter):
    milter.config_path.write_text(f'milter_listen = "{milter.endpoint}"\n{config("new.owlery.test")}\n'
                                  'milter_inbound_stages = ["nosuchstage"]\n')     # duplicate key: bad TOML
    hup_and_wait(milter, "milter: reload refused, keeping old settings: ", 1)
    assert authserv_of_new_message(milter) == "old.owlery.test"
    # A file that parses but names an unknown stage: the pipeline refuses it, same outcome.
    milter.config_path.write_text(f'milter_listen = "{milter.endpoint}"\nmilter_authserv_id = "new.owlery.test"\n'
                                  'milter_inbound_stages = ["nosuchstage"]\n')
    hup_and_wait(milter, "unknown milter stage 'nosuchstage'", 1)
    assert milter.log().count("milter: reload refused, keeping old settings: ") >= 2
    assert authserv_of_new_message(milter) == "old.owlery.test"
    assert reloads_seen(milter) == 0
    assert milter.stop() == 0, milter.log()


def test_restart_only_settings_are_reported(milter):
    rewrite(milter, "new.owlery.test", "milter_listen_backlog = 7\n")
    hup_and_wait(milter, "milter: milter_listen_backlog changed, needs a restart: still 128", 1)
    assert authserv_of_new_message(milter) == "new.owlery.test"


def test_connection_open_across_reload_finishes_with_old_settings(milter):
    held = MilterClient(milter.path).start()        # MAIL and RCPT given: the message is open
    try:
        rewrite(milter, "new.owlery.test")
        hup_until_new_message_sees(milter, "new.owlery.test")
        code, added = held.finish()
    finally:
        held.close()
    assert code == b"a"
    assert [v.strip().split(";")[0] for n, v in added if n == "Authentication-Results"] == ["old.owlery.test"]


def test_many_reloads_then_sigterm_stops_cleanly(milter):
    """Each SIGHUP is ours, never libmilter's (which would stop the milter); SIGTERM still stops."""
    pid = milter.proc.popen.pid
    for n in range(1, 6):
        rewrite(milter, f"gen{n}.owlery.test")
        hup_until_new_message_sees(milter, f"gen{n}.owlery.test")
    # Back to back, without waiting in between (some merge): still reloads, never a stop.
    rewrite(milter, "gen6.owlery.test")
    for _ in range(5):
        milter.proc.popen.send_signal(signal.SIGHUP)
    # libmilter taking one would close the listening socket: this would then fail to connect.
    wait_until(lambda: authserv_of_new_message(milter) == "gen6.owlery.test" or None, STEP_TIMEOUT,
               "the burst of SIGHUPs reloaded", proc=milter.proc)
    assert milter.proc.popen.poll() is None and milter.proc.popen.pid == pid
    assert milter.stop() == 0, milter.log()
    log = milter.log()
    # Our thread took SIGTERM (the process was still ours to stop) and stopped cleanly.
    assert "milter: signal 15: stopping" in log and "milter: stopped" in log, log
    assert "Traceback" not in log, log


class CountingPipeline:
    def __init__(self, name):
        self.name, self.closed = name, 0

    def close(self):
        self.closed += 1


def test_old_pipeline_closes_when_its_last_connection_ends():
    """In-process: the swap the reload does, with connections made by the libmilter factory."""
    from owlery.settings import Settings

    from milters.adapter import make_factory

    old, new = CountingPipeline("old"), CountingPipeline("new")
    factory = make_factory(Settings(), old)
    first, second = factory(), factory()            # two open connections on the old settings
    factory.configurations.swap(Settings(), new)
    third = factory()
    assert (first.pipeline, second.pipeline, third.pipeline) == (old, old, new)
    first.close()
    assert old.closed == 0                          # `second` still uses it
    second.close()
    assert old.closed == 1 and factory.configurations.retired_in_use() == 0
    third.close()
    third.close()                                   # a second close releases nothing more
    idle = CountingPipeline("idle")
    factory.configurations.swap(Settings(), idle)   # nobody on `new`: closed at once
    assert new.closed == 1 and idle.closed == 0
    factory.configurations.close()                  # at exit
    assert idle.closed == 1 and old.closed == 1
