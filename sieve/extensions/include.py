"""include (RFC 6609): include personal or global scripts, `return`, and `global`
variables. Includes are resolved at compile time when the compiler is given a loader
(the testsuite, `owlery sieve check --include-dir`), else at run time through
Host.load_script. Loops, depth and count are bounded (sieve_max_include_depth,
sieve_max_includes).

Run-time includes are compiled once per process: `INCLUDE_CACHE` keeps compiled scripts
keyed by the SHA-256 of the source the host returned (the engine sees no paths; a changed
file is a changed key, so nothing stale is ever run), its name and the settings object,
bounded by sieve_max_include_cache (least recently used dropped). Every include charges the
run as if it compiled the source (about one CPU step per two source bytes, and the source's
length to the memory budget), hit or miss, so a run's outcome never depends on what the
cache holds.

Tests: conformance extensions/include/; tests/sieve/test_limits.py (include loops);
tests/sieve/test_include_pigeonhole_s19.py (:once of the top script, warnings, upload);
tests/sieve/test_budgets_hostile.py (cache and compile charge).
"""

from __future__ import annotations

import collections
import re
import threading

from owlery.digests import sha256
from sieve.errors import SieveCompileError, SieveResourceLimit, SieveRuntimeError
from sieve.extensions.base import STRING, STRINGLIST, CommandDef, Extension, ReturnScript, TagDef

