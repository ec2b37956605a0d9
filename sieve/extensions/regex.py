"""regex (draft-ietf-sieve-regex): the :regex match type and the :quoteregex modifier of
`set`, run by RE2 (google-re2), whose time is linear in the text whatever the pattern.

A key is a POSIX extended regular expression (IEEE 1003.1 section 9.4). This module
translates it to RE2 syntax itself (RE2's own POSIX mode differs: backslash in brackets,
`a+?` as lazy, an unmatched `)`), and compiles it with leftmost-longest matching, `.` and
negated sets matching newline, `^`/`$` at the ends of the value only (no REG_NEWLINE).
i;ascii-casemap folds ASCII letters only (RFC 4790 9.2): letters are spelt in both cases
in the translated pattern, since RE2's own case folding is Unicode's (k would match the
Kelvin sign). Supported besides ERE, like glibc's regcomp that Pigeonhole uses: \\w \\W \\s \\S \\b \\B,
\\` and \\' (ends of the value), stacked repeats (`a**`, `a+?` repeat the repeat). Refused:
back-references (RE2 cannot run them; they are not ERE either), \\< \\>, counts over 1000.
Submatches follow RE2's rule for the overall leftmost-longest match, which can differ from
POSIX's subexpression rule in rare ambiguous cases (`(a|ab)(c|bcd)` on "abcd").

Bounds: the pattern length (sieve_max_regex_length) and RE2's memory for one pattern
(sieve_max_regex_memory: the compiled program and its DFA cache; a bigger program is an
error). A pattern that is invalid or too large is a compile error when it is a constant;
one built at run time from variables matches nothing and is reported in the Result's
errors and logged, and the run goes on (what Pigeonhole does). Compiling at run time costs
CPU steps in proportion to the program, and every match costs steps in proportion to
text length times program size (RE2's worst case), charged before it runs.
Used by sieve.match (do_match) and sieve.validator (`_compile_keys`, the match type's check).
Tests: tests/sieve/test_regex_safety.py; tests/sieve/test_limits.py; conformance
extensions/regex/.
"""

from __future__ import annotations


from owlery.lazylog import get_logger
from sieve.extensions.base import Extension, MatchTypeDef, TagDef
from sieve.parser import StrList


def _compile_keys(v, node, comparator: str) -> None:
    """Compiles the constant keys once, while validating (a bad one is a compile error, the
    first one only: the test is wrong, as Pigeonhole reports it); keys with variables are
    compiled at run time (sieve.match)."""
    if not node.pos:
        return
    keys = node.pos[-1]
    if not isinstance(keys, StrList):
        return
    cache = []
    for k in keys.items:
        if k.parts is not None:
            cache.append(None)      # compiled at run time
            continue
        try:
            cache.append(compile_regex(k.value, comparator, v.settings.sieve_max_regex_length,
                                       v.settings.sieve_max_regex_memory))
        except RegexError as e:
            v.error(k, f"invalid regular expression '{k.value}' for regex match: {e}")
            return
    node.data["regex_cache"] = cache


EXTENSION = Extension(
    name="regex",
    match_types=(MatchTypeDef("regex", check=_compile_keys),),
    extra_tags=(("set", TagDef("quoteregex", key="mod:quoteregex")),),
)

log = get_logger("owlery.sieve")

MAX_REPEAT = 1000                # RE2's largest repetition count (and glibc's is 32767)
MIN_MEMORY = 16 * 1024           # RE2 reads a budget of 0 or 1 byte as "no limit"
COMPILE_STEPS = 20               # CPU steps of one run-time compilation, plus one per instruction
MATCH_UNITS_PER_STEP = 128       # text bytes x program instructions per CPU step (~1 us of RE2)


class RegexError(ValueError):
    """The pattern is not a regular expression this engine runs."""


class RegexRefused(RegexError):
    """The pattern is valid but over a resource bound (length, program size, counts)."""


# --- POSIX ERE -> RE2 ----------------------------------------------------------------------

