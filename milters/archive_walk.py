"""Zip archives read for a content filter: every name a member goes by, and its content in budgeted chunks.

Written from PKWARE's APPNOTE.TXT (6.3.10), not with `zipfile`, which builds the whole
central directory in memory at once and reads members in one call. `ZipDirectory(data)`
finds the end-of-central-directory record (zip64 too, data prepended or not) and
`members(budget)` yields each central-directory entry, one at a time and charged to the
budget, with every name it goes by: the central name, the local header's (extractors that
stream the archive use that one), and Info-ZIP Unicode path fields. Then it yields the
local headers found in bytes no directory entry accounts for (members hidden from the
directory). `read(member, budget, limit)` decompresses (stored, deflate, bzip2, LZMA) in
chunks, charging the bytes to the budget and checking its clock between chunks; a
read of a whole member also stops past `ratio_max` (a bomb). A member that cannot be read
(encrypted, unknown method, corrupt, headers that disagree, more than _EXTRA_FIELDS_MAX
extra fields) raises MemberUnreadable with the reason; data that is no zip raises NotAZip.
Every directory entry and every stray local header costs one member of the budget.
`tnef_attachments(data, budget)` reads Outlook's TNEF (winmail.dat, application/ms-tnef) the
same way: each attachment's names and content, one member each; TnefUnreadable when cut short.
Talks to: nothing. Tests: tests/milters/test_banned_hostile.py
"""

from __future__ import annotations

import bisect
import bz2
import dataclasses
import lzma
import struct
import zlib
from collections.abc import Iterator

from milters.scan_budget import ScanBudget

LOCAL_SIG = b"PK\x03\x04"
CENTRAL_SIG = b"PK\x01\x02"
EOCD_SIG = b"PK\x05\x06"
ZIP64_LOCATOR_SIG = b"PK\x06\x07"
ZIP64_EOCD_SIG = b"PK\x06\x06"

STORED, DEFLATED, BZIP2, LZMA, AES = 0, 8, 12, 14, 99
FLAG_ENCRYPTED, FLAG_STRONG_ENCRYPTION, FLAG_UTF8 = 0x1, 0x40, 0x800
_EXTRA_ZIP64, _EXTRA_UNICODE_PATH = 0x0001, 0x7075

_CHUNK = 64 * 1024                 # compressed bytes fed, and most bytes taken out, per step
_RATIO_FLOOR = 1024 * 1024         # the ratio is judged once this much came out of one member
_LZMA_DICT_MAX = 64 * 1024 * 1024  # liblzma allocates the whole dictionary up front
_COMMENT_MAX = 65535
_EXTRA_FIELDS_MAX = 64             # extra fields in one header: real archives have a handful


class NotAZip(Exception):
    """No readable central directory: the data is not a zip archive (or is broken beyond reading)."""


class MemberUnreadable(Exception):
    """This member's content cannot be read; the text says why."""


@dataclasses.dataclass(frozen=True)
class Member:
    """One member: `names` (the central name first, then the other names it goes by)."""

    names: tuple[str, ...]
    flags: int
    method: int
    data_start: int               # offset of its compressed data in the archive; -1: no local header
    data_end: int
    listed: bool = True           # in the central directory (False: found only by its local header)
    problem: str | None = None    # why its content must not be read though it may be there

    @property
    def name(self) -> str:
        return self.names[0]

    @property
    def is_dir(self) -> bool:
        return self.name.endswith(("/", "\\")) and all(n.endswith(("/", "\\")) for n in self.names)

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION)) or self.method == AES


@dataclasses.dataclass(frozen=True)
class _Local:
    flags: int
    method: int
    compressed_size: int
    names: tuple[str, ...]
    data_start: int
    problem: str | None


