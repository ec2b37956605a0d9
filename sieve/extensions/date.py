"""date and currentdate (RFC 5260): date parts of a header's date or of `now`, with
:zone / :originalzone.

Tests: conformance extensions/date/, tests/sieve/test_differential_fixes_s11.py,
tests/sieve/test_differential_fixes_s12.py (years of 2, 3, 4+ digits).
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


def _zone_str(d: dt.datetime) -> str:
    off = d.utcoffset() or dt.timedelta(0)
    mins = int(off.total_seconds() // 60)
    sign = "+" if mins >= 0 else "-"
    mins = abs(mins)
    return f"{sign}{mins // 60:02d}{mins % 60:02d}"


def parse_zone(z: str) -> dt.tzinfo | None:
    m = re.fullmatch(r"([+-])(\d\d)(\d\d)", z.strip())
    if not m:
        return None
    h, mi = int(m.group(2)), int(m.group(3))
    if h > 23 or mi > 59:
        return None
    off = dt.timedelta(hours=h, minutes=mi)
    return dt.timezone(-off if m.group(1) == "-" else off)


def date_part(d: dt.datetime, part: str) -> str | None:
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
        z = _zone_str(d)
        # RFC 3339 5.6 (the format RFC 5260 4.2 names) writes a zero offset "Z" or "+00:00";
        # "Z", as sieve-test does, so `:matches "*Z"` works on both engines
        return d.strftime("%Y-%m-%dT%H:%M:%S") + ("Z" if z == "+0000" else z[:3] + ":" + z[3:])
    if part == "std11":
        return (f"{_DAYS[d.weekday()]}, {d.day:02d} {_MONTHS[d.month - 1]} {d.year:04d} "
                f"{d.hour:02d}:{d.minute:02d}:{d.second:02d} {_zone_str(d)}")
    if part == "zone":
        return _zone_str(d)
    if part == "weekday":
        return str((d.weekday() + 1) % 7)
    return None


# What email.utils.parsedate_tz lets through and RFC 5322 3.3 does not (sieve-test refuses
# these dates too): a day name not of three letters or without its comma, a one-digit
# minute or second.
_BAD_DAY = re.compile(r"\s*(?:mon|tue|wed|thu|fri|sat|sun)(?:[a-z]+|(?>\s*)(?!,))", re.IGNORECASE)
_DAY_SPACE_COMMA = re.compile(r"^((?:mon|tue|wed|thu|fri|sat|sun))[ \t]+,", re.IGNORECASE)
_SHORT_MIN_SEC = re.compile(r"\d:\d(?!\d)|\d:\d\d:\d(?!\d)")
# a numeric zone that is not sign and four digits ("+01"): parsedate_tz reads it as minutes
_ODD_ZONE = re.compile(r"\d:\d\d(?::\d\d)?\s+[+-](?!\d{4}(?!\d))\d+")


# the year as written: the number just before the time of day
_YEAR = re.compile(r"(?<![\d:.])(\d+)[ \t]+\d{1,2}:\d")


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


def _parsedate_year(n: int) -> int:
    """The year email.utils.parsedate_tz makes of the written number n."""
    return n if n >= 100 else n + (1900 if n > 68 else 2000)


def parse_date(value: str) -> dt.datetime | None:
    # Received: headers carry the date after the last ';'
    if ";" in value:
        value = value.rsplit(";", 1)[1]
    # RFC 5322 4.3 (obs-day-of-week): white space may stand before the day name's comma, as
    # sieve-test reads "Thu , 7 Mar"; parsedate_tz does not take it
    value = _DAY_SPACE_COMMA.sub(r"\1,", value.strip(), count=1)
    if _BAD_DAY.match(value) or _SHORT_MIN_SEC.search(value):
        return None
    try:
        import email.utils      # here: it loads a dozen modules, wanted only to read a date field
        t = email.utils.parsedate_tz(value)
    except (TypeError, ValueError, IndexError):
        return None
    if t is None:
        return None
    try:
        year = t[0]
        m = _YEAR.search(value)
        # parsedate_tz adds 1900 or 2000 to any year below 100, however many digits it has
        # ("0049", "049"): read the year from its digits when they are the ones it read
        if m and t[0] == _parsedate_year(int(m.group(1))):
            year = _year(m.group(1))
            if year is None:
                return None
        elif year < 50:
            year += 2000
        elif year < 1000:
            year += 1900
        if year < 1900:
            # RFC 5322 3.3: "any numeric year 1900 or later"
            return None
        off = t[9] if t[9] is not None else 0
        if _ODD_ZONE.search(value):
            # no zone RFC 5322 knows: -0000 (4.3, as for an unknown zone name), as sieve-test
            off = 0
        return dt.datetime(year, t[1], t[2], t[3], t[4], min(t[5], 59),
                           tzinfo=dt.timezone(dt.timedelta(seconds=off)))
    except (ValueError, OverflowError):
        return None


def _validate(v, node):
    if node.pos and v.is_literal(node.pos[-2]):
        part = node.pos[-2].items[0].value.lower()
        if part not in PARTS:
            # RFC 5260 4.2 lists the date-parts and gives no others a meaning, nor makes one an
            # error: a warning, and the test is false at run time (as Pigeonhole)
            v.warning(node.pos[-2], f"specified date part '{node.pos[-2].items[0].value}' is not known")
    z = node.tags.get("zone")
    if z is not None and not isinstance(z, (bool, str)) and v.is_literal(z):
        if parse_zone(z.items[0].value) is None:
            v.warning(z, f"invalid time zone '{z.items[0].value}'")


def _convert(rt, node, d: dt.datetime, original: bool) -> dt.datetime:
    z = node.tags.get("zone")
    if z == "originalzone":
        return d
    if z is not None and not isinstance(z, (bool, str)):
        # an invalid zone (warned about at compile time) reads as +0000, as Pigeonhole
        tz = parse_zone(rt.s(z)) or dt.timezone.utc
        return d.astimezone(tz)
    if original or node.tags.get("zone:tag") == "originalzone" or node.tags.get("zone") == "originalzone":
        return d
    return d.astimezone(_local_zone(rt))


def _local_zone(rt):
    return rt.now.tzinfo or dt.timezone.utc


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
        d = _convert(rt, node, d, False)
        if d is None:
            continue
        p = date_part(d, part)
        if p is not None:
            out.append(p)
    return rt.match(node, out, rt.sl(node.pos[2]))


def _run_currentdate(rt, node):
    part = rt.s(node.pos[0]).lower()
    if part not in PARTS:
        return _unknown_part(rt, part)
    d = rt.now
    z = node.tags.get("zone")
    if z is not None and not isinstance(z, bool):
        d = d.astimezone(parse_zone(rt.s(z)) or dt.timezone.utc)
    p = date_part(d, part)
    return rt.match(node, [] if p is None else [p], rt.sl(node.pos[1]))


EXTENSION = Extension(
    name="date",
    commands=(
        CommandDef("date", arg_names=("header name", "date part", "key list"), kind="test", positional=(STRING, STRING, STRINGLIST), match=True,
                   tags=(TagDef("zone", STRING, group="zone"), TagDef("originalzone", group="zone")),
                   validate=_validate, run=_run_date),
        CommandDef("currentdate", arg_names=("date part", "key list"), kind="test", positional=(STRING, STRINGLIST), match=True,
                   tags=(TagDef("zone", STRING, group="zone"),), validate=_validate, run=_run_currentdate),
    ),
)
