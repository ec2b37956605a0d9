"""imap4flags (RFC 5232): setflag/addflag/removeflag, the hasflag test, :flags on
keep and fileinto, and the internal flags variable that sets the implicit keep's flags.

Tests: conformance extensions/imap4flags/.
"""

from __future__ import annotations

from sieve.extensions.base import STRINGLIST, CommandDef, Extension, TagDef

INTERNAL = "__imap4flags__"


def split_flags(values: list[str]) -> list[str]:
    out: list[str] = []
    low: set[str] = set()
    for v in values:
        for f in v.split():
            if f.lower() not in low:
                low.add(f.lower())
                out.append(f)
    return out


def _get(rt, node) -> list[str]:
    if len(node.pos) == 2:
        from sieve.extensions.variables import lookup
        name = node.pos[0].items[0].value.lower()
        return split_flags([lookup(rt, name)])
    return list(rt.ext.get("flags", ()))


def _put(rt, node, flags: list[str]) -> None:
    if len(node.pos) == 2:
        from sieve.extensions.variables import assign
        assign(rt, node.pos[0].items[0].value, " ".join(flags))
    else:
        rt.ext["flags"] = tuple(flags)


def _flag_list(rt, node):
    return split_flags(rt.sl(node.pos[-1]))


def _run_setflag(rt, node):
    _put(rt, node, _flag_list(rt, node))


def _run_addflag(rt, node):
    cur = _get(rt, node)
    _put(rt, node, split_flags([" ".join(cur)] + _flag_list(rt, node)))


def _run_removeflag(rt, node):
    rm = {f.lower() for f in _flag_list(rt, node)}
    _put(rt, node, [f for f in _get(rt, node) if f.lower() not in rm])


def _run_hasflag(rt, node):
    if len(node.pos) == 2:
        from sieve.extensions.variables import lookup
        vals = []
        for name in rt.sl(node.pos[0]):
            vals.extend(split_flags([lookup(rt, name.lower())]))
    else:
        vals = list(rt.ext.get("flags", ()))
    return rt.match(node, vals, rt.sl(node.pos[-1]))


def _validate_flagcmd(v, node):
    if len(node.pos) == 2:
        if "variables" not in v.required:
            v.error(node, f"the {node.name} command takes a variable name only with the variables extension")
            return
        from sieve.extensions.variables import check_name
        for s in node.pos[0].items:
            check_name(v, s, s.value)


def action_flags(rt, node) -> tuple[str, ...]:
    """Flags for a keep/fileinto: :flags if given, else the internal variable."""
    f = node.tags.get("flags") if node is not None else None
    if f is not None:
        return tuple(split_flags(rt.sl(f)))
    if "imap4flags" in rt.requires:
        return tuple(rt.ext.get("flags", ()))
    return ()


def final_flags(rt) -> None:
    if "imap4flags" in rt.requires:
        rt.result.keep_flags = tuple(rt.ext.get("flags", ()))


def _cmd(name, run):
    return CommandDef(name, positional=(STRINGLIST, STRINGLIST), optional_positional=1,
                      validate=_validate_flagcmd, run=run)


EXTENSION = Extension(
    name="imap4flags",
    commands=(
        _cmd("setflag", _run_setflag), _cmd("addflag", _run_addflag), _cmd("removeflag", _run_removeflag),
        CommandDef("hasflag", kind="test", positional=(STRINGLIST, STRINGLIST), optional_positional=1,
                   match=True, validate=_validate_flagcmd, run=_run_hasflag),
    ),
    extra_tags=(("keep", TagDef("flags", STRINGLIST)), ("fileinto", TagDef("flags", STRINGLIST))),
)