# RFC 6609 2 and 3.2: script names are ManageSieve's (RFC 5804 1.6: no control characters
# U+0000-U+001F, U+007F-U+009F, no U+2028/U+2029; UTF-8), and a name is never a path: no "/".
# "." and ".." are names like any other (RFC 5804 allows them, so do Owlery's ManageSieve and
# Pigeonhole): every loader reads NAME.sieve, "..sieve" and "...sieve", never a directory.
# Undecodable bytes (surrogate escapes) are not UTF-8.
_NAME_BAD = re.compile("[/\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def name_error(name: str) -> str | None:
    """Why `name` cannot name an included script, or None."""
    if not name:
        return "invalid script name ''"
    if _NAME_BAD.search(name):
        return f"invalid script name '{ascii(name)[1:-1]}'"
    if len(name) > 255:
        # (shown cut as Pigeonhole's str_sanitize(name, 80) does)
        return f"invalid script name '{name[:77]}...'"
    return None


# Measured: compiling one source byte takes about as long as half an interpreter step.
COMPILE_BYTES_PER_STEP = 2


class IncludeCache:
    """Compiled run-time includes, thread-safe and bounded (least recently used dropped).

    An entry holds the settings object it was compiled under (compared by identity, and kept
    alive by the entry so its id cannot be reused) and the compiled Script or the compile
    error, which is raised again until the source changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: collections.OrderedDict = collections.OrderedDict()

    def get(self, source: bytes, name: str, settings, compile_source):
        """The compiled script for this source, compiled now if not held by
        `compile_source(source, name=, settings=)` (the run's, Runtime.compile_source);
        raises the SieveCompileError of a source that does not compile."""
        key = (sha256(source).digest(), name, id(settings))
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] is settings:
                self._entries.move_to_end(key)
                result = entry[1]
            else:
                result = None
        if result is None:
            try:
                result = compile_source(source, name=name, settings=settings)
            except SieveCompileError as e:
                result = e
            with self._lock:
                self._entries[key] = (settings, result)
                self._entries.move_to_end(key)
                while len(self._entries) > settings.sieve_max_include_cache:
                    self._entries.popitem(last=False)
        if isinstance(result, SieveCompileError):
            raise result
        return result

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


INCLUDE_CACHE = IncludeCache()


def _location(node) -> str:
    return "global" if node.tags.get("location") == "global" else "personal"


def _validate_include(v, node):
    if not node.pos:
        return
    if not v.is_literal(node.pos[0]):
        v.error(node.pos[0], "the include command requires a constant string for its value argument")
        return
    name = node.pos[0].items[0].value
    err = name_error(name)
    if err:
        v.error(node.pos[0], f"include: {err}")
        return
    loader = v.loader
    if loader is None:
        return
    loc = _location(node)
    upload = v.shared.get("include_upload", False)
    # the (location, name) of each script from the top one down to this one. The top one is the
    # personal script of its name, except at upload: the script being uploaded is not the stored
    # one of that name yet (location ""), as in Pigeonhole's managesieved
    chain = v.data.get("include_chain") or (("" if upload else "personal", v.name),)
    key = (loc, name)
    once = bool(node.tags.get("once"))
    top_once = False
    if key in chain:
        if once and (key != chain[0] or chain.count(key) > 1):
            # an included script that is running has been included: `include :once` of it
            # does nothing (RFC 6609 3.2), no loop; _run_include skips it (Pigeonhole compiles it)
            return
        if not once:
            if upload:
                # RFC 6609 3.2: no error for a recursive include at upload (the scripts may be
                # uploaded in any order); managesieved warns so. Tests: tests/sieve/test_include_pigeonhole_s19.py
                v.warning(node, "circular include (ignored during upload)")
                return
            v.error(node, f"circular include of script '{name}'")
            return
        # `include :once` of the top script, which is running: it counts as included, so the
        # include does nothing (RFC 6609 3.2; _run_include skips it). sievec compiles a copy of
        # the top script here and refuses a loop through that copy (top -> b -> :once top, where
        # top includes b without :once: "circular include"): the copy is compiled for that check
        # only, and never run.
        top_once = True
        node.data["top"] = True
    # chain[0] is the top script (depth 0); this include puts `name` at depth len(chain): up to
    # the limit is allowed, as at run time and in Pigeonhole (sievec: 'cannot nest includes
    # deeper than 2 levels' only where a third level begins). Tests: tests/sieve/test_sievec_counts_s16.py
    if len(chain) > v.settings.sieve_max_include_depth:
        v.error(node, f"include nesting depth exceeds the limit of {v.settings.sieve_max_include_depth}")
        return
    shared = v.shared.setdefault("include_count", [0])      # of the whole compile
    cache = v.shared.setdefault("include_cache", {})
    if key not in cache:
        shared[0] += 1
        if shared[0] > v.settings.sieve_max_includes:
            v.error(node, f"number of included scripts exceeds the limit of {v.settings.sieve_max_includes}")
            return
    source = loader(name, loc)
    if source is None:
        if node.tags.get("optional"):
            node.data["missing"] = True
            return
        if upload:
            # at upload the included script may come later (RFC 6609 3.2); managesieved warns,
            # for :global as for :personal, and the run looks it up again
            v.warning(node, f"included {loc} script '{name}' does not exist (ignored during upload)")
            return
        v.error(node, f"included {loc} script '{name}' does not exist")
        return
    if key in cache:
        if not top_once:
            node.data["script"] = cache[key]
        return
    try:
        sub = v.compile_nested(source, name=name, data={"include_chain": chain + (key,)})
    except SieveCompileError as e:
        for d in e.diagnostics:
            if d.message not in ("validation failed", "parse failed"):
                v.add(d)
        v.error(node, f"failed to compile included script '{name}'")
        return
    # the included script's warnings are the including script's too (sievec and managesieved
    # report them with the script they come from, after the including script's own: compile_source
    # adds them at its end)
    v.data.setdefault("include_warnings", []).extend(sub.warnings)
    cache[key] = sub
    if not top_once:
        node.data["script"] = sub


def _begin_run(rt) -> None:
    rt.ext["include_stack"] = [rt.script.name]     # names of the scripts running, outermost first
    rt.ext["include_keys"] = []                    # (location, name) of the included ones running
    rt.ext["included"] = {}                        # (location, name) -> Script, for :once
    rt.ext["include_once_done"] = set()
    rt.ext["include_count"] = 0
    rt.ext["include_top"] = rt.script.source        # the running top script's text


def _run_include(rt, node):
    name = node.pos[0].items[0].value
    loc = _location(node)
    key = (loc, name)
    if "include_stack" not in rt.ext:       # a script without include runs one that has it
        _begin_run(rt)
    if node.tags.get("once") and key in rt.ext["include_once_done"]:
        return
    if node.data.get("missing") or node.data.get("top"):
        return      # (top: `include :once` of the top script, resolved at compile time)
    script = node.data.get("script")
    if script is None:
        script = rt.ext["included"].get(key)
    if script is None:
        source = rt.host.load_script(name, loc)
        if source is None:
            if node.tags.get("optional"):
                return
            raise SieveRuntimeError(f"included {loc} script '{name}' does not exist")
        rt.ext["include_count"] += 1
        if rt.ext["include_count"] > rt.settings.sieve_max_includes:
            raise SieveResourceLimit("too many included scripts (sieve_max_includes)")
        if isinstance(source, str):
            source = source.encode("utf-8", "surrogateescape")
        if len(source) > rt.settings.sieve_max_script_size:
            raise SieveRuntimeError(f"included script '{name}' failed to compile: script is too large "
                                    f"(sieve_max_script_size {rt.settings.sieve_max_script_size})")
        # Charged in full whether the cache holds it or not: the outcome is deterministic.
        rt.charge_memory(len(source))
        rt.step(1 + len(source) // COMPILE_BYTES_PER_STEP)
        try:
            script = INCLUDE_CACHE.get(source, name, rt.settings, rt.compile_source)
        except SieveCompileError as e:
            raise SieveRuntimeError(f"included script '{name}' failed to compile: {e}") from None
        rt.ext["included"][key] = script
    if node.tags.get("once") and script.source == rt.ext["include_top"]:
        # the top script is running: it counts as included, and `include :once` of it does
        # nothing (RFC 6609 3.2), as when resolved at compile time. It is known by its text: the
        # engine sees no paths, and delivery reads the active script through its link (named
        # "active", not the name scripts include it by). Pigeonhole compiles such a script, then
        # fails its run ("corrupt binary"). Tests: tests/sieve/test_include_pigeonhole_s19.py
        rt.ext["include_once_done"].add(key)
        return
    stack = rt.ext["include_stack"]
    if name in stack and key in rt.ext["include_keys"]:
        raise SieveRuntimeError(f"circular include of script '{name}'")
    if len(stack) > rt.settings.sieve_max_include_depth:
        raise SieveResourceLimit("include nesting too deep (sieve_max_include_depth)")
    rt.ext["include_once_done"].add(key)
    # State that belongs to the message (imap4flags' internal flags) is one for the script and
    # every script it includes: once any of them requires imap4flags, keep and fileinto in each
    # of them, and the implicit keep, use the flags, as Pigeonhole does (one compiled program).
    rt.share_message_context(script.requires)
    saved = (rt.vars, rt.match_values, rt.requires, rt.match_vars_enabled, rt.ext.get("global_names"))
    rt.vars = {}
    rt.match_values = []
    rt.requires = script.requires
    rt.match_vars_enabled = "variables" in script.requires
    rt.ext["global_names"] = set()
    stack.append(name)
    rt.ext["include_keys"].append(key)
    try:
        rt.run_block(script.tree)
    except ReturnScript:
        pass
    finally:
        stack.pop()
        rt.ext["include_keys"].pop()
        rt.vars, rt.match_values, rt.requires, rt.match_vars_enabled, gn = saved
        rt.ext["global_names"] = gn if gn is not None else set()


def _run_return(rt, node):
    raise ReturnScript()


def _validate_global(v, node):
    if "variables" not in v.required:
        v.error(node, "global command requires that variables extension is active")
        return
    from sieve.extensions.variables import check_name
    for s in node.pos[0].items if node.pos else ():
        if "." in s.value or not _IDENTIFIER.fullmatch(s.value):
            # RFC 6609 3.3 declares variables by name: an identifier, not a namespaced name
            # ("global.a" is how a string refers to one), as sievec rules
            v.error(s, f"invalid variable identifier '{s.value}'")
            continue
        low = s.value.lower()
        used = low in v.data.get("variables", ()) or low in v.data.get("local_references", ())
        if used and low not in v.data.get("globals", ()):
            # RFC 6609 3.3: a variable the script already used as local (set, or read as
            # ${name}) cannot become global; Pigeonhole: "conflicts with earlier local use"
            v.error(s, f"declaration of new global variable '{s.value}' conflicts with earlier local use")
            continue
        check_name(v, s, s.value)
        v.data.setdefault("globals", set()).add(s.value.lower())
        # The global scope is one scope for the top script and every script it includes
        # (RFC 6609 3.3), bounded as a script's own is (sieve_max_variables), as Pigeonhole
        # bounds it: counted over the whole compile when includes are resolved at compile time.
        scope = v.shared.setdefault("global_scope", set())
        scope.add(s.value.lower())
        if len(scope) > v.settings.sieve_max_variables:
            v.error(s, f"declaration of global variable '{s.value}' exceeds the limit of "
                       f"{v.settings.sieve_max_variables} global variables")


def _run_global(rt, node):
    names = rt.ext.setdefault("global_names", set())
    # the run's global scope, over every script it includes at run time (see _validate_global)
    scope = rt.ext.setdefault("global_scope", set())
    for s in node.pos[0].items:
        names.add(s.value.lower())
        scope.add(s.value.lower())
    if len(scope) > rt.settings.sieve_max_variables:
        raise SieveResourceLimit(f"more than {rt.settings.sieve_max_variables} global variables "
                                 "(sieve_max_variables)")


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# (Pigeonhole names both location tags whichever was repeated)
_LOCATION_TWICE = "include: cannot use location tags ':personal' and ':global' multiple times"

EXTENSION = Extension(
    name="include",
    commands=(
        CommandDef("include", positional=(STRING,), tags=(
            TagDef("personal", group="location", conflict=_LOCATION_TWICE),
            TagDef("global", group="location", conflict=_LOCATION_TWICE),
            TagDef("once", repeat=True), TagDef("optional", repeat=True)), validate=_validate_include, run=_run_include,
            arg_names=("value",)),
        CommandDef("return", run=_run_return),
        CommandDef("global", positional=(STRINGLIST,), validate=_validate_global, run=_run_global,
                   arg_names=("value",), single_list_argument=True),
    ),
    begin_run=_begin_run,
)
