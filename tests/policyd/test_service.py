"""The Twisted adapter (policyd.service) with StringTransport and Clock: replies, reuse,
pipelining, malformed input, idle and decision timeouts, internal errors, reload."""

import pytest
from twisted.internet import defer, task
from twisted.internet.testing import StringTransport

from owlery.settings import Settings
from policyd import actions as A
from policyd.checks import Check, InlineExecutor
from policyd.protocol import encode_request
from policyd.service import PolicyApp

from policyd_testlib import settings_for

RCPT = {"protocol_state": "RCPT", "sender": "a@sender.test", "instance": "i1"}


class Controlled(Check):
    """A check whose answers the test sets: an Action, an exception, or a pending Deferred."""

    name = "controlled"
    states = frozenset({"RCPT"})
    answer = A.DUNNO

    def evaluate(self, req, now):
        a = type(self).answer
        if isinstance(a, BaseException):
            raise a
        return a


class FakeReactor(task.Clock):
    pass


def app_with(settings=None, checks=None):
    settings = settings if settings is not None else Settings()
    clock = FakeReactor()
    app = PolicyApp(settings, clock, executor=InlineExecutor())
    if checks is not None:
        from policyd.checks import CheckContext
        from policyd.pipeline import Pipeline
        app.factory.pipeline = Pipeline(settings, CheckContext(settings, clock, InlineExecutor()), checks)
    return app, clock


def connect(app):
    proto = app.factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport


@pytest.fixture(autouse=True)
def reset_controlled():
    Controlled.answer = A.DUNNO
    yield
    Controlled.answer = A.DUNNO


def test_dunno_and_connection_reuse():
    app, _ = app_with(checks={"RCPT": [Controlled]})
    proto, tr = connect(app)
    proto.dataReceived(encode_request({**RCPT, "recipient": "a@x.test"}))
    assert tr.value() == b"action=DUNNO\n\n"
    Controlled.answer = A.reject(A.USER_UNKNOWN)
    proto.dataReceived(encode_request({**RCPT, "recipient": "b@x.test"}))
    assert tr.value() == b"action=DUNNO\n\naction=550 5.1.1 User unknown\n\n"
    assert not tr.disconnecting


def test_pipelined_requests_answered_in_order():
    waiting = defer.Deferred()
    Controlled.answer = waiting
    app, _ = app_with(checks={"RCPT": [Controlled]})
    proto, tr = connect(app)
    proto.dataReceived(encode_request(RCPT) + encode_request(RCPT))
    assert tr.value() == b""
    Controlled.answer = A.reject(A.USER_UNKNOWN)
    waiting.callback(A.DUNNO)
    assert tr.value() == b"action=DUNNO\n\naction=550 5.1.1 User unknown\n\n"


def test_too_many_pipelined_requests_disconnects():
    Controlled.answer = defer.Deferred()
    app, _ = app_with(Settings().replace(policyd_requests_queued_max=2), checks={"RCPT": [Controlled]})
    proto, tr = connect(app)
    proto.dataReceived(encode_request(RCPT) * 4)
    assert tr.disconnecting and tr.value() == b""


@pytest.mark.parametrize("data", [b"garbage\n\n", b"request=other\n\n", b"x=" + b"y" * 10000])
def test_malformed_input_disconnects_without_reply(data):
    app, _ = app_with(checks={"RCPT": [Controlled]})
    proto, tr = connect(app)
    proto.dataReceived(data)
    assert tr.value() == b"" and tr.disconnecting


def test_internal_error_disconnects_without_reply():
    Controlled.answer = ZeroDivisionError("bug")
    app, _ = app_with(checks={"RCPT": [Controlled]})
    proto, tr = connect(app)
    proto.dataReceived(encode_request(RCPT))
    assert tr.value() == b"" and tr.disconnecting


def test_temporary_failure_is_answered_not_disconnected():
    from owlery.errors import DirectoryUnavailable
    Controlled.answer = DirectoryUnavailable()
    app, _ = app_with(checks={"RCPT": [Controlled]})
    proto, tr = connect(app)
    proto.dataReceived(encode_request(RCPT))
    assert tr.value().startswith(b"action=DEFER_IF_PERMIT 4.3.0 ") and not tr.disconnecting


def test_idle_timeout():
    app, clock = app_with(Settings().replace(policyd_idle_timeout=300), checks={"RCPT": [Controlled]})
    proto, tr = connect(app)
    clock.advance(299)
    proto.dataReceived(encode_request(RCPT))      # activity resets the idle timer
    clock.advance(299)
    assert not tr.disconnecting
    clock.advance(2)
    assert tr.disconnecting


