"""extlists (RFC 6134): externally stored lists. The `:list` match type (a value matches
when it is a member of one of the lists the keys name), the `valid_ext_list` test, and the
`:list` tag of redirect (refused at compile time, as Pigeonhole does: Owlery sends no
message to every member of a directory group from a user's script).

List names are URIs. A name starting with ':' is the short form of a URN under
urn:ietf:params:sieve (":addrbook:default" is "urn:ietf:params:sieve:addrbook:default");
only urn: and tag: URIs name lists here; anything else is an invalid name (never a member,
valid_ext_list false, one warning in the run's errors).

Sans-I/O: the engine never looks a list up itself; it asks the host
(`host.list_contains(name, value)`: True/False, None when the host knows no such list; the
probe value "" answers whether the list exists, for valid_ext_list). The name handed over is
the normalised one (scheme and URN prefix in lower case, the short form expanded). A host that
cannot answer now raises SieveTempFailure (the delivery is retried, never a silent "no
match"); one that refuses the question (a list too large to decide) raises SieveRuntimeError.
Delivery's mapping of names to the directory is sieve/delivery/extlists.py.

As Pigeonhole: `:list` takes no comparator (compile error), and after a match the match
variable ${0} holds the value found in a list (RFC 5229 match variables otherwise unchanged
by a failed test). Answers are kept per run, so a value asked twice costs one lookup; each
lookup costs LOOKUP_STEPS CPU steps.

The validator knows match types as its own table; `:list` comes in as a tag of each
matching command (`match-type` slot, so it conflicts with :is/:contains/...), and a tag
check then gives that node a run function that routes its matching here.
Tests: tests/sieve/test_extlists.py, tests/sieve/svtest/extlists.svtest.
"""

from __future__ import annotations

import dataclasses
import re

from sieve.extensions.base import STRINGLIST, CommandDef, Extension, TagDef

URN_PREFIX = "urn:ietf:params:sieve"
LOOKUP_STEPS = 50           # a host lookup may be a directory round trip: dearer than a compare
CACHE_MAX = 1024            # answers kept per run

# Every command and test that takes a match type (RFC 6134 2.2: ":list" is a match type).
MATCH_COMMANDS = ("header", "address", "envelope", "string", "body", "date", "currentdate",
                  "hasflag", "metadata", "servermetadata", "environment", "spamtest", "virustest",
                  "notify_method_capability", "deleteheader")

# RFC 3986 3.1 scheme; RFC 8141 NID; RFC 4151 tag: authority "," date ":" specific
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(.*)\Z", re.S)
_URN = re.compile(r"([A-Za-z0-9][A-Za-z0-9-]{0,30}[A-Za-z0-9]):(\S+)\Z")
_TAG = re.compile(r"([^,:\s]+),(\d{4}(?:-\d{2}(?:-\d{2})?)?):(\S*)\Z")
_BAD = re.compile(r"[\x00-\x20\x7f]")


def normalise_name(name: str) -> str | None:
    """The list name as the host is asked about it, or None when it is not a valid list
    name (a URI of another scheme, a malformed urn: or tag: URI)."""
    if name.startswith(":"):
        name = URN_PREFIX + name
    m = _SCHEME.match(name)
    if m is None or _BAD.search(name):
        return None
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme == "urn":
        u = _URN.match(rest)
        if u is None:
            return None
        nid, nss = u.group(1).lower(), u.group(2)
        if nid == "ietf" and nss.lower().startswith("params:sieve:"):
            nss = "params:sieve:" + nss[len("params:sieve:"):]
        return f"urn:{nid}:{nss}"
    if scheme == "tag":
        t = _TAG.match(rest)
        if t is None:
            return None
        return f"tag:{t.group(1).lower()},{t.group(2)}:{t.group(3)}"
    return None


def _warn(rt, text: str) -> None:
    seen = rt.ext.setdefault("extlists_warned", set())
    if text not in seen and len(seen) < 16:
        seen.add(text)
        rt.errors.append(text)


def _lookup(rt, name: str, value: str) -> bool | None:
    """host.list_contains once per (list, value) per run; errors propagate."""
    cache = rt.ext.setdefault("extlists_cache", {})
    key = (name, value)
    if key in cache:
        return cache[key]
    rt.step(LOOKUP_STEPS)
    answer = rt.host.list_contains(name, value)
    if len(cache) < CACHE_MAX:
        cache[key] = answer
    return answer


def list_match(rt, values, keys: list[str]) -> bool:
    """Is any value a member of any of the lists named by keys? Unknown and invalid lists
    match nothing (a warning each); on a match ${0} is the value (when variables are on)."""
    names = []
    for k in keys:
        n = normalise_name(k)
        if n is None:
            _warn(rt, f"extlists: '{k[:200]}' is not a valid list name")
        elif n not in names:
            names.append(n)
    if not names:
        return False
    known = []
    for n in names:
        if _lookup(rt, n, "") is None:
            _warn(rt, f"extlists: list '{n[:200]}' is not known")
        else:
            known.append(n)
    for v in values:
        rt.step(1)
        if not v:
            continue
        for n in known:
            if _lookup(rt, n, v):
                if rt.match_vars_enabled:
                    rt.set_match_values([v])
                return True
    return False


def _route(run):
    """The command's own run function, with its matching done by list_match."""
    def run_with_list(rt, node):
        def match(n, values, keys):
            if n is node:
                return list_match(rt, values, keys)
            return type(rt).match(rt, n, values, keys)
        had = "match" in vars(rt)
        saved = vars(rt).get("match")
        rt.match = match          # an instance attribute shadows Runtime.match for this call
        try:
            return run(rt, node)
        finally:
            if had:
                rt.match = saved
            else:
                del rt.match
    return run_with_list


def _check_list_match(v, node):
    if node.tags.get("match-type") != "list":
        return
    if "comparator" in node.tags:
        v.error(node, f"the :list match type of the {node.name} {'test' if node.is_test else 'command'} "
                      f"does not allow a comparator")
        return
    node.defn = dataclasses.replace(node.defn, run=_route(node.defn.run))


def _check_redirect_list(v, node):
    if node.tags.get("list"):
        v.error(node, "redirect :list is not supported (a script cannot send a message to every "
                      "member of a list; redirect to the list's own address instead)")


def _validate_valid_ext_list(v, node):
    for s in node.pos[0].items if node.pos else ():
        if s.parts is None and normalise_name(s.value) is None:
            v.warning(s, f"valid_ext_list: '{s.value[:200]}' is not a valid list name")


def _run_valid_ext_list(rt, node):
    """RFC 6134 2.4: true when every name is a valid list name the host knows."""
    for name in rt.sl(node.pos[0]):
        n = normalise_name(name)
        if n is None or _lookup(rt, n, "") is None:
            return False
    return True


_LIST_TAG = TagDef("list", group="match-type")

EXTENSION = Extension(
    name="extlists",
    rfc="RFC 6134",
    summary="externally stored lists: the :list match type and valid_ext_list (lists from the directory)",
    commands=(CommandDef("valid_ext_list", kind="test", positional=(STRINGLIST,),
                         validate=_validate_valid_ext_list, run=_run_valid_ext_list),),
    extra_tags=tuple((c, _LIST_TAG) for c in MATCH_COMMANDS) + (("redirect", TagDef("list")),),
    tag_checks=tuple((c, _check_list_match) for c in MATCH_COMMANDS) + (("redirect", _check_redirect_list),),
)
