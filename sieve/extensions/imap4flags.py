"""imap4flags (RFC 5232): setflag/addflag/removeflag, the hasflag test, :flags on
keep and fileinto, and the internal flags variable that sets the implicit keep's flags.

Hooks (sieve.extensions.base.Extension): `_flags_hook` gives keep and fileinto their flags
(:flags, else the internal variable); `final_flags` runs at the end of the run and gives the
implicit keep the internal variable's flags.

A flag no IMAP store can set (\\Recent, an unknown \\Name, a keyword that is not an IMAP
atom) is ignored when setflag/addflag add it and when keep/fileinto store, as Pigeonhole does.

Tests: conformance extensions/imap4flags/, tests/sieve/test_rfc_fixes.py,
tests/sieve/test_differential_fixes_s12.py (a variable's flag list text),
tests/sieve/test_differential_fixes_s13b.py (hasflag's list of flags).
"""

from __future__ import annotations

from sieve.actions import FinalFlags
from sieve.extensions.base import STRINGLIST, CommandDef, Extension, TagDef

INTERNAL = "__imap4flags__"

# RFC 5232 2 / RFC 3501 2.3.2: the flags a message can carry. \Recent is the server's to set;
# other backslash flags are not flags of any standard (flag-extension).
SYSTEM_FLAGS = frozenset({"\\seen", "\\answered", "\\flagged", "\\deleted", "\\draft"})
_ATOM_SPECIALS = frozenset('(){ %*"\\]')


def valid_flag(flag: str) -> bool:
    """A system flag an IMAP store accepts, or a keyword that is an IMAP atom."""
    if flag.startswith("\\"):
        return flag.lower() in SYSTEM_FLAGS
    return all(0x21 <= ord(c) <= 0x7e and c not in _ATOM_SPECIALS for c in flag)


def split_flags(values: list[str], valid_only: bool = False) -> list[str]:
    """The flags of space-separated lists (RFC 5232 3: SP separates flags; a TAB or line break
    is part of a flag, which is then not valid), duplicates (case-insensitive) dropped; with
    valid_only also those no IMAP store can set (ignored, as Pigeonhole does)."""
    out: list[str] = []
    low: set[str] = set()
    for v in values:
        for f in filter(None, v.split(" ")):
            if f.lower() not in low and (not valid_only or valid_flag(f)):
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


def _flag_list(rt, node, valid_only: bool = False):
    return split_flags(rt.sl(node.pos[-1]), valid_only)


def _run_setflag(rt, node):
    _put(rt, node, _flag_list(rt, node, valid_only=True))


_ASCII_LOW = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _fold(flag: str) -> str:
    return flag.translate(_ASCII_LOW)    # flags compare without ASCII case (RFC 5232 2)


def add_to_list(text: str, flags: list[str]) -> str:
    """A variable's flag list with `flags` added: the text is kept as it is (its spaces, its
    order, any repeat), and each flag it does not hold yet is appended after one space.
    RFC 5232 3 lets addflag rewrite the list in any way that keeps it the same set; Pigeonhole
    appends only, and a script reading the variable sees its text (checked with sieve-test)."""
    have = {_fold(f) for f in text.split(" ") if f}
    for f in flags:
        if _fold(f) not in have:
            have.add(_fold(f))
            text = f"{text} {f}" if text else f
    return text


def remove_from_list(text: str, flags: list[str]) -> str:
    """A variable's flag list with every occurrence of `flags` taken out of its text, each with
    the space before it (the one after it for a flag at the start), the rest of the text left
    as it was: Pigeonhole's removeflag on a variable (RFC 5232 3 allows any rewriting that
    keeps the set; this keeps what a script reads the same as sieve-test)."""
    for flag in flags:     # one flag after the other, each through the whole text
        text = _remove_one(text, _fold(flag))
    return text


