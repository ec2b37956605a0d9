"""`milter_workers = 2`: two libmilter processes on one listen socket, supervised by the parent.

Real `owlery milter` processes (tests/harness/owlery_milter.py) driven by the small
milter-protocol client of test_milter_reload.py. Which worker takes a connection on the
shared socket is the kernel's choice, so to make one worker answer alone the other is
stopped with SIGSTOP (it cannot accept then) and continued afterwards. The verdict that
tells sessions apart without DNS: milter_header_count_limit = 2, so a message with a third
header field is rejected (552 5.3.4) and one with two is accepted with our A-R header.
"""

import os
import re
import signal
import socket
import threading
import urllib.request

import pytest

from tests.harness.owlery_milter import MilterProcess
from tests.harness.procs import free_port, wait_until
from tests.milters.test_milter_reload import REPLY_ENDS, STEP_TIMEOUT, MilterClient, config

SESSIONS = 16


class Client(MilterClient):
    """MilterClient over the milter's unix or TCP endpoint."""

    def __init__(self, milter):
        if milter.port is None:
            super().__init__(milter.path)
        else:
            self.sock = socket.create_connection(("127.0.0.1", milter.port), timeout=STEP_TIMEOUT)
            self.buf = b""

    def finish_with(self, headers):
        """Headers, body, end-of-message: (reply code, reply data, added headers)."""
        self.step(b"T")
        for name, value in headers:
            self.step(b"L", name.encode() + b"\0" + value.encode() + b"\0")
        self.step(b"N")
        self.step(b"B", b"hello\r\n")
        self.send(b"E")
        added = []
        while True:
            code, data = self.packet()
            if code in (b"h", b"i"):
                name, value, _ = (data[4:] if code == b"i" else data).split(b"\0", 2)
                added.append((name.decode(), value.decode()))
            if code in REPLY_ENDS:
                return code, data, added


GOOD = [("From", "Alice <alice@example.net>"), ("Subject", "hello")]
BAD = GOOD + [("X-Third", "one too many")]


def one_message(milter, headers=GOOD):
    client = Client(milter).start()
    try:
        return client.finish_with(headers)
    finally:
        client.close()


def authserv(added):
    values = [v for n, v in added if n == "Authentication-Results"]
    assert len(values) == 1, added
    return values[0].strip().split(";")[0]


def workers_of(milter):
    pid = milter.proc.popen.pid
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def two_workers(milter):
    return wait_until(lambda: (lambda pids: pids if len(pids) == 2 else None)(workers_of(milter)),
                      STEP_TIMEOUT, "two worker processes", proc=milter.proc)


def stopped(pid):
    states = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/stat") as f:
            states.append(f.read().rpartition(")")[2].split()[0])
    return all(state == "T" for state in states)


def alone(milter, pid, others):
    """Run one message while every worker but `pid` is stopped; its (code, data, added)."""
    for other in others:
        os.kill(other, signal.SIGSTOP)
    # A stop takes effect when each thread is next scheduled: wait until all of them have.
    wait_until(lambda: all(stopped(other) for other in others) or None, STEP_TIMEOUT, "workers stopped")
    try:
        return one_message(milter)
    finally:
        for other in others:
            os.kill(other, signal.SIGCONT)


def workers_config(authserv_id="old.owlery.test", extra=""):
    return config(authserv_id, f"milter_workers = 2\nmilter_header_count_limit = 2\n{extra}")


@pytest.fixture
def milter(tmp_path):
    proc = MilterProcess(tmp_path, workers_config(), listen="unix").start()
    yield proc
    proc.stop()


