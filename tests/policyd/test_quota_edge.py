"""Quota check at the edge: `quota_headers_allowance` is added to the size at RCPT and END-OF-MESSAGE.

The milter and delivery add headers after the policy check; a message that passes here must
still fit at delivery, or lmtpd refuses it after the SMTP dialogue and Postfix bounces it.
Transcripts (request in, action out) on a files directory, like test_checks_directory.py.
"""

import pytest

from owlery.settings import Settings, SettingsError, parse_size
from policyd.checks import quota as quota_mod

from policyd_testlib import MAPS, ask, make_pipeline, write_maildirsize, write_maps

CHECKS = {"RCPT": ["quota"], "END-OF-MESSAGE": ["quota"]}
FULL = "552 5.2.2 Mailbox full"
LIMIT = 100_000
USED = 90_000          # 10000 bytes free
EOM = "END-OF-MESSAGE"


EDGE_MAPS = dict(
    MAPS,
    mailboxes=MAPS["mailboxes"].rstrip() + "\n        edge@example.org example.org/edge"
                                           "\n        brim@example.org example.org/brim\n",
    quotas=MAPS["quotas"].rstrip() + f"\n        edge@example.org {LIMIT}S\n        brim@example.org {LIMIT}S\n")


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "dir"
    write_maildirsize(r, "example.org/edge", f"{LIMIT}S\n{USED - 1000} 9\n1000 1\n")
    write_maildirsize(r, "example.org/brim", f"{LIMIT}S\n{LIMIT - 3000} 40\n")   # 3000 free
    return r


def pipeline(root, **overrides):
    values = write_maps(root, EDGE_MAPS)
    values.update(overrides)
    return make_pipeline(Settings().replace(**values), CHECKS)


FREE = LIMIT - USED
H = 4096


@pytest.mark.parametrize("overrides,attrs,expected", [
    # END-OF-MESSAGE, default allowance 4k: size + 4096 must fit in the 10000 free bytes
    ({}, {"protocol_state": EOM, "size": FREE - H, "recipient_count": 1}, "DUNNO"),      # exactly fits
    ({}, {"protocol_state": EOM, "size": FREE - H + 1, "recipient_count": 1}, FULL),     # one byte more
    ({}, {"protocol_state": EOM, "size": 9000, "recipient_count": 1}, FULL),             # fit before: bounced later
    # RCPT with a SIZE= hint: the same headroom
    ({}, {"size": 9000}, FULL),
    ({}, {"size": 5000}, "DUNNO"),
    ({}, {"size": 0}, "DUNNO"),                                                          # no hint, room left
    # multi-recipient mail: not checked at END-OF-MESSAGE (no recipient there), as before
    ({}, {"protocol_state": EOM, "recipient": "", "size": 9000, "recipient_count": 2}, "DUNNO"),
    # a larger allowance
    ({"quota_headers_allowance": "8k"}, {"protocol_state": EOM, "size": 2000, "recipient_count": 1}, FULL),
    ({"quota_headers_allowance": "8k"}, {"protocol_state": EOM, "size": 1808, "recipient_count": 1}, "DUNNO"),
    # 0: the old rule (the message as Postfix counted it must fit)
    ({"quota_headers_allowance": 0}, {"protocol_state": EOM, "size": 9000, "recipient_count": 1}, "DUNNO"),
    ({"quota_headers_allowance": 0}, {"protocol_state": EOM, "size": FREE, "recipient_count": 1}, "DUNNO"),
    ({"quota_headers_allowance": 0}, {"protocol_state": EOM, "size": FREE + 1, "recipient_count": 1}, FULL),
])
def test_edge_transcript(root, overrides, attrs, expected):
    attrs = {"recipient": "edge@example.org", **attrs}
    assert ask(pipeline(root, **overrides), **attrs) == expected


@pytest.mark.parametrize("overrides,attrs,expected", [
    # 3000 bytes free, less than the allowance: whatever the message, it no longer fits once
    # the headers are added, so it is refused at RCPT already (not accepted, then bounced)
    ({}, {"size": 0}, FULL),
    ({}, {"size": 100}, FULL),
    ({}, {"protocol_state": EOM, "size": 100, "recipient_count": 1}, FULL),
    ({"quota_headers_allowance": 0}, {"size": 0}, "DUNNO"),
    ({"quota_headers_allowance": 0}, {"size": 2999}, "DUNNO"),
])
def test_nearly_full_mailbox(root, overrides, attrs, expected):
    assert ask(pipeline(root, **overrides), recipient="brim@example.org", **attrs) == expected


def test_alias_with_one_member_at_the_edge_is_accepted(root):
    # team@ reaches alice (room) and carol (full by count); edge rules change nothing there
    assert ask(pipeline(root), recipient="team@example.org", size=9000) == "DUNNO"


def test_the_setting_is_declared_in_the_check_module_with_a_4k_default():
    assert quota_mod.QUOTA_HEADERS_ALLOWANCE.name == "quota_headers_allowance"
    assert Settings().quota_headers_allowance == parse_size("4k") == 4096
    assert Settings().replace(quota_headers_allowance="16k").quota_headers_allowance == 16384
    with pytest.raises(SettingsError, match="quota_headers_allowance"):
        Settings().replace(quota_headers_allowance="lots")
    doc = quota_mod.QUOTA_HEADERS_ALLOWANCE.doc
    assert "delivery_quota_overrun_allowance" in doc


def test_the_reply_log_names_size_and_allowance(root, caplog):
    import logging
    caplog.set_level(logging.INFO)
    assert ask(pipeline(root), recipient="edge@example.org", protocol_state=EOM, size=9000,
               recipient_count=1) == FULL
    line = next(r.getMessage() for r in caplog.records if "552 5.2.2" in r.getMessage())
    assert "size=9000" in line and "allowance=4096" in line, line


def test_an_unreadable_maildirsize_is_not_refused_and_said_once_in_a_while(root, caplog, monkeypatch):
    """A home of mode 0700 (local accounts, directory_backend = "passwd") keeps the policy daemon
    from reading maildirsize at every RCPT: the mail is not refused (delivery enforces the quota)
    and the warning comes once per mailbox every _UNREADABLE_WARN_S, not once per request."""
    import logging
    caplog.set_level(logging.WARNING)

    def unreadable(self, path, now):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(quota_mod.UsageCache, "read", unreadable)
    pipe = pipeline(root)

    def warnings():
        return [r for r in caplog.records if "cannot read" in r.getMessage()]

    for _ in range(5):
        assert ask(pipe, recipient="brim@example.org", size=9000) == "DUNNO"
    assert len(warnings()) == 1 and "brim/maildirsize" in warnings()[0].getMessage()
    assert ask(pipe, recipient="edge@example.org", size=9000) == "DUNNO"       # another mailbox: its own
    assert len(warnings()) == 2
    pipe.ctx.clock.advance(quota_mod._UNREADABLE_WARN_S + 1)
    assert ask(pipe, recipient="brim@example.org", size=9000) == "DUNNO"
    assert len(warnings()) == 3