class ZipDirectory:
    """The central directory of `data` (raises NotAZip when there is none to read)."""

    def __init__(self, data: bytes):
        self.data = data
        found = _find_directory(data)
        if found is None:
            raise NotAZip("no end of central directory record")
        self.cd_start, self.shift, self._tail = found

    def members(self, budget: ScanBudget) -> Iterator[Member]:
        data = self.data
        covered: list[tuple[int, int]] = [self._tail]
        pos = self.cd_start
        while data[pos:pos + 4] == CENTRAL_SIG and pos + 46 <= len(data):
            budget.member()
            (flags, method, csize, usize, nlen, xlen, clen, offset) = _central_fields(data, pos)
            name = data[pos + 46:pos + 46 + nlen]
            extra = data[pos + 46 + nlen:pos + 46 + nlen + xlen]
            start = pos
            pos += 46 + nlen + xlen + clen
            fields = _extra_fields(extra)
            csize, usize, offset = _zip64_values(fields, csize, usize, offset)
            names = [_decode_name(name, flags)] + _unicode_paths(fields)
            problem = None if fields is not None else "too many extra fields"
            local = _local_header(data, offset + self.shift)
            if local is None:
                member = Member(_unique(names), flags, method, -1, -1, problem=problem)
            else:
                end = min(len(data), local.data_start + csize)
                if local.method != method:
                    problem = "local and central headers disagree on the compression method"
                member = Member(_unique(names + list(local.names)), flags | (local.flags & FLAG_ENCRYPTED),
                                method, local.data_start, end, problem=problem or local.problem)
                covered.append((offset + self.shift, max(end, local.data_start)))
            covered.append((start, pos))
            yield member
        yield from self._hidden(budget, covered)

    def _hidden(self, budget: ScanBudget, covered: list[tuple[int, int]]) -> Iterator[Member]:
        """Local headers in bytes that no directory entry (nor the directory) accounts for."""
        starts, ends = _merge(covered)
        data = self.data
        at = data.find(LOCAL_SIG)
        while at >= 0:
            i = bisect.bisect_right(starts, at) - 1
            if i >= 0 and at < ends[i]:
                at = data.find(LOCAL_SIG, ends[i])
                continue
            local = _local_header(data, at)
            if local is not None:
                budget.member()             # (every stray header costs, named or not)
                end = len(data) if local.compressed_size in (0, 0xFFFFFFFF) else \
                    min(len(data), local.data_start + local.compressed_size)
                if local.names:
                    yield Member(local.names, local.flags, local.method, local.data_start, end, listed=False,
                                 problem=local.problem)
            at = data.find(LOCAL_SIG, at + 4)

    def read(self, member: Member, budget: ScanBudget, limit: int | None, ratio_max: float) -> bytes:
        """Up to `limit` bytes of the member's content (None: all of it, within the budget)."""
        if member.data_start < 0:
            raise MemberUnreadable("no local header")
        if member.encrypted:
            raise MemberUnreadable("encrypted")
        if member.problem:
            raise MemberUnreadable(member.problem)
        src = memoryview(self.data)[member.data_start:member.data_end]
        want = limit if limit is not None else budget.inflate_room()
        if member.method == STORED:
            out = bytes(src[:want])
            budget.inflated(len(out))
            return out
        try:
            return _inflate(_decompressor(member.method, src), src, budget, want,
                            ratio_max if limit is None else None)
        except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as e:
            raise MemberUnreadable(f"corrupt compressed data ({e})") from None


def is_zip_signature(head: bytes) -> bool:
    """True when data starting with `head` begins like a zip (or an empty or spanned one)."""
    return head[:4] in (LOCAL_SIG, EOCD_SIG, b"PK\x07\x08")


def has_directory_record(data: bytes) -> bool:
    """True when the tail of `data` holds an end-of-central-directory signature."""
    return data.rfind(EOCD_SIG, max(0, len(data) - 22 - _COMMENT_MAX)) >= 0


# --- the directory ---------------------------------------------------------------------------

def _find_directory(data: bytes) -> tuple[int, int, tuple[int, int]] | None:
    """(central directory start, shift of all offsets, the range of the end records), or None.

    The last end record whose directory is where it says (or right before the record,
    when data was prepended to the archive) wins.
    """
    low = max(0, len(data) - 22 - _COMMENT_MAX)
    at = data.rfind(EOCD_SIG, low)
    while at >= 0:
        found = _directory_at(data, at)
        if found is not None:
            return found
        at = data.rfind(EOCD_SIG, low, at)
    return None


def _directory_at(data: bytes, at: int) -> tuple[int, int, tuple[int, int]] | None:
    if at + 22 > len(data):
        return None
    _sig, _disk, _cd_disk, _n_disk, count, cd_size, cd_offset, _clen = struct.unpack_from("<4sHHHHIIH", data, at)
    tail = (at, at + 22)          # (not the comment: a local header hidden there is looked at)
    before = at                                   # where the directory should end
    if count == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
        z64 = _zip64_end(data, at)
        if z64 is not None:
            z64_at, count, cd_size, cd_offset = z64
            tail = (z64_at, tail[1])
            before = z64_at
    if count == 0 and cd_size == 0:
        return (before, 0, tail)
    for start in (cd_offset, before - cd_size):
        if 0 <= start and data[start:start + 4] == CENTRAL_SIG:
            return (start, start - cd_offset, tail)
    return None


