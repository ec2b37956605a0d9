"""date and currentdate (RFC 5260): date parts of a header's date or of `now`, with
:zone / :originalzone.

Tests: conformance extensions/date/, tests/sieve/test_differential_fixes_s11.py,
tests/sieve/test_differential_fixes_s12.py (years of 2, 3, 4+ digits),
tests/sieve/test_pigeonhole_probes_s18.py (comments, odd forms and zones of a date field),
tests/sieve/test_pigeonhole_probes_s21.py (zones of 24 hours and more).
"""

from __future__ import annotations

import datetime as dt
import re

from owlery.lazylog import get_logger
from sieve.extensions.base import STRING, STRINGLIST, CommandDef, Extension, TagDef

log = get_logger("owlery.sieve")

PARTS = ("year", "month", "day", "date", "julian", "hour", "minute", "second", "time",
         "iso8601", "std11", "zone", "weekday")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# A date as the tests read it: its wall-clock time (naive) and the zone's offset in minutes east
# of UTC. RFC 5322 3.3 zones reach -9959..+9959, past what datetime.timezone holds (under 24
# hours), so the offset is kept beside the time, not in it.
Zoned = tuple[dt.datetime, int]


def _zone_str(offset: int) -> str:
    sign = "+" if offset >= 0 else "-"
    mins = abs(offset)
    return f"{sign}{mins // 60:02d}{mins % 60:02d}"


def parse_zone(z: str) -> int | None:
    """A :zone argument's offset in minutes ("+hhmm" / "-hhmm", RFC 5260 4.1 with RFC 5322
    3.3's zone: hours 00-99, minutes 00-59), None when it is no zone; white space around it
    makes it none, as Pigeonhole reads it."""
    m = re.fullmatch(r"([+-])([0-9]{2})([0-9]{2})", z)
    if not m:
        return None
    h, mi = int(m.group(2)), int(m.group(3))
    if mi > 59:
        return None
    return -(h * 60 + mi) if m.group(1) == "-" else h * 60 + mi


def at_zone(d: Zoned, offset: int) -> Zoned:
    """The same instant as `d`, on the wall clock of the zone `offset` minutes east of UTC."""
    local, own = d
    return local + dt.timedelta(minutes=offset - own), offset


