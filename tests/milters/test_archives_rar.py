"""RAR in the banned stage: archives written here from the RAR 2.x-4.x block layout (RARLAB's technote).

No free program writes RAR, so `rar4_stored` builds a "stored" (method 0x30, no compression)
RAR 4 archive by hand: the marker block, the archive header, one file header per member with its
CRC32, and the end-of-archive block; each header carries the low 16 bits of the CRC32 of its own
bytes. p7zip's `7z t`, an independent reader, checks what this writes; libarchive reads it in the
stage.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib

import pytest

from milters import effects as fx
from tests.milters.test_archives_libarchive import attached, found, zip_of
from tests.milters.test_banned_hostile import run_stage, settings

MARKER = b"Rar!\x1a\x07\x00"
MAIN_HEAD, FILE_HEAD, END_HEAD = 0x73, 0x74, 0x7B
LONG_BLOCK, FILE_ENCRYPTED = 0x8000, 0x0004
HOST_UNIX, STORE, UNPACK_VERSION = 3, 0x30, 29
REGULAR_0644 = 0o100644 << 16          # Unix mode in the high half, as RAR writes it on Unix
DOS_TIME_2025 = 0x5A210000             # 2025-01-01 00:00:00 in DOS date/time


def _block(head_type: int, flags: int, body: bytes) -> bytes:
    rest = struct.pack("<BHH", head_type, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(rest) & 0xFFFF) + rest


def rar4_stored(members: dict[str, bytes], encrypted: bool = False) -> bytes:
    out = bytearray(MARKER)
    out += _block(MAIN_HEAD, 0, bytes(6))
    for name, data in members.items():
        raw = name.encode()
        flags = LONG_BLOCK | (FILE_ENCRYPTED if encrypted else 0)
        body = struct.pack("<IIBIIBBHI", len(data), len(data), HOST_UNIX, zlib.crc32(data), DOS_TIME_2025,
                           UNPACK_VERSION, STORE, len(raw), REGULAR_0644) + raw
        out += _block(FILE_HEAD, flags, body) + data
    out += _block(END_HEAD, 0x4000, b"")
    return bytes(out)


FILES = {"readme.txt": b"hello", "docs/evil.exe": b"MZ not really"}


def test_the_hand_written_rar_is_valid_for_an_independent_reader(tmp_path):
    seven = shutil.which("7z")
    if seven is None:
        pytest.skip("`7z` is not installed (scripts/install-deps --test installs p7zip-full)")
    (tmp_path / "x.rar").write_bytes(rar4_stored(FILES))
    listing = subprocess.run([seven, "t", "x.rar"], cwd=tmp_path, capture_output=True, text=True)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert "Everything is Ok" in listing.stdout and "Files: 2" in listing.stdout


def test_banned_member_of_a_rar_found_by_content():
    banned, encrypted, undecidable = found(rar4_stored(FILES))
    assert banned == ["data.bin/docs/evil.exe (banned extension .exe)"]
    assert (encrypted, undecidable) == ([], [])


def test_rar_inside_a_zip():
    assert found(zip_of({"inner.rar": rar4_stored({"run.scr": b"x"})}), "files.zip")[0] == \
        ["files.zip/inner.rar/run.scr (banned extension .scr)"]


def test_clean_rar_has_no_findings():
    assert found(rar4_stored({"readme.txt": b"hello"}), "notes.rar") == ([], [], [])


def test_encrypted_rar_member_is_encrypted_and_its_name_still_counts():
    banned, encrypted, undecidable = found(rar4_stored({"a.txt": b"x", "b.exe": b"y"}, encrypted=True))
    assert banned == ["data.bin/b.exe (banned extension .exe)"]
    assert encrypted == ["data.bin/a.txt (encrypted)"]


def test_truncated_rar_is_undecidable():
    data = rar4_stored({"a.txt": b"x" * 4000})
    assert found(data[:200], "x.rar")[2] != []


def test_stage_rejects_a_banned_member_of_a_rar(tmp_path):
    out = run_stage(settings(tmp_path), attached(rar4_stored(FILES), "files.rar"))
    assert out.action == fx.REJECT
    assert "files.rar/docs/evil.exe" in str(out.reply)
