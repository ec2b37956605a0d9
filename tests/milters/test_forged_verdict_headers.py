"""Verdict headers a sender wrote himself are removed: X-Virus-Status and X-Content-Alert stand
only for this milter's verdict (as X-Spam-* do, tests/milters/test_content_stages.py)."""

from __future__ import annotations

from milters import effects as fx
from milters.clients.clamav import ScanResult
from milters.stages.antivirus import AntivirusStage
from milters.stages.banned import BannedStage
from tests.milters.test_content_stages import CLEAN, FakeClamd, run, services, settings  # noqa: F401

FORGED = CLEAN.replace(b"Subject:", b"X-Virus-Status: clean\r\nX-Content-Alert: none, trust me\r\n"
                                    b"x-content-alert: second\r\nSubject:")


def removed(out):
    return [(e.name, e.occurrence) for e in out.effects if isinstance(e, fx.ChangeHeader) and e.value is None]


def test_antivirus_removes_forged_virus_status_and_alerts(settings):  # noqa: F811
    out = run(settings, [AntivirusStage(settings, services(), client=FakeClamd(ScanResult(False)))], raw=FORGED)
    assert out.action == fx.ACCEPT
    assert removed(out) == [("X-Virus-Status", 1), ("X-Content-Alert", 2), ("X-Content-Alert", 1)]


def test_banned_alone_removes_forged_alerts(settings):  # noqa: F811
    out = run(settings, [BannedStage(settings, services())], raw=FORGED)
    assert removed(out) == [("X-Content-Alert", 2), ("X-Content-Alert", 1)]


def test_both_stages_remove_each_header_once(settings):  # noqa: F811
    stages = [AntivirusStage(settings, services(), client=FakeClamd(ScanResult(False))),
              BannedStage(settings, services())]
    assert removed(run(settings, stages, raw=FORGED)) == \
        [("X-Virus-Status", 1), ("X-Content-Alert", 2), ("X-Content-Alert", 1)]


def test_mail_without_them_is_untouched(settings):  # noqa: F811
    stages = [AntivirusStage(settings, services(), client=FakeClamd(ScanResult(False))),
              BannedStage(settings, services())]
    assert removed(run(settings, stages)) == []
