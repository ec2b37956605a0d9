"""editheader (RFC 5293): addheader and deleteheader, editing the message the later tests
and actions see.

Protected fields (RFC 5293 6: which fields may be added or deleted is local policy, an edit
that is not permitted is silently ignored): the settings sieve_editheader_forbid_add,
sieve_editheader_forbid_delete and sieve_editheader_protected (both), empty by default as in
Pigeonhole; fixed whatever they say: Subject can always be added and deleted (RFC 5293 6 MUST),
Received can never be deleted (RFC 5293 6 MUST NOT), nor Auto-Submitted (RFC 3834's loop guard,
as Pigeonhole), and X-Sieve-Redirected-From, the redirect loop field, can be neither added nor
deleted (as Pigeonhole). A header value must hold no NUL: a constant one is a compile
error, one built at run time a runtime error (keep into INBOX); so is a value over
sieve_max_header_size octets (_value_size). Octets that are not UTF-8 are written as U+FFFD,
one a run, as Pigeonhole writes them (a constant with them gets a warning). RFC 5293 4 lets an
implementation encode a value that is not 'unstructured', and this one does, as Pigeonhole:
line breaks are folded; 8-bit text, other controls (a bare CR, C1 controls, Unicode line
separators) and text that looks like an encoded word become RFC 2047 encoded words, so no raw
control ever reaches the header. Other C0 controls are obs-NO-WS-CTL (RFC 5322 4.2) and pass,
as Pigeonhole's corpus expects of BELL. Each added field is charged to the run's memory
budget (sieve_max_memory).
Tests: conformance extensions/editheader/; tests/sieve/test_editheader_hostile.py,
tests/sieve/test_pigeonhole_parity_s9.py, tests/sieve/test_pigeonhole_probes_s20b.py.
"""

from __future__ import annotations

import re

from sieve.errors import SieveRuntimeError, sanitized
from sieve.extensions.base import NUMBER, STRING, STRINGLIST, CommandDef, Extension, TagDef
from sieve.message import decode_2047

# Lower-case names; the redirect loop header is sieve.delivery.redirect.REDIRECT_LOOP_HEADER
# (the engine does not import the delivery package). What no setting can change:
ALWAYS_ALLOWED = frozenset({"subject"})
NEVER_ADDED = frozenset({"x-sieve-redirected-from"})
NEVER_DELETED = frozenset({"received", "auto-submitted", "x-sieve-redirected-from"})
# The delivery's trace and loop-detection fields: enclose (RFC 5703) keeps them on the outer
# message (sieve.extensions.enclose).
PROTECTED = frozenset({"received", "auto-submitted", "delivered-to", "x-sieve-redirected-from"})


def may_add(settings, name: str) -> bool:
    """May addheader add a field called `name` (RFC 5293 6)?"""
    low = name.lower()
    if low in ALWAYS_ALLOWED:
        return True
    if low in NEVER_ADDED:
        return False
    return not any(
        low == n.lower() for n in (*settings.sieve_editheader_forbid_add, *settings.sieve_editheader_protected)
    )


def may_delete(settings, name: str) -> bool:
    """May deleteheader delete fields called `name` (RFC 5293 6)?"""
    low = name.lower()
    if low in ALWAYS_ALLOWED:
        return True
    if low in NEVER_DELETED:
        return False
    return not any(
        low == n.lower() for n in (*settings.sieve_editheader_forbid_delete, *settings.sieve_editheader_protected)
    )


_NAME = re.compile(r"[!-9;-~]+")
# NUL: no field body may hold it (RFC 5322 2.2), so addheader refuses it. Octets that are not
# UTF-8 (lone surrogates, kept by surrogateescape) are added all the same, each run of them as
# one U+FFFD, as Pigeonhole writes them (checked with sieve-test): an encoded word labelled utf-8
# must hold UTF-8 (RFC 2047 5, RFC 3629 3). sievec warns about such a constant, and at run time a
# match value that cut a UTF-8 character (RFC 5228 2.7.1 '?' takes one octet) fails nothing.
_NUL = re.compile("\0")
_NOT_UTF8 = re.compile("[\ud800-\udfff]")
_NOT_UTF8_RUN = re.compile("[\ud800-\udfff]+")
_LINE_BREAKS = re.compile(r"(?:\r?\n[ \t]*)+")
_OBS_CTL = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]")
# a word a reader could not take literally: 8-bit text, a control character (a bare CR
# among them), or something that looks like an encoded word
_NEEDS_ENCODING = re.compile("[^\t -~]|=\\?")


