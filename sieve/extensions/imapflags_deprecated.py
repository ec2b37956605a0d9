"""imapflags (draft-melnikov-sieve-imapflags-03), the deprecated forerunner of imap4flags
that scripts migrated from Cyrus still require: setflag/addflag/removeflag on the one set of
"current flags" (no variable name argument), mark and unmark (addflag/removeflag "\\Flagged"),
and those flags given implicitly to every keep and fileinto, the implicit keep included.

Disabled by default, as in Pigeonhole (sieve_extensions_disabled). The flags are read as
imap4flags reads them (sieve.extensions.imap4flags.split_flags: a space separates flags, a
flag no IMAP store can set is ignored), as Pigeonhole does. A script cannot require it with
imap4flags (also not through ihave): both define setflag, addflag and removeflag.
Hooks: `_flags_hook` (keep, fileinto; listed in sieve.extensions._ACTION_HOOK_MODULES),
`_final_flags` (end of the run: the implicit keep). The conflict is found by the hooks the
validator offers (see `conflict_checks`).
Tests: tests/sieve/test_deprecated_extensions.py (against sievec and sieve-test).
"""

from __future__ import annotations

from sieve.extensions.base import STRINGLIST, CommandDef, Extension
from sieve.extensions.imap4flags import split_flags

NAME = "imapflags"
_KEY = "imapflags:flags"      # rt.ext: the current flags (a tuple)


def conflict_checks(dep: str, modern: str):
    """(tag_checks, check(v, node)) that refuse `dep` and `modern` in one script with
    Pigeonhole's error "the (deprecated) DEP extension cannot be used together with the
    MODERN extension", and leave the commands as sievec has them after it: the deprecated
    extension required after the other one is not loaded (its commands are unknown); required
    before it, both stay, the deprecated one's definition of a name both have (setflag, notify)
    standing.

    sievec reports it once where the second of the two is loaded (require), and again for each
    ihave that names one while the other is loaded. The validator has no hook for a load: here
    the conflict is reported once per script after the first command or test that binds
    without error once both are loaded (a core one, or one of either extension's:
    _CHECKED_COMMANDS; it is bound again when its definition changes), and by every ihave that
    brings them together. (A check while a command's arguments are bound would hide that
    command's own errors.) A script whose commands after the require lines all have errors,
    or that has none, is not refused for the conflict (it is refused, or does nothing)."""
    message = f"the (deprecated) {dep} extension cannot be used together with the {modern} extension"
    flag = f"conflict:{dep}"

    def settle(v, node) -> None:
        dep_defs = {c.name: c for c in v.registry[dep].commands}
        mod_defs = {c.name: c for c in v.registry[modern].commands}
        shared = [n for n in dep_defs if n in mod_defs]
        dep_last = any(v.cmds.get(n) is dep_defs[n] for n in shared)
        if dep_last:
            for c in dep_defs.values():
                (v.cmds if c.kind == "command" else v.tsts).pop(c.name, None)
            for c in mod_defs.values():
                (v.cmds if c.kind == "command" else v.tsts)[c.name] = c
            v.required.discard(dep)
        else:
            for c in dep_defs.values():
                (v.cmds if c.kind == "command" else v.tsts)[c.name] = c
        if node is None or node.is_test or node.name not in dep_defs:
            return
        d = v.cmds.get(node.name)
        if d is None:
            v._unknown_identifier(node, "command")
        elif d is not node.defn:
            node.tags, node.pos, node.data = {}, [], {}
            v.bind(node, d, 1)

    def check(v, node) -> None:
        if dep in v.required and modern in v.required and not v.data.get(flag):
            v.data[flag] = True
            v.error(node, message)
            settle(v, node)

    def ihave(v, node) -> None:
        if not node.data.get("known") or not node.pos:
            return
        names = {s.value for s in node.pos[0].items}
        if dep in v.required and modern in v.required and (modern in names or dep in names):
            v.data[flag] = True
            v.error(node, message)
            settle(v, None)

    tag_checks = (("ihave", ihave),) + tuple((name, check) for name in _CHECKED_COMMANDS)
    return tag_checks, check


# the commands and tests after whose binding the conflict is looked for (tag_checks): the core
# language's, and those of imapflags, imap4flags, notify and enotify
_CHECKED_COMMANDS = (
    "if", "elsif", "else", "stop", "keep", "discard", "redirect", "fileinto",
    "address", "header", "exists", "size", "true", "false", "not", "allof", "anyof", "envelope",
    "setflag", "addflag", "removeflag", "hasflag", "mark", "unmark",
    "notify", "denotify", "valid_notify_method", "notify_method_capability",
)

_tag_checks, _check = conflict_checks(NAME, "imap4flags")


def _current(rt) -> list[str]:
    return list(rt.ext.get(_KEY, ()))


def _given(rt, node) -> list[str]:
    return split_flags(rt.sl(node.pos[0]), valid_only=True) if node.pos else []


def _set(rt, flags) -> None:
    rt.ext[_KEY] = tuple(split_flags([" ".join(flags)]))


def _run_setflag(rt, node):
    _set(rt, _given(rt, node))


def _add(rt, flags) -> None:
    _set(rt, _current(rt) + list(flags))


def _remove(rt, flags) -> None:
    gone = {f.lower() for f in flags}
    _set(rt, [f for f in _current(rt) if f.lower() not in gone])


def _run_addflag(rt, node):
    _add(rt, _given(rt, node))


def _run_removeflag(rt, node):
    _remove(rt, split_flags(rt.sl(node.pos[0])))


def _run_mark(rt, node):
    _add(rt, ["\\Flagged"])


def _run_unmark(rt, node):
    _remove(rt, ["\\Flagged"])


def _flags_hook(rt, node, action, cancels_keep):
    # draft 3 (setflag): the current flags go with every keep and fileinto that follows
    if rt.uses(NAME):
        action = action.replace(flags=tuple(split_flags(list(action.flags) + _current(rt), valid_only=True)))
    return action, cancels_keep


def _final_flags(rt) -> None:
    rt.result.keep_flags = tuple(split_flags(_current(rt), valid_only=True))


def _validate(v, node):
    _check(v, node)


def _cmd(name, run, flags=True):
    return CommandDef(name, positional=(STRINGLIST,) if flags else (), validate=_validate, run=run,
                      arg_names=("list of flags",) if flags else ())


EXTENSION = Extension(
    name=NAME,
    commands=(
        _cmd("setflag", _run_setflag), _cmd("addflag", _run_addflag), _cmd("removeflag", _run_removeflag),
        _cmd("mark", _run_mark, flags=False), _cmd("unmark", _run_unmark, flags=False),
    ),
    tag_checks=_tag_checks,
    action_hooks=(("keep", _flags_hook), ("fileinto", _flags_hook)),
    end_run=_final_flags,
    rfc="draft-melnikov-sieve-imapflags-03",
    summary="deprecated: setflag/addflag/removeflag, mark/unmark on the flags every keep and fileinto get "
            "(off by default; use imap4flags)",
)
