"""Milter stages take the quarantine and the directory from their Services, opened once per
pipeline and closed with it (milters.stages.Services), instead of each opening its own."""

from __future__ import annotations

import owlery.directory
import owlery.quarantine
from milters.stages import StagePipeline, Services
from owlery.settings import Settings
from tests.delivery.stand_ins import Closable

CONTENT = ["antivirus", "banned", "spam", "quarantine"]


def content_settings(tmp_path):
    return Settings().replace(
        quarantine_directory=str(tmp_path / "q"), milter_inbound_stages=CONTENT,
        antivirus_infected_action="quarantine", banned_action="quarantine",
        spam_use_spamd=False, spam_directory_levels=True)


def test_content_stages_share_one_quarantine_store_and_one_directory(tmp_path, monkeypatch):
    stores, directories = [], []

    def open_store(settings):
        stores.append(Closable())
        return stores[-1]

    def open_directory(settings, *args, **kwargs):
        directories.append(Closable())
        return directories[-1]

    monkeypatch.setattr(owlery.quarantine, "open_store", open_store)
    monkeypatch.setattr(owlery.directory, "open_directory", open_directory)
    pipeline = StagePipeline(content_settings(tmp_path), Services(resolver=None))
    stages = pipeline.stages
    users = [stages["antivirus"]._quarantine, stages["banned"]._quarantine, stages["quarantine"].quarantiner,
             stages["spam"]._get_quarantiner()]
    assert len(stores) == 1 and all(q.store is stores[0] for q in users)
    assert len(directories) == 1 and stages["spam"].directory is directories[0]

    pipeline.close()                    # a reload's old pipeline, once idle, or the exit
    assert stores[0].closed == 1 and directories[0].closed == 1
    pipeline.close()                    # closing twice closes nothing twice
    assert stores[0].closed == 1 and directories[0].closed == 1


def test_resources_given_to_the_services_are_used_and_left_open(tmp_path, monkeypatch):
    monkeypatch.setattr(owlery.quarantine, "open_store", lambda settings: (_ for _ in ()).throw(
        AssertionError("the given store must be used")))
    store, directory = Closable(), Closable()
    pipeline = StagePipeline(content_settings(tmp_path),
                        Services(resolver=None, quarantine_store=store, directory=directory))
    assert pipeline.stages["quarantine"].quarantiner.store is store
    assert pipeline.stages["spam"].directory is directory
    pipeline.close()
    assert store.closed == 0 and directory.closed == 0      # the caller's to close


def test_a_stage_that_never_quarantines_opens_no_store(tmp_path, monkeypatch):
    opened = []
    monkeypatch.setattr(owlery.quarantine, "open_store", lambda settings: opened.append(1) or Closable())
    settings = content_settings(tmp_path).replace(milter_inbound_stages=["spam"], spam_directory_levels=False)
    pipeline = StagePipeline(settings, Services(resolver=None))
    assert opened == [] and pipeline.stages["spam"].directory is None
    pipeline.close()
