"""duplicate (RFC 7352): the duplicate test, asking Host.seen; a DuplicateMark action
records the id once delivery succeeded.

Tests: conformance extensions/duplicate/.
"""

from __future__ import annotations

from owlery.digests import sha256
from sieve.actions import DuplicateMark
from sieve.extensions.base import NUMBER, STRING, CommandDef, Extension, TagDef


def _validate(v, node):
    if "header" in node.tags and "uniqueid" in node.tags:
        v.error(node, "the duplicate test cannot have both :header and :uniqueid")


def _run(rt, node):
    handle = rt.s(node.tags["handle"]) if "handle" in node.tags else ""
    if "uniqueid" in node.tags:
        value = rt.s(node.tags["uniqueid"])
    else:
        hname = rt.s(node.tags["header"]) if "header" in node.tags else "message-id"
        vals = rt.msg.header_raw(hname)
        if not vals:
            return False
        value = vals[0]
        if hname.lower() == "message-id":
            value = value.strip()
    period = float(node.tags["seconds"].value) if "seconds" in node.tags else \
        rt.settings.sieve_duplicate_default_period
    period = min(period, rt.settings.sieve_duplicate_max_period)
    key = "duplicate:" + sha256(f"{handle}\0{value}".encode("utf-8", "surrogateescape")).hexdigest()
    checked = rt.ext.setdefault("duplicate_checked", {})     # key -> the host's answer, per run
    first_check = key not in checked
    seen = checked.get(key)
    if seen is None:
        seen = bool(rt.host.seen(key))
        checked[key] = seen
    if first_check or node.tags.get("last"):
        rt.add(DuplicateMark(tracking_key=key, period=period, line=node.line), cancels_keep=False)
    return seen


EXTENSION = Extension(
    name="duplicate",
    commands=(CommandDef("duplicate", kind="test", tags=(
        TagDef("handle", STRING), TagDef("header", STRING), TagDef("uniqueid", STRING),
        TagDef("seconds", NUMBER), TagDef("last")), validate=_validate, run=_run),),
)
