"""spamtest, spamtestplus and virustest (RFC 5235): scores read from message headers
as the settings say (sieve_spamtest_status_header, sieve_spamtest_max_value,
sieve_virustest_status_header, ...).

Tests: conformance extensions/spamvirustest/, tests/sieve/test_differential_fixes_s12.py (values),
tests/sieve/test_pigeonhole_probes_s18.py (values read without a regex, strlen).
"""

from __future__ import annotations

import re

from owlery.lazyre import lazy
from owlery.settings import Str, StrList, choice, setting
from sieve.extensions.base import STRING, CommandDef, Extension, TagDef

SIEVE_SPAMTEST_STATUS_TYPE = setting(
    "sieve_spamtest_status_type", choice("score", "strlen", "text"), "score",
    "How the spamtest header value is read: a number (score), the length of a string of "
    "characters such as '*****' (strlen), or one of sieve_spamtest_text_values (text).")
SIEVE_SPAMTEST_MAX_HEADER = setting(
    "sieve_spamtest_max_header", Str, None,
    "Header and regex (one group) giving the maximum score per message, as \"Name:regex\"; "
    "when unset sieve_spamtest_max_value is used.")
SIEVE_SPAMTEST_TEXT_VALUES = setting(
    "sieve_spamtest_text_values", StrList, [],
    "For status type text: texts mapped to values 0..10 in order (empty entries skipped).")
SIEVE_VIRUSTEST_STATUS_TYPE = setting(
    "sieve_virustest_status_type", choice("score", "strlen", "text"), "text",
    "How the virustest header value is read (see sieve_spamtest_status_type).")
SIEVE_VIRUSTEST_MAX_VALUE = setting(
    "sieve_virustest_max_value", Str, "5",
    "Score that maps to virustest 5 for status type score/strlen.")


def _status_values(rt, name: str) -> list[str]:
    """The decoded values of the fields named `name` as Pigeonhole's spamtest and virustest
    read them: white space at the start dropped, at the end kept, so that "5 " is no score,
    "clean " no text and "** " no strlen (each checked with sieve-test)."""
    from sieve.message import decode_2047, unfold
    n = name.lower()
    return [decode_2047(unfold(v).lstrip(" \t")) for k, v in rt.msg.headers if k.lower() == n]


def _header_group(rt, spec: str | None):
    if not spec:
        return None
    name, _, rx = spec.partition(":")
    name = name.strip()
    rx = rx.strip()
    vals = _status_values(rt, name)
    if not vals:
        return None
    if not rx:
        return vals[0]
    try:
        m = re.search(rx, vals[0], re.I | re.S)
    except re.error:
        return None
    if m is None:
        return None
    return m.group(1) if m.groups() else m.group(0)


def _f32(x: float) -> float:
    """x as a C float: Pigeonhole reads and scales scores in single precision."""
    import struct       # here: this module loads with the sieve_* settings, on every delivery
    return struct.unpack("f", struct.pack("f", x))[0]


# A score as Pigeonhole reads one: a sign, at most five digits, a radix point ('.' or ',') and at
# most five digits more. Anything else ("123456", "1.234567", "1e2", "nan") is no score, and the
# test reads "0" (not tested), as sieve-test does; RFC 5235 leaves the header's format to the site.
_DECIMAL = lazy(r"([+-]?)([0-9]{0,5})(?:[.,]([0-9]{0,5}))?")


def _to_float(s: str | None):
    # white space before the number is skipped, after it makes it no number ("5 "), as sieve-test
    m = _DECIMAL.fullmatch(s.lstrip(" \t")) if isinstance(s, str) and s.strip() else None
    if m is None:
        return None
    value = 0.0
    for d in m.group(2):
        value = _f32(_f32(value * 10) + int(d))
    radix = _f32(0.1)
    for d in m.group(3) or "":
        value = _f32(value + _f32(int(d) * radix))
        radix = _f32(radix / 10)
    return -value if m.group(1) == "-" else value