def from_aware(d: dt.datetime) -> Zoned:
    """A datetime (`now`; naive is UTC) as a Zoned date."""
    off = d.utcoffset() or dt.timedelta(0)
    return d.replace(tzinfo=None), int(off.total_seconds() // 60)


def date_part(zoned: Zoned, part: str) -> str | None:
    d, offset = zoned
    if part == "year":
        return f"{d.year:04d}"
    if part == "month":
        return f"{d.month:02d}"
    if part == "day":
        return f"{d.day:02d}"
    if part == "date":
        return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"
    if part == "julian":
        mjd = (d.date() - dt.date(1858, 11, 17)).days
        return str(mjd)
    if part == "hour":
        return f"{d.hour:02d}"
    if part == "minute":
        return f"{d.minute:02d}"
    if part == "second":
        return f"{d.second:02d}"
    if part == "time":
        return f"{d.hour:02d}:{d.minute:02d}:{d.second:02d}"
    if part == "iso8601":
        z = _zone_str(offset)
        # RFC 3339 5.6 (the format RFC 5260 4.2 names) writes a zero offset "Z" or "+00:00";
        # "Z", as sieve-test does, so `:matches "*Z"` works on both engines
        return d.strftime("%Y-%m-%dT%H:%M:%S") + ("Z" if z == "+0000" else z[:3] + ":" + z[3:])
    if part == "std11":
        return (f"{_DAYS[d.weekday()]}, {d.day:02d} {_MONTHS[d.month - 1]} {d.year:04d} "
                f"{d.hour:02d}:{d.minute:02d}:{d.second:02d} {_zone_str(offset)}")
    if part == "zone":
        return _zone_str(offset)
    if part == "weekday":
        return str((d.weekday() + 1) % 7)
    return None


def _year(written: str) -> int | None:
    """RFC 5322 3.3 and 4.3: a year has four digits or more (taken as written), or, obsolete,
    two (00-49 are 2000-2049, 50-99 are 1950-1999) or three (1900 added); one digit is no year."""
    n = int(written)
    if len(written) == 1:
        return None
    if len(written) == 2:
        return n + (2000 if n < 50 else 1900)
    if len(written) == 3:
        return n + 1900
    return n


# RFC 5322 3.2.3: the characters that end an atom (specials), besides white space
_SPECIALS = frozenset('()<>[]:;@\\,."')
# RFC 5322 4.3 obs-zone's names, in hours (ABNF strings are case-insensitive: RFC 5234 2.3)
_ZONE_NAMES = {"ut": 0, "gmt": 0, "est": -5, "edt": -4, "cst": -6, "cdt": -5, "mst": -7, "mdt": -6,
               "pst": -8, "pdt": -7}
_MONTH_NUMBERS = {m.lower(): i for i, m in enumerate(_MONTHS, 1)}
_END = ("", "")


def _date_tokens(value: str):
    """The atoms ("a", text), specials ("s", char) and quoted strings ("q", text) of a date
    field, then _END for ever; white space and comments skipped (RFC 5322 3.3 and 4.3: CFWS
    may stand around each of the date's parts). A comment that does not end raises
    ValueError when it is reached, as Pigeonhole reads no date then; what follows the zone is
    never read."""
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c in " \t\r\n":
            i += 1
        elif c == "(":
            depth = 0
            while True:
                if i >= n:
                    raise ValueError("unterminated comment")
                c = value[i]
                if c == "\\":
                    i += 1
                elif c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            i += 1
        elif c == '"':
            j = i + 1
            while j < n and value[j] != '"':
                j += 2 if value[j] == "\\" else 1
            yield "q", value[i + 1:j]
            i = j + 1
        elif c in _SPECIALS:
            yield "s", c
            i += 1
        else:
            j = i
            while j < n and value[j] not in _SPECIALS and value[j] not in " \t\r\n":
                j += 1
            yield "a", value[i:j]
            i = j
    while True:
        yield _END


def _digits(tok: tuple[str, str], lo: int, hi: int) -> int | None:
    """The number an atom of lo to hi ASCII digits writes, else None."""
    kind, text = tok
    if kind != "a" or not lo <= len(text) <= hi or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def _zone_minutes(tok: tuple[str, str]) -> int:
    """A zone's offset in minutes: +hhmm / -hhmm (minutes past 59 carried into the hour, as
    Pigeonhole), an obs-zone name; any other atom, a one-letter military zone included, is
    RFC 5322 4.3's unknown zone, -0000."""
    text = tok[1]
    if text[:1] in "+-" and len(text) == 5 and text[1:].isascii() and text[1:].isdigit():
        minutes = int(text[1:3]) * 60 + int(text[3:])
        return -minutes if text[0] == "-" else minutes
    return _ZONE_NAMES.get(text.lower(), 0) * 60


def parse_date(value: str) -> Zoned | None:
    """A date field's date-time (RFC 5322 3.3 with 4.3's obsolete forms), None when it has
    none. Received: fields carry the date after their last ';'."""
    if ";" in value:
        value = value.rsplit(";", 1)[1]
    toks = _date_tokens(value)
    try:
        tok = next(toks)
        after = next(toks)
        if tok[0] == "a" and after == ("s", ","):
            # a day name: three octets (sieve-test does not check which); a longer one
            # ("Monday", "Mön") or a comma alone is no date
            if len(tok[1].encode("utf-8", "surrogateescape")) != 3:
                return None
            tok, after = next(toks), next(toks)
        day = _digits(tok, 1, 2)
        # the month by its first three letters, as sieve-test reads "December" (and "Decem")
        month = _MONTH_NUMBERS.get(after[1][:3].lower()) if after[0] == "a" and len(after[1]) >= 3 else None
        written = next(toks)
        hour = _digits(next(toks), 1, 2)
        if day is None or month is None or hour is None or _digits(written, 1, 9) is None:
            return None
        year = _year(written[1])
        # hh:mm[:ss]; sieve-test takes '.' between them too
        if next(toks) not in (("s", ":"), ("s", ".")):
            return None
        minute = _digits(next(toks), 2, 2)
        second = 0
        tok = next(toks)
        if tok in (("s", ":"), ("s", ".")):
            second = _digits(next(toks), 2, 2)
            tok = next(toks)
        if minute is None or second is None or second > 60 or year is None or year < 1900:
            # RFC 5322 3.3: "any numeric year 1900 or later", a time up to 23:59:60
            return None
        if tok == _END:
            zone = 0                    # no zone: RFC 5322 4.3's -0000
        elif tok[0] == "a":
            zone = _zone_minutes(tok)
            next(toks)                  # a comment right after the zone must end (as sieve-test)
        else:
            return None
        # the leap second reads as :59 (datetime has none), as sieve-test reads it
        return dt.datetime(year, month, day, hour, minute, min(second, 59)), zone
    except (ValueError, OverflowError):
        return None


def _date_part_first(v, node, args) -> bool:
    """An unknown date part is warned about before the key list's type is found wrong, as
    Pigeonhole reads the arguments in turn (CommandDef.arguments_first; never an error)."""
    from sieve.parser import StrList, Tag
    tags = [a for a in args if isinstance(a, Tag)]
    params = sum(1 for a in tags if a.name in ("zone", "comparator", "count", "value", "index"))
    positional = len(args) - len(tags) - params
    if positional == (3 if node.name == "date" else 2) and not node.tests \
            and not any(isinstance(a, Tag) for a in args[-2:]):
        part, key = args[-2:]
        if isinstance(part, StrList) and len(part.items) == 1 and not part.bracketed \
                and not isinstance(key, StrList) and v.is_literal(part) \
                and part.items[0].value.lower() not in PARTS:
            v.warning(part, f"specified date part `{part.items[0].value}' is not known")
    return False


def _validate(v, node):
    if node.name == "date":
        from sieve.extensions.core import warn_header_names
        warn_header_names(v, node.pos[0])
    if node.pos and v.is_literal(node.pos[-2]):
        part = node.pos[-2].items[0].value.lower()
        if part not in PARTS:
            # RFC 5260 4.2 lists the date-parts and gives no others a meaning, nor makes one an
            # error: a warning, and the test is false at run time (as Pigeonhole)
            v.warning(node.pos[-2], f"specified date part `{node.pos[-2].items[0].value}' is not known")
    z = node.tags.get("zone")
    if z is not None and not isinstance(z, (bool, str)) and v.is_literal(z):
        if parse_zone(z.items[0].value) is None:
            v.warning(z, f"specified :zone argument '{z.items[0].value}' is not a valid timezone")


def _convert(rt, node, d: Zoned) -> Zoned:
    z = node.tags.get("zone")
    if z == "originalzone":
        return d
    if z is not None and not isinstance(z, (bool, str)):
        # an invalid zone (warned about at compile time) reads as +0000, as Pigeonhole
        return at_zone(d, _zone_or_utc(rt.s(z)))
    # no :zone: the local zone (RFC 5260 4.3), that of `now`, with its rules for the date's instant
    # (a summer date in summer time when `now` carries a zone with rules)
    local, own = d
    instant = (local - dt.timedelta(minutes=own)).replace(tzinfo=dt.timezone.utc)
    return from_aware(instant.astimezone(rt.now.tzinfo or dt.timezone.utc))


def _zone_or_utc(z: str) -> int:
    offset = parse_zone(z)
    return 0 if offset is None else offset


def _unknown_part(rt, part: str) -> bool:
    """An unknown date-part (one built at run time, or warned about at compile time) makes
    the test false whatever the match type: `:count "eq" "0"` must not match (as Pigeonhole)."""
    from sieve.outgoing import loggable
    log.info("sieve: date: specified date part argument '%s' is not known", loggable(part))
    return False


def _run_date(rt, node):
    from sieve.extensions.index import select_index
    header = rt.s(node.pos[0])
    part = rt.s(node.pos[1]).lower()
    if part not in PARTS:
        return _unknown_part(rt, part)
    # "the date test can only be applied to a single header field at a time": of repeated
    # fields only the first (or the one :index picks) is read, even when its date is invalid
    # (RFC 5260 4)
    vals = select_index(rt, node, rt.msg.header_values(header))[:1]
    out = []
    for v in vals:
        d = parse_date(v)
        if d is None:
            continue
        try:
            p = date_part(_convert(rt, node, d), part)
        except OverflowError:
            # a zone moves the date past year 9999 or before year 1: no date-part
            continue
        if p is not None:
            out.append(p)
    return rt.match(node, out, rt.sl(node.pos[2]))


def _run_currentdate(rt, node):
    part = rt.s(node.pos[0]).lower()
    if part not in PARTS:
        return _unknown_part(rt, part)
    d = from_aware(rt.now)
    z = node.tags.get("zone")
    if z is not None and not isinstance(z, bool):
        d = at_zone(d, _zone_or_utc(rt.s(z)))
    p = date_part(d, part)
    return rt.match(node, [] if p is None else [p], rt.sl(node.pos[1]))


EXTENSION = Extension(
    name="date",
    commands=(
        CommandDef("date", arg_names=("header name", "date part", "key list"), kind="test", positional=(STRING, STRING, STRINGLIST), match=True,
                   tags=(TagDef("zone", STRING, group="zone"), TagDef("originalzone", group="zone")),
                   validate=_validate, run=_run_date, arguments_first=_date_part_first),
        CommandDef("currentdate", arg_names=("date part", "key list"), kind="test", positional=(STRING, STRINGLIST), match=True,
                   tags=(TagDef("zone", STRING, group="zone"),), validate=_validate, run=_run_currentdate,
                   arguments_first=_date_part_first),
    ),
)