def _zip64_end(data: bytes, at: int) -> tuple[int, int, int, int] | None:
    loc = at - 20
    if loc < 0 or data[loc:loc + 4] != ZIP64_LOCATOR_SIG:
        return None
    (offset,) = struct.unpack_from("<Q", data, loc + 8)
    for z64_at in (offset, loc - 56):
        if 0 <= z64_at <= len(data) - 56 and data[z64_at:z64_at + 4] == ZIP64_EOCD_SIG:
            count, cd_size, cd_offset = struct.unpack_from("<QQQ", data, z64_at + 32)
            return z64_at, count, cd_size, cd_offset
    return None


def _central_fields(data: bytes, pos: int) -> tuple[int, ...]:
    (_sig, _made, _need, flags, method, _time, _date, _crc, csize, usize, nlen, xlen, clen, _disk,
     _iattr, _xattr, offset) = struct.unpack_from("<4sHHHHHHIIIHHHHHII", data, pos)
    return flags, method, csize, usize, nlen, xlen, clen, offset


def _extra_fields(extra: bytes) -> list[tuple[int, bytes]] | None:
    """The (tag, body) fields of an extra field block; None when there are more than anyone writes."""
    fields: list[tuple[int, bytes]] = []
    pos = 0
    while pos + 4 <= len(extra):
        if len(fields) >= _EXTRA_FIELDS_MAX:
            return None
        tag, size = struct.unpack_from("<HH", extra, pos)
        fields.append((tag, extra[pos + 4:pos + 4 + size]))
        pos += 4 + size
    return fields


def _zip64_values(fields: list[tuple[int, bytes]] | None, csize: int, usize: int,
                  offset: int) -> tuple[int, int, int]:
    """Sizes and offset from the zip64 extra field where the header holds 0xFFFFFFFF."""
    for tag, body in fields or ():
        if tag != _EXTRA_ZIP64:
            continue
        values, pos = [], 0
        while pos + 8 <= len(body):
            values.append(struct.unpack_from("<Q", body, pos)[0])
            pos += 8
        if usize == 0xFFFFFFFF and values:
            usize = values.pop(0)
        if csize == 0xFFFFFFFF and values:
            csize = values.pop(0)
        if offset == 0xFFFFFFFF and values:
            offset = values.pop(0)
        break
    return csize, usize, offset


def _unicode_paths(fields: list[tuple[int, bytes]] | None) -> list[str]:
    """Names from Info-ZIP Unicode Path fields (used by extractors instead of the header's name)."""
    return [body[5:].decode("utf-8", "replace") for tag, body in fields or ()
            if tag == _EXTRA_UNICODE_PATH and len(body) > 5]


def _decode_name(raw: bytes, flags: int) -> str:
    return raw.decode("utf-8", "replace") if flags & FLAG_UTF8 else raw.decode("cp437")


def _local_header(data: bytes, at: int) -> _Local | None:
    if at < 0 or at + 30 > len(data) or data[at:at + 4] != LOCAL_SIG:
        return None
    _sig, _ver, flags, method, _time, _date, _crc, csize, _usize, nlen, xlen = \
        struct.unpack_from("<4sHHHHHIIIHH", data, at)
    name = data[at + 30:at + 30 + nlen]
    extra = data[at + 30 + nlen:at + 30 + nlen + xlen]
    fields = _extra_fields(extra)
    csize = _zip64_values(fields, csize, 0, 0)[0]
    names = tuple(n for n in [_decode_name(name, flags)] + _unicode_paths(fields) if n)
    return _Local(flags, method, csize, names, at + 30 + nlen + xlen,
                  None if fields is not None else "too many extra fields")


def _unique(names: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for n in names if n)) or ("",)


