"""Comparators (RFC 4790: i;octet, i;ascii-casemap, i;ascii-numeric; RFC 5051: i;unicode-casemap) and match types
(:is, :contains, :matches, :count/:value of RFC 5231, :regex) with match variables.

:matches uses a linear segment matcher (no backtracking regex); with i;octet and
i;ascii-casemap it works on octets (RFC 5228 2.7.1: '?' takes one octet). :regex runs POSIX ERE on
RE2 (sieve.extensions.regex), linear in the text whatever the pattern, compiling each key
once (constants at validation) and charging compilation and matching to the CPU budget.
i;unicode-casemap (RFC 5051 2) compares the canonical forms: each character replaced by its
simple titlecase mapping, then the string in NFKD; equality, substring and ordering (by the
UTF-8 octets of the canonical forms) work on them; :matches works on the canonical form
composed again (NFC), so that '?' takes an accented letter whole; its match values are the
original text the spans cover.
Both look at a bounded prefix of each value (sieve_max_match_subject). Every comparison
costs CPU steps. Used by sieve.interpreter and the extensions' tests.
Tests: conformance (match-types, comparators, relational, regex),
tests/sieve/test_regex_safety.py, tests/sieve/test_limits.py and
tests/sieve/test_pigeonhole_probes_s18b.py (octets).
"""

from __future__ import annotations

from _bisect import bisect_left, bisect_right   # = bisect's, without bisect.py (LDA start-up)
import unicodedata

from sieve.errors import SieveRuntimeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sieve.extensions.regex import Regex

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_LOWER = str.maketrans(_UPPER, _UPPER.lower())

COMPARATORS = ("i;octet", "i;ascii-casemap", "i;ascii-numeric", "i;unicode-casemap")
UNICODE = "i;unicode-casemap"
REL_OPS = ("gt", "ge", "lt", "le", "eq", "ne")


def ascii_lower(s: str) -> str:
    return s.translate(_ASCII_LOWER)


_TITLE_CACHE: dict[str, str] = {}


def _title_char(c: str) -> str:
    """RFC 5051 2 step 1: the simple titlecase mapping (UnicodeData.txt), or the character
    itself. Python's str.title() gives the full mapping (SpecialCasing.txt); where that is
    more than one character the simple mapping is the character itself (U+00DF, ligatures,
    U+0149), so such a result is not taken."""
    t = _TITLE_CACHE.get(c)
    if t is None:
        t = c.title()
        if len(t) != 1:
            t = c
        if len(_TITLE_CACHE) < 65536:
            _TITLE_CACHE[c] = t
    return t


def unicode_fold(s: str) -> str:
    """The RFC 5051 canonical form: titlecase each character, then NFKD. Text that is already
    ASCII needs no normalisation (NFKD leaves ASCII alone)."""
    t = "".join(_title_char(c) for c in s)
    return t if t.isascii() else unicodedata.normalize("NFKD", t)


def unicode_fold_map(s: str) -> tuple[str, list[int] | None]:
    """The canonical form for :matches, composed again (NFC of the NFKD form, which is equal
    for two strings exactly when their NFKD forms are) so that '?' takes an accented letter
    whole, with, for each character of s, where its form starts (plus the total length last).
    Each base character is normalised with the combining marks after it; when that differs
    from normalising the whole (composition across such runs, e.g. Hangul jamo), the map is
    None and match values are taken from the canonical text."""
    clusters: list[str] = []
    for c in s:
        if clusters and unicodedata.combining(c):
            clusters[-1] += c
        else:
            clusters.append(c)
    starts = []
    parts = []
    pos = 0
    for cl in clusters:
        p = unicodedata.normalize("NFC", unicode_fold(cl))
        parts.append(p)
        starts.append(pos)
        starts.extend([pos + len(p)] * (len(cl) - 1))   # marks belong to their base
        pos += len(p)
    starts.append(pos)
    folded = "".join(parts)
    whole = unicodedata.normalize("NFC", unicode_fold(s))
    if folded != whole:
        return whole, None
    return folded, starts


def numeric_key(s: str):
    """i;ascii-numeric: the leading digits as a number; no leading digit = +infinity."""
    i = 0
    n = len(s)
    while i < n and "0" <= s[i] <= "9":
        i += 1
    if i == 0:
        return None
    return int(s[:i].lstrip("0") or "0") if i < 4300 else int(s[:4000])


