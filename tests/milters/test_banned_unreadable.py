"""Fail closed (issue 14, item 8): an archive the banned stage cannot open is not passed as clean.

A part that is an archive by its name (.zip, .xlsm...) or by the directory record at its end,
but holds no readable zip, used to be skipped without a word: a zip tool that repairs
archives could still unpack what the stage never looked at. It is now undecidable, so
`banned_undecidable_action` decides (quarantine by default), with BANNED_UNDECIDABLE."""

from __future__ import annotations

import pytest

from milters import effects as fx
from milters.stages.banned import scan
from tests.milters.test_banned_hostile import run_stage, settings
from tests.milters.test_content_banned import RULES, mime, zip_of

NOT_A_ZIP = b"this was a zip once, the mail program says so" * 20
# the end-of-central-directory signature with nothing readable before it
DIRECTORY_ONLY = b"\x00" * 200 + b"PK\x05\x06" + b"\xff" * 18


@pytest.mark.parametrize("raw", [
    mime(("application/zip", "invoice.zip", NOT_A_ZIP)),
    mime(("application/octet-stream", "budget.xlsm", NOT_A_ZIP)),
    mime(("application/octet-stream", "data.bin", DIRECTORY_ONLY)),
])
def test_an_archive_that_cannot_be_opened_is_undecidable(raw):
    result = scan(raw, RULES)
    assert result.banned == ()
    assert [f.why for f in result.undecidable] == ["unreadable zip archive"]


def test_a_nested_archive_that_cannot_be_opened_is_undecidable():
    raw = mime(("application/zip", "outer.zip", zip_of(**{"inner.zip": NOT_A_ZIP})))
    assert [str(f) for f in scan(raw, RULES).undecidable] == ["outer.zip/inner.zip (unreadable zip archive)"]


def test_plain_attachments_stay_clean():
    raw = mime(("application/pdf", "report.pdf", b"%PDF-1.4 " + NOT_A_ZIP), ("text/plain", None, b"hi"))
    assert scan(raw, RULES) == type(scan(raw, RULES))()


@pytest.mark.parametrize("action, expected", [
    ("tempfail", fx.TEMPFAIL), ("reject", fx.REJECT), ("quarantine", fx.DISCARD), ("accept", fx.ACCEPT),
])
def test_the_stage_applies_banned_undecidable_action(tmp_path, action, expected):
    out = run_stage(settings(tmp_path, banned_undecidable_action=action), mime(("application/zip", "x.zip", NOT_A_ZIP)))
    assert out.action == expected
    assert [s.name for s in out.symbols] == ["BANNED_UNDECIDABLE"]
