"""The registry of Sieve extensions: one module per extension (or closely tied family),
listed once in `_MODULES`; each module exposes EXTENSION or EXTENSIONS.

Also the indexes the validator and interpreter read instead of naming extensions: which
extension makes each match type, address part and comparator available, and the hooks
(string preparation and expansion, start and end of a run, action hooks) in registry order.
The modules are loaded by name, each on first use (REGISTRY, MATCH_TYPES, ADDRESS_PARTS and
COMPARATORS load the module that declares a name when it is looked up, every module when
iterated): a process pays only for the extensions its scripts require, ~20 ms less per in-process
LDA run. None of them imports this package, the validator or the interpreter, so the registry
closes no import cycle.
Used by sieve.validator (binding), sieve.interpreter (hooks), sieve.api.extensions_available
(capability list). Tests: tests/sieve/test_conformance.py (every extension's Pigeonhole tests),
tests/sieve/test_extension_hooks.py, tests/sieve/test_extension_registry.py (lazy loading).
"""

from __future__ import annotations

import sys
from _thread import RLock    # not threading: one more module for each LDA start

from sieve.extensions.base import Extension

_MODULES = (
    "core",                    # RFC 5228 base language (not a capability)
    "comparator_numeric",      # comparator-i;ascii-numeric (RFC 4790)
    "comparator_unicode",      # comparator-i;unicode-casemap (RFC 5051)
    "fileinto",                # RFC 5228
    "envelope",                # RFC 5228
    "encoded_character",       # RFC 5228 2.4.2.4
    "reject",                  # reject, ereject (RFC 5429)
    "imap4flags",              # RFC 5232
    "imapflags_deprecated",    # imapflags (draft-melnikov-sieve-imapflags-03; off by default)
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
    "notify_deprecated",       # notify (draft-martin-sieve-notify-01, mailto; off by default)
    "extlists",                # RFC 6134 (lists through the host: Host.list_contains)
    "special_use",             # RFC 8579
    "metadata",                # mboxmetadata, servermetadata (RFC 5490)
    "extprograms",             # vnd.dovecot.pipe, .filter, .execute (only with their sieve_*_bin_dir)
    "debug",                   # vnd.dovecot.debug (debug_log)
    "report",                  # vnd.dovecot.report (RFC 5965 abuse reports)
    "testsuite",               # vnd.dovecot.testsuite (hidden; for the conformance harness)
)


# Where a name lives when it is not its module's own name (the registry loads one module per
# name it is asked about; tests/sieve/test_extension_registry.py checks these against the modules).
_MODULE_OF = {
    # extension names
    "comparator-i;ascii-numeric": "comparator_numeric", "comparator-i;unicode-casemap": "comparator_unicode",
    "ereject": "reject", "vacation-seconds": "vacation", "spamtestplus": "spamtest", "virustest": "spamtest",
    "vnd.dovecot.environment": "environment", "foreverypart": "mime", "extracttext": "mime",
    "mboxmetadata": "metadata", "servermetadata": "metadata", "vnd.dovecot.testsuite": "testsuite",
    "vnd.dovecot.pipe": "extprograms", "vnd.dovecot.filter": "extprograms", "vnd.dovecot.execute": "extprograms",
    "vnd.dovecot.debug": "debug",
    "vnd.dovecot.report": "report",
    "imapflags": "imapflags_deprecated", "notify": "notify_deprecated",
}
# Extensions that exist only when a setting names what they need (Pigeonhole's extprograms
# plugin is not loaded without its directories): extension name -> that setting.
_NEEDS_SETTING = {"vnd.dovecot.pipe": "sieve_pipe_bin_dir", "vnd.dovecot.filter": "sieve_filter_bin_dir",
                  "vnd.dovecot.execute": "sieve_execute_bin_dir"}
# The match types, address parts and comparators beyond the core's, by module.
_TABLE_MODULE = {
    "MATCH_TYPES": {"count": "relational", "value": "relational", "regex": "regex"},
    "ADDRESS_PARTS": {"user": "subaddress", "detail": "subaddress"},
    "COMPARATORS": {"i;ascii-numeric": "comparator_numeric", "i;unicode-casemap": "comparator_unicode"},
}
# The modules whose extensions hook another's action (every hook runs), or expand strings.
_ACTION_HOOK_MODULES = ("imap4flags", "copy", "mailbox", "special_use")
# Modules whose action hooks act only for a script that requires their own extension: its
# compile has loaded the module, and the tables hold every loaded module's hooks, so they are
# not imported for every delivery that keeps or files a message (imapflags' current flags).
_OWN_HOOK_MODULES = ("imapflags_deprecated",)
_EXPAND_MODULES = ("variables",)


