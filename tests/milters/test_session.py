"""MilterSession and the effects/verdict model, without pymilter or sockets."""

import pytest

from owlery.errors import TemporaryFailure
from owlery.reply import Reply

from milters import effects as fx
from milters.session import MilterSession
from milters.stages import STAGES, StagePipeline, Services, Stage

from .conftest import make_settings


class Recorder(Stage):
    name = "recorder"
    seen = []

    def check(self, message, report):
        Recorder.seen.append(message)


class Boom(Stage):
    name = "boom"

    def check(self, message, report):
        raise KeyError("bug")


class Down(Stage):
    name = "down"

    def check(self, message, report):
        raise TemporaryFailure("clamd not answering")


class Scorer(Stage):
    name = "scorer"

    def check(self, message, report):
        for part in (message.get("X-Score") or "").split():
            name, _, score = part.partition("=")
            report.symbol(name, float(score))


class FakePipeline(StagePipeline):
    def __init__(self, settings, stages):
        self.settings = settings
        self.stages = {s.name: s for s in stages}
        self._list = stages

    def select(self, message):
        return self._list


def run(settings, stages, headers=((b"From", b" a@example.org"),), body=b"hello\r\n", macros=None):
    s = MilterSession(settings, FakePipeline(settings, [cls(settings, Services(None)) for cls in stages]))
    s.connect("client.example.org", "192.0.2.1", {"j": "mx.test", "{daemon_name}": "smtpd"})
    s.helo("client.example.org", {})
    s.mail_from("<a@example.org>", ("SIZE=10",), {"{auth_authen}": "alice"} if macros == "auth" else {})
    s.rcpt("<b@example.net>", (), {})
    s.data({"i": "QID1"})
    for name, value in headers:
        s.header(name.decode(), value)
    s.end_of_headers({})
    for i in range(0, len(body), 1000):
        s.body(body[i:i + 1000])
    return s.end_of_message({"i": "QID1"})


def test_message_model_keeps_raw_headers_and_envelope():
    Recorder.seen.clear()
    out = run(make_settings(), [Recorder],
              headers=((b"Subject", b" two\n\tlines"), (b"From", b"  A <a@example.org>")))
    m = Recorder.seen[0]
    assert out.action == "accept"
    assert m.headers[0].raw == b"Subject: two\r\n\tlines\r\n"
    assert m.headers[1].raw == b"From:  A <a@example.org>\r\n"
    assert m.get("subject") == "two\tlines"      # unfolding removes only the CRLF
    assert (m.mail_from, m.recipients, m.queue_id, m.daemon_name) == ("a@example.org", ["b@example.net"], "QID1", "smtpd")
    assert m.mail_params == ("SIZE=10",) and m.client_address == "192.0.2.1" and m.helo == "client.example.org"


def test_body_spools_to_disk_past_memory_size_and_truncates_at_limit():
    Recorder.seen.clear()
    body = b"x" * 5000 + b"\r\n"
    run(make_settings(milter_body_memory_size=1000, milter_message_size_limit=100000), [Recorder], body=body)
    m = Recorder.seen[0]
    assert m._body._rolled and not m.truncated          # spooled to a real file
    Recorder.seen.clear()
    run(make_settings(milter_message_size_limit=3000), [Recorder], body=body)
    assert Recorder.seen[0].truncated and Recorder.seen[0].body_size == 3000


def test_a_bug_in_a_stage_tempfails_never_accepts():
    out = run(make_settings(), [Boom])
    assert out.action == "tempfail" and out.reply.code == 451


@pytest.mark.parametrize("policy,action,symbol", [("tempfail", "tempfail", None), ("continue", "accept", "DOWN_ERROR")])
def test_backend_down_follows_the_stage_setting(policy, action, symbol, monkeypatch):
    monkeypatch.setitem(STAGES, "down", "tests.milters.test_session:Down")   # the setting names registered stages
    settings = make_settings(milter_stage_on_error={"down": policy})
    s = MilterSession(settings, FakePipeline(settings, [Down(settings, Services(None))]))
    s.connect("c", "192.0.2.1", {})
    s.mail_from("<>", (), {})
    s.header("From", b" a@example.org")
    out = s.end_of_message({})
    assert out.action == action
    assert (symbol in [x.name for x in out.symbols]) if symbol else out.reply.code == 451


