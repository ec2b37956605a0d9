"""encoded-character (RFC 5228 2.4.2.4): ${hex:..} and ${unicode:..} in strings,
decoded once at compile time.

Tests: conformance extensions/encoded-character.svtest; tests/sieve/test_differential_fixes_s13b.py
(octets of several encodings joined); tests/sieve/test_pigeonhole_probes_s18d.py (leading
zeros).
"""

from __future__ import annotations

import re

from sieve.extensions.base import Extension

# the body stops at '$' and '{' too: in "${hex:4${hex:30}}" only the inner one is an
# encoding, and decoding is one pass (its result "${hex:40}" stays literal)
_ENC = re.compile(r"\$\{(hex|unicode):([^${}]*)\}", re.IGNORECASE)


def decode(v, s) -> str:
    text = s.value
    if "${" not in text:
        return text

    def one(m: re.Match) -> str:
        kind, body = m.group(1).lower(), m.group(2)
        if v.arguments_failed:
            return m.group(0)       # (one error per command)
        items = body.split()
        if not items:
            return m.group(0)
        if kind == "hex":
            if not all(re.fullmatch(r"[0-9a-fA-F]{1,2}", x) for x in items):
                return m.group(0)
            return bytes(int(x, 16) for x in items).decode("utf-8", "surrogateescape")
        if not all(re.fullmatch(r"[0-9a-fA-F]+", x) for x in items):
            return m.group(0)
        out = []
        for x in items:
            # unicode-hex is 1*HEXDIG: leading zeros are allowed in any number ("0000000041"
            # is "A"); the value, not the digit count, must be in range
            cp = int(x, 16)
            if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                v.error(s, f"invalid unicode character 0x{cp:08x} in encoded character substitution")
                v.arguments_failed = True    # the command's arguments failed (validator)
                return m.group(0)
            out.append(chr(cp))
        return "".join(out)
    out = _ENC.sub(one, text)
    # the octets of the whole string make its characters (RFC 5228 2.4.2.4 replaces an
    # encoding by its octets): "${hex:C3}${hex:A9}" is "\u00e9", as in Pigeonhole
    try:
        return out.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return out


def _prepare(v, s) -> None:
    s.value = decode(v, s)


EXTENSION = Extension(name="encoded-character", prepare_string=_prepare)
