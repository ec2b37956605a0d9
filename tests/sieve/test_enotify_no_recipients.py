"""A mailto URI without recipients ("mailto:", "mailto:?body=x") is a valid URI (RFC 6068: the
`to` part is optional): valid_notify_method is true for it, and a notify to it compiles with
a warning and does nothing, as in Pigeonhole (a differential run's difference: Owlery took it
for an invalid method, so `if valid_notify_method "mailto:"` went the other way)."""

from __future__ import annotations

import logging

import pytest

from sieve.api import Envelope, Notify, compile_script, run

ENV = Envelope("bob@remote.test", "alice@example.org", None)
MSG = b"From: bob@remote.test\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.mark.parametrize("uri", ["mailto:", "mailto:?body=x", "MAILTO:?subject=s&body=b"])
def test_valid_notify_method_says_a_mailto_without_recipients_is_valid(uri):
    script = compile_script('require ["enotify", "fileinto"];\n'
                            f'if valid_notify_method "{uri}" {{ fileinto "Valid"; }}\n')
    assert [a.mailbox for a in run(script, MSG, ENV).effective_actions() if hasattr(a, "mailbox")] == ["Valid"]


def test_notify_without_recipients_compiles_with_a_warning_and_does_nothing(caplog):
    script = compile_script('require "enotify";\nnotify "mailto:?body=x";\n')
    assert any("no recipients" in w for w in map(str, script.warnings))
    with caplog.at_level(logging.WARNING, logger="owlery.sieve"):
        result = run(script, MSG, ENV)
    assert result.status == "ok"
    assert not [a for a in result.actions if isinstance(a, Notify)]
    assert "no recipients" in caplog.text


def test_invalid_mailto_uris_are_still_invalid():
    script = compile_script('require ["enotify", "fileinto"];\n'
                            'if valid_notify_method "mailto:%zz" { fileinto "Valid"; }\n'
                            'if valid_notify_method "xmpp:a@b.c" { fileinto "Valid"; }\n')
    assert not [a for a in run(script, MSG, ENV).effective_actions() if getattr(a, "mailbox", "INBOX") != "INBOX"]
