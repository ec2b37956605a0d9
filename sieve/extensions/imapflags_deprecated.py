"""imapflags (draft-melnikov-sieve-imapflags-03), the deprecated forerunner of imap4flags
that scripts migrated from Cyrus still require: setflag/addflag/removeflag on the one set of
"current flags" (no variable name argument), mark and unmark (addflag/removeflag "\\Flagged"),
and those flags given implicitly to every keep and fileinto, the implicit keep included.

Disabled by default, as in Pigeonhole (sieve_extensions_disabled). The flags are read as
imap4flags reads them (sieve.extensions.imap4flags.split_flags: a space separates flags, a
flag no IMAP store can set is ignored), as Pigeonhole does. A script cannot require it with
imap4flags (also not through ihave): both define setflag, addflag and removeflag
(Extension.conflicts, checked by sieve.validator.Validator._load).
Hooks: `_flags_hook` (keep, fileinto; listed in sieve.extensions._ACTION_HOOK_MODULES),
`_final_flags` (end of the run: the implicit keep).
Tests: tests/sieve/test_deprecated_extensions.py (against sievec and sieve-test).
"""

from __future__ import annotations

from sieve.extensions.base import STRINGLIST, CommandDef, Extension
from sieve.extensions.imap4flags import split_flags

NAME = "imapflags"
_KEY = "imapflags:flags"      # rt.ext: the current flags (a tuple)


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


def _cmd(name, run, flags=True):
    return CommandDef(name, positional=(STRINGLIST,) if flags else (), run=run,
                      arg_names=("list of flags",) if flags else ())


EXTENSION = Extension(
    name=NAME,
    commands=(
        _cmd("setflag", _run_setflag), _cmd("addflag", _run_addflag), _cmd("removeflag", _run_removeflag),
        _cmd("mark", _run_mark, flags=False), _cmd("unmark", _run_unmark, flags=False),
    ),
    conflicts=("imap4flags",),
    action_hooks=(("keep", _flags_hook), ("fileinto", _flags_hook)),
    end_run=_final_flags,
    rfc="draft-melnikov-sieve-imapflags-03",
    summary="deprecated: setflag/addflag/removeflag, mark/unmark on the flags every keep and fileinto get "
            "(off by default; use imap4flags)",
)
