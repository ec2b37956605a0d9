"""relational (RFC 5231): the :count and :value match types (done in sieve.match).

Tests: conformance extensions/relational/.
"""

from sieve.errors import sanitized
from sieve.extensions.base import Extension, MatchTypeDef
from sieve.parser import StrList

RELATIONS = ("gt", "ge", "lt", "le", "eq", "ne")


def _bind_relation(v, node, d, what, tag, nxt):
    """:count and :value take a constant relation ("gt", ...) as their parameter: a string,
    not a string list (["gt"] is refused, as Pigeonhole does). Its case does not matter:
    RFC 5231 9 gives the relations as ABNF strings, which are case-insensitive (RFC 5234 2.3).
    Test: tests/sieve/test_pigeonhole_probes_s18d.py (an encoded relation)."""
    string = isinstance(nxt, StrList) and len(nxt.items) == 1 and not nxt.bracketed
    # the relation is read as the string hooks leave it (RFC 5228 2.4.2.4: "${hex:65 71}" is "eq")
    value = v.tag_string_value(nxt.items[0]) if string else None
    if v.arguments_failed:
        return None
    op = value.lower() if value is not None else None
    if op not in RELATIONS:
        found = f'"{sanitized(nxt.items[0].value)}"' if string else ("nothing" if nxt is None else v.kind(nxt))
        v.error(tag, f'the :{tag.name} match-type requires a constant string argument being '
                     f'one of "gt", "ge", "lt", "le", "eq" or "ne", but {found} was found')
        return None
    node.tags["relation"] = op
    return 1


EXTENSION = Extension(name="relational", match_types=(MatchTypeDef("count", bind=_bind_relation),
                                                      MatchTypeDef("value", bind=_bind_relation)))
