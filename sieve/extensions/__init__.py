"""The registry of Sieve extensions: one module per extension (or closely tied family),
listed once in `_MODULES`; each module exposes EXTENSION or EXTENSIONS.

Also the indexes the validator and interpreter read instead of naming extensions: which
extension makes each match type, address part and comparator available, and the hooks
(string preparation and expansion, start and end of a run, action hooks) in registry order.
The modules are loaded by name; none of them imports this package, the validator or the
interpreter, so the registry closes no import cycle.
Used by sieve.validator (binding), sieve.interpreter (hooks), sieve.api.extensions_available
(capability list). Tests: tests/sieve/test_conformance.py (every extension's Pigeonhole tests),
tests/sieve/test_extension_hooks.py.
"""

from __future__ import annotations

import dataclasses
import importlib

from sieve.extensions.base import Extension, MatchTypeDef

_MODULES = (
    "core",                    # RFC 5228 base language (not a capability)
    "comparator_numeric",      # comparator-i;ascii-numeric (RFC 4790)
    "comparator_unicode",      # comparator-i;unicode-casemap (RFC 5051)
    "fileinto",                # RFC 5228
    "envelope",                # RFC 5228
    "encoded_character",       # RFC 5228 2.4.2.4
    "reject",                  # reject, ereject (RFC 5429)
    "imap4flags",              # RFC 5232
    "variables",               # RFC 5229
    "relational",              # RFC 5231
    "subaddress",              # RFC 5233
    "body",                    # RFC 5173
    "copy",                    # RFC 3894
    "editheader",              # RFC 5293
    "date",                    # date, currentdate (RFC 5260)
    "index",                   # RFC 5260
    "regex",                   # draft-ietf-sieve-regex
    "include",                 # RFC 6609
    "mailbox",                 # RFC 5490
    "vacation",                # vacation (RFC 5230), vacation-seconds (RFC 6131)
    "duplicate",               # RFC 7352
    "spamtest",                # spamtest, spamtestplus, virustest (RFC 5235)
    "environment",             # RFC 5183, vnd.dovecot.environment
    "ihave",                   # RFC 5463
    "mime",                    # mime, foreverypart, extracttext (RFC 5703)
    "replace",                 # RFC 5703 5
    "enclose",                 # RFC 5703 6
    "enotify",                 # RFC 5435 with the mailto method (RFC 5436)
    "extlists",                # RFC 6134 (lists through the host: Host.list_contains)
    "special_use",             # RFC 8579
    "metadata",                # mboxmetadata, servermetadata (RFC 5490)
    "testsuite",               # vnd.dovecot.testsuite (hidden; for the conformance harness)
)


def _load() -> dict[str, Extension]:
    out: dict[str, Extension] = {}
    for mod in _MODULES:
        m = importlib.import_module(f"sieve.extensions.{mod}")
        exts = getattr(m, "EXTENSIONS", None) or (m.EXTENSION,)
        for e in exts:
            if e.name in out:
                raise ValueError(f"extension {e.name} registered twice")
            out[e.name] = e
    from sieve.extensions.specs import SPECS      # where each is specified (owlery sieve extensions)
    for name, (rfc, summary) in SPECS.items():
        e = out.get(name)
        if e is not None and not e.rfc:
            out[name] = dataclasses.replace(e, rfc=rfc, summary=e.summary or summary)
    return out


REGISTRY: dict[str, Extension] = _load()

# name -> (the extension that provides it, its definition); "core" is always loaded
MATCH_TYPES: dict[str, tuple[str, MatchTypeDef]] = {
    m.name: (e.name, m) for e in REGISTRY.values() for m in e.match_types}
ADDRESS_PARTS: dict[str, str] = {a: e.name for e in REGISTRY.values() for a in e.address_parts}
COMPARATORS: dict[str, str] = {c: e.name for e in REGISTRY.values() for c in e.comparators}

# (extension name, hook) in registry order: encoded-character decodes before variables reads
_PREPARE = tuple((e.name, e.prepare_string) for e in REGISTRY.values() if e.prepare_string)
_EXPAND = tuple(e.expand_string for e in REGISTRY.values() if e.expand_string)
_BEGIN = tuple((e.name, e.begin_run) for e in REGISTRY.values() if e.begin_run)
_END = tuple((e.name, e.end_run) for e in REGISTRY.values() if e.end_run)


def capabilities(settings) -> list[str]:
    disabled = set(settings.sieve_extensions_disabled)
    return sorted(n for n, e in REGISTRY.items() if not e.hidden and n not in disabled)


def prepare_string(v, s) -> None:
    """Compile-time string processing by the required extensions (encoded-character
    decoding, then variables' templates: a string with references gets `parts`)."""
    for name, hook in _PREPARE:
        if name in v.required:
            hook(v, s)


def expand_string(rt, parts) -> str:
    """The run-time value of a string that has `parts` (only an extension sets them)."""
    return _EXPAND[0](rt, parts)


def begin_run(rt) -> None:
    """Hooks of the script's extensions as a run starts."""
    for name, hook in _BEGIN:
        if name in rt.requires:
            hook(rt)


def end_run(rt) -> None:
    """Hooks of the script's extensions once the top-level script ended (normally or by stop)."""
    for name, hook in _END:
        if name in rt.requires:
            hook(rt)


def _index(field: str) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    for e in REGISTRY.values():
        for command, item in getattr(e, field):
            out[command] = out.get(command, ()) + ((e.name, item),)
    return out


# Per command, in registry order: (extension name, tag or check or hook) of the extensions that
# add to another extension's command (see sieve.extensions.base.Extension for each field).
_FOR_COMMAND = {field: _index(field) for field in ("extra_tags", "argument_checks", "tag_checks",
                                                    "action_hooks")}


def for_command(field: str, command: str, required) -> list:
    """The `field` items (extra_tags, argument_checks, tag_checks) that the extensions in
    `required` add to `command`, in registry order."""
    return [item for name, item in _FOR_COMMAND[field].get(command, ()) if name in required]


def action_hooks(command: str) -> tuple:
    """(extension name, hook) of the extensions that complete `command`'s action. Every hook
    runs: it looks at its own tags, and the validator let a tag in only when its extension
    was required."""
    return _FOR_COMMAND["action_hooks"].get(command, ())
