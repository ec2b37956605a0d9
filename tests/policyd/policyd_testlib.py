"""Helpers for the policy daemon's own tests: build a pipeline on a files directory, ask it.

Used by tests/policyd/test_checks_*.py, test_pipeline.py, test_service.py.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from twisted.internet import task

from owlery.directory import open_directory
from owlery.settings import Settings
from policyd.checks import CheckContext, InlineExecutor
from policyd.pipeline import Pipeline
from policyd.protocol import PolicyRequest

MAPS = {
    "mailboxes": """
        alice@example.org     example.org/alice
        bob@example.org       example.org/bob
        carol@example.org     example.org/carol
        dave@example.org      example.org/dave
        erin@example.net      example.net/erin
        @catchall.test        catchall.test/all
    """,
    "aliases": """
        # a team: some full, some not
        team@example.org      alice@example.org, carol@example.org
        full-team@example.org carol@example.org,
                              dave@example.org
        fwd@example.org       someone@remote.test
        csall@example.org     alice@example.org, bob@example.org
        closed@example.org    alice@example.org
        @alias.test           @example.org
    """,
    "quotas": """
        alice@example.org     1M
        carol@example.org     1000S,10C
        @example.org          10M
    """,
    "over_quota": """
        dave@example.org
    """,
    "lists": """
        csall@example.org     members, authenticated, boss@partner.test, @friends.test, 198.51.100.0/24
        closed@example.org    boss@partner.test
    """,
}


def write_maps(root: Path, maps: dict[str, str] = MAPS) -> dict[str, str]:
    """Write the map files under root; return files_* settings naming them."""
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, text in maps.items():
        path = root / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        out["files_" + name] = str(path)
    out["files_maildir_base"] = str(root / "mail")
    return out


def write_maildirsize(root: Path, relative: str, text: str) -> None:
    d = root / "mail" / relative
    d.mkdir(parents=True, exist_ok=True)
    (d / "maildirsize").write_text(text)


def settings_for(root: Path, **overrides) -> Settings:
    values = write_maps(root)
    values.update(overrides)
    return Settings().replace(**values)


def make_pipeline(settings: Settings, checks=None, *, directory=None, clock=None, executor=None):
    clock = clock if clock is not None else task.Clock()
    if directory is None:
        directory = open_directory(settings, clock=clock.seconds)
    ctx = CheckContext(settings, clock, executor if executor is not None else InlineExecutor(),
                       directory=directory)
    return Pipeline(settings, ctx, checks)


def request(**attrs) -> PolicyRequest:
    base = {"request": "smtpd_access_policy", "protocol_state": "RCPT", "protocol_name": "ESMTP",
            "client_address": "192.0.2.10", "client_name": "mail.sender.test",
            "sender": "someone@sender.test", "instance": "a1.b2.c3", "size": "0"}
    base.update({k: str(v) for k, v in attrs.items()})
    return PolicyRequest(base)


def outcome(d):
    """The result of a Deferred that must have fired (inline executor), or the Failure."""
    out = []
    d.addBoth(out.append)
    assert out, "decision did not complete"
    return out[0]


def ask(pipeline, session=None, **attrs) -> str:
    """Run one request through the pipeline; return the action text (raises on internal error)."""
    session = session if session is not None else pipeline.new_session()
    result = outcome(pipeline.decide(request(**attrs), session, pipeline.ctx.clock.seconds()))
    if hasattr(result, "raiseException"):
        result.raiseException()
    return result.action.render()
