"""Redirect helpers (loop header, Return-Path stripping, SRS) and vacation refusal rules."""

from __future__ import annotations

import re

import pytest

from owlery.settings import parse_text
from sieve.delivery import redirect, vacation

MSG = b"Return-Path: <a@b>\nSubject: x\n folded\nTo: u@d\n\nReturn-Path: body line\n"


def test_prepare_adds_loop_header_and_strips_return_path_from_header_only():
    out = redirect.prepare(MSG, "alice@example.org")
    assert out == b"X-Sieve-Redirected-From: alice@example.org\nSubject: x\n folded\nTo: u@d\n\nReturn-Path: body line\n"
    assert redirect.is_loop(out, "Alice@Example.org") and not redirect.is_loop(out, "bob@example.org")


def test_header_values_unfold():
    assert redirect.header_values(MSG, "subject") == ["x folded"]


def test_srs_rewrites_foreign_senders_only():
    s = parse_text('redirect_srs_domain = "fwd.example.org"\nredirect_srs_secret = "k"\n'
                   'redirect_srs_exclude_domains = ["example.org"]')
    out = redirect.envelope_from("bob@remote.test", s)
    assert re.fullmatch(r"SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=remote\.test=bob@fwd\.example\.org", out), out
    assert redirect.envelope_from("carol@example.org", s) == "carol@example.org"
    assert redirect.envelope_from("", s) == ""
    assert redirect.envelope_from("bob@remote.test", parse_text("")) == "bob@remote.test"


@pytest.mark.parametrize("headers, sender, refused", [
    (b"", "bob@remote.test", None),
    (b"List-Unsubscribe: <mailto:x>\n", "bob@remote.test", "List-Unsubscribe header"),
    (b"Precedence: junk\n", "bob@remote.test", "Precedence: junk"),
    (b"Auto-Submitted: no\n", "bob@remote.test", None),
    (b"Auto-Submitted: auto-generated\n", "bob@remote.test", "Auto-Submitted"),
    (b"", "", "null sender"),
    (b"", "owner-list@remote.test", "system sender"),
    (b"", "list-request@remote.test", "system sender"),
    (b"", "alice@example.org", "sender is the user"),
])
def test_vacation_refusals(headers, sender, refused):
    msg = headers + b"Subject: hi\n\nbody\n"
    assert vacation.refusal(msg, sender, "alice@example.org") == refused