def _num_cmp(a: str, b: str) -> int:
    ka, kb = numeric_key(a), numeric_key(b)
    if ka is None and kb is None:
        return 0
    if ka is None:
        return 1
    if kb is None:
        return -1
    return (ka > kb) - (ka < kb)


def compare(comparator: str, a: str, b: str) -> int:
    """Ordering of a and b under the comparator (-1, 0, 1)."""
    if comparator == "i;ascii-numeric":
        return _num_cmp(a, b)
    if comparator == "i;ascii-casemap":
        a, b = ascii_lower(a), ascii_lower(b)
    else:
        if comparator == UNICODE:
            a, b = unicode_fold(a), unicode_fold(b)
        # i;octet orders by UTF-8 octets; surrogate-escaped bytes keep their byte value.
        a = a.encode("utf-8", "surrogateescape")
        b = b.encode("utf-8", "surrogateescape")
    return (a > b) - (a < b)


def rel_ok(op: str, c: int) -> bool:
    return {"gt": c > 0, "ge": c >= 0, "lt": c < 0, "le": c <= 0, "eq": c == 0, "ne": c != 0}[op]


def _fold(comparator: str, s: str) -> str:
    if comparator == "i;ascii-casemap":
        return ascii_lower(s)
    if comparator == UNICODE:
        return unicode_fold(s)
    return s


# --- :matches ------------------------------------------------------------------------

def compile_glob(key: str):
    """Pattern -> list of tokens: str literal chunks, '?' and '*' markers."""
    toks: list = []
    lit: list[str] = []
    i, n = 0, len(key)
    while i < n:
        c = key[i]
        if c == "\\" and i + 1 < n:
            lit.append(key[i + 1])
            i += 2
            continue
        if c == "\\":
            lit.append(c)           # a trailing lone backslash stands for itself
            i += 1
            continue
        if c in "*?":
            if lit:
                toks.append("".join(lit))
                lit = []
            toks.append(_STAR if c == "*" else _QMARK)
        else:
            lit.append(c)
        i += 1
    if lit:
        toks.append("".join(lit))
    return toks


class _Marker:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


_STAR = _Marker("*")
_QMARK = _Marker("?")


def _seg_match_at(seg: list, s: str, pos: int) -> bool:
    """Does the star-free segment (literals and ?) match s at pos?"""
    for t in seg:
        if t is _QMARK:
            if pos >= len(s):
                return False
            pos += 1
        else:
            if not s.startswith(t, pos):
                return False
            pos += len(t)
    return True


def _seg_len(seg: list) -> int:
    return sum(1 if t is _QMARK else len(t) for t in seg)


