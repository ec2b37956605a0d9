"""Archives other than zip read for a content filter through libarchive (libarchive-c): tar, 7z, rar, cab, iso, ar, cpio, gzip, xz...

The banned stage reads zip with its own walker (milters.archive_walk, which also finds
members hidden from the central directory); everything else goes through libarchive, in
memory, member by member, never written to disk. `recognizes(data)` is libarchive's own
detection (its format and filter bidders look at the content, never at a file name): True
when a compression filter or one of FORMATS claims the bytes, also for a head too short
to open. `Reader(data, budget, ratio_max, name_hint)` walks the archive: `entries()` yields
each member's names (a path as stored: matched, never used as a path), whether it is a
directory and whether its data is encrypted, charging one member of the budget each;
`read(limit)` takes content out of the current member. Whatever is not read is drained
when the walk moves on, and every byte that comes out (content, drained content, and the
decompressed stream under the format: tar headers, GNU long names) is charged to the
budget as it comes, with the clock checked between 64 KiB blocks and the compression ratio
of the archive (bytes out per byte of the archive) judged once 1 MiB came out. A
compressed stream that holds no archive (report.pdf.gz) is read as one member named by
the gzip header's file name or by `name_hint` without its compression suffix.
Errors: NotAnArchive (nothing recognised: not an archive, nothing to say), ArchiveEncrypted
(headers encrypted: member names hidden), ArchiveUnreadable (recognised but cannot be read:
truncated, corrupt, ratio past the limit, an unsupported method). Only bidders and
decompressors built into libarchive are enabled: a filter libarchive would run as an
external program (lrzip, grzip, lzop, or any whose library it lacks) is left out.
libarchive's own limits bound what it allocates while parsing headers (a 7z header with
100k entries is parsed at once; the member budget then stops the walk).
Talks to: libarchive (libarchive13) through libarchive-c's ctypes bindings.
Tests: tests/milters/test_archives_libarchive.py
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Iterator
from typing import Any

from milters.scan_budget import ScanBudget

# What libarchive may recognise: the formats mail users open (zip is milters.archive_walk's)
# and compressions with a magic number; also ar (a .deb) and cpio (an .rpm's payload), which
# amavisd-new opens too, each with a magic of 6 or more bytes (binary cpio, a bare 16-bit
# magic, is not offered: see _formats). Left out on purpose: lzma-alone (no magic: its
# bidder guesses), mtree/warc/lha/xar (rare, text-like or guessable), raw (any data).
FORMATS = ("tar", "7zip", "rar", "rar5", "cab", "iso9660", "ar", "cpio")
_CPIO_BINARY = (b"\x71\xc7", b"\xc7\x71")    # 070707 octal, big- or little-endian: 1 in 32768 of any data
FILTERS = ("gzip", "bzip2", "xz", "zstd", "lz4", "lzip", "compress")
COMPRESSED_SUFFIXES = (".tgz", ".tbz", ".tbz2", ".txz", ".gz", ".bz2", ".xz", ".zst", ".lz4", ".lz", ".z")

_BLOCK = 64 * 1024
_RATIO_FLOOR = 1024 * 1024         # the ratio is judged once this much came out of one archive

_OK, _EOF = 0, 1
_UNRECOGNISED = "Unrecognized archive format"     # libarchive's text when no bidder claims the data
_FILTER_NONE = 0


class NotAnArchive(Exception):
    """libarchive recognises neither a compression nor an archive format in the data."""


class ArchiveUnreadable(Exception):
    """A recognised archive (or compressed stream) that cannot be read to its end; the text says why."""


class ArchiveEncrypted(Exception):
    """The archive's headers are encrypted: its member names cannot be read."""


class ArchiveMember:
    """One member: `names` (as stored, first the UTF-8 form), `is_dir`, `encrypted`."""

    __slots__ = ("names", "is_dir", "encrypted")

    def __init__(self, names: tuple[str, ...], is_dir: bool, encrypted: bool):
        self.names = names
        self.is_dir = is_dir
        self.encrypted = encrypted

    @property
    def name(self) -> str:
        return self.names[0]


