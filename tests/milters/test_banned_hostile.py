"""Hostile input for the banned stage: encoded names, many members, deep nesting, encryption, bombs, budgets."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import struct
import time
import zipfile
import zlib

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from milters import effects as fx
from owlery.quarantine import ListFilter
from owlery.quarantine.directory import DirectoryStore
from milters.stages import Services
from milters.stages.banned import BannedRules, BannedStage, BannedScanResult, find_banned, scan
from owlery.settings import Settings
from tests.milters.session_driver import run_alone
from tests.milters.test_content_banned import MZ, RULES, mime, zip_of

MIB = 1024 * 1024
HEAD = b"From: a@sender.test\r\nTo: b@example.test\r\nSubject: files\r\nMIME-Version: 1.0\r\n"


def one_part(*fields: str, body: bytes = b"alert(1)") -> bytes:
    """A multipart/mixed message whose one attachment has these header fields (raw)."""
    head = "".join(f + "\r\n" for f in fields).encode()
    return (HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n' + head +
            b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(body) + b"\r\n--b--\r\n")


def banned(raw: bytes, rules=RULES) -> list[str]:
    return [str(f) for f in find_banned(raw, rules)]


def run_stage(stage_settings, raw, clock=time.monotonic):
    """The outcome of the banned stage alone on `raw`, through the milter session."""
    return run_alone(stage_settings, BannedStage(stage_settings, Services(resolver=None, now=lambda: 1.0), clock=clock),
                     raw)


def settings(tmp_path, **values):
    return Settings().replace(quarantine_directory=str(tmp_path / "q"), quarantine_host_name="mx1", **values)


# --- hand-made zips (zipfile writes neither encryption flags nor lying headers) -------------

@dataclasses.dataclass
class Entry:
    name: str
    data: bytes = b""
    method: int = 8                       # 0 stored, 8 deflated
    flags: int = 0
    local_name: str | None = None         # the name in the local header, when it differs
    extra: bytes = b""                    # extra field (central and local)
    raw: tuple[bytes, int, int] | None = None    # (compressed bytes, crc, size) given directly


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def craft_zip(entries, hidden=()) -> bytes:
    """A zip of `entries`; `hidden` entries get a local header and data but no central record."""
    out, central, count = bytearray(), bytearray(), 0
    for e, listed in [(e, True) for e in entries] + [(e, False) for e in hidden]:
        comp, crc, size = e.raw or (deflate(e.data) if e.method == 8 else e.data, zlib.crc32(e.data), len(e.data))
        lname = (e.local_name if e.local_name is not None else e.name).encode()
        offset = len(out)
        out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, e.flags, e.method, 0, 0x21, crc, len(comp),
                           size, len(lname), len(e.extra)) + lname + e.extra + comp
        if listed:
            name = e.name.encode()
            central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, e.flags, e.method, 0, 0x21,
                                   crc, len(comp), size, len(name), len(e.extra), 0, 0, 0, 0, offset) + name + e.extra
            count += 1
    cd_offset = len(out)
    out += central + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, len(central), cd_offset, 0)
    return bytes(out)


def zip_stored(**members) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def attach(name: str, data: bytes) -> bytes:
    return mime(("application/zip", name, data))


# --- 1. encoded file names ------------------------------------------------------------------

@pytest.mark.parametrize("fields", [
    ['Content-Type: application/octet-stream', 'Content-Disposition: attachment; filename="=?utf-8?b?ZXZpbC5qcw==?="'],
    ['Content-Type: application/octet-stream', 'Content-Disposition: attachment; filename="=?iso-8859-1?q?evil=2Ejs?="'],
    ['Content-Type: application/octet-stream', 'Content-Disposition: attachment; filename="=?utf-8?q?evil?= =?utf-8?q?.js?="'],
    ['Content-Type: application/octet-stream', "Content-Disposition: attachment; filename*=utf-8''evil%2Ejs"],
    ['Content-Type: application/octet-stream', "Content-Disposition: attachment; filename*0*=utf-8''evil; filename*1*=%2Ejs"],
    ['Content-Type: application/octet-stream', 'Content-Disposition: attachment; filename*0="ev"; filename*1="il.js"'],
    ['Content-Type: application/octet-stream; name="=?utf-8?b?ZXZpbC5qcw==?="'],
    ["Content-Type: application/octet-stream; name*=utf-8''evil%2Ejs"],
    ["Content-Type: application/octet-stream; name*0*=utf-8''evil; name*1*=%2Ejs"],
    # a harmless decoy beside the real name, in either header
    ['Content-Type: application/octet-stream; name="=?utf-8?b?ZXZpbC5qcw==?="',
     'Content-Disposition: attachment; filename="report.pdf"'],
    ['Content-Type: application/octet-stream', 'Content-Disposition: attachment; filename="report.pdf"',
     'Content-Disposition: attachment; filename="evil.js"'],
    ['Content-Type: application/octet-stream',
     "Content-Disposition: attachment; filename=\"report.pdf\"; filename*=utf-8''evil.js"],
    # a NUL ends the name for C programs
    ['Content-Type: application/octet-stream', "Content-Disposition: attachment; filename*=utf-8''evil.js%00.pdf"],
], ids=["2047-b", "2047-q", "2047-split", "2231", "2231-continued", "2231-continued-plain", "ct-2047",
        "ct-2231", "ct-2231-continued", "decoy-filename", "second-disposition", "decoy-2231", "nul"])
def test_encoded_file_names_are_decoded(fields):
    [finding] = find_banned(one_part(*fields), RULES)
    assert finding.why == "banned extension .js"
    assert finding.name in ("evil.js", "evil.js.pdf")


# --- 2. every member name counts ------------------------------------------------------------

def test_banned_name_after_member_1000():
    members = {f"f{i}.txt": b"" for i in range(1000)}
    members["evil.js"] = b"x"
    assert banned(attach("many.zip", zip_of(**members))) == ["many.zip/evil.js (banned extension .js)"]


def test_member_count_over_budget_is_not_accepted(tmp_path):
    members = {f"f{i}.txt": b"" for i in range(60)}
    out = run_stage(settings(tmp_path, banned_archive_members_max=50), attach("many.zip", zip_of(**members)))
    assert out.action != fx.ACCEPT
    assert [s.name for s in out.symbols] == ["BANNED_UNDECIDABLE"]
    assert "members" in out.symbols[0].detail


# --- 3. nested archives -----------------------------------------------------------------------

def test_zip_in_zip_in_zip():
    inner = zip_of(**{"evil.js": b"x"})
    raw = attach("outer.zip", zip_of(**{"mid.zip": zip_of(**{"inner.zip": inner})}))
    assert banned(raw) == ["outer.zip/mid.zip/inner.zip/evil.js (banned extension .js)"]


def test_nesting_beyond_the_depth_limit_is_not_accepted(tmp_path):
    raw = attach("outer.zip", zip_of(**{"mid.zip": zip_of(**{"inner.zip": zip_of(**{"a.txt": b"x"})})}))
    out = run_stage(settings(tmp_path, banned_archive_depth_max=2), raw)
    assert out.action == fx.DISCARD                     # quarantined (the default), then discarded
    assert [s.name for s in out.symbols] == ["BANNED_UNDECIDABLE"]
    assert "outer.zip/mid.zip/inner.zip" in out.symbols[0].detail


# --- 4. big inner archives ------------------------------------------------------------------

def test_inner_zip_over_10_mib():
    inner = zip_stored(**{"pad.bin": bytes(11 * MIB), "evil.js": b"x"})
    assert banned(attach("outer.zip", zip_stored(**{"inner.zip": inner}))) == \
        ["outer.zip/inner.zip/evil.js (banned extension .js)"]


# --- 5. encryption and lying zip headers ----------------------------------------------------

def test_encrypted_member_is_not_accepted(tmp_path):
    raw = attach("secret.zip", craft_zip([Entry("invoice.txt", b"x", flags=1)]))
    out = run_stage(settings(tmp_path), raw)
    assert out.action == fx.DISCARD
    assert [s.name for s in out.symbols] == ["BANNED_ENCRYPTED"]
    assert "secret.zip/invoice.txt" in out.symbols[0].detail


def test_encrypted_member_name_still_counts():
    raw = attach("secret.zip", craft_zip([Entry("invoice.txt", b"x", flags=1), Entry("evil.js", b"x", flags=1)]))
    assert banned(raw) == ["secret.zip/evil.js (banned extension .js)"]


def test_local_header_name_counts():
    raw = attach("a.zip", craft_zip([Entry("readme.txt", b"x", local_name="evil.js")]))
    assert banned(raw) == ["a.zip/evil.js (banned extension .js)"]


def test_unicode_path_extra_field_counts():
    upath = b"evil.js"
    extra = struct.pack("<HHB", 0x7075, 5 + len(upath), 1) + struct.pack("<I", zlib.crc32(b"readme.txt")) + upath
    raw = attach("a.zip", craft_zip([Entry("readme.txt", b"x", extra=extra)]))
    assert banned(raw) == ["a.zip/evil.js (banned extension .js)"]


def test_member_missing_from_the_central_directory_counts():
    raw = attach("a.zip", craft_zip([Entry("readme.txt", b"x")], hidden=[Entry("evil.js", b"x")]))
    assert banned(raw) == ["a.zip/evil.js (banned extension .js)"]


# --- 6. deep MIME ---------------------------------------------------------------------------

LEAF = b'Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="evil.js"\r\n\r\nx'


def nested_multipart(depth: int, leaf: bytes = LEAF) -> bytes:
    head, tail = [HEAD], []
    for i in range(depth):
        # no boundary may begin another (RFC 2046 5.1.1: a delimiter is recognised by its prefix)
        head.append(f'Content-Type: multipart/mixed; boundary="={i}="\r\n\r\n--={i}=\r\n'.encode())
        tail.append(f"\r\n--={i}=--\r\n".encode())
    return b"".join(head) + leaf + b"".join(reversed(tail))


def nested_messages(depth: int, leaf: bytes = LEAF) -> bytes:
    return HEAD + b"Content-Type: message/rfc822\r\n\r\n" * depth + leaf


@pytest.mark.parametrize("raw", [nested_multipart(3000), nested_messages(3000)], ids=["multipart", "rfc822"])
def test_deep_mime_is_not_accepted(tmp_path, raw):
    out = run_stage(settings(tmp_path), raw)
    assert out.action == fx.DISCARD
    assert [s.name for s in out.symbols] == ["BANNED_UNDECIDABLE"]
    assert "MIME nesting" in out.symbols[0].detail


@pytest.mark.parametrize("raw", [nested_multipart(40), nested_messages(40)], ids=["multipart", "rfc822"])
def test_nesting_within_the_limit_is_searched(raw):
    assert banned(raw) == ["evil.js (banned extension .js)"]


def test_part_count_over_budget_is_not_accepted(tmp_path):
    raw = mime(*[("text/plain", None, b"hello")] * 30)
    out = run_stage(settings(tmp_path, banned_mime_parts_max=20), raw)
    assert out.action == fx.DISCARD
    assert "MIME parts" in out.symbols[0].detail


# --- 7. bombs and budgets -------------------------------------------------------------------

ZEROS_10M = deflate(bytes(10 * MIB))


def test_flat_bomb_returns_quickly(tmp_path):
    """400 members of 10 MiB of zeros (4 MB zipped): the old code inflated 4 GiB (7 s here)."""
    raw = attach("bomb.zip", craft_zip([Entry(f"z{i}.txt", raw=(ZEROS_10M, 0, 10 * MIB)) for i in range(400)]))
    start = time.monotonic()
    out = run_stage(settings(tmp_path), raw)
    assert time.monotonic() - start < 3.0
    assert out.action == fx.ACCEPT                     # nothing banned, nothing left unread


def test_nested_bomb_stops_on_the_ratio(tmp_path):
    """100 inner zips of 9 MiB of zeros each (1 MB zipped): the old code inflated 1.8 GiB and let it pass."""
    inner = zip_stored(**{"zeros.bin": bytes(9 * MIB)})
    packed = (deflate(inner), zlib.crc32(inner), len(inner))
    raw = attach("bomb.zip", craft_zip([Entry(f"z{i}.zip", raw=packed) for i in range(100)]))
    start = time.monotonic()
    out = run_stage(settings(tmp_path), raw)
    assert time.monotonic() - start < 3.0
    assert out.action == fx.DISCARD
    assert [s.name for s in out.symbols] == ["BANNED_UNDECIDABLE"]
    assert "compression ratio" in out.symbols[0].detail


def zeros_stream(mib: int) -> bytes:
    """A raw deflate stream of `mib` MiB of zeros, built from one compressed MiB repeated."""
    c = zlib.compressobj(1, zlib.DEFLATED, -15)
    block = c.compress(bytes(MIB)) + c.flush(zlib.Z_SYNC_FLUSH)
    return block * mib + c.flush()


class StepClock:
    """A clock that moves `step` seconds each time it is read."""

    def __init__(self, step: float):
        self.now, self.step, self.reads = 0.0, step, 0

    def __call__(self) -> float:
        self.reads += 1
        self.now += self.step
        return self.now


def rules(**limits) -> BannedRules:
    return dataclasses.replace(RULES, **limits)


def test_inflate_budget_counts_all_members():
    inner = zip_stored(**{"zeros.bin": bytes(2 * MIB)})
    packed = (deflate(inner), zlib.crc32(inner), len(inner))
    raw = attach("a.zip", craft_zip([Entry(f"z{i}.zip", raw=packed) for i in range(4)]))
    result = scan(raw, rules(inflate_bytes_max=5 * MIB, inflate_ratio_max=1e9))
    assert result.banned == () and [str(f) for f in result.undecidable] == \
        [f"message (more than {5 * MIB} bytes inflated)"]
    assert scan(raw, rules(inflate_bytes_max=10 * MIB, inflate_ratio_max=1e9)) == BannedScanResult()


def test_ratio_stops_one_member_only():
    big = Entry("big.zip", raw=(zeros_stream(4), 0, 4 * MIB))
    raw = attach("a.zip", craft_zip([big, Entry("z.zip", zip_of(**{"evil.js": b"x"}))]))
    result = scan(raw, RULES)
    assert [str(f) for f in result.undecidable] == ["a.zip/big.zip (compression ratio over 100)"]
    assert [str(f) for f in result.banned] == ["a.zip/z.zip/evil.js (banned extension .js)"]


def test_time_budget_is_checked_while_inflating():
    """The clock is read between decompressed chunks: the work stops itself, early."""
    raw = attach("a.zip", craft_zip([Entry("big.zip", raw=(zeros_stream(64), 0, 64 * MIB))]))
    clock = StepClock(1.0)
    result = scan(raw, rules(inflate_ratio_max=1e9, scan_time_max=10.0), clock)
    assert [str(f) for f in result.undecidable] == ["message (scan time over 10s)"]
    assert clock.reads <= 12             # one read per 64 KiB chunk: well under 1 MiB of the 64 inflated


def test_time_budget_of_the_stage(tmp_path):
    members = {f"f{i}.txt": b"" for i in range(500)}
    stage_settings = settings(tmp_path, banned_scan_time_max="5s", banned_undecidable_action="tempfail")
    out = run_stage(stage_settings, attach("many.zip", zip_of(**members)), clock=StepClock(1.0))
    assert out.action == fx.TEMPFAIL and (out.reply.code, out.reply.dsn) == (451, "4.7.1")
    assert out.symbols[0].detail == "message (scan time over 5s)"


def test_archives_nested_deeper_than_the_default_limit():
    data = zip_of(**{"evil.js": b"x"})
    for i in range(5):
        data = zip_of(**{f"l{i}.zip": data})
    result = scan(attach("top.zip", data), RULES)          # top + 5 levels: the innermost is the 6th
    assert result.banned == ()
    assert [f.why for f in result.undecidable] == ["archive nesting deeper than 5"]
    assert banned(attach("top.zip", data), rules(archive_depth=6)) == \
        ["top.zip/l4.zip/l3.zip/l2.zip/l1.zip/l0.zip/evil.js (banned extension .js)"]


def test_unsupported_compression_method_is_undecidable():
    raw = attach("a.zip", craft_zip([Entry("data.bin", raw=(b"\x00" * 50, 0, 50), method=9)]))
    assert [str(f) for f in scan(raw, RULES).undecidable] == \
        ["a.zip/data.bin (compression method 9 not supported)"]


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA, zipfile.ZIP_DEFLATED],
                         ids=["bzip2", "lzma", "deflate"])
def test_members_of_every_supported_method_are_read(method):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        z.writestr("readme.txt", MZ + bytes(1000))
        z.writestr("inner.zip", zip_of(**{"evil.js": b"x"}))
    assert banned(attach("a.zip", buf.getvalue())) == [
        "a.zip/readme.txt (Windows executable)", "a.zip/inner.zip/evil.js (banned extension .js)"]


def test_zip64_and_prepended_data():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("evil.js", "w", force_zip64=True) as f:
            f.write(b"x")
    assert banned(attach("a.zip", buf.getvalue())) == ["a.zip/evil.js (banned extension .js)"]
    sfx = b"\x00stub\x00" * 100 + zip_of(**{"evil.js": b"x"})        # like a self-extractor's stub
    assert banned(mime(("application/octet-stream", "data.bin", sfx))) == \
        ["data.bin/evil.js (banned extension .js)"]


# --- the verdict settings -------------------------------------------------------------------

ENCRYPTED = attach("secret.zip", craft_zip([Entry("invoice.txt", b"x", flags=1)]))
TOO_DEEP = nested_multipart(60)


@pytest.mark.parametrize("setting_name, raw, symbol", [
    ("banned_encrypted_action", ENCRYPTED, "BANNED_ENCRYPTED"),
    ("banned_undecidable_action", TOO_DEEP, "BANNED_UNDECIDABLE"),
])
@pytest.mark.parametrize("action, expected, reply", [
    ("accept", fx.ACCEPT, None), ("reject", fx.REJECT, (554, "5.7.1")),
    ("tempfail", fx.TEMPFAIL, (451, "4.7.1")), ("quarantine", fx.DISCARD, None),
])
def test_verdict_settings(tmp_path, setting_name, raw, symbol, action, expected, reply):
    out = run_stage(settings(tmp_path, **{setting_name: action}), raw)
    assert out.action == expected
    assert [s.name for s in out.symbols] == [symbol]
    assert (out.reply.code, out.reply.dsn) == reply if reply else out.reply is None
    if action == "reject":
        assert "cannot be checked" in out.reply.text
    if action == "quarantine":
        [rec] = DirectoryStore(str(tmp_path / "q")).list(ListFilter(), 2.0)
        assert rec.reason == "banned" and rec.detail.startswith("cannot be checked: ")


def test_the_stronger_verdict_wins(tmp_path):
    raw = mime(("application/zip", "secret.zip", craft_zip([Entry("invoice.txt", b"x", flags=1)])),
               ("application/zip", "bad.zip", craft_zip([Entry("d.bin", raw=(b"x", 0, 1), method=9)])))
    out = run_stage(settings(tmp_path, banned_encrypted_action="accept", banned_undecidable_action="reject"), raw)
    assert out.action == fx.REJECT
    assert [s.name for s in out.symbols] == ["BANNED_ENCRYPTED", "BANNED_UNDECIDABLE"]


def test_a_banned_file_beats_what_cannot_be_checked(tmp_path):
    raw = mime(("application/zip", "secret.zip", craft_zip([Entry("invoice.txt", b"x", flags=1)])),
               ("application/octet-stream", "tool.exe", b"x"))
    out = run_stage(settings(tmp_path), raw)
    assert out.action == fx.REJECT and "tool.exe" in out.reply.text
    assert [s.name for s in out.symbols] == ["BANNED_ATTACHMENT", "BANNED_ENCRYPTED"]


# --- more MIME that readers see differently -------------------------------------------------

def test_uuencoded_file_in_text():
    text = b"see attached\r\n\r\nbegin 644 evil.js\r\n" + binascii.b2a_uu(b"alert(1)") + b"`\r\nend\r\n"
    assert banned(mime(("text/plain", None, text))) == ["evil.js (banned extension .js)"]


def test_attached_message_in_base64():
    inner = one_part('Content-Type: application/octet-stream; name="evil.js"')
    raw = mime(("message/rfc822", "fwd.eml", inner))
    assert banned(raw) == ["evil.js (banned extension .js)"]


def test_wrong_boundary_does_not_hide_the_parts():
    raw = (HEAD + b'Content-Type: multipart/mixed; boundary="declared"\r\n\r\n--actual\r\n' + LEAF +
           b"\r\n--actual--\r\n")
    assert banned(raw) == ["evil.js (banned extension .js)"]


def test_multipart_in_base64_is_decoded():
    body = b"--in\r\n" + LEAF + b"\r\n--in--\r\n"
    raw = (HEAD + b'Content-Type: multipart/mixed; boundary="in"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
           + base64.encodebytes(body))
    assert banned(raw) == ["evil.js (banned extension .js)"]


def test_part_numbers_follow_walk_order():
    raw = mime(("text/plain", None, b"hi"), ("application/octet-stream", None, b"\x7fELF\x02\x01"))
    assert banned(raw) == ["part 3 (ELF executable)"]


# --- nothing raises, whatever the bytes ------------------------------------------------------

SEEDS = [
    attach("a.zip", zip_of(**{"a.txt": b"hello", "b.zip": zip_of(**{"c.txt": b"x" * 100})})),
    nested_multipart(5), nested_messages(5),
    one_part("Content-Type: application/octet-stream; name*0*=utf-8''a%2E; name*1=\"b\"",
             "Content-Disposition: attachment; filename=\"=?utf-8?b?YS5i?=\""),
]
ZIP_SEED = zip_of(**{"a.txt": b"hello" * 50, "b.zip": zip_stored(**{"c.txt": b"x" * 100}), "d/": b""})


@hsettings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(seed=st.sampled_from(SEEDS), edits=st.lists(st.tuples(st.integers(0, 10 ** 6), st.binary(max_size=4)),
                                                  max_size=6), cut=st.integers(0, 10 ** 6))
def test_mutated_messages_never_raise(seed, edits, cut):
    data = bytearray(seed)
    for pos, new in edits:
        pos %= len(data)
        data[pos:pos + len(new)] = new
    scan(bytes(data[:len(data) - cut % 50]), RULES)


@hsettings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(edits=st.lists(st.tuples(st.integers(0, 10 ** 6), st.binary(min_size=1, max_size=4)), min_size=1,
                      max_size=6), cut=st.integers(0, 10 ** 6))
def test_mutated_zips_never_raise(edits, cut):
    data = bytearray(ZIP_SEED)
    for pos, new in edits:
        pos %= len(data)
        data[pos:pos + len(new)] = new
    scan(attach("a.zip", bytes(data[:len(data) - cut % 40])), RULES)


@pytest.mark.parametrize("fields", [
    ['Content-Type: application/octet-stream; filename="evil.js"'],
    ['Content-Type: application/octet-stream', 'Content-Disposition: attachment; name="evil.js"'],
    ['Content-Type: application/octet-stream',
     "Content-Disposition: attachment;\r\n filename*=utf-8''%3D%3Futf-8%3Fb%3FZXZpbC5qcw%3D%3D%3F%3D"],
    ['Content-Type: application/octet-stream', 'Content-Disposition: attachment; filename="=?utf-16?b?//5lAHYAaQBsAC4AagBzAA==?="'],
    ['Content-Type: application/octet-stream', 'X-Junk line without a colon',
     'Content-Disposition: attachment; filename="evil.js"'],
], ids=["ct-filename", "cd-name", "2047-in-2231", "utf-16", "after-junk-line"])
def test_names_in_unusual_places(fields):
    assert [f.why for f in find_banned(one_part(*fields), RULES)] == ["banned extension .js"]
