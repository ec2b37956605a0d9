"""Archives beyond zip in the banned stage (libarchive): formats by content, nesting, encryption, bombs, hostile names.

Archives are built here: tar/gzip/bzip2/xz with the standard library, 7z and ISO 9660 with
libarchive's own writer (libarchive-c), a 7z of 100k members by hand, encrypted 7z with the `7z` program and cab with
`gcab` where installed (else those cases skip, saying why). RAR has no free writer: the RAR
cases build stored archives by hand in `tests/milters/test_archives_rar.py`.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import shutil
import struct
import subprocess
import tarfile
import time
import zipfile
import zlib

import pytest

from milters import effects as fx
from milters.scan_budget import BudgetExceeded, ScanBudget
from milters.stages.banned import BannedRules, scan
from owlery.settings import Settings
from tests.milters.test_banned_hostile import run_stage, settings
from tests.milters.test_content_banned import MZ, mime

RULES = BannedRules.from_settings(Settings())
MIB = 1024 * 1024


def tar_of(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def written(fmt: str, members: dict[str, bytes]) -> bytes:
    """An archive written by libarchive itself (7zip, iso9660...)."""
    import libarchive
    out = bytearray()
    with libarchive.custom_writer(lambda b: out.extend(b) or len(b), fmt) as w:
        for name, data in members.items():
            w.add_file_from_memory(name, len(data), data)
    return bytes(out)


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def attached(data: bytes, name: str = "data.bin") -> bytes:
    return mime(("application/octet-stream", name, data))


def found(data: bytes, name: str = "data.bin", rules: BannedRules = RULES):
    result = scan(attached(data, name), rules)
    return ([str(f) for f in result.banned], [str(f) for f in result.encrypted],
            [str(f) for f in result.undecidable])


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"`{name}` is not installed (scripts/install-deps --test installs it)")
    return path


FILES = {"docs/readme.txt": b"hello\n" * 50, "docs/evil.exe": b"not even an executable"}


# --- formats, recognised by content (the attachment is "data.bin" every time) ---------------

@pytest.mark.parametrize("build", [
    lambda: tar_of(FILES),
    lambda: tar_of(FILES, "w:gz"),
    lambda: tar_of(FILES, "w:bz2"),
    lambda: tar_of(FILES, "w:xz"),
    lambda: written("7zip", FILES),
    lambda: written("iso9660", FILES),
], ids=["tar", "tar.gz", "tar.bz2", "tar.xz", "7z", "iso"])
def test_banned_names_inside_each_format(build):
    banned, encrypted, undecidable = found(build())
    assert banned == ["data.bin/docs/evil.exe (banned extension .exe)"]
    assert (encrypted, undecidable) == ([], [])


def test_cab(tmp_path):
    gcab = tool("gcab")
    (tmp_path / "evil.exe").write_bytes(b"hello")
    subprocess.run([gcab, "-c", str(tmp_path / "x.cab"), "evil.exe"], cwd=tmp_path, check=True)
    assert found((tmp_path / "x.cab").read_bytes())[0] == ["data.bin/evil.exe (banned extension .exe)"]


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress], ids=["gz", "bz2", "xz"])
def test_compressed_single_file_is_named_after_the_attachment(compress):
    """invoice.exe.gz holds no archive: its one member is invoice.exe (amavis names it so too)."""
    assert found(compress(b"just text"), "invoice.exe" + {gzip.compress: ".gz", bz2.compress: ".bz2",
                                                            lzma.compress: ".xz"}[compress])[0] == \
        ["invoice.exe.%s/invoice.exe (banned extension .exe)" % {gzip.compress: "gz", bz2.compress: "bz2",
                                                                lzma.compress: "xz"}[compress]]


def test_gzip_header_name_counts():
    buf = io.BytesIO()
    with gzip.GzipFile("setup.exe", "wb", fileobj=buf) as g:
        g.write(b"text")
    assert found(buf.getvalue(), "harmless.gz")[0] == ["harmless.gz/setup.exe (banned extension .exe)"]


def test_executable_content_under_an_innocent_name():
    assert found(tar_of({"photo.jpg": MZ}, "w:gz"))[0] == ["data.bin/photo.jpg (Windows executable)"]


def test_iso_renamed_inside_a_zip_is_opened_by_content():
    iso = written("iso9660", {"run.exe": b"x"})
    assert found(zip_of({"disk.dat": iso}), "files.zip")[0] == \
        ["files.zip/disk.dat/run.exe (banned extension .exe)"]


def test_polyglot_tar_with_a_zip_at_its_end_is_read_as_both():
    """The zip walker finds the zip's directory in the tail; libarchive reads the tar's members."""
    data = tar_of({"evil.exe": b"x", "z.zip": zip_of({"also.scr": b"x"})})
    banned = found(data)[0]
    assert "data.bin/evil.exe (banned extension .exe)" in banned
    assert any(b.endswith("also.scr (banned extension .scr)") for b in banned)


def test_plain_attachments_are_no_archives():
    assert found(b"%PDF-1.7\n" + bytes(range(256)) * 100, "report.pdf") == ([], [], [])
    assert found(b"\x89PNG\r\n\x1a\n" + b"\x00" * 4000, "image.png") == ([], [], [])


# --- encryption --------------------------------------------------------------------------------

def test_encrypted_7z_members_are_encrypted_and_their_names_still_count(tmp_path):
    seven = tool("7z")
    (tmp_path / "a.txt").write_bytes(b"secret")
    (tmp_path / "b.exe").write_bytes(b"secret")
    subprocess.run([seven, "a", "-bd", "-pSECRET", "x.7z", "a.txt", "b.exe"], cwd=tmp_path, check=True,
                   stdout=subprocess.DEVNULL)
    banned, encrypted, undecidable = found((tmp_path / "x.7z").read_bytes())
    assert banned == ["data.bin/b.exe (banned extension .exe)"]
    assert encrypted == ["data.bin/a.txt (encrypted)"]


def test_7z_with_encrypted_headers_hides_names_so_is_encrypted(tmp_path):
    seven = tool("7z")
    (tmp_path / "b.exe").write_bytes(b"secret")
    subprocess.run([seven, "a", "-bd", "-pSECRET", "-mhe=on", "x.7z", "b.exe"], cwd=tmp_path, check=True,
                   stdout=subprocess.DEVNULL)
    banned, encrypted, undecidable = found((tmp_path / "x.7z").read_bytes())
    assert banned == [] and undecidable == []
    assert encrypted == ["data.bin (encrypted archive headers (member names hidden))"]


# --- hostile input -------------------------------------------------------------------------------

def gzip_repeated(chunk: bytes, times: int) -> bytes:
    """`chunk` `times` over as concatenated gzip members (RFC 1952 2.2), compressed once: a bomb
    made in milliseconds."""
    return gzip.compress(chunk, 9) * times


def test_tar_bomb_stops_on_the_budget_and_is_undecidable():
    """A tar.gz whose first member is 1 GiB of zeros (1 MB packed), the banned file after it."""
    info = tarfile.TarInfo("big.bin")
    info.size = 1024 * MIB
    evil = tarfile.TarInfo("evil.exe")
    evil.size = 2
    bomb = (gzip.compress(info.tobuf(tarfile.GNU_FORMAT)) + gzip_repeated(bytes(MIB), 1024) +
            gzip.compress(evil.tobuf(tarfile.GNU_FORMAT) + b"MZ".ljust(512, b"\0") + bytes(1024)))
    start = time.monotonic()
    banned, _, undecidable = found(bomb)
    assert time.monotonic() - start < 3.0
    assert banned == []
    assert undecidable == ["data.bin (compression ratio over 100)"]      # (1 MB out of 1 KB)


def test_gzip_bomb_stops_on_the_ratio():
    bomb = gzip_repeated(b"A" * MIB, 200)                # 200 MiB from 200 KB: ratio ~1000
    start = time.monotonic()
    banned, _, undecidable = found(bomb, "log.txt.gz")
    assert time.monotonic() - start < 3.0
    assert undecidable == ["log.txt.gz (compression ratio over 100)"]


def test_gzip_bomb_inside_a_tar_inside_a_zip_is_undecidable():
    data = zip_of({"inner.tar": tar_of({"x.gz": gzip.compress(b"B" * (64 * MIB))})})
    banned, _, undecidable = found(data, "files.zip")
    assert undecidable == ["files.zip/inner.tar/x.gz (compression ratio over 100)"]


def nested(depth: int) -> bytes:
    """evil.exe at the bottom of `depth` archives: tar.gz, zip, tar.gz, zip... outermost last."""
    data, name = b"MZ", "evil.exe"
    for level in range(depth):
        if level % 2 == 0:
            data, name = tar_of({name: data}, "w:gz"), f"l{level}.tgz"
        else:
            data, name = zip_of({name: data}), f"l{level}.zip"
    return data


def test_nesting_within_the_depth_is_searched():
    banned, _, undecidable = found(nested(RULES.archive_depth))
    assert len(banned) == 1 and banned[0].endswith("/evil.exe (banned extension .exe)")


def test_nesting_past_the_depth_is_undecidable():
    banned, _, undecidable = found(nested(RULES.archive_depth + 2))
    assert banned == []
    assert len(undecidable) == 1 and f"archive nesting deeper than {RULES.archive_depth}" in undecidable[0]


def _number(v: int) -> bytes:
    """A 7z NUMBER: the first byte's leading one bits count the little-endian bytes after it."""
    for n in range(9):
        if n == 8 or v < 1 << (8 * n + 7 - n):
            first = ((0xFF << (8 - n)) & 0xFF) | (v >> (8 * n) if n < 8 else 0)
            return bytes([first]) + (v & ((1 << (8 * n)) - 1)).to_bytes(n, "little")
    raise AssertionError(v)


