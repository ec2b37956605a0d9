"""envelope (RFC 5228 5.4): match the SMTP envelope (from, to, and Dovecot's auth).

Tests: conformance extensions/envelope.svtest.
"""

from __future__ import annotations

from sieve.address import SieveAddress, AddressError, address_part, parse_path
from sieve.extensions.base import STRINGLIST, CommandDef, Extension

# RFC 5228 5.4: other parts are an error (Pigeonhole 0.5.19 has no "orig_to" part either:
# tests/sieve/test_pigeonhole_probes_s18c.py)
PARTS = ("from", "to", "auth")


def _parts_first(v, node, args) -> bool:
    """The envelope parts before the key list's type, as Pigeonhole checks them
    (CommandDef.arguments_first; shaped as core's address test does it)."""
    from sieve.extensions.core import last_two_positionals
    pos = last_two_positionals(node, args)
    if pos is None:
        return False
    before = v.errors
    node.pos = list(pos)
    _validate(v, node)
    node.pos = []
    return v.errors != before


def _validate(v, node):
    # one error per test, the first part found wrong (as Pigeonhole does): an unknown part,
    # else "auth" (a user name, not an address) under an explicit address part
    if node.pos and v.is_literal(node.pos[0]):
        for s in node.pos[0].items:
            if s.value.lower() not in PARTS:
                v.error(s, f"specified envelope part '{s.value}' is not supported by the envelope test")
                return
        part = node.tags.get("address-part")
        for s in node.pos[0].items:
            if part is not None and s.value.lower() == "auth":
                v.error(s, f"address part ':{part}' specified while non-address envelope part "
                           f"'{s.value.lower()}' is tested with the envelope test")
                return


def envelope_values(rt, which: str, part: str) -> list[str]:
    """The values of envelope part `which` under address part `part`. The non-address "auth"
    has none under a part other than "all" (Pigeonhole refuses that at compile time and reads
    no value when the envelope part is built at run time)."""
    env = rt.envelope
    w = which.lower()
    delims = rt.settings.sieve_recipient_delimiter
    if w == "from":
        raw = env.mail_from
    elif w == "to":
        raw = env.rcpt_to
    elif w == "auth":
        if not env.auth_user or part != "all":
            return []
        raw = env.auth_user
    else:
        return []
    if raw is None:
        return []
    try:
        a = parse_path(raw, allow_localpart_only=(w != "from"))
    except AddressError:
        return []
    if a is None:
        # RFC 5228 5.4: the null reverse-path matches as "" whatever the address part
        return [""]
    if a.domain is None and w == "auth":
        a = SieveAddress(a.local, None)
    p = address_part(a, part, delims)
    return [] if p is None else [p]


def _run(rt, node):
    part = node.tags.get("address-part", "all")
    if node.tags.get("match-type") == "count":
        part = "all"      # RFC 5231 4.1: :count counts addresses, whatever the address part
    values = []
    for w in rt.sl(node.pos[0]):
        values.extend(envelope_values(rt, w, part))
    return rt.match(node, values, rt.sl(node.pos[1]))


EXTENSION = Extension(
    name="envelope",
    commands=(CommandDef("envelope", arg_names=("envelope part", "key list"), kind="test", positional=(STRINGLIST, STRINGLIST), match=True,
                         address_part=True, validate=_validate, run=_run, arguments_first=_parts_first),),
)
