"""No backscatter through aliases (issue 15, item 3): transcripts on a files directory.

An alias or domain alias that reaches no mailbox and nothing remote is refused at RCPT
(550 5.1.1), not accepted and bounced later; a protected list reached through an alias or a
domain alias keeps its posting policy (the first protected list on each path governs: a list
inside a protected list is its owner's choice)."""

import pytest

from policyd_testlib import ask, make_pipeline, write_maps

CHECKS = {"RCPT": ["recipient", "lists", "quota"]}
USER_UNKNOWN = "550 5.1.1 User unknown"
RESTRICTED = "550 5.7.1 Only authorised senders may post to this list"

MAPS = {
    "mailboxes": """
        alice@example.org     example.org/alice
        bob@example.org       example.org/bob
    """,
    "aliases": """
        @alias.test           @example.org
        @alias2.test          @alias.test
        ghost@example.org     nobody@example.org
        ghosts@example.org    nobody@example.org, nobody2@example.org
        mixed@example.org     nobody@example.org, alice@example.org
        fwd@example.org       someone@remote.test
        loop1@example.org     loop2@example.org
        loop2@example.org     loop1@example.org
        csall@example.org     alice@example.org, bob@example.org
        everyone@example.org  csall@example.org
        via-two@example.org   everyone@example.org
        closed@example.org    alice@example.org
        to-closed@example.org closed@example.org
        outer@example.org     csall@example.org, bob@example.org
        both@example.org      csall@example.org, closed@example.org
    """,
    "lists": """
        csall@example.org     members, authenticated, @friends.test
        closed@example.org    boss@partner.test
        outer@example.org     @outer.test
    """,
}


@pytest.fixture
def pipe(tmp_path):
    from owlery.settings import Settings
    return make_pipeline(Settings().replace(**write_maps(tmp_path / "dir", MAPS)), CHECKS)


@pytest.mark.parametrize("rcpt,expected", [
    ("nobody@alias.test", USER_UNKNOWN),          # domain alias onto a user that does not exist
    ("nobody+ext@alias.test", USER_UNKNOWN),
    ("nobody@alias2.test", USER_UNKNOWN),         # domain alias onto a domain alias
    ("ghost@example.org", USER_UNKNOWN),          # alias to an unknown local user
    ("ghosts@example.org", USER_UNKNOWN),         # every target unknown
    ("loop1@example.org", USER_UNKNOWN),          # a loop reaches nothing
    ("bob@alias.test", "DUNNO"),                  # domain alias onto an existing mailbox
    ("bob@alias2.test", "DUNNO"),
    ("mixed@example.org", "DUNNO"),               # one target exists: accepted
    ("fwd@example.org", "DUNNO"),                 # a remote target: accepted
    ("nobody@example.org", USER_UNKNOWN),
])
def test_alias_reaching_nothing_is_refused_at_rcpt(pipe, rcpt, expected):
    assert ask(pipe, recipient=rcpt, sender="someone@sender.test") == expected


@pytest.mark.parametrize("rcpt,attrs,expected", [
    # the list itself (unchanged behaviour)
    ("csall@example.org", {"sender": "stranger@evil.test"}, RESTRICTED),
    # through a domain alias
    ("csall@alias.test", {"sender": "stranger@evil.test"}, RESTRICTED),
    ("csall+x@alias2.test", {"sender": "stranger@evil.test"}, RESTRICTED),
    ("csall@alias.test", {"sender": "bob@example.org"}, "DUNNO"),                     # member
    ("csall@alias.test", {"sender": "x@evil.test", "sasl_username": "carol"}, "DUNNO"),
    ("csall@alias.test", {"sender": "any@friends.test"}, "DUNNO"),                    # listed domain
    # through an alias, and an alias of an alias
    ("everyone@example.org", {"sender": "stranger@evil.test"}, RESTRICTED),
    ("via-two@example.org", {"sender": "stranger@evil.test"}, RESTRICTED),
    ("everyone@alias.test", {"sender": "stranger@evil.test"}, RESTRICTED),
    ("everyone@example.org", {"sender": "alice@example.org"}, "DUNNO"),
    ("to-closed@example.org", {"sender": "x@evil.test", "sasl_username": "alice"}, RESTRICTED),
    ("to-closed@example.org", {"sender": "boss@partner.test"}, "DUNNO"),
    # an alias reaching two lists: every one must allow the sender
    ("both@example.org", {"sender": "boss@partner.test"}, RESTRICTED),                # closed yes, csall no
    ("both@example.org", {"sender": "bob@example.org"}, RESTRICTED),                  # csall yes, closed no
    # a protected list inside a protected list: the outer one governs
    ("outer@example.org", {"sender": "any@outer.test"}, "DUNNO"),
    ("outer@example.org", {"sender": "bob@example.org"}, RESTRICTED),
    # an address that is no list and reaches none
    ("alice@alias.test", {"sender": "stranger@evil.test"}, "DUNNO"),
])
def test_list_policy_applies_along_the_expansion(pipe, rcpt, attrs, expected):
    assert ask(pipe, recipient=rcpt, **attrs) == expected


def test_refusal_names_the_reason_and_list_in_the_log(pipe, caplog):
    import logging
    with caplog.at_level(logging.INFO, logger="owlery.policyd"):
        ask(pipe, recipient="ghost@example.org")
        ask(pipe, recipient="everyone@alias.test", sender="stranger@evil.test")
    text = caplog.text
    assert "reason=alias_reaches_nothing" in text
    assert "list=csall@example.org" in text and "via=everyone@alias.test" in text