@pytest.mark.parametrize("scores,action,tagged,held", [
    ("", "accept", False, False),
    ("A=2 B=1", "accept", False, False),
    ("A=4 B=2", "accept", True, False),
    ("A=9", "accept", True, True),
    ("A=10 B=6", "reject", False, False),
])
def test_symbols_and_thresholds_make_the_verdict(scores, action, tagged, held):
    settings = make_settings(milter_score_tag=5.0, milter_score_quarantine=8.0, milter_score_reject=15.0)
    out = run(settings, [Scorer], headers=((b"X-Score", b" " + scores.encode()),))
    assert out.action == action
    names = [e.name for e in out.effects if isinstance(e, fx.AddHeader)]
    assert ("X-Spam-Flag" in names) == tagged
    assert any(isinstance(e, fx.Hold) for e in out.effects) == held
    if action == "reject":
        assert out.reply.code == 550 and out.effects == ()


def test_symbol_score_override_from_settings():
    out = run(make_settings(milter_symbol_scores={"A": 20}), [Scorer], headers=((b"X-Score", b" A=1"),))
    assert out.action == "reject" and out.score == 20


def test_strongest_action_wins_and_replies_are_checked():
    r = fx.StageReport(make_settings())
    r.discard("x")
    r.reject(Reply(550, "5.7.1", "no"))
    r.tempfail()
    r.reject(Reply(554, "5.7.1", "later reject does not beat tempfail"))
    assert r.action == "tempfail"
    with pytest.raises(ValueError):
        r.reject(Reply(450, "4.7.1", "not permanent"))


def test_too_many_headers_rejected():
    out = run(make_settings(milter_header_count_limit=3), [Recorder],
              headers=tuple((b"X-H", b" v") for _ in range(5)))
    assert out.action == "reject" and out.reply.code == 552


@pytest.mark.parametrize("client,auth,daemon,expected", [
    ("192.0.2.1", None, None, "in"),
    ("192.0.2.1", "alice", None, "out"),
    ("10.1.2.3", None, None, "out"),
    (None, None, None, "out"),
    ("192.0.2.1", None, "submission", "sub"),
])
def test_stage_selection(client, auth, daemon, expected):
    from milters.session import MilterMessage
    settings = make_settings(milter_inbound_stages=["authres"], milter_outbound_stages=["dkim_sign"],
                             milter_internal_networks=["10.0.0.0/8"],
                             milter_daemon_stages={"submission": ["dkim_sign", "authres"]})
    p = StagePipeline(settings, Services(None))
    m = MilterMessage(settings)
    m.client_address = client
    if auth:
        m.macros["{auth_authen}"] = auth
    if daemon:
        m.macros["{daemon_name}"] = daemon
    names = [s.name for s in p.select(m)]
    assert names == {"in": ["authres"], "out": ["dkim_sign"], "sub": ["dkim_sign", "authres"]}[expected]


def test_unknown_stage_is_refused_when_the_settings_are_read():
    from owlery.settings import SettingsError
    with pytest.raises(SettingsError, match="milter_inbound_stages: bad value: item 1: unknown milter stage 'nope'"):
        make_settings(milter_inbound_stages=["nope"])


def test_settled_score_and_removed_recipients():
    settings = make_settings(milter_score_tag=5.0, milter_score_quarantine=8.0, milter_score_reject=15.0)
    r = fx.StageReport(settings)
    r.stage = "spam"
    r.symbol("A", 20.0)
    assert r.verdict() == "reject"
    r.settle_score()                  # the stage applied its own levels: the thresholds stand aside
    r.delrcpt("bob@example.org", "quarantined")
    r.delrcpt("bob@example.org", "twice")
    out = r.finish()
    assert (r.verdict(), r.score_settled_by, out.action) == ("accept", "spam", "accept")
    assert [e for e in out.effects if isinstance(e, fx.DelRcpt)] == [fx.DelRcpt("bob@example.org", "quarantined")]
    assert not any(isinstance(e, (fx.Hold,)) for e in out.effects)
    assert "X-Spam-Flag" not in [e.name for e in out.effects if isinstance(e, fx.AddHeader)]
    r.tempfail()
    assert r.finish().effects == ()   # nobody is removed from a message that is not taken
