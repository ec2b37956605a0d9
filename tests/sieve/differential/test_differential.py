"""Differential test of Owlery's Sieve engine against Pigeonhole's sieve-test (Debian
dovecot-sieve): a seeded run of generated (script, message) pairs must show no difference that
tests/sieve/differential/deviations.toml does not explain, and no harness error.

CI runs PAIRS pairs of seed SEED, all of them whatever the machine's load (about 8 s on two
idle cores; a time box that counted the pairs done failed the test on a loaded machine). Longer
runs by hand: scripts/sieve-differential --pairs 10000 --seed 7. A failure prints each differing pair
(script, message, both outcomes); reproduce one with --start N --pairs 1 --show 1.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.sieve.differential import normalise, pigeonhole
from tests.sieve.differential.generator import make_case
from tests.sieve.differential.runner import (TRANSFORMS, Runner, describe, explain, load_deviations, scratch_dir,
                                             summary)

SEED = 20240917
PAIRS = 600


def scratch_runner(shapes=()):
    """A Runner in its own scratch directory (removed afterwards), one worker per core."""
    assert os.path.exists(pigeonhole.SIEVE_TEST), "sieve-test missing: apt-get install dovecot-sieve"
    d = tempfile.mkdtemp(prefix="sieve-differential-", dir=scratch_dir())
    try:
        yield Runner(Path(d), workers=max(2, os.cpu_count() or 2), shapes=shapes)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def agreed_run(runner, seed: int, pairs: int):
    """Run `pairs` pairs of `seed`; fail on a harness error, an unexplained difference or a
    short run; return the report. Most pairs must run on both sides (real outcomes compared,
    not only compile errors)."""
    rep = runner.run(seed, pairs)
    report = "\n".join(summary(rep))
    print(report)
    shown = "\n\n".join(describe(p) for p in (rep.differences + rep.harness_errors)[:5])
    assert not rep.harness_errors, report + "\n" + shown
    assert not rep.differences, report + "\n" + shown
    assert rep.pairs == pairs, report
    ran = sum(n for (a, b), n in rep.statuses.items() if a == b == "ok")
    assert ran > rep.pairs // 2, report
    return rep


@pytest.fixture(scope="module")
def runner():
    yield from scratch_runner()


def test_generated_pairs_agree_with_pigeonhole(runner):
    agreed_run(runner, SEED, PAIRS)


def test_generation_is_a_pure_function_of_seed_and_index():
    a, b = make_case(SEED, 17), make_case(SEED, 17)
    assert (a.script, a.message, a.mail_from, a.rcpt_to) == (b.script, b.message, b.mail_from, b.rcpt_to)
    assert make_case(SEED, 18).script != a.script


def test_a_real_difference_is_reported(runner):
    """The harness sees what differs: a pair whose Owlery outcome is changed by hand is a
    difference no deviation explains."""
    # a pair both engines ran alike and no deviation concerns
    p = next(p for p in (runner.pair(SEED, i) for i in range(200))
             if p.ours.status == "ok" and not p.diff and not any(d.matches(p.case) for d in runner.deviations))
    fake = dataclasses.replace(p.ours, stores=p.ours.stores + (("Nowhere", ()),))
    assert fake.differences(p.theirs) == ["stores"]
    assert explain(runner.deviations, p.case, fake, p.theirs) is None


def test_pigeonhole_side_is_read_from_what_sieve_test_did(runner):
    """A hand-written pair through the real sieve-test: stores with flags, a redirect with the
    header as edited when it was asked for, a vacation reply."""
    case = dataclasses.replace(
        make_case(SEED, 0),
        script=b'require ["fileinto", "imap4flags", "editheader", "vacation"];\r\n'
               b'fileinto :flags "\\\\Seen Work" "Foo"; addheader "X-A" "1"; redirect "fwd@example.net";\r\n'
               b'addheader "X-B" "2"; vacation "away";\r\n',
        message=b"From: a@example.com\r\nTo: rcpt@example.org\r\nSubject: hi\r\nMessage-ID: <1@x>\r\n\r\nb\r\n",
        mail_from="a@example.com", rcpt_to="rcpt@example.org", orig_rcpt="rcpt@example.org")
    raw = runner._ph().run(case.script, case.message, case.mail_from, case.rcpt_to, case.orig_rcpt)
    theirs = normalise.from_pigeonhole(raw)
    assert theirs.status == "ok", raw.log
    assert theirs.stores == (("Foo", ("Work", "\\seen")),)
    assert theirs.redirects == ("fwd@example.net",)
    assert theirs.vacations == (("a@example.com", "rcpt@example.org", "Auto: hi"),)
    fields = dict(theirs.headers)["redirect:fwd@example.net"]
    assert ("x-a", "1") in fields and not any(n == "x-b" for n, _ in fields)


def test_every_deviation_is_documented_and_usable():
    devs = load_deviations()
    assert devs and len({d.id for d in devs}) == len(devs)
    for d in devs:
        assert d.transform in TRANSFORMS
        assert d.rfc.strip() and len(d.reason.split()) >= 8, d.id