def _scaled(ratio: float, kind: str, percent: bool) -> str:
    """The test's value for a score/maximum ratio (0..1), computed as Pigeonhole computes it: in
    single precision, with 0.001 added before the fraction is cut off, so that 2.9 of 10 is 29
    percent (not 28.999...) and 1.11 of 10 is spamtest 2 (RFC 5235 3.1: 1 + 9 * ratio; 3.2:
    1 + 4 * ratio; spamtestplus 3.3: 100 * ratio)."""
    ratio = min(max(ratio, 0.0), 1.0)
    if percent:
        return str(int(_f32(ratio * 100) + 0.001))
    return str(int(_f32(ratio * (4 if kind == "virus" else 9)) + 1.001))


def score(rt, kind: str, percent: bool) -> str:
    st = rt.settings
    if kind == "spam":
        spec, stype, maxv, texts = (st.sieve_spamtest_status_header, st.sieve_spamtest_status_type,
                                    st.sieve_spamtest_max_value, st.sieve_spamtest_text_values)
    else:
        spec, stype, maxv, texts = (st.sieve_virustest_status_header, st.sieve_virustest_status_type,
                                    st.sieve_virustest_max_value, st.sieve_virustest_text_values)
    val = _header_group(rt, spec)
    if val is None:
        return "0"
    if stype == "text":
        for i, t in enumerate(texts):
            if t and t.strip().lower() == val.lstrip(" \t").lower():
                # the text's value (spamtest 0..10, virustest 1..5) over the top one
                lvl = i + (0 if kind == "spam" else 1)
                return _scaled(_f32(lvl / (10 if kind == "spam" else 5)), kind, percent)
        return "0"
    if stype == "strlen":
        # a string of one character repeated, octet for octet (as Pigeonhole): "ab" or "é"
        # is no such string, and reads "0" (not tested)
        if val and (not val.isascii() or val.count(val[0]) != len(val)):
            return "0"
        raw = float(len(val))
    else:
        raw = _to_float(val)
        if raw is None:
            return "0"
    mx = None
    if kind == "spam" and st.sieve_spamtest_max_header:
        g = _header_group(rt, st.sieve_spamtest_max_header)
        mx = _to_float(g) if g is not None else None
    if mx is None:
        mx = _to_float(maxv) or 10.0
    if mx <= 0:
        return "0"
    if raw < 0:
        ratio = 0.0
    elif raw > mx:
        ratio = 1.0
    else:
        ratio = _f32(raw / mx)
    return _scaled(ratio, kind, percent)


def _run_spam(rt, node):
    return rt.match(node, [score(rt, "spam", bool(node.tags.get("percent")))], rt.sl(node.pos[0]))


def _run_virus(rt, node):
    return rt.match(node, [score(rt, "virus", False)], rt.sl(node.pos[0]))


def _validate_percent(v, node):
    if node.tags.get("percent") and "spamtestplus" not in v.required:
        v.error(node, f"the {node.name} test only accepts the :percent argument when the spamtestplus "
                      "extension is active")


def _percent_first(v, node, args) -> bool:
    """:percent without spamtestplus, reported as the tag is read (before the positional
    count), as Pigeonhole does (CommandDef.arguments_first)."""
    from sieve.parser import Tag
    if "spamtestplus" not in v.required and any(isinstance(a, Tag) and a.name == "percent" for a in args):
        node.tags["percent"] = True
        _validate_percent(v, node)
        return True
    return False


EXTENSIONS = (
    Extension(name="spamtest", commands=(CommandDef("spamtest", arg_names=("value",), kind="test", positional=(STRING,), match=True,
                                                    tags=(TagDef("percent"),), validate=_validate_percent,
                                                    arguments_first=_percent_first,
                                                    run=_run_spam),)),
    # (RFC 5235 3.2: spamtestplus includes spamtest; sievec warns when both are required)
    Extension(name="spamtestplus", implies=("spamtest",), not_with=("spamtest",)),
    Extension(name="virustest", commands=(CommandDef("virustest", arg_names=("value",), kind="test", positional=(STRING,),
                                                     match=True, run=_run_virus),)),
)