def module_of(name: str) -> str | None:
    """The module (in _MODULES) that declares extension `name`, None when none does."""
    mod = _MODULE_OF.get(name) or name.replace("-", "_")
    return mod if mod in _MODULES else None


def _index(registry: dict[str, Extension], field: str) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    for e in registry.values():
        for command, item in getattr(e, field):
            out[command] = out.get(command, ()) + ((e.name, item),)
    return out


class _ExtensionTables:
    """The registry and the indexes over the extensions of the modules loaded so far."""

    def __init__(self, registry: dict[str, Extension]):
        self.REGISTRY = registry
        # name -> (the extension that provides it, its definition); "core" is always loaded
        self.MATCH_TYPES = {m.name: (e.name, m) for e in registry.values() for m in e.match_types}
        self.ADDRESS_PARTS = {a: e.name for e in registry.values() for a in e.address_parts}
        self.COMPARATORS = {c: e.name for e in registry.values() for c in e.comparators}
        # (extension name, hook) in registry order: encoded-character decodes before variables reads
        self._PREPARE = tuple((e.name, e.prepare_string) for e in registry.values() if e.prepare_string)
        self._EXPAND = tuple(e.expand_string for e in registry.values() if e.expand_string)
        self._BEGIN = tuple((e.name, e.begin_run) for e in registry.values() if e.begin_run)
        self._END = tuple((e.name, e.end_run) for e in registry.values() if e.end_run)
        # Per command, in registry order: (extension name, tag or check or hook) of the extensions that
        # add to another extension's command (see sieve.extensions.base.Extension for each field).
        self._FOR_COMMAND = {field: _index(registry, field) for field in ("extra_tags", "early_checks",
                                                                          "argument_checks", "tag_checks",
                                                                          "action_hooks")}


_lock = RLock()               # lmtpd's delivery threads compile concurrently
_modules_loaded: dict[str, tuple[Extension, ...]] = {}
_all_loaded = False
_tables = _ExtensionTables({})


def _load_modules(mods) -> _ExtensionTables:
    """Load these extension modules (a module on first use only: a script pays for the
    extensions it requires, a delivery without a script for none) and rebuild the tables."""
    global _tables
    if all(m in _modules_loaded for m in mods):
        return _tables
    with _lock:
        new = [m for m in mods if m not in _modules_loaded]
        if not new:
            return _tables
        # Threads read _modules_loaded and _tables without the lock: a module is marked loaded
        # only once the tables that hold it are published (else a reader finds it marked, keeps
        # the old tables and misses its extensions: KeyError 'core' on first concurrent use)
        loaded = dict(_modules_loaded)
        for mod in new:
            name = f"sieve.extensions.{mod}"
            __import__(name)          # not importlib: it loads warnings (the LDA's start-up)
            m = sys.modules[name]
            loaded[mod] = tuple(getattr(m, "EXTENSIONS", None) or (m.EXTENSION,))
        from sieve.extensions.specs import SPECS      # where each is specified (owlery sieve extensions)
        out: dict[str, Extension] = {}
        for mod in _MODULES:                           # registry order, whatever the loading order
            for e in loaded.get(mod, ()):
                if e.name in out:
                    raise ValueError(f"extension {e.name} registered twice")
                rfc, summary = SPECS.get(e.name, ("", ""))
                if rfc and not e.rfc:
                    e = e.replace(rfc=rfc, summary=e.summary or summary)
                out[e.name] = e
        _tables = _ExtensionTables(out)
        _modules_loaded.update(loaded)
        return _tables


def _load_all() -> _ExtensionTables:
    global _all_loaded
    tables = _load_modules(_MODULES)
    _all_loaded = True
    return tables


def _load() -> dict[str, Extension]:
    """Every extension by name, in registry order (all modules loaded)."""
    return _load_all().REGISTRY