def _name_ok(name: str) -> bool:
    return bool(_NAME.fullmatch(name))


def _value_ok(value: str) -> bool:
    """A field body addheader may add: anything but NUL. Line breaks (CRLF or LF) become
    folding (_folded); other controls (a bare CR, C1 controls, Unicode line separators) go
    into encoded words (_encoded), so they never reach the header raw; octets that are not
    UTF-8 are written as U+FFFD (_run_add)."""
    return not _NUL.search(value)


def _value_size(value: str) -> int:
    """What sieve_max_header_size bounds: the value's octets in UTF-8 as the script gave it
    (line ends as CRLF, before folding and encoding), the field name not counted; Pigeonhole's
    sieve_editheader_max_header_size (2048 by default) counts the same (checked with
    sieve-test: 2048 octets pass, 2049 fail, 1024 'é' pass and 1025 fail)."""
    return len(value.encode("utf-8", "surrogateescape"))


def _encoded(value: str) -> str:
    """RFC 5293 4 / RFC 2047 5(1): the words a reader could not take literally become encoded
    words (UTF-8, base64); a run of such words is one text, so the spaces between them
    survive decoding. Folds and plain words stay as they are."""
    if not _NEEDS_ENCODING.search(value):
        return value
    parts = re.split(r"(\r\n[ \t]+| +)", value)  # word, separator (a fold or spaces), word, ...
    out: list[str] = []
    i = 0
    while i < len(parts):
        word = parts[i]
        if not _NEEDS_ENCODING.search(word):
            out.append(word)
            if i + 1 < len(parts):
                out.append(parts[i + 1])
            i += 2
            continue
        run = [word]
        j = i + 2
        while j < len(parts) and _NEEDS_ENCODING.search(parts[j]):
            run.append(" ")  # a fold inside a run reads as one space
            run.append(parts[j])
            j += 2
        out.append(_encoded_words("".join(run)))
        if j - 1 < len(parts):
            out.append(parts[j - 1])
        i = j
    return "".join(out)


def _encoded_words(text: str) -> str:
    """`text` as 'encoded-word' tokens of at most 75 characters, joined by folds."""
    import base64

    words, chunk = [], ""
    for ch in text:
        if len((chunk + ch).encode("utf-8", "surrogateescape")) > 45:
            words.append(chunk)
            chunk = ""
        chunk += ch
    words.append(chunk)
    return "\r\n\t".join(
        "=?utf-8?b?" + base64.b64encode(w.encode("utf-8", "surrogateescape")).decode() + "?=" for w in words
    )


def _folded(value: str) -> str:
    """RFC 5293 4: a value that is not RFC 5322 'unstructured' is either an error or encoded
    with folding white space; like Pigeonhole, fold: leading and trailing line breaks go, and
    each run of line breaks becomes one fold. A break that white space follows is a fold
    already and keeps that white space (RFC 5322 2.2.3: "a CRLF SP b" reads "a b", not
    "a<TAB>b"); a bare one gets a TAB."""
    value = value.strip("\r\n")
    return _LINE_BREAKS.sub(_fold, value)


def _fold(run: re.Match) -> str:
    """One fold for a run of line breaks: CRLF and the white space after its last break."""
    after = run.group().rsplit("\n", 1)[1]
    return "\r\n" + (after or "\t")


def _shown(value: str) -> str:
    return value.encode("ascii", "backslashreplace").decode("ascii").replace("\x00", "\\0")


def _validate_add(v, node):
    if len(node.pos) == 2:
        if v.is_literal(node.pos[0]):
            name = node.pos[0].items[0].value
            if not _name_ok(name):
                v.error(node.pos[0], f"addheader command: specified field name `{sanitized(name)}' is invalid")
        if v.is_literal(node.pos[1]):
            value = node.pos[1].items[0].value
            if not _value_ok(value):
                v.error(node.pos[1], f"specified value '{_shown(value)}' for the addheader command is invalid "
                                     "(contains NUL character)")
            elif _NOT_UTF8.search(value):
                # sievec warns and compiles (checked with Pigeonhole 0.5.19); the octets become U+FFFD
                v.warning(node.pos[1], f"specified value '{_shown(value)}' for the addheader command is invalid "
                                       "(not UTF-8); it is added with U+FFFD in their place")
            elif _OBS_CTL.search(value):
                # obs-NO-WS-CTL (RFC 5322 4.2): obsolete but accepted; say so, as Pigeonhole does
                v.warning(
                    node.pos[1],
                    f"specified value '{_shown(value)}' for the addheader command is invalid "
                    "(control character); it is added as it is",
                )
            if _value_size(value) > v.settings.sieve_max_header_size:
                v.error(node.pos[1], f"specified header value is too large ({_value_size(value)} bytes)")


