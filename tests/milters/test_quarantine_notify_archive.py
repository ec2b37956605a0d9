"""The archive of flagged mail (quarantine_archive): copies of messages that got a verdict but went on,
never announced to recipients, expired after quarantine_archive_retention."""

from __future__ import annotations

from milters import effects as fx
from milters.quarantine_cli import expire_ages
from milters.stages.quarantine import QuarantineStage
from owlery.quarantine import ARCHIVED, NOTICE_RECIPIENT, ListFilter
from owlery.quarantine.directory import DirectoryStore
from tests.milters.test_content_stages import NOW, FakeSpamd, run, services, settings, spam_stage  # noqa: F401

DAY = 86400.0


def stages(s, score):
    return [spam_stage(s, FakeSpamd(score, [("X", score)])), QuarantineStage(s, services())]


def test_spam_tagged_mail_is_delivered_and_archived(settings, tmp_path):  # noqa: F811
    s = settings.replace(quarantine_archive=True)
    out = run(s, stages(s, 7.0), rcpts=("bob@example.test", "carol@example.test"))
    assert out.action == fx.ACCEPT
    store = DirectoryStore(str(tmp_path / "q"))
    [rec] = store.list(ListFilter(), NOW)
    assert rec.reason == "archive" and rec.detail == "spam-tagged, score 7"
    assert [(r.address, r.status) for r in rec.recipients] == [("bob@example.test", ARCHIVED),
                                                               ("carol@example.test", ARCHIVED)]
    assert rec.pending() == () and b"X-Spam-Flag: YES" in store.message(rec.mail_id)
    assert store.unnotified(NOTICE_RECIPIENT, 0) == []      # nothing to announce or release


def test_clean_mail_and_the_default_keep_nothing(settings, tmp_path):  # noqa: F811
    s = settings.replace(quarantine_archive=True)
    run(s, stages(s, 1.0))
    run(settings, stages(settings, 7.0))
    assert DirectoryStore(str(tmp_path / "q")).list(ListFilter(), NOW) == []


def test_quarantined_mail_gets_no_second_copy(settings, tmp_path):  # noqa: F811
    s = settings.replace(quarantine_archive=True, spam_quarantine_level=10.0, spam_reject_level=100.0)
    out = run(s, stages(s, 50.0))
    assert out.action == fx.DISCARD
    assert [r.reason for r in DirectoryStore(str(tmp_path / "q")).list(ListFilter(), NOW)] == ["spam"]


def test_archive_copies_expire_after_their_retention(settings, tmp_path):  # noqa: F811
    s = settings.replace(quarantine_archive=True, quarantine_archive_retention="3d")
    run(s, stages(s, 7.0))
    store = DirectoryStore(str(tmp_path / "q"))
    ages, other = expire_ages(s)
    assert store.expire(NOW + 2 * DAY, ages, other) == []
    assert len(store.expire(NOW + 4 * DAY, ages, other)) == 1
