"""SPF's trace header is built only for a reply that carries it (policyd.actions.LazyPrepend).

Greylisting defers most first attempts after SPF has annotated the RCPT: the Received-SPF
line made for it was thrown away. The line is now built when the pipeline answers with it,
once per message and state, and the headers a message gets are unchanged
(tests/policyd/test_pending_headers.py holds those transcripts).
"""

from __future__ import annotations

from policyd import actions as A
from policyd.checks.spf import SpfCheck
from tests.policyd.test_pending_headers import DELAY, RCPT_SPF_GREYLIST, T0, decide, make_pipeline, make_settings


def _count_builds(monkeypatch) -> list:
    built = []
    real = SpfCheck._build_header

    def counting(self, entry, state):
        built.append(state)
        return real(self, entry, state)
    monkeypatch.setattr(SpfCheck, "_build_header", counting)
    return built


def test_a_deferred_rcpt_builds_no_spf_header(tmp_path, monkeypatch):
    built = _count_builds(monkeypatch)
    pipe = make_pipeline(make_settings(tmp_path, RCPT_SPF_GREYLIST))
    session = pipe.new_session()
    for n in range(3):
        action = decide(pipe, session, T0, "RCPT", "first", recipient=f"u{n}@example.org")
        assert action.verb == "DEFER_IF_PERMIT", action.render()
    assert built == []


def test_an_accepted_rcpt_builds_the_header_once_per_message(tmp_path, monkeypatch):
    built = _count_builds(monkeypatch)
    pipe = make_pipeline(make_settings(tmp_path, RCPT_SPF_GREYLIST))
    session = pipe.new_session()
    for n in range(2):
        assert decide(pipe, session, T0, "RCPT", "first", recipient=f"u{n}@example.org").verb == "DEFER_IF_PERMIT"
    texts = []
    for n in range(2):
        action = decide(pipe, session, T0 + DELAY + 1, "RCPT", "retry", recipient=f"u{n}@example.org")
        assert action.verb == "PREPEND"
        texts.append(action.text)
    assert built == ["RCPT"]
    assert any(t.startswith("Received-SPF: Pass ") for t in texts), texts


def test_lazy_prepend_reads_like_the_action_it_builds():
    calls = []

    def build():
        calls.append(1)
        return A.prepend("X-Test: yes")
    lazy = A.LazyPrepend(build)
    assert not lazy.decisive and calls == []
    assert lazy.verb == "PREPEND" and lazy.text == "X-Test: yes" and lazy.render() == "PREPEND X-Test: yes"
    assert lazy.log_word() == "prepend" and calls == [1]
    assert A.LazyPrepend(lambda: None).resolved() is A.DUNNO