def _merge(ranges: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    starts: list[int] = []
    ends: list[int] = []
    for start, end in sorted(ranges):
        if starts and start <= ends[-1]:
            ends[-1] = max(ends[-1], end)
        else:
            starts.append(start)
            ends.append(end)
    return starts, ends


# --- member content ----------------------------------------------------------------------------

def _decompressor(method: int, src: memoryview):
    if method == DEFLATED:
        return zlib.decompressobj(-15)
    if method == BZIP2:
        return bz2.BZ2Decompressor()
    if method == LZMA:
        return _lzma_decompressor(src)
    raise MemberUnreadable(f"compression method {method} not supported")


def _lzma_decompressor(src: memoryview):
    # APPNOTE 5.8.8: version (2 bytes), properties size (2), properties: lc/lp/pb byte, dictionary size
    if len(src) < 9:
        raise MemberUnreadable("truncated LZMA header")
    (psize,) = struct.unpack_from("<H", src, 2)
    if psize != 5:
        raise MemberUnreadable("bad LZMA properties")
    d = src[4]
    (dict_size,) = struct.unpack_from("<I", src, 5)
    lc, lp, pb = d % 9, (d // 9) % 5, d // 45
    if pb > 4 or dict_size > _LZMA_DICT_MAX:
        raise MemberUnreadable("unsupported LZMA properties")
    return _Skip(lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[
        {"id": lzma.FILTER_LZMA1, "lc": lc, "lp": lp, "pb": pb, "dict_size": max(dict_size, 4096)}]), 9)


class _Skip:
    """A decompressor that ignores the first `n` input bytes (the LZMA header in zips)."""

    def __init__(self, inner, n: int):
        self.inner, self.n = inner, n

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def decompress(self, data, max_length):
        if self.n:
            cut = min(self.n, len(data))
            data, self.n = data[cut:], self.n - cut
        return self.inner.decompress(data, max_length)


def _inflate(d, src: memoryview, budget: ScanBudget, want: int, ratio_max: float | None) -> bytes:
    """Decompress `src` with `d` until `want` bytes, the end of the stream or of the input."""
    is_zlib = hasattr(d, "unconsumed_tail")
    out = bytearray()
    fed = 0
    pending: bytes | memoryview = b""        # zlib: input it has not consumed yet
    while len(out) < want and not d.eof:
        budget.check_time()
        step = min(want - len(out), _CHUNK)
        if is_zlib:
            if not pending and fed < len(src):
                pending = src[fed:fed + _CHUNK]
                fed += len(pending)
            before = len(pending)
            piece = d.decompress(pending, step)
            pending = d.unconsumed_tail
            progressed = bool(piece) or len(pending) < before
        else:
            chunk: bytes | memoryview = b""
            if d.needs_input:
                if fed >= len(src):
                    break
                chunk = src[fed:fed + _CHUNK]
                fed += len(chunk)
            piece = d.decompress(chunk, step)
            progressed = bool(piece) or bool(chunk)
        if not progressed:
            break                # the input is used up (a truncated stream)
        out += piece
        budget.inflated(len(piece))
        if ratio_max is not None and len(out) > _RATIO_FLOOR:
            consumed = max(1, fed - len(pending))
            if len(out) > ratio_max * consumed:
                raise MemberUnreadable(f"compression ratio over {ratio_max:g}")
    return bytes(out)


# --- TNEF (winmail.dat) ------------------------------------------------------------------------
# Outlook's Transport Neutral Encapsulation Format ([MS-OXTNEF]) wraps a message's attachments
# in one application/ms-tnef part: attribute records (level, id, length, data, checksum), an
# attachment's records following its attAttachRenddata. Its names: attAttachTitle (8-bit) and,
# in the attAttachment MAPI properties, the long and short file names and the display name;
# its content: attAttachData, or PR_ATTACH_DATA_OBJ (an embedded message: another TNEF stream).

TNEF_SIG = b"\x78\x9f\x3e\x22"          # 0x223E9F78, little-endian
_TNEF_LEVELS = (1, 2)                   # message, attachment
_ATT_RENDDATA, _ATT_TITLE, _ATT_DATA, _ATT_MAPI = 0x00069002, 0x00018010, 0x0006800F, 0x00069005
_PR_NAMES = (0x3707, 0x3704, 0x3001)    # PR_ATTACH_LONG_FILENAME, PR_ATTACH_FILENAME, PR_DISPLAY_NAME
_PR_DATA_OBJ = 0x3701
_PT_OBJECT, _PT_STRING8, _PT_UNICODE, _PT_BINARY = 0x000D, 0x001E, 0x001F, 0x0102
_PT_FIXED = {0x0000: 4, 0x0001: 4, 0x0002: 4, 0x0003: 4, 0x0004: 4, 0x0005: 8, 0x0006: 8, 0x0007: 8,
             0x000A: 4, 0x000B: 4, 0x0014: 8, 0x0040: 8, 0x0048: 16}      # sizes padded to 4
_MAPI_PROPS_MAX = 4096                 # properties in one attribute: real ones have a few dozen


class TnefUnreadable(Exception):
    """A TNEF stream that cannot be read to its end (truncated, a bad record); the text says why."""


@dataclasses.dataclass(frozen=True)
class TnefAttachment:
    """One attachment of a TNEF stream: every name it goes by (may be none) and its content."""

    names: tuple[str, ...]
    data: bytes


def tnef_attachments(data: bytes, budget: ScanBudget) -> Iterator[TnefAttachment]:
    """Each attachment of a TNEF stream, one member of the budget each; TnefUnreadable when a
    record is cut short or malformed (the attachments before it are yielded first)."""
    if data[:4] != TNEF_SIG or len(data) < 6:
        raise TnefUnreadable("not a TNEF stream")
    pos, names, content = 6, None, None
    while pos < len(data):
        budget.check_time()
        if len(data) - pos < 9:
            raise TnefUnreadable("truncated TNEF record")
        level, ident, length = struct.unpack_from("<BII", data, pos)
        value = data[pos + 9:pos + 9 + length]
        if level not in _TNEF_LEVELS or len(value) < length or pos + 9 + length + 2 > len(data):
            raise TnefUnreadable("malformed TNEF record")
        pos += 9 + length + 2                      # (the checksum is not judged: readers ignore it)
        if level != 2:
            continue
        if ident == _ATT_RENDDATA or names is None:
            if names is not None:
                yield TnefAttachment(tuple(dict.fromkeys(n for n in names if n)), content or b"")
            budget.member()
            names, content = [], None
        if ident == _ATT_TITLE:
            names.append(value.split(b"\0", 1)[0].decode("cp1252", "replace"))
        elif ident == _ATT_DATA:
            content = value
        elif ident == _ATT_MAPI:
            more, obj = _mapi_names(value)
            names += more
            if content is None and obj is not None:
                content = obj
    if names is not None:
        yield TnefAttachment(tuple(dict.fromkeys(n for n in names if n)), content or b"")


def _mapi_names(value: bytes) -> tuple[list[str], bytes | None]:
    """The file names and the data object among an attachment's MAPI properties ([MS-OXTNEF] 2.1.3.4)."""
    names: list[str] = []
    obj = None
    try:
        (count,) = struct.unpack_from("<I", value, 0)
        if count > _MAPI_PROPS_MAX:
            raise TnefUnreadable("too many MAPI properties")
        p = 4
        for _ in range(count):
            ptype, pid = struct.unpack_from("<HH", value, p)
            p += 4
            if pid >= 0x8000:                     # a named property: GUID, kind, id or name
                (kind,) = struct.unpack_from("<I", value, p + 16)
                p += 20
                if kind == 0:
                    p += 4
                else:
                    (n,) = struct.unpack_from("<I", value, p)
                    p += 4 + (n + 3) // 4 * 4
            base, multi = ptype & 0x0FFF, ptype & 0x1000
            values = []
            if base in (_PT_OBJECT, _PT_STRING8, _PT_UNICODE, _PT_BINARY):
                (n,) = struct.unpack_from("<I", value, p)
                p += 4
                for _ in range(min(n, _MAPI_PROPS_MAX)):
                    (size,) = struct.unpack_from("<I", value, p)
                    values.append(value[p + 4:p + 4 + size])
                    p += 4 + (size + 3) // 4 * 4
                if n > _MAPI_PROPS_MAX:
                    raise TnefUnreadable("too many MAPI values")
            elif base in _PT_FIXED:
                n = 1
                if multi:
                    (n,) = struct.unpack_from("<I", value, p)
                    p += 4
                p += n * _PT_FIXED[base]
            else:
                raise TnefUnreadable(f"unknown MAPI property type {ptype:#06x}")
            if p > len(value):
                raise TnefUnreadable("truncated MAPI properties")
            if pid in _PR_NAMES and base in (_PT_STRING8, _PT_UNICODE):
                codec = "utf-16-le" if base == _PT_UNICODE else "cp1252"
                names += [v.decode(codec, "replace").split("\0", 1)[0] for v in values]
            elif pid == _PR_DATA_OBJ and values:
                obj = values[0][16:] if base == _PT_OBJECT else values[0]    # (an object: its IID first)
    except struct.error:
        raise TnefUnreadable("truncated MAPI properties") from None
    return names, obj