class _LazyTable:
    """A read-only mapping over one of the tables that loads the module holding a key on
    lookup, and every module when iterated."""

    def __init__(self, table: str):
        self._table = table

    def _module_for(self, key) -> str | None:
        if self._table == "REGISTRY":
            return module_of(key) if isinstance(key, str) else None
        return _TABLE_MODULE[self._table].get(key)

    def _current(self, key) -> dict:
        tables = _loaded()
        table = getattr(tables, self._table)
        if key in table or _all_loaded:
            return table
        mod = self._module_for(key)
        if mod is None:
            return table                # no module declares it: not known (the core is always loaded)
        # loaded meanwhile by another thread, or not yet: the tables as published now
        return getattr(_load_modules((mod,)), self._table)

    def __getitem__(self, key):
        return self._current(key)[key]

    def get(self, key, default=None):
        return self._current(key).get(key, default)

    def __contains__(self, key) -> bool:
        return key in self._current(key)

    def _full(self) -> dict:
        return getattr(_load_all(), self._table)

    def __iter__(self):
        return iter(self._full())

    def __len__(self) -> int:
        return len(self._full())

    def keys(self):
        return self._full().keys()

    def values(self):
        return self._full().values()

    def items(self):
        return self._full().items()

    def __eq__(self, other) -> bool:
        return self._full() == (other._full() if isinstance(other, _LazyTable) else other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._full())


REGISTRY = _LazyTable("REGISTRY")
MATCH_TYPES = _LazyTable("MATCH_TYPES")
ADDRESS_PARTS = _LazyTable("ADDRESS_PARTS")
COMPARATORS = _LazyTable("COMPARATORS")


def _loaded() -> _ExtensionTables:
    """The tables of the modules loaded so far; the core is always among them."""
    return _tables if _modules_loaded else _load_modules(("core",))


def __getattr__(name: str):
    # the hook tables of the modules loaded so far (tests read and patch _FOR_COMMAND)
    if name in ("_PREPARE", "_EXPAND", "_BEGIN", "_END", "_FOR_COMMAND"):
        return getattr(_loaded(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def available(name: str, settings) -> bool:
    """Whether extension `name` exists under `settings` (false for the external-program
    extensions while their sieve_*_bin_dir is unset): `require` fails, ihave is false and the
    capability list leaves it out. sieve_extensions_disabled is the validator's own check."""
    need = _NEEDS_SETTING.get(name)
    return need is None or bool(getattr(settings, need))


def capabilities(settings) -> list[str]:
    disabled = set(settings.sieve_extensions_disabled)
    return sorted(n for n, e in _load_all().REGISTRY.items()
                  if not e.hidden and n not in disabled and available(n, settings))


def prepare_string(v, s) -> None:
    """Compile-time string processing by the required extensions (encoded-character
    decoding, then variables' templates: a string with references gets `parts`)."""
    for name, hook in _loaded()._PREPARE:       # the required extensions are loaded
        if name in v.required:
            hook(v, s)


def expand_string(rt, parts) -> str:
    """The run-time value of a string that has `parts` (only an extension sets them)."""
    return _load_modules(_EXPAND_MODULES)._EXPAND[0](rt, parts)


def begin_run(rt) -> None:
    """Hooks of the script's extensions as a run starts."""
    for name, hook in _loaded()._BEGIN:
        if rt.uses(name):
            hook(rt)


def end_run(rt) -> None:
    """Hooks of the script's extensions once the top-level script ended (normally or by stop)."""
    for name, hook in _loaded()._END:
        if rt.uses(name):
            hook(rt)


def message_context(rt) -> dict[str, dict]:
    """{extension name: {rt.ext key: value}}: the state an earlier script of the same delivery
    leaves to the next (Extension.message_context), of the extensions this run used."""
    out: dict[str, dict] = {}
    for name, ext in _loaded().REGISTRY.items():     # an extension the run used is loaded
        if ext.message_context and rt.uses(name):
            state = {k: rt.ext[k] for k in ext.message_context if k in rt.ext}
            if state:
                out[name] = state
    return out


def message_context_extensions(names) -> frozenset[str]:
    """Those of the extensions `names` (loaded: a compiled script required them) whose state
    belongs to the message, not to one script (Extension.message_context)."""
    registry = _loaded().REGISTRY
    return frozenset(n for n in names if n in registry and registry[n].message_context)


def for_command(field: str, command: str, required) -> list:
    """The `field` items (extra_tags, early_checks, argument_checks, tag_checks) that the extensions in
    `required` add to `command`, in registry order."""
    return [item for name, item in _loaded()._FOR_COMMAND[field].get(command, ()) if name in required]


def action_hooks(command: str) -> tuple:
    """(extension name, hook) of the extensions that complete `command`'s action. Every hook
    runs: it looks at its own tags, and the validator let a tag in only when its extension
    was required."""
    return _load_modules(_ACTION_HOOK_MODULES)._FOR_COMMAND["action_hooks"].get(command, ())