_CLASSES: dict[str, tuple[tuple[int, int], ...]] = {
    "alpha": ((0x41, 0x5A), (0x61, 0x7A)),
    "digit": ((0x30, 0x39),),
    "alnum": ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)),
    "upper": ((0x41, 0x5A),),
    "lower": ((0x61, 0x7A),),
    "space": ((0x09, 0x0D), (0x20, 0x20)),
    "blank": ((0x09, 0x09), (0x20, 0x20)),
    "punct": ((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)),
    "xdigit": ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)),
    "cntrl": ((0x00, 0x1F), (0x7F, 0x7F)),
    "print": ((0x20, 0x7E),),
    "graph": ((0x21, 0x7E),),
}
_WORD = ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))
_ESCAPED_SETS = {"w": (_WORD, False), "W": (_WORD, True),
                 "s": (_CLASSES["space"], False), "S": (_CLASSES["space"], True)}
_ESCAPED_ASSERTIONS = {"b": r"\b", "B": r"\B", "`": r"\A", "'": r"\z"}


def _char(cp: int) -> str:
    """One code point as RE2 pattern text that means exactly that character."""
    c = chr(cp)
    if c.isascii() and c.isalnum():
        return c
    return "\\x{%x}" % cp


def _fold(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The ranges plus the other case of every ASCII letter in them."""
    out = list(ranges)
    for lo, hi in ranges:
        for a, z, shift in ((0x41, 0x5A, 0x20), (0x61, 0x7A, -0x20)):
            a2, z2 = max(lo, a), min(hi, z)
            if a2 <= z2:
                out.append((a2 + shift, z2 + shift))
    return out


def _set(ranges, negated: bool, icase: bool) -> str:
    ranges = _fold(list(ranges)) if icase else list(ranges)
    body = "".join(_char(lo) if lo == hi else f"{_char(lo)}-{_char(hi)}" for lo, hi in sorted(set(ranges)))
    return f"[{'^' if negated else ''}{body}]"


def _literal(c: str, icase: bool) -> str:
    if icase and c.isascii() and c.isalpha():
        return f"[{c.lower()}{c.upper()}]"
    return _char(ord(c))


def _bracket(p: str, i: int, icase: bool) -> tuple[str, int]:
    """The bracket expression starting at p[i] == '[': (RE2 text, index after it)."""
    n = len(p)
    j = i + 1
    negated = j < n and p[j] == "^"
    if negated:
        j += 1
    ranges: list[tuple[int, int]] = []
    first = True
    prev: int | None = None           # the last single character, a possible range start
    if j >= n:
        raise RegexError("invalid regular expression")     # (glibc's word for a '[' that ends the pattern)
    while True:
        if j >= n:
            raise RegexError(_EBRACK)
        c = p[j]
        if c == "]" and not first:
            j += 1
            break
        first = False
        if p.startswith("[:", j):
            k = p.find(":]", j + 2)
            if k < 0:
                raise RegexError(_EBRACK)
            name = p[j + 2:k]
            if name not in _CLASSES:
                raise RegexError("invalid character class name")
            ranges.extend(_CLASSES[name])
            j = k + 2
            prev = None
            continue
        if p.startswith("[.", j) or p.startswith("[=", j):
            end = p[j + 1] + "]"
            k = p.find(end, j + 2)
            if k < 0:
                raise RegexError(_EBRACK)
            sym = p[j + 2:k]
            if len(sym) != 1:
                raise RegexError("invalid collation character")
            cp = ord(sym)
            j = k + 2
            if end == "=]":             # an equivalence class: the character itself here
                ranges.append((cp, cp))
                prev = None
                continue
        else:
            cp = ord(c)
            j += 1
        if c == "-" and prev is not None and j < n and p[j] != "]":
            # a range: prev - next (next may be a collating symbol)
            if p.startswith("[.", j):
                k = p.find(".]", j + 2)
                if k < 0:
                    raise RegexError(_EBRACK)
                sym = p[j + 2:k]
                if len(sym) != 1:
                    raise RegexError("invalid collation character")
                hi = ord(sym)
                j = k + 2
            elif p.startswith("[:", j) or p.startswith("[=", j):
                raise RegexError("invalid range end")
            else:
                hi = ord(p[j])
                j += 1
            lo = prev
            ranges.pop()
            if hi < lo:
                raise RegexError("invalid range end")
            ranges.append((lo, hi))
            prev = None
            if j < n and p[j] == "-" and j + 1 < n and p[j + 1] != "]":
                raise RegexError("invalid range end")
            continue
        ranges.append((cp, cp))
        prev = cp
    return _set(ranges, negated, icase), j


# glibc's regerror() texts, as Pigeonhole shows them (first letter lowered): sievec's words
_EBRACK = "unmatched [, [^, [:, [., or [="


def _interval(p: str, i: int) -> tuple[str, int]:
    """The interval starting at p[i] == '{': (RE2 text, index after it)."""
    n = len(p)
    j = i + 1
    lo_s = ""
    while j < n and p[j].isdigit():
        lo_s += p[j]
        j += 1
    hi_s: str | None = lo_s
    if j < n and p[j] == ",":
        j += 1
        hi_s = ""
        while j < n and p[j].isdigit():
            hi_s += p[j]
            j += 1
        # "{,n}" is "{0,n}" and "{,}" is "{0,}": POSIX leaves the form undefined, glibc's regcomp
        # (Pigeonhole's) reads it so (tests/sieve/test_pigeonhole_probes_s18d.py)
        lo_s = lo_s or "0"
    if j >= n:
        raise RegexError("unmatched \\{")
    if not lo_s or p[j] != "}":
        raise RegexError("invalid content of \\{\\}")
    lo = int(lo_s)
    hi = int(hi_s) if hi_s else None
    if hi is not None and hi < lo:
        raise RegexError("invalid content of \\{\\}")
    if lo > MAX_REPEAT or (hi is not None and hi > MAX_REPEAT):
        raise RegexRefused(f"repetition count too large (at most {MAX_REPEAT})")
    text = "{%d}" % lo if hi_s == lo_s else ("{%d,}" % lo if hi is None else "{%d,%d}" % (lo, hi))
    return text, j + 1


def translate(pattern: str, icase: bool) -> str:
    """POSIX ERE -> RE2 pattern text with the same capturing groups, or RegexError."""
    out: list[str] = []
    opens: list[int] = []             # index in out of each open group's "("
    atom: int | None = None           # index in out where the last repeatable atom starts
    repeated = False                  # that atom already carries a repeat
    closed = 0                        # groups closed so far
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c in "*+?{":
            if atom is None:
                raise RegexError("invalid preceding regular expression")
            if c == "{":
                q, i = _interval(pattern, i)
            else:
                q, i = c, i + 1
            if repeated:
                # POSIX leaves a repeated repeat undefined; glibc repeats the repeat (RE2
                # would read a+? as lazy and refuse a**)
                out.insert(atom, "(?:")
                out.append(")")
            out.append(q)
            repeated = True
            continue
        repeated = False
        if c == "\\":
            if i + 1 >= n:
                raise RegexError("trailing backslash")
            d = pattern[i + 1]
            i += 2
            if d.isdigit():
                # (glibc refuses one to a group not closed yet: "invalid back reference")
                raise RegexError("back-references are not supported" if 0 < int(d) <= closed
                                 else "invalid back reference")
            if d in "<>":
                raise RegexError(f"\\{d} is not supported (use \\b)")
            if d in _ESCAPED_ASSERTIONS:
                out.append(_ESCAPED_ASSERTIONS[d])
                atom = None
                continue
            atom = len(out)
            if d in _ESCAPED_SETS:
                ranges, negated = _ESCAPED_SETS[d]
                out.append(_set(ranges, negated, False))
            else:
                # an escaped special character stands for itself; so does any other
                # escaped character (glibc: \n is 'n')
                out.append(_literal(d, icase))
            continue
        if c == "[":
            atom = len(out)
            text, i = _bracket(pattern, i, icase)
            out.append(text)
            continue
        i += 1
        if c == "(":
            opens.append(len(out))
            out.append("(")
            atom = None
        elif c == ")" and opens:
            atom = opens.pop()
            closed += 1
            out.append(")")
        elif c == "|":
            out.append("|")
            atom = None
        elif c in "^$":
            out.append(c)
            atom = None
        elif c == ".":
            atom = len(out)
            out.append(".")
        else:                         # an ordinary character (an unmatched ")" among them)
            atom = len(out)
            out.append(_literal(c, icase))
    if opens:
        raise RegexError("unmatched ( or \\(")
    return "".join(out)


# --- compiling and matching -------------------------------------------------------------------

class Regex:
    """A compiled :regex key. `search(text, want_groups)`: None when it does not match,
    else [${0}, ${1}, ...] (unmatched groups "") when want_groups, [] otherwise."""

    __slots__ = ("pattern", "program_size", "_rx")

    def __init__(self, pattern: str, rx):
        self.pattern = pattern
        self._rx = rx
        self.program_size = rx.programsize

    def cost(self, text_bytes: int) -> int:
        """CPU steps one match over text_bytes bytes may take (RE2's NFA worst case)."""
        return 1 + text_bytes * self.program_size // MATCH_UNITS_PER_STEP

    def search_bytes(self, data: bytes, want_groups: bool) -> list[str] | None:
        m = self._rx.search(data)
        if m is None:
            return None
        if not want_groups:
            return []
        return [_text(m.group(0))] + [_text(g) if g is not None else "" for g in m.groups()]

    def search(self, text: str, want_groups: bool) -> list[str] | None:
        return self.search_bytes(encode(text), want_groups)


def encode(text: str) -> bytes:
    """Text as RE2 reads it: UTF-8; lone surrogates (bytes that were not UTF-8) stay one
    character each."""
    return text.encode("utf-8", "surrogatepass")


def _text(b: bytes) -> str:
    return b.decode("utf-8", "surrogatepass")


def compile_regex(pattern: str, comparator: str, max_len: int, max_mem: int = 256 * 1024) -> Regex:
    """Compile a :regex key for the comparator (i;octet or i;ascii-casemap), or RegexError
    (RegexRefused when over a bound)."""
    if len(pattern) > max_len:
        raise RegexRefused(f"regular expression is longer than {max_len} characters "
                           f"(sieve_max_regex_length)")
    text = translate(pattern, comparator == "i;ascii-casemap")
    import re2                        # google-re2; loaded only when a script uses :regex
    options = re2.Options()
    options.max_mem = max(max_mem, MIN_MEMORY)
    options.longest_match = True      # POSIX: the leftmost-longest match
    options.dot_nl = True             # no REG_NEWLINE: . matches a newline too
    options.case_sensitive = True     # i;ascii-casemap is spelt out in the pattern
    options.log_errors = False
    try:
        rx = re2.compile(encode(text), options)
    except re2.error as e:
        why = e.args[0] if e.args else ""
        why = why.decode("utf-8", "replace") if isinstance(why, bytes) else str(why)
        if "too large" in why:
            raise RegexRefused("regular expression too large (sieve_max_regex_memory)") from None
        if "invalid repetition size" in why:
            raise RegexRefused(f"repetition count too large (nested counts multiply; "
                               f"at most {MAX_REPEAT})") from None
        raise RegexError(why) from None
    return Regex(pattern, rx)


def shown(pattern: str) -> str:
    """A pattern as an error message quotes it: at most 128 characters, controls escaped."""
    s = pattern if len(pattern) <= 128 else pattern[:128] + "..."
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for c in s)


def runtime_key_error(rt, pattern: str, err: RegexError) -> None:
    """A key built at run time is not a usable regex: it matches nothing, the run goes on,
    and the error is reported once per run (Result.errors) and logged."""
    msg = f"invalid regular expression '{shown(pattern)}' for regex match: {err}"
    if msg not in rt.errors:
        rt.errors.append(msg)
        log.warning("sieve: %s: %s; the key matches nothing", rt.script.name, msg)
