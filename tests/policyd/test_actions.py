"""Policy actions render to the access(5) text Postfix expects (policyd.actions)."""

import pytest

from owlery.reply import Reply
from policyd import actions as A


@pytest.mark.parametrize("action,text,decisive,word", [
    (A.DUNNO, "DUNNO", False, "dunno"),
    (A.reject(A.USER_UNKNOWN), "550 5.1.1 User unknown", True, "reject"),
    (A.reject(A.MAILBOX_FULL_TEMPORARY), "452 4.2.2 Mailbox full, try again later", True, "defer"),
    (A.defer_if_permit(A.BACKEND_TIMEOUT),
     "DEFER_IF_PERMIT 4.3.0 Lookup timed out, try again later", True, "defer-if-permit"),
    (A.defer_if_reject(Reply(450, "4.7.1", "x")), "DEFER_IF_REJECT 4.7.1 x", True, "defer-if-reject"),
    (A.prepend("X-Test: yes"), "PREPEND X-Test: yes", False, "prepend"),
    (A.warn("look"), "WARN look", False, "warn"),
    (A.info("fyi"), "INFO fyi", False, "info"),
    (A.hold("why"), "HOLD why", True, "hold"),
    (A.discard(), "DISCARD", True, "discard"),
    (A.redirect("x@y.test"), "REDIRECT x@y.test", True, "redirect"),
    (A.bcc("x@y.test"), "BCC x@y.test", True, "bcc"),
    (A.filter_to("smtp:[127.0.0.1]:10025"), "FILTER smtp:[127.0.0.1]:10025", True, "filter"),
])
def test_render(action, text, decisive, word):
    assert action.render() == text
    assert action.decisive is decisive
    assert action.log_word() == word


@pytest.mark.parametrize("make", [
    lambda: A.defer_if_permit(Reply(550, "5.1.1", "x")),     # a deferral must be 4xx
    lambda: A.defer(Reply(550, "5.1.1", "x")),
    lambda: A.prepend("not a header"),
    lambda: A.prepend("X-Bad: line\nInjected: yes"),
    lambda: A.warn("caf\u00e9"),
])
def test_refused(make):
    with pytest.raises(ValueError):
        make()