class _Lib:
    """libarchive-c's bindings, plus the few calls it does not wrap (on a private handle, so
    its error checking on the shared function objects is left as it is)."""

    def __init__(self) -> None:
        from libarchive import ffi
        from libarchive.exception import ArchiveError
        self.ffi = ffi
        self.ArchiveError = ArchiveError
        # libarchive-c logs every ARCHIVE_WARN (name conversion...) with text from the archive;
        # the banned stage logs one line per decision instead.
        lib_log = logging.getLogger("libarchive")
        if lib_log.level == logging.NOTSET:
            lib_log.setLevel(logging.ERROR)
        own = ctypes.CDLL(ffi.libarchive_path)
        p = ctypes.c_void_p

        def bind(name: str, restype: Any, *argtypes: Any) -> Any:
            f = getattr(own, name)
            f.restype, f.argtypes = restype, list(argtypes)
            return f
        self.entry_pathname_utf8 = bind("archive_entry_pathname_utf8", ctypes.c_char_p, p)
        self.entry_pathname = bind("archive_entry_pathname", ctypes.c_char_p, p)
        self.entry_is_data_encrypted = bind("archive_entry_is_data_encrypted", ctypes.c_int, p)
        self.entry_is_metadata_encrypted = bind("archive_entry_is_metadata_encrypted", ctypes.c_int, p)
        self.has_encrypted_entries = bind("archive_read_has_encrypted_entries", ctypes.c_int, p)
        self.filter_code = bind("archive_filter_code", ctypes.c_int, p, ctypes.c_int)
        self.filter_count = bind("archive_filter_count", ctypes.c_int, p)
        self.filter_bytes = bind("archive_filter_bytes", ctypes.c_longlong, p, ctypes.c_int)
        self.error_string = bind("archive_error_string", ctypes.c_char_p, p)
        self.filters = tuple(f for f in FILTERS if self._builtin_filter(f))
        self.formats = tuple(f for f in FORMATS if self._has_format(f))

    def _builtin_filter(self, name: str) -> bool:
        """True when libarchive decodes `name` itself (ARCHIVE_WARN: it would run a program)."""
        a = self.ffi.read_new()
        try:
            return self.ffi.get_read_filter_function(name)(a) == _OK
        except (ValueError, self.ArchiveError):
            return False
        finally:
            self.ffi.read_free(a)

    def _has_format(self, name: str) -> bool:
        try:
            self.ffi.get_read_format_function(name)
            return True
        except ValueError:
            return False

    def new_reader(self, formats: tuple[str, ...]) -> Any:
        a = self.ffi.read_new()
        for f in self.filters:
            self.ffi.get_read_filter_function(f)(a)
        for f in formats:
            self.ffi.get_read_format_function(f)(a)
        return a

    def error(self, a: Any, default: str) -> str:
        text = self.error_string(a)
        return _printable(text.decode("utf-8", "replace")) if text else default


_lib: _Lib | None = None
_lib_lock = threading.Lock()


def lib() -> _Lib:
    """The bindings, loaded once (raises ImportError or OSError when libarchive is missing)."""
    global _lib
    with _lib_lock:
        if _lib is None:
            _lib = _Lib()
        return _lib


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


def _only_none_filter(L: _Lib, a: Any) -> bool:
    n = L.filter_count(a)
    return n == 1 and L.filter_code(a, 0) == _FILTER_NONE


def _formats(L: _Lib, data: bytes) -> tuple[str, ...]:
    """The formats offered for `data`: all but cpio when it starts like an obsolete binary cpio
    archive, whose two magic bytes begin one in 32768 of any data (an undecidable part each)."""
    return tuple(f for f in L.formats if f != "cpio") if data[:2] in _CPIO_BINARY else L.formats


def recognizes(data: bytes) -> bool:
    """libarchive's detection: does a filter or one of FORMATS claim these bytes (or this head)?"""
    L = lib()
    a = L.new_reader(_formats(L, data))
    try:
        try:
            L.ffi.read_open_memory(a, ctypes.cast(data, ctypes.c_void_p), len(data))
        except L.ArchiveError:
            # "Unrecognized archive format" leaves only the pass-through filter; a filter that
            # claimed the data and then ran out of it (a head of a .tar.gz) leaves none.
            return not (_only_none_filter(L, a) and _UNRECOGNISED in L.error(a, ""))
        return True
    finally:
        L.ffi.read_free(a)


def gzip_name(data: bytes) -> str | None:
    """The original file name a gzip header carries (FNAME, RFC 1952 2.3.1), if any."""
    if data[:3] != b"\x1f\x8b\x08" or len(data) < 10 or not data[3] & 0x08:
        return None
    pos = 10
    if data[3] & 0x04:                          # FEXTRA: two bytes of length, then the field
        if len(data) < 12:
            return None
        pos = 12 + int.from_bytes(data[10:12], "little")
    end = data.find(b"\x00", pos, pos + 1024)
    return data[pos:end].decode("latin-1") if end > pos else None


def stream_names(data: bytes, name_hint: str) -> tuple[str, ...]:
    """Names of the one member of a compressed stream: gzip's FNAME, the hint without its suffix."""
    names = []
    original = gzip_name(data)
    if original:
        names.append(original)
    base = name_hint.replace("\\", "/").rsplit("/", 1)[-1]
    low = base.lower()
    for suffix in COMPRESSED_SUFFIXES:
        if low.endswith(suffix) and len(base) > len(suffix):
            stem = base[:-len(suffix)]
            names.append(stem + ".tar" if suffix in (".tgz", ".tbz", ".tbz2", ".txz") else stem)
            break
    return tuple(dict.fromkeys(names)) or ("data",)