def glob_match(toks: list, s: str, want_groups: bool, budget) -> list | None:
    """Match s against glob tokens; None if no match, else the match values
    ([whole, wildcard1, wildcard2, ...]) when want_groups, [] otherwise.

    Each '*' takes as little as possible except the last, which takes the rest before
    the final segment (RFC 5229 3.2 leaves the choice to the implementation; this one
    is linear in len(s) * len(pattern)). budget(n) charges CPU steps."""
    segs = _segments(toks)
    groups: list[str] = [s]
    n = len(s)

    def qgroups(seg, start):
        """The characters each '?' of `seg`, matched at `start`, took: onto `groups`."""
        p = start
        for t in seg:
            if t is _QMARK:
                groups.append(s[p])
                p += 1
            else:
                p += len(t)

    if len(segs) == 1:
        seg = segs[0]
        if _seg_len(seg) != n or not _seg_match_at(seg, s, 0):
            return None
        if want_groups:
            qgroups(seg, 0)
        return groups if want_groups else []
    first, last, middle = segs[0], segs[-1], segs[1:-1]
    flen, llen = _seg_len(first), _seg_len(last)
    if flen + llen > n:
        return None
    if not _seg_match_at(first, s, 0):
        return None
    if not _seg_match_at(last, s, n - llen):
        return None
    spans: list[tuple[int, int]] = []   # (start,end) of each middle segment
    pos = flen
    limit = n - llen
    for seg in middle:
        sl = _seg_len(seg)
        found = -1
        # leftmost occurrence
        if seg and not any(t is _QMARK for t in seg) and len(seg) == 1:
            budget(max(1, (limit - pos) // 64))
            k = s.find(seg[0], pos, limit)
            found = k
        else:
            p = pos
            while p + sl <= limit:
                budget(1)
                if _seg_match_at(seg, s, p):
                    found = p
                    break
                p += 1
        if found < 0:
            return None
        spans.append((found, found + sl))
        pos = found + sl
    if not want_groups:
        return []
    qgroups(first, 0)
    prev_end = flen
    for seg, (a, b) in zip(middle, spans):
        groups.append(s[prev_end:a])
        qgroups(seg, a)
        prev_end = b
    groups.append(s[prev_end:n - llen])
    qgroups(last, n - llen)
    return groups


# --- :regex --------------------------------------------------------------------------
# The engine (POSIX ERE on RE2, linear time) is sieve.extensions.regex; the validator
# compiles constant keys through compile_regex (re-exported here, loaded on first use: a
# script without :regex does not pay for the module), do_match the others.
_FROM_REGEX = ("COMPILE_STEPS", "Regex", "RegexError", "compile_regex", "encode", "runtime_key_error")


def __getattr__(name: str):
    if name in _FROM_REGEX:
        from sieve.extensions import regex
        return getattr(regex, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _regex_key(rt, spec: dict, keys: list[str], compiled: list, idx: int):
    """The compiled key idx (the validator's for a constant; else compiled now, charged to
    the CPU budget), or False when it is not a usable regex (reported, matches nothing)."""
    rx = compiled[idx]
    if rx is not None:
        return rx
    from sieve.extensions.regex import COMPILE_STEPS, RegexError, compile_regex, runtime_key_error
    cache = spec.get("regex_cache")
    if cache is not None and idx < len(cache) and cache[idx] is not None:
        rx = cache[idx]
    else:
        k = keys[idx]
        rt.step(COMPILE_STEPS + len(k))
        try:
            rx = compile_regex(k, spec["cmp"], rt.settings.sieve_max_regex_length,
                               rt.settings.sieve_max_regex_memory)
        except RegexError as e:
            runtime_key_error(rt, k, e)
            rx = False
        else:
            rt.step(rx.program_size)
    compiled[idx] = rx
    return rx


def _regex_match(rt, spec: dict, values, keys: list[str], want_groups: bool) -> bool:
    """:regex: does any value match any key (values outer, keys inner, first match wins)?
    Each key is compiled at most once per test; each match is charged before it runs."""
    from sieve.extensions.regex import encode
    compiled: list[Regex | bool | None] = [None] * len(keys)
    for v in values:
        data = None
        for idx, k in enumerate(keys):
            rt.step(1 + (len(v) + len(k)) // 256)
            rx = _regex_key(rt, spec, keys, compiled, idx)
            if rx is False:
                continue
            if data is None:
                data = encode(v[: rt.max_match_subject])
            rt.step(rx.cost(len(data)))
            groups = rx.search_bytes(data, want_groups)
            if groups is not None:
                if want_groups:
                    rt.set_match_values(groups)
                return True
    return False


# --- the match engine -------------------------------------------------------------------

def check_match_spec(comparator: str, match_type: str) -> str | None:
    """An error text when the comparator cannot do the match type (RFC 4790/5228)."""
    if comparator == "i;ascii-numeric" and match_type in ("contains", "matches", "regex"):
        return (f"the specified {match_type} match type is incompatible with the "
                f"{comparator} comparator" if match_type != "regex" else
                "regex match type only supports i;octet and i;ascii-casemap comparators")
    if comparator == UNICODE and match_type == "regex":
        # the regex draft defines :regex for i;octet and i;ascii-casemap only
        return "regex match type only supports i;octet and i;ascii-casemap comparators"
    return None


def do_match(rt, spec: dict, values, keys: list[str], key_strs=None) -> bool:
    """Does any value match any key? Sets match variables for :matches/:regex.

    spec: {"cmp": comparator, "mt": match type, "rel": relational op or None,
    "regex_cache": [compiled constant keys or None]} as prepared by the validator."""
    cmp_ = spec["cmp"]
    mt = spec["mt"]
    if mt == "count":
        vals = [v for v in values]
        count = str(len(vals))
        rt.step(1)
        for k in keys:
            if rel_ok(spec["rel"], compare("i;ascii-numeric" if cmp_ == "i;ascii-numeric" else cmp_,
                                           count, k) if cmp_ == "i;ascii-numeric" else
                      compare(cmp_, count, k)):
                return True
        return False
    want_groups = rt.match_vars_enabled and mt in ("matches", "regex") and not spec.get("no_vars")
    if mt == "regex":
        return _regex_match(rt, spec, values, keys, want_groups)
    for v in values:
        for k in keys:
            rt.step(1 + (len(v) + len(k)) // 256)
            if mt == "is":
                if cmp_ == "i;ascii-numeric":
                    ok = _num_cmp(v, k) == 0
                else:
                    ok = _fold(cmp_, v) == _fold(cmp_, k)
                if ok:
                    return True
            elif mt == "contains":
                if _fold(cmp_, k) in _fold(cmp_, v):
                    return True
            elif mt == "value":
                if rel_ok(spec["rel"], compare(cmp_, v, k)):
                    return True
            elif mt == "matches" and cmp_ == UNICODE:
                v2 = v[: rt.max_match_subject]
                toks = compile_glob(unicodedata.normalize("NFC", unicode_fold(k)))
                folded, starts = unicode_fold_map(v2)
                rt.step(1 + len(folded) // 256)
                g = glob_match(toks, folded, want_groups, rt.step)
                if g is not None:
                    if want_groups:
                        rt.set_match_values([v2] + [_unfolded(v2, starts, a, b) if starts is not None else folded[a:b]
                                                    for a, b in _group_spans(g, toks)])
                    return True
            elif mt == "matches":
                v2 = v[: rt.max_match_subject]
                octets = not (v2.isascii() and k.isascii())
                if octets:
                    # RFC 5228 2.7.1: i;octet and i;ascii-casemap define a character to be one
                    # octet, so '?' takes exactly one octet of the UTF-8 text: match on the
                    # octets (one code point each), the match values decoded back
                    v2, k = _as_octets(v2), _as_octets(k)
                toks = compile_glob(_fold(cmp_, k))
                g = glob_match(toks, _fold(cmp_, v2), want_groups, rt.step)
                if g is not None:
                    if want_groups:
                        # map folded positions back to the original text (same length)
                        g = _regroup(v2, g, toks)
                        rt.set_match_values([_from_octets(x) for x in g] if octets else g)
                    return True
            else:
                raise SieveRuntimeError(f"unknown match type {mt}")
    return False


def _as_octets(s: str) -> str:
    """The UTF-8 octets of s (undecodable bytes as they came) as one code point each."""
    return s.encode("utf-8", "surrogateescape").decode("latin-1")


def _from_octets(s: str) -> str:
    """_as_octets undone: a span that cuts a UTF-8 sequence keeps its bytes undecoded."""
    return s.encode("latin-1").decode("utf-8", "surrogateescape")


def _unfolded(orig: str, starts: list[int], a: int, b: int) -> str:
    """The original text behind the canonical span [a, b) (unicode_fold_map offsets): from the
    character whose form holds a to the one whose form holds b - 1."""
    i = bisect_right(starts, a) - 1
    j = bisect_left(starts, b) if b > a else i
    return orig[max(i, 0):max(j, i, 0)]


def _segments(toks) -> list[list]:
    """The tokens of a glob pattern split into the segments between its stars."""
    segs: list[list] = [[]]
    for t in toks:
        if t is _STAR:
            segs.append([])
        else:
            segs[-1].append(t)
    return segs


def _group_spans(groups: list[str], toks) -> list[tuple[int, int]]:
    """The (start, end) of each match value after the whole, in the text glob_match saw."""
    spans = []
    segs = _segments(toks)
    pos = 0
    gi = 1
    for si, seg in enumerate(segs):
        if si > 0:
            ln = len(groups[gi])
            spans.append((pos, pos + ln))
            pos += ln
            gi += 1
        for t in seg:
            if t is _QMARK:
                spans.append((pos, pos + 1))
                pos += 1
                gi += 1
            else:
                pos += len(t)
    return spans


def _regroup(orig: str, groups: list[str], toks) -> list[str]:
    """glob_match ran on folded text of the same length; the same spans of the original."""
    if orig == groups[0]:
        return groups
    return [orig] + [orig[a:b] for a, b in _group_spans(groups, toks)]
