"""Fuzz: the banned-attachment stage (milters/stages/banned.py) on mutated zips and MIME messages.

Complements the two property tests of tests/milters/test_banned_hostile.py (random overwrites
of four inline messages and one zip) with the seed corpus of tests/fuzz/corpus/banned/ (zips
of every method, nested, zip64, encrypted, self-extracting; MIME messages with encoded names,
uuencode, attached messages) under mutations that know the zip format: header fields (flags,
method, sizes, offsets, counts, name lengths) set to edge values, besides byte mutations.

Properties: `scan` never raises and stays within its time budget; wrapping a zip in another
(stored) zip finds exactly the same things one level down (same reasons, names prefixed by
the outer archive); the stage's outcome through the milter session agrees with `scan` on the
bytes the stage sees (banned: reject naming the first file; encrypted or undecidable: the
configured verdict; nothing: accept).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import time
import zipfile

from hypothesis import example, given
from hypothesis import strategies as st

from milters import effects as fx
from milters.session import MilterSession
from milters.stages import Services
from milters.stages.banned import BannedRules, BannedStage, Finding, BannedScanResult, scan
from owlery.reply import Reply
from owlery.settings import Settings, import_section
from tests.fuzz.fuzzlib import MUTATION, budget, corpus, mutants, mutate, split_headers

import_section("banned")
import_section("milter")

ZIPS = corpus("banned", ".zip")
MESSAGES = corpus("banned", ".eml")
SETTINGS = Settings().replace(banned_undecidable_action="tempfail", banned_encrypted_action="reject")
RULES = BannedRules.from_settings(SETTINGS)
WRAPPED_RULES = dataclasses.replace(RULES, archive_depth=RULES.archive_depth + 1,
                                    archive_members_max=RULES.archive_members_max + 1)
MIME_TOKENS = [b"\r\n", b"\r\n\r\n", b"--b1", b"--b1--", b"--o", b"--i", b"boundary=", b"name=", b"filename*=",
               b"filename*0*=utf-8''", b"%2E", b"=?utf-8?b?", b"?=", b".exe", b".js", b"base64", b"quoted-printable",
               b"Content-Type: message/rfc822\r\n\r\n", b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n",
               b"begin 644 a.vbs\r\n", b"\x00", b"=00", b"MZ"]

# zip record signatures and the (offset, size) of the fields worth breaking in each
ZIP_FIELDS = {
    b"PK\x03\x04": [(6, 2), (8, 2), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2)],          # local header
    b"PK\x01\x02": [(8, 2), (10, 2), (16, 4), (20, 4), (24, 4), (28, 2), (30, 2), (32, 2), (42, 4)],   # central
    b"PK\x05\x06": [(8, 2), (10, 2), (12, 4), (16, 4), (20, 2)],                            # end of directory
    b"PK\x06\x06": [(24, 8), (32, 8), (40, 8), (48, 8)],                                    # zip64 end
    b"PK\x06\x07": [(8, 8)],                                                                # zip64 locator
}


def _edge_values(old: int, size: int) -> list[int]:
    top = (1 << (8 * size)) - 1
    return [0, 1, top, top >> 1, (old + 1) & top, (old - 1) & top, (old * 2) & top, 8, 9, 12, 14, 99, 0x0801]


ZIP_OP = st.tuples(st.integers(0, 1 << 16), st.integers(0, 1 << 16), st.integers(0, 12))


def mutate_zip(data: bytes, field_ops, byte_ops) -> bytes:
    """Set header fields of `data` to edge values (then apply byte mutations)."""
    b = bytearray(data)
    records = sorted((i, sig) for sig in ZIP_FIELDS for i in _find_all(bytes(b), sig))
    for rec, field, choice in field_ops:
        if not records:
            break
        at, sig = records[rec % len(records)]
        offset, size = ZIP_FIELDS[sig][field % len(ZIP_FIELDS[sig])]
        if at + offset + size > len(b):
            continue
        old = int.from_bytes(b[at + offset:at + offset + size], "little")
        values = _edge_values(old, size)
        b[at + offset:at + offset + size] = values[choice % len(values)].to_bytes(size, "little")
    return mutate(bytes(b), byte_ops, seeds=ZIPS)


def _find_all(data: bytes, sig: bytes) -> list[int]:
    out, i = [], data.find(sig)
    while i >= 0:
        out.append(i)
        i = data.find(sig, i + 1)
    return out


zips = st.builds(mutate_zip, st.sampled_from(ZIPS), st.lists(ZIP_OP, max_size=4), st.lists(MUTATION, max_size=2))


def attach(name: str, data: bytes, ctype: str = "application/zip") -> bytes:
    return (b"From: a@example.org\r\nTo: b@example.test\r\nSubject: files\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: ' + ctype.encode() +
            b'; name="' + name.encode() + b'"\r\nContent-Transfer-Encoding: base64\r\n\r\n' +
            base64.encodebytes(data).replace(b"\n", b"\r\n") + b"--b--\r\n")


def stored_zip(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(name, data)
    return buf.getvalue()


def timed_scan(raw: bytes, rules: BannedRules = RULES) -> BannedScanResult:
    start = time.process_time()
    result = scan(raw, rules)
    assert time.process_time() - start < rules.scan_time_max
    assert all(isinstance(f, Finding) and f.name and f.why
               for f in result.banned + result.encrypted + result.undecidable)
    return result


def _under(prefix: str, findings) -> tuple[Finding, ...]:
    return tuple(Finding(f"{prefix}/{f.name}", f.why) for f in findings)


def check_zip(data: bytes) -> None:
    alone = timed_scan(attach("a.zip", data))
    # the outer zip is one more level and one more member: the limits grow by as much, so a
    # nesting that reaches the depth limit alone reaches it at the same archive wrapped
    wrapped = timed_scan(attach("o.zip", stored_zip("a.zip", data)), WRAPPED_RULES)
    deeper = f"archive nesting deeper than {WRAPPED_RULES.archive_depth}"
    wrapped = BannedScanResult(*(tuple(Finding(f.name, f"archive nesting deeper than {RULES.archive_depth}")
                                       if f.why == deeper else f for f in pile)
                                 for pile in (wrapped.banned, wrapped.encrypted, wrapped.undecidable)))
    assert wrapped == BannedScanResult(_under("o.zip", alone.banned), _under("o.zip", alone.encrypted),
                                 _under("o.zip", alone.undecidable)), (alone, wrapped)


def stage_outcome(raw: bytes) -> tuple[fx.Outcome, bytes | None]:
    """The banned stage alone through the session; and the bytes it scanned (None when the
    session refused the message before the stages: more header fields than its limit)."""
    stage = BannedStage(SETTINGS, Services(resolver=None, now=lambda: 1.0))

    class OnlyBanned:
        def select(self, message):
            return [stage]

        def on_error(self, name):
            return "tempfail"
    session = MilterSession(SETTINGS, OnlyBanned())
    session.connect("c.test", "192.0.2.1", {})
    session.mail_from("<a@example.org>", (), {})
    session.rcpt("<b@example.test>", (), {"i": "Q1"})
    fields, body = split_headers(raw)
    for name, value in fields:
        session.header(name, value)
    session.body(body)
    seen = session.message.as_bytes() if len(fields) <= SETTINGS.milter_header_count_limit else None
    return session.end_of_message({}), seen


def check_message(raw: bytes) -> None:
    outcome, seen = stage_outcome(raw)
    if seen is None:
        assert outcome.action == fx.REJECT and (outcome.reply.code, outcome.reply.dsn) == (552, "5.3.4")
        return
    result = timed_scan(seen)
    assert "internal error" not in outcome.reason
    if result.banned:
        assert outcome.action == fx.REJECT
        assert outcome.reply.text == Reply.safe_text(f"Message refused: banned attachment {result.banned[0]}", 200)
    elif result.undecidable:
        assert outcome.action == fx.TEMPFAIL and outcome.reply.code == 451
    elif result.encrypted:
        assert outcome.action == fx.REJECT and "cannot be checked" in outcome.reply.text
    else:
        assert outcome.action == fx.ACCEPT


@budget(200)
@given(data=zips)
@example(data=ZIPS[0][:30])
def test_mutated_zips_nested_or_not(data):
    check_zip(data)


@budget(120)
@given(raw=st.one_of(mutants(MESSAGES, MIME_TOKENS),
                     st.builds(lambda z, n: attach(n, z), zips, st.sampled_from(["a.zip", "a.bin", "a.jar", "x"]))))
def test_mutated_messages_through_the_stage(raw):
    check_message(raw)


def test_regression_nesting_at_the_depth_limit_is_the_same_wrapped():
    """Found by atheris: zips nested exactly to the depth limit, alone and inside one more zip
    (the property's wrapped scan gets one more level of limit, as the outer zip is one)."""
    data = stored_zip("x.exe", b"MZ")
    for _ in range(RULES.archive_depth - 1):
        data = stored_zip("inner.zip", data)
    check_zip(data)
    assert any(f.why for f in timed_scan(attach("a.zip", data)).banned)
    check_zip(stored_zip("inner.zip", data))        # one past the limit: undecidable both ways


def test_regression_rfc2231_section_number_of_5000_digits():
    """`name*<5000 digits>*=` made int() raise ValueError in milters/mime_params.py: the stage
    failed (an internal error: a tempfail on every retry). The section still counts, as 1."""
    raw = (b"From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: application/octet-stream; name*" + b"0" * 4999 + b"1*=il%2Ejs; name*0*=utf-8''ev\r\n\r\n"
           b"alert(1)\r\n--b--\r\n")
    assert [str(f) for f in timed_scan(raw).banned] == ["evil.js (banned extension .js)"]
    check_message(raw)


def fuzz_one(data: bytes) -> None:
    """atheris entry: the bytes as a zip (nested or not) and as a message."""
    check_zip(data)
    check_message(data)