class Reader:
    """One archive in memory, walked once (see the module docstring); use as a context manager."""

    def __init__(self, data: bytes, budget: ScanBudget, ratio_max: float, name_hint: str = ""):
        self.L = lib()
        self.data = data                      # kept alive: libarchive reads it in place
        self.budget = budget
        self.ratio_max = ratio_max
        self.name_hint = name_hint
        self.stream = False                   # a compressed stream read as one member
        self._a: Any = None
        self._entry: Any = None
        self._out = 0                         # content bytes taken out (read or drained)
        self._charged = 0                     # bytes charged to the budget so far
        self._pending = False                 # the current member may have content left

    def __enter__(self) -> "Reader":
        self._a = self._open(_formats(self.L, self.data))
        if self._a is None:
            self._a = self._open(("raw",))     # a compression around no known archive
            self.stream = True
        self._entry = self.L.ffi.entry_new()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._entry is not None:
            self.L.ffi.entry_free(self._entry)
        if self._a is not None:
            self.L.ffi.read_free(self._a)
        self._a = self._entry = None

    def _open(self, formats: tuple[str, ...]) -> Any:
        L = self.L
        a = L.new_reader(formats)
        try:
            L.ffi.read_open_memory(a, ctypes.cast(self.data, ctypes.c_void_p), len(self.data))
            return a
        except L.ArchiveError:
            why = L.error(a, "cannot be opened")
            unrecognised = _only_none_filter(L, a)
            L.ffi.read_free(a)
            if formats == ("raw",):
                raise ArchiveUnreadable(why) from None
            if unrecognised and _UNRECOGNISED in why:
                raise NotAnArchive(why) from None
            if unrecognised:
                raise ArchiveUnreadable(why) from None
            return None         # a compression claimed it: a stream with no archive, or truncated

    # -- the walk ---------------------------------------------------------------------------

    def entries(self) -> Iterator[ArchiveMember]:
        L, a = self.L, self._a
        while True:
            self._drain()
            try:
                rc = L.ffi.read_next_header2(a, self._entry)
            except L.ArchiveError:
                if L.has_encrypted_entries(a) == 1 or L.entry_is_metadata_encrypted(self._entry):
                    raise ArchiveEncrypted("encrypted archive headers (member names hidden)") from None
                raise ArchiveUnreadable(L.error(a, "unreadable member header")) from None
            self._charge()
            if rc == _EOF:
                return
            self.budget.member()
            e = self._entry
            names = [self._decode(L.entry_pathname_utf8(e)), self._decode(L.entry_pathname(e))]
            if self.stream:
                names = list(stream_names(self.data, self.name_hint))
            filetype = L.ffi.entry_filetype(e) & 0o170000
            entry = ArchiveMember(tuple(dict.fromkeys(n for n in names if n)) or ("",), filetype == 0o040000,
                          bool(L.entry_is_data_encrypted(e)))
            self._pending = filetype == 0o100000 and not entry.encrypted
            yield entry

    def read(self, limit: int | None) -> bytes:
        """Up to `limit` bytes of the current member's content (None: the rest of it, within the budget)."""
        want = limit if limit is not None else self.budget.inflate_room()
        out = bytearray()
        while self._pending and len(out) < want:
            piece = self._block(min(_BLOCK, want - len(out)))
            if not piece:
                break
            out += piece
        return bytes(out)

    def _drain(self) -> None:
        while self._pending and self._block(_BLOCK):
            pass

    def _block(self, size: int) -> bytes:
        self.budget.check_time()
        buf = ctypes.create_string_buffer(size)
        try:
            n = self.L.ffi.read_data(self._a, buf, size)
        except self.L.ArchiveError:
            self._pending = False
            raise ArchiveUnreadable(self.L.error(self._a, "unreadable member data")) from None
        if n <= 0:
            self._pending = False
            return b""
        self._out += n
        self._charge()
        return buf.raw[:n]

    def _charge(self) -> None:
        """Charge what came out since the last call: member content, or the decompressed
        stream under the format when more (headers, long names, padding)."""
        out = max(self._out, self.L.filter_bytes(self._a, 0))
        if out > self._charged:
            self.budget.inflated(out - self._charged)
            self._charged = out
        if out > _RATIO_FLOOR and out > self.ratio_max * max(1, len(self.data)):
            raise ArchiveUnreadable(f"compression ratio over {self.ratio_max:g}")

    @staticmethod
    def _decode(raw: bytes | None) -> str:
        return raw.decode("utf-8", "replace") if raw else ""
