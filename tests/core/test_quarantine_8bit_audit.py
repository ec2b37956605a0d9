"""The quarantine's audit line and sender filter with 8-bit and non-ASCII senders.

The line `owlery quarantine` logs and appends to quarantine_audit_log_path for a release or a
delete (milters/quarantine_cli.py _audit) showed each octet of an 8-bit envelope sender that is
not UTF-8 as "?"; it now shows it as \\xNN, as `quarantine list`/`show` and the web do, while the
store's audit entry keeps the text exactly (to_column). The release header
(owlery/quarantine/release.py released_copy) escapes the same way.
`--sender` compared SQLite's lower(), ASCII only, with Python's lower() of the argument; now
both stores fold case one character at a time as PostgreSQL's lower() does (owlery/quarantine/base.py
fold_case), so the directory store and the PostgreSQL store (the real one on 127.0.0.1:5432,
a private schema per test) find the same messages for the same --sender.
"""

from __future__ import annotations

import stat

import pytest

from owlery.quarantine import ListFilter
from owlery.quarantine.base import fold_case
from owlery.quarantine.release import released_copy
from tests.core.test_quarantine_8bit_sender import RCPT, RCPT_OCTETS, SENDER, SENDER_OCTETS, _no_raw, eight_bit_record
from tests.milters.test_quarantine_cli import MSG as CLI_MSG
from tests.milters.test_quarantine_cli import env  # noqa: F401
from tests.milters.test_quarantine_store import MSG, NOW, make_record, store  # noqa: F401

SHOWN_SENDER = "j\\xe9r\\xf4me\\x85@sender.test"         # as `quarantine list` and the web show it
SHOWN_RCPT = "R\\xfcdi@Example.test"


# -- the audit line ----------------------------------------------------------------------------

def test_delete_audit_line_shows_the_octets_as_list_does(env, capsys):  # noqa: F811
    rec = eight_bit_record(rcpts=(RCPT,))
    env.store.put(rec, CLI_MSG)
    assert env("quarantine", "list") == 0
    assert f"<{SHOWN_SENDER}>" in capsys.readouterr().out
    assert env("quarantine", "delete", rec.mail_id) == 0
    line = env.audit.read_text(encoding="utf-8").rstrip("\n")
    _no_raw(line)
    assert "?" not in line, line
    assert f"quarantine: delete: quarantine_id={rec.mail_id}" in line and f"from=<{SHOWN_SENDER}>" in line, line
    [entry] = env.store.audit_log()
    assert entry.action == "delete" and f"from={SENDER}" in entry.detail      # the store keeps it exactly


def test_release_audit_line_shows_sender_and_recipient_octets(env, capsys, tmp_path):  # noqa: F811
    script = tmp_path / "sendmail"
    script.write_text("#!/bin/sh\ncat > /dev/null\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    env.write(quarantine_release_method="sendmail", quarantine_release_sendmail_path=str(script))
    rec = eight_bit_record(rcpts=(RCPT,))
    env.store.put(rec, CLI_MSG)
    assert env("quarantine", "release", rec.mail_id, "--by", "op\udce9") == 0, capsys.readouterr()
    line = env.audit.read_text(encoding="utf-8").rstrip("\n")
    _no_raw(line)
    assert "?" not in line, line
    for part in (f"quarantine_id={rec.mail_id}", "by=op\\xe9", f"to=<{SHOWN_RCPT}>", f"from=<{SHOWN_SENDER}>"):
        assert part in line, (part, line)
    [entry] = env.store.audit_log()
    assert entry.action == "release" and "by=op\udce9" in entry.detail and f"from={SENDER}" in entry.detail


def test_the_escapes_name_the_octets():
    """\\xNN is the octet itself: the audit text gives the sender's bytes back."""
    shown = SHOWN_SENDER.encode("ascii").decode("unicode_escape").encode("latin-1")
    assert shown == SENDER_OCTETS and SHOWN_RCPT.encode().decode("unicode_escape").encode("latin-1") == RCPT_OCTETS


def test_release_header_escapes_the_octets():
    data = released_copy(b"Subject: x\r\n\r\nx\r\n", "X-Quarantine-Released", "abcdefghijkmnpq",
                         "link:" + RCPT, "mx\udcff", NOW)
    first = data.split(b"\r\n", 1)[0].decode("ascii")
    assert first.startswith(f"X-Quarantine-Released: by link:{SHOWN_RCPT} on mx\\xff; id=abcdefghijkmnpq;"), first
    assert "?" not in first


# -- --sender: the same matches in both stores ---------------------------------------------------

SENDERS = {
    "latin": "J\u00c9R\u00d4ME@Example.test",             # JÉRÔME: SQLite's lower() left É and Ô
    "greek": "\u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3@example.test",    # ΟΔΥΣΣΕΥΣ: a final sigma
    "dotted": "\u0130STANBUL@example.test",                # İ: lower() in Python makes two characters
    "octets": SENDER,                                        # not UTF-8: kept escaped in the column
    "ascii": "Plain@Example.TEST",
}
QUERIES = [
    ("j\u00e9r\u00f4me@example.test", {"latin"}),
    ("J\u00c9R\u00d4ME@EXAMPLE.TEST", {"latin"}),
    ("J\u00e9R\u00f4Me@example.test", {"latin"}),
    ("\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03c5\u03c3@example.test", {"greek"}),      # all σ
    ("\u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3@EXAMPLE.test", {"greek"}),
    ("\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03c5\u03c2@example.test", set()),    # ς is its own letter
    ("istanbul@example.test", {"dotted"}),
    ("\u0130STANBUL@EXAMPLE.TEST", {"dotted"}),
    (SENDER, {"octets"}),
    (SENDER.upper(), {"octets"}),
    ("plain@example.test", {"ascii"}),
    ("PLAIN@EXAMPLE.TEST", {"ascii"}),
    ("jerome@example.test", set()),
]


@pytest.mark.parametrize("query,expected", QUERIES)
def test_sender_filter_folds_case_alike_in_both_stores(store, query, expected):  # noqa: F811
    ids = {}
    for name, sender in SENDERS.items():
        rec = make_record(sender=sender)
        store.put(rec, MSG)
        ids[rec.mail_id] = name
    got = {ids[r.mail_id] for r in store.list(ListFilter(sender=query), NOW)}
    assert got == expected, (query, got)


def test_fold_case_is_one_character_for_one():
    for text in (*SENDERS.values(), *(q for q, _ in QUERIES)):
        folded = fold_case(text)
        assert len(folded) == len(text) and folded == fold_case(folded)
    assert fold_case("\u0130\u03a3A\udcc9\u00c9") == "i\u03c3a\udcc9\u00e9"


def test_web_delete_log_line_names_the_octets_and_the_audit_keeps_the_text(tmp_path, caplog):
    """`owlery web`'s delete logs the sender escaped, as the CLI's audit line does (it logged "?"
    for each octet); the store's audit entry keeps the sender's exact text."""
    from tests.web.helpers import NOW as WEB_NOW
    from tests.web.helpers import World
    world = World(tmp_path)
    rec = eight_bit_record(rcpts=(RCPT,))
    world.store.put(rec, CLI_MSG)
    with caplog.at_level("INFO", logger="owlery.web"):
        world.backend.delete(world.store.get(rec.mail_id), "admin@example.test", WEB_NOW)
    line = "\n".join(r.getMessage() for r in caplog.records)
    assert f"from=<{SHOWN_SENDER}>" in line and "?" not in line, line
    (entry,) = world.store.audit_log(mail_id=rec.mail_id)
    assert SENDER in entry.detail