def _remove_one(text: str, gone: str) -> str:
    offset = 0
    while True:
        # the next flag at or after offset: text[last:offset]
        start, pos, found = offset, offset, None
        while True:
            if pos >= len(text) or text[pos] == " ":
                if pos > start:
                    found = (start, pos)
                    break
                start = pos + 1
            if pos >= len(text):
                break
            pos += 1
        if found is None:
            return text
        last, offset = found
        if _fold(text[last:offset]) == gone:
            offset = min(offset + 1, len(text))
            if offset == len(text) and last > 0:
                last -= 1
            text = text[:last] + text[offset:]
            offset = last


def _run_addflag(rt, node):
    if len(node.pos) == 2:
        from sieve.extensions.variables import assign, lookup
        name = node.pos[0].items[0].value
        assign(rt, name, add_to_list(lookup(rt, name.lower()), _flag_list(rt, node, valid_only=True)))
        return
    cur = _get(rt, node)
    _put(rt, node, split_flags([" ".join(cur)] + _flag_list(rt, node, valid_only=True)))


def _run_removeflag(rt, node):
    if len(node.pos) == 2:
        from sieve.extensions.variables import assign, lookup
        name = node.pos[0].items[0].value
        assign(rt, name, remove_from_list(lookup(rt, name.lower()), _flag_list(rt, node)))
        return
    rm = {f.lower() for f in _flag_list(rt, node)}
    _put(rt, node, [f for f in _get(rt, node) if f.lower() not in rm])


def _run_hasflag(rt, node):
    if len(node.pos) == 2:
        from sieve.extensions.variables import lookup
        vals = []
        for name in rt.sl(node.pos[0]):
            # what a variable holds counts as flags only where it is a valid flag name, as
            # setflag/addflag would have taken it (Pigeonhole's hasflag reads it so too)
            vals.extend(split_flags([lookup(rt, name.lower())], valid_only=True))
    else:
        vals = list(rt.ext.get("flags", ()))
    keys = rt.sl(node.pos[-1])
    if node.tags.get("match-type", "is") in ("is", "contains"):
        # RFC 5232 4: the list of flags is flags too (`hasflag :is "b A"` is true for flags
        # "A B"); Pigeonhole splits the keys of :is and :contains so, the others stay strings
        keys = split_flags(keys, valid_only=True)
    return rt.match(node, vals, keys)


def _warn_invalid_flag(v, node) -> None:
    """setflag/addflag/removeflag with one argument, a literal string of flags: the first flag
    no IMAP store can set (ignored at run time, RFC 5232 3) is warned about, as sievec does (not
    for a bracketed list, a variable's flags, nor a flag with a TAB or line break: sievec says
    nothing of those)."""
    if node.name == "hasflag" or len(node.pos) != 1:
        return
    flags = node.pos[0]
    if flags.bracketed or not v.is_literal(flags):
        return
    for f in split_flags([flags.items[0].value]):
        if not valid_flag(f) and not any(c in f for c in "\t\r\n"):
            v.warning(flags, f"IMAP flag '{f}' specified for the {node.name} command is invalid and will be "
                             "ignored (only first invalid is reported)")
            return


def _validate_flagcmd(v, node):
    _warn_invalid_flag(v, node)
    if len(node.pos) == 2:
        first = node.pos[0]
        if node.name != "hasflag" and (first.bracketed or len(first.items) != 1):
            # RFC 5232 3: setflag/addflag/removeflag [<variablename: string>] <flags>: one name
            # (hasflag's is a <variable-list: string-list>, RFC 5232 4)
            v.error(first, f"if a second argument is specified for the {node.name} command, the first "
                           f"must be a string (variable name), but a string list was found")
            return
        if "variables" not in v.required:
            v.error(node, f"the {node.name} {'test' if node.name == 'hasflag' else 'command'} only allows for the "
                          "specification of a variable name when the variables extension is active")
            return
        from sieve.extensions.variables import check_name
        for s in node.pos[0].items:
            before = v.errors
            check_name(v, s, s.value)
            if v.errors > before:
                return          # the first invalid name only, as Pigeonhole reports it


