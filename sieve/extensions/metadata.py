"""mboxmetadata and servermetadata (RFC 5490 4): metadata/metadataexists and
servermetadata/servermetadataexists tests, answered by Host.metadata.

Tests: conformance extensions/metadata/, tests/sieve/test_pigeonhole_probes_s21.py.
"""

from __future__ import annotations

from sieve.extensions.base import STRING, STRINGLIST, CommandDef, Extension


def _ann_error(a: str) -> str | None:
    """Why `a` is no annotation entry name (RFC 5464 3.2), in Dovecot's words and order
    (imap_metadata_verify_entry_name), or None."""
    if not a.startswith("/"):
        return "entry name must begin with '/'"
    for i, c in enumerate(a):
        if c == "/" and i and a[i - 1] == "/":
            return "entry name can't contain consecutive '/'"
        if c == "/" and i == len(a) - 1:
            return "entry name can't end with '/'"
        if c in "*%":
            return f"entry name can't contain '{c}'"
        if ord(c) <= 0x19:
            return "entry name can't contain control chars"
    low = a.lower()
    if not any(low == p or low.startswith(p + "/") for p in ("/private", "/shared")):
        return "entry name must begin with /private or /shared"
    return None


def _ann_ok(a: str) -> bool:
    return _ann_error(a) is None


def _validate(v, node):
    # An invalid annotation name is a warning: the test is false at run time (RFC 5464 3.2
    # names are looked up, an invalid one is found nowhere), as Pigeonhole has it (sievec
    # warns and compiles; its testsuite's "MetadataExists - Invalid" runs such a test)
    idx = 1 if node.name in ("metadata", "metadataexists") else 0
    if len(node.pos) > idx and v.is_literal(node.pos[idx]):
        for s in node.pos[idx].items:
            err = _ann_error(s.value)
            if err:
                v.warning(s, f"{node.name} test: specified annotation name `{s.value}' is invalid: {err}")


def _run_metadata(rt, node):
    # RFC 5490 4.3: "true if the annotation exists and its value matches any of the keys", so a
    # missing one is false under every match type (:count "eq" "0" included), as Pigeonhole
    mailbox = rt.s(node.pos[0])
    ann = rt.s(node.pos[1])
    val = rt.host.metadata(mailbox, ann) if _ann_ok(ann) else None
    return val is not None and rt.match(node, [val], rt.sl(node.pos[2]))


def _run_metadataexists(rt, node):
    mailbox = rt.s(node.pos[0])
    return all(_ann_ok(a) and rt.host.metadata(mailbox, a) is not None for a in rt.sl(node.pos[1]))


def _run_servermetadata(rt, node):
    ann = rt.s(node.pos[0])
    val = rt.host.metadata(None, ann) if _ann_ok(ann) else None
    # RFC 5490 4.5: as metadata (4.3), false when the annotation does not exist
    return val is not None and rt.match(node, [val], rt.sl(node.pos[1]))


def _run_servermetadataexists(rt, node):
    return all(_ann_ok(a) and rt.host.metadata(None, a) is not None for a in rt.sl(node.pos[0]))


EXTENSIONS = (
    Extension(name="mboxmetadata", commands=(
        CommandDef("metadata", arg_names=("mailbox", "annotation-name", "key-list"), kind="test", positional=(STRING, STRING, STRINGLIST), match=True,
                   validate=_validate, run=_run_metadata),
        CommandDef("metadataexists", arg_names=("mailbox", "annotation-names"), kind="test", positional=(STRING, STRINGLIST),
                   validate=_validate, run=_run_metadataexists),
    ), implies=("mailbox",)),
    Extension(name="servermetadata", commands=(
        CommandDef("servermetadata", arg_names=("annotation-name", "key-list"), kind="test", positional=(STRING, STRINGLIST), match=True,
                   validate=_validate, run=_run_servermetadata),
        CommandDef("servermetadataexists", arg_names=("annotation-names",), kind="test", positional=(STRINGLIST,),
                   validate=_validate, run=_run_servermetadataexists),
    )),
)
