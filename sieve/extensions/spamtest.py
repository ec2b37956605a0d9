"""spamtest, spamtestplus and virustest (RFC 5235): scores read from message headers
as the settings say (sieve_spamtest_status_header, sieve_spamtest_max_value,
sieve_virustest_status_header, ...).

Tests: conformance extensions/spamvirustest/.
"""

from __future__ import annotations

import re

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


def _header_group(rt, spec: str | None):
    if not spec:
        return None
    name, _, rx = spec.partition(":")
    name = name.strip()
    rx = rx.strip()
    vals = rt.msg.header_values(name)
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


def _to_float(s: str):
    try:
        return float(s.strip())
    except (ValueError, AttributeError):
        return None


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
            if t and t.strip().lower() == val.strip().lower():
                lvl = i + (0 if kind == "spam" else 1)
                if kind == "spam" and percent:
                    return str(round(lvl * 10))
                return str(lvl)
        return "0"
    if stype == "strlen":
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
    ratio = max(0.0, min(1.0, raw / mx))
    if percent:
        return str(int(ratio * 100))
    if kind == "spam":
        return str(1 + int(ratio * 9))
    return str(1 + int(ratio * 4))


def _run_spam(rt, node):
    return rt.match(node, [score(rt, "spam", bool(node.tags.get("percent")))], rt.sl(node.pos[0]))


def _run_virus(rt, node):
    return rt.match(node, [score(rt, "virus", False)], rt.sl(node.pos[0]))


def _validate_percent(v, node):
    if node.tags.get("percent") and "spamtestplus" not in v.required:
        v.error(node, "the :percent tag requires the spamtestplus extension")


EXTENSIONS = (
    Extension(name="spamtest", commands=(CommandDef("spamtest", arg_names=("value",), kind="test", positional=(STRING,), match=True,
                                                    tags=(TagDef("percent"),), validate=_validate_percent,
                                                    run=_run_spam),)),
    Extension(name="spamtestplus", implies=("spamtest",)),
    Extension(name="virustest", commands=(CommandDef("virustest", arg_names=("value",), kind="test", positional=(STRING,),
                                                     match=True, run=_run_virus),)),
)