def action_flags(rt, node) -> tuple[str, ...]:
    """Flags for a keep/fileinto: :flags if given, else the internal variable: its value now
    in a script that requires imap4flags (or after an earlier script of the delivery left
    flags), its value at the end of the run in one that does not while an included or
    including script that does has started (RFC 5232 leaves scripts without the extension
    out; Pigeonhole's result applies the flags to every store then)."""
    f = node.tags.get("flags") if node is not None else None
    if f is not None:
        return tuple(split_flags(rt.sl(f), valid_only=True))
    if "imap4flags" in rt.requires or "imap4flags" in rt.context_extensions:
        return tuple(split_flags(rt.ext.get("flags", ()), valid_only=True))
    if rt.uses("imap4flags"):
        return FinalFlags()
    return ()


def _flags_hook(rt, node, action, cancels_keep):
    # keep and fileinto store with flags (an empty tuple when the script has no imap4flags)
    return action.replace(flags=action_flags(rt, node)), cancels_keep


def final_flags(rt) -> None:
    """End of the run: the implicit keep, and the stores that wait for them (FinalFlags),
    take the internal variable's flags."""
    if rt.uses("imap4flags"):
        flags = tuple(split_flags(rt.ext.get("flags", ()), valid_only=True))
        rt.result.keep_flags = flags
        actions = rt.result.actions
        for i, a in enumerate(actions):
            if isinstance(getattr(a, "flags", None), FinalFlags):
                actions[i] = a.replace(flags=flags)


def _variable_needs_variables(v, node, args) -> bool:
    """The variable name (one string, and the variables extension) before the second
    argument's type, as Pigeonhole checks them (CommandDef.arguments_first)."""
    from sieve.parser import StrList, Tag
    lead = 0
    while lead < len(args) and isinstance(args[lead], Tag) and args[lead].name in ("is", "contains", "matches", "regex"):
        lead += 1
    pos = args[lead:]
    if len(pos) != 2 or node.tests or any(isinstance(a, Tag) for a in pos):
        return False
    if node.name != "hasflag" and isinstance(pos[0], StrList) and (pos[0].bracketed or len(pos[0].items) != 1) \
            and not isinstance(pos[1], StrList):
        v.error(pos[0], f"if a second argument is specified for the {node.name} command, the first "
                        f"must be a string (variable name), but a string list was found")
        return True
    if "variables" not in v.required and isinstance(pos[0], StrList) \
            and len(pos[0].items) == 1 and not pos[0].bracketed and not isinstance(pos[1], StrList):
        what = "test" if node.name == "hasflag" else "command"
        v.error(node, f"the {node.name} {what} only allows for the specification of a variable name when the "
                      "variables extension is active")
        return True
    return False


def _cmd(name, run):
    return CommandDef(name, positional=(STRINGLIST, STRINGLIST), optional_positional=1,
                      validate=_validate_flagcmd, run=run, arg_names=("variable name", "list of flags"),
                      leading_optional=True, arguments_first=_variable_needs_variables)


EXTENSION = Extension(
    name="imap4flags",
    commands=(
        _cmd("setflag", _run_setflag), _cmd("addflag", _run_addflag), _cmd("removeflag", _run_removeflag),
        CommandDef("hasflag", kind="test", positional=(STRINGLIST, STRINGLIST), optional_positional=1,
                   match=True, validate=_validate_flagcmd, run=_run_hasflag,
                   arg_names=("variable name", "list of flags"), leading_optional=True,
                   arguments_first=_variable_needs_variables),
    ),
    extra_tags=(("keep", TagDef("flags", STRINGLIST)), ("fileinto", TagDef("flags", STRINGLIST))),
    action_hooks=(("keep", _flags_hook), ("fileinto", _flags_hook)),
    end_run=final_flags,
    message_context=("flags",),
)