def _validate_del(v, node):
    if node.tags.get("last") and "index" not in node.tags:
        v.error(node, "the :last tag for the deleteheader command cannot be specified without the :index tag")
        # The command is malformed; its arguments are not checked. (sievec also names a bad field
        # name here, at code generation, but Pigeonhole's testsuite counts 2 errors for
        # editheader/errors/last-without-index.sieve, as this plus the final line give.)
        return
    if "index" in node.tags and node.tags["index"].value == 0:
        # occurrences are counted from 1 (RFC 5293 5): :index 0 names none, an error as for
        # the header test's :index (RFC 5260 6); sieve-test deletes every occurrence instead
        v.error(node.tags["index"], "the :index tag for the deleteheader command cannot be zero")
    if node.pos and v.is_literal(node.pos[0]):
        name = node.pos[0].items[0].value
        if not _name_ok(name):
            # (sic: Pigeonhole's words have no space after the colon)
            v.error(node.pos[0], f"deleteheader command:specified field name `{sanitized(name)}' is invalid")
        elif not may_delete(v.settings, name):
            # refused at run time (RFC 5293 6); sievec warns at compile time, a warning only
            v.warning(node.pos[0], f"deleteheader command: deleting specified header field `{name}' is "
                                   "forbidden; modification will be denied")


def _run_add(rt, node):
    name = rt.s(node.pos[0])
    value = rt.s(node.pos[1])
    if not _name_ok(name):
        raise SieveRuntimeError(f"addheader action: specified field name `{sanitized(name)}' is invalid")
    if not _value_ok(value):
        # (Pigeonhole shows the value up to the NUL: a C string)
        raise SieveRuntimeError(f"addheader action: specified value `{sanitized(value.split(chr(0))[0])}' is "
                                "invalid (contains NUL character)")
    if not may_add(rt.settings, name):
        return
    if _value_size(value) > rt.settings.sieve_max_header_size:
        raise SieveRuntimeError(f"addheader action: specified header value is too large ({_value_size(value)} bytes)")
    rt.step(1)
    value = _encoded(_folded(_NOT_UTF8_RUN.sub("\ufffd", value)))
    rt.charge_memory(len(name) + len(value) + 2)
    field = [name, " " + value]
    if node.tags.get("last"):
        rt.msg.headers.append(field)
    else:
        rt.msg.headers.insert(0, field)
    rt.msg.edited = True
    rt.msg.invalidate()


def _run_del(rt, node):
    name = rt.s(node.pos[0])
    if not _name_ok(name):
        raise SieveRuntimeError(f"deleteheader action: specified field name `{sanitized(name)}' is invalid")
    if not may_delete(rt.settings, name):
        return
    patterns = rt.sl(node.pos[1]) if len(node.pos) == 2 else None
    idxs = [i for i, (k, _) in enumerate(rt.msg.headers) if k.lower() == name.lower()]
    if "index" in node.tags:
        n = node.tags["index"].value
        if n < 1 or n > len(idxs):
            return
        idxs = [idxs[-n] if node.tags.get("last") else idxs[n - 1]]
    doomed = []
    from sieve.message import unfold

    for i in idxs:
        rt.step(1)
        if patterns is not None:
            val = decode_2047(unfold(rt.msg.headers[i][1]).strip(" \t"))
            if not rt.match(node, [val], patterns):
                continue
        doomed.append(i)
    if doomed:
        rt.msg.headers = [h for i, h in enumerate(rt.msg.headers) if i not in set(doomed)]
        rt.msg.edited = True
        rt.msg.invalidate()


EXTENSION = Extension(
    name="editheader",
    commands=(
        CommandDef(
            "addheader",
            arg_names=("field-name", "value"),
            positional=(STRING, STRING),
            tags=(TagDef("last"),),
            validate=_validate_add,
            run=_run_add,
        ),
        CommandDef(
            "deleteheader",
            arg_names=("field name", "value patterns"),
            positional=(STRING, STRINGLIST),
            optional_positional=1,
            match=True,
            tags=(TagDef("index", NUMBER), TagDef("last")),
            validate=_validate_del,
            run=_run_del,
        ),
    ),
)