@pytest.mark.parametrize("listen", ["unix", "tcp"])
def test_concurrent_sessions_all_get_their_verdicts(tmp_path, listen):
    milter = MilterProcess(tmp_path, workers_config(), listen=listen).start()
    try:
        # Every session is open (negotiated, MAIL and RCPT given) before any finishes.
        clients = [Client(milter).start() for _ in range(SESSIONS)]
        results = [None] * SESSIONS

        def finish(i):
            try:
                results[i] = clients[i].finish_with(BAD if i % 2 else GOOD)
            finally:
                clients[i].close()
        threads = [threading.Thread(target=finish, args=(i,)) for i in range(SESSIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(STEP_TIMEOUT * 3)
        for i, (code, data, added) in enumerate(results):
            if i % 2:
                assert code == b"y" and data.startswith(b"552 5.3.4"), (i, code, data)
            else:
                assert code == b"a" and authserv(added) == "old.owlery.test", (i, code, added)
        assert len(workers_of(milter)) == 2
        assert milter.stop() == 0, milter.log()
        if listen == "unix":
            assert not os.path.exists(milter.path)
    finally:
        milter.stop()


def test_each_worker_answers_alone_and_a_killed_one_is_replaced(milter):
    first, second = two_workers(milter)
    for pid, others in ((first, [second]), (second, [first])):
        code, _, added = alone(milter, pid, others)
        assert code == b"a" and authserv(added) == "old.owlery.test", (pid, code)
    os.kill(first, signal.SIGKILL)
    code, _, _ = one_message(milter)         # the other worker still answers meanwhile
    assert code == b"a"
    replaced = wait_until(lambda: (lambda pids: pids if len(pids) == 2 and first not in pids else None)(
        workers_of(milter)), STEP_TIMEOUT, "the killed worker replaced", proc=milter.proc)
    new = next(p for p in replaced if p != second)
    code, _, added = alone(milter, new, [second])
    assert code == b"a" and authserv(added) == "old.owlery.test"
    assert f"worker 0 (pid {first}) exited with status -9; restarting" in milter.log()


def test_sighup_reloads_every_worker(milter):
    pids = two_workers(milter)
    parent = milter.proc.popen.pid
    milter.config_path.write_text(f'milter_listen = "{milter.endpoint}"\n{workers_config("new.owlery.test")}\n')
    milter.proc.popen.send_signal(signal.SIGHUP)
    wait_until(lambda: milter.log().count("milter: settings reloaded from") >= 2 or None, STEP_TIMEOUT,
               "both workers reloaded", proc=milter.proc)
    for pid in pids:
        code, _, added = alone(milter, pid, [p for p in pids if p != pid])
        assert code == b"a" and authserv(added) == "new.owlery.test", pid
    assert workers_of(milter) == pids and milter.proc.popen.pid == parent     # reloaded, not restarted


def test_sigterm_drains_open_messages_stops_all_workers_and_removes_the_socket(milter):
    pids = two_workers(milter)
    held = Client(milter).start()           # a message in progress in one worker
    try:
        milter.proc.popen.send_signal(signal.SIGTERM)
        # (Each worker's main thread takes it, or, rarely, libmilter's signal thread, which
        # stops libmilter a few seconds later: the open message finishes either way.)
        wait_until(lambda: "milter: signal 15: stopping 2 workers" in milter.log() or None, STEP_TIMEOUT,
                   "the parent passing SIGTERM on")
        try:
            code, _, added = held.finish_with(GOOD)
        except OSError as e:     # seen once in a loaded CI run: keep what the workers said
            pytest.fail(f"the open message got no answer after SIGTERM ({e!r}); milter log:\n{milter.log()}")
    finally:
        held.close()
    assert code == b"a" and authserv(added) == "old.owlery.test"
    assert milter.proc.popen.wait(timeout=STEP_TIMEOUT * 2) == 0, milter.log()
    log = milter.log()
    assert "milter: stopped" in log and "Traceback" not in log, log
    assert not os.path.exists(milter.path)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in pids)


def test_metrics_sum_over_workers(tmp_path):
    port = free_port()
    milter = MilterProcess(tmp_path, workers_config(extra=f'milter_metrics_listen = "tcp:127.0.0.1:{port}"\n'),
                           listen="unix").start()
    try:
        first, second = two_workers(milter)
        for _ in range(3):
            assert alone(milter, first, [second])[0] == b"a"
        for _ in range(2):
            assert alone(milter, second, [first])[0] == b"a"

        def accepted():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=STEP_TIMEOUT) as r:
                text = r.read().decode()
            lines = [line for line in text.splitlines()
                     if line.startswith('owlery_milter_messages_total{action="accept"}')]
            return float(lines[0].split()[-1]) if lines else 0.0
        assert accepted() == 5.0        # three from one worker's files, two from the other's
        files = re.search(r"sum of 2 workers, files in (\S+)\)", milter.log()).group(1)
        assert os.path.isdir(files)
    finally:
        milter.stop()
    assert not os.path.exists(files)        # the parent removes them at exit


def test_ready_is_sent_once_every_worker_runs(tmp_path, monkeypatch):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    listener.bind(path)
    listener.settimeout(STEP_TIMEOUT)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    milter = MilterProcess(tmp_path / "m", workers_config(), listen="unix").start()
    try:
        seen = []
        while not any("READY=1" in m for m in seen):
            seen.append(listener.recv(4096).decode())
        ready = next(m for m in seen if "READY=1" in m)
        assert "2 workers" in ready, seen
        # Sent by the parent (NotifyAccess=main) after both workers reported from libmilter.
        assert milter.log().count("milter: worker ") >= 2
        assert one_message(milter)[0] == b"a"
    finally:
        milter.stop()
        listener.close()