@pytest.fixture(scope="module")
def many_7z() -> bytes:
    """A 7z of 100,000 empty files, written from the 7z format description (7zFormat.txt:
    kHeader, kFilesInfo with kEmptyStream, kEmptyFile and kName): libarchive's writer or the
    7z program need 5-30 s for so many members."""
    count = 100_000
    bits = b"\xff" * (count // 8) + (bytes([(0xFF << (8 - count % 8)) & 0xFF]) if count % 8 else b"")
    names = b"\x00" + b"".join(f"f{i}.txt".encode("utf-16-le") + b"\x00\x00" for i in range(count))
    header = (b"\x01\x05" + _number(count) + b"\x0e" + _number(len(bits)) + bits + b"\x0f" + _number(len(bits)) +
              bits + b"\x11" + _number(len(names)) + names + b"\x00\x00")
    start = struct.pack("<QQI", 0, len(header), zlib.crc32(header))
    return b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<I", zlib.crc32(start)) + start + header


def test_7z_with_100k_members_stops_at_the_member_budget(many_7z):
    start = time.monotonic()
    banned, _, undecidable = found(many_7z)
    assert time.monotonic() - start < 3.0
    assert undecidable == [f"message (more than {RULES.archive_members_max} archive members)"]


def test_truncated_xz_is_undecidable():
    data = lzma.compress(tar_of(FILES))
    banned, _, undecidable = found(data[: len(data) // 2])
    assert banned == [] and len(undecidable) == 1 and undecidable[0].startswith("data.bin (")


def test_truncated_tar_gz_is_undecidable():
    data = tar_of({"a.txt": bytes(range(256)) * 400, "b.txt": b"x"}, "w:gz")
    banned, _, undecidable = found(data[: len(data) - 200])
    assert banned == [] and undecidable and undecidable[0].startswith("data.bin")


def test_hostile_paths_are_matched_never_used(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tar_of({"../../../tmp/evil.exe": b"x", "a\x1b]0;pwned\x07\r\nb.scr": b"x",
                   "/etc/cron.d/job.bat": b"x"})
    banned = found(data)[0]
    assert banned == ["data.bin/../../../tmp/evil.exe (banned extension .exe)",
                      "data.bin/a?]0;pwned???b.scr (banned extension .scr)",
                      "data.bin//etc/cron.d/job.bat (banned extension .bat)"]
    assert list(tmp_path.iterdir()) == []               # nothing extracted anywhere


def test_budget_is_charged_by_the_reader():
    """Bytes drained from members nobody looks into still count (a tar's big member)."""
    from milters.archive_libarchive import Reader
    budget = ScanBudget(inflate_bytes_max=MIB, members_max=100, parts_max=10, time_max=10)
    data = tar_of({"big.bin": bytes(range(256)) * 8192, "small.txt": b"x"}, "w:gz")    # 2 MiB
    with pytest.raises(BudgetExceeded):
        with Reader(data, budget, 1000.0) as reader:
            for _ in reader.entries():
                pass


# --- through the stage: the undecidable action applies -------------------------------------------

def test_stage_quarantines_an_unreadable_archive(tmp_path):
    data = lzma.compress(tar_of(FILES))
    out = run_stage(settings(tmp_path), attached(data[:40], "x.tar.xz"))
    assert out.action == fx.DISCARD
    assert [s.name for s in out.symbols] == ["BANNED_UNDECIDABLE"]


def test_stage_rejects_a_banned_member_of_a_7z(tmp_path):
    out = run_stage(settings(tmp_path), attached(written("7zip", FILES), "files.7z"))
    assert out.action == fx.REJECT
    assert "files.7z/docs/evil.exe" in str(out.reply)