def test_decision_timeout_disconnects_without_reply():
    Controlled.answer = defer.Deferred()
    app, clock = app_with(Settings().replace(policyd_decision_timeout=60, policyd_idle_timeout=30),
                          checks={"RCPT": [Controlled]})
    proto, tr = connect(app)
    proto.dataReceived(encode_request(RCPT))
    clock.advance(59)          # idle timer does not run while deciding
    assert not tr.disconnecting
    clock.advance(2)
    assert tr.disconnecting and tr.value() == b""


def test_connection_lost_mid_decision_cancels_it():
    pending = defer.Deferred()
    Controlled.answer = pending
    app, _ = app_with(checks={"RCPT": [Controlled]})
    proto, tr = connect(app)
    proto.dataReceived(encode_request(RCPT))
    proto.connectionLost(None)
    assert pending.called      # cancelled (CancelledError), nothing written
    pending.addErrback(lambda f: None)
    assert tr.value() == b""


def test_reload_swaps_pipeline_and_retires_old(tmp_path):
    s1 = settings_for(tmp_path / "d1", policyd_checks={"RCPT": ["recipient"]})
    app, clock = app_with(s1)
    proto, tr = connect(app)
    proto.dataReceived(encode_request({**RCPT, "recipient": "nobody@example.org"}))
    assert tr.value() == b"action=550 5.1.1 User unknown\n\n"
    old = app.factory.pipeline
    app.reload(s1.replace(policyd_checks={"RCPT": []}))
    assert app.factory.pipeline is not old and not app._retired      # old was idle: closed at once
    proto.dataReceived(encode_request({**RCPT, "recipient": "nobody@example.org"}))
    assert tr.value().endswith(b"action=DUNNO\n\n")


def test_bad_reload_keeps_old_pipeline():
    app, _ = app_with(checks={"RCPT": [Controlled]})
    old = app.factory.pipeline
    app.reload(Settings().replace(policyd_checks={"DATA": ["recipient"]}))   # recipient cannot run at DATA
    assert app.factory.pipeline is old


def test_batch_worker_runs_queued_items_together_and_isolates_errors():
    """The state worker thread: items queued together reach the function together, one
    outcome each; a failing batch function fails only its own items; close() stops it."""
    import queue
    import threading

    from owlery.errors import TemporaryFailure
    from policyd.checks import BatchWorker

    class ThreadReactor:
        def __init__(self):
            self.calls = queue.SimpleQueue()

        def callFromThread(self, fn, *args):
            self.calls.put((fn, args))

    gate = threading.Event()
    seen = []

    def double(items):
        gate.wait(5)
        seen.append(list(items))
        return [(True, x * 2) if x >= 0 else (False, ValueError(x)) for x in items]

    def broken(items):
        raise RuntimeError("boom")

    reactor = ThreadReactor()
    worker = BatchWorker(reactor, queue_max=4, name="test")
    first = worker.submit(double, 1)           # the thread takes this one and waits at the gate
    rest = [worker.submit(double, x) for x in (2, -1)] + [worker.submit(broken, 0)]
    refused = worker.submit(double, 9)         # 4 waiting = queue_max: refused at once
    gate.set()
    results = []
    for d in [first] + rest:
        d.addBoth(results.append)
    while len(results) < 4:
        fn, args = reactor.calls.get(timeout=5)
        fn(*args)
    worker.close()
    assert results[0] == 2 and results[1] == 4
    assert results[2].check(ValueError) and results[3].check(RuntimeError)
    assert seen[-1][-2:] == [2, -1]              # queued meanwhile: in one batch
    assert worker.waiting == 0
    failures = []
    refused.addErrback(failures.append)
    assert failures and failures[0].check(TemporaryFailure)


def test_a_policyd_worker_bounds_how_long_the_reactor_waits_for_the_gil():
    # pool threads (a first SPF evaluation, greylist batch writes) run Python beside the
    # reactor; with CPython's 5 ms switch interval every such wait could add 5 ms to a reply
    import sys

    from policyd import service
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        app = service.build(Settings({"policyd_checks": {"RCPT": []}}), task.Clock())
        try:
            assert sys.getswitchinterval() == pytest.approx(service.GIL_SWITCH_INTERVAL) and service.GIL_SWITCH_INTERVAL <= 0.001
        finally:
            app.close()
    finally:
        sys.setswitchinterval(before)
