"""variables (RFC 5229): `set` with modifiers, the `string` test, ${name} and ${N}
expansion (templates compiled at validation time), match variables.

Namespaces: `global.` (include), `env.` (vnd.dovecot.environment), `tst.` (testsuite).
Hooks: `_prepare` compiles each string of the script into a template (Str.parts) while
validating; the interpreter expands those through `expand`; `_begin_run` turns on match
variables (${N}) for a script that requires variables. Global variables (include's) live in
the run's `ext["globals"]`.
Every expansion and modifier result is charged to the run's memory budget before it is built
(Runtime.charge_memory, sieve_max_memory).
Tests: conformance extensions/variables/; tests/sieve/test_budgets_hostile.py.
"""

from __future__ import annotations

from sieve.errors import SieveRuntimeError
from sieve.extensions.base import STRING, STRINGLIST, CommandDef, Extension, TagDef

# References and names are scanned with str methods, not patterns: nearly every script that
# requires variables has strings to scan, and `re` (with enum and functools) would cost each
# in-process LDA run ~20 M instructions. tests/sieve/test_variables_scan.py holds them to the
# patterns they stand for: \$\{([^{}]*)\} (finditer), [A-Za-z_][A-Za-z0-9_]*(\.same)*, [0-9]+.
_IDENT_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_IDENT_CHARS = _IDENT_START | frozenset("0123456789")


def _references(text: str):
    """(start, end, name) of each ${name} in `text`, left to right, as re.finditer would give
    them; linear: a candidate's scan stops at the next '{'."""
    at = text.find("${")
    while at >= 0:
        body = at + 2
        brace = text.find("{", body)
        close = text.find("}", body, brace if brace >= 0 else len(text))
        if close >= 0:
            yield at, close + 1, text[body:close]
            at = text.find("${", close + 1)
        else:
            at = text.find("${", at + 1)


def _is_number(name: str) -> bool:
    return name.isascii() and name.isdigit()


def _is_name(name: str) -> bool:
    return all(p and p[0] in _IDENT_START and _IDENT_CHARS.issuperset(p) for p in name.split("."))


def _is_numbered_in_namespace(name: str) -> bool:
    """A namespaced reference with a number after the namespace (${a.1}, ${a.1.b}): RFC 5229
    3's grammar (namespace = identifier "." *sub-namespace, sub-namespace = variable-name ".",
    variable-name = num-variable / identifier) makes it a reference, not text."""
    first, dot, rest = name.partition(".")
    return bool(dot) and _is_name(first) and all(p and (_is_number(p) or _is_name(p)) for p in rest.split("."))


_WILDCARD_QUOTED = str.maketrans({c: "\\" + c for c in "*?\\"})
_REGEX_QUOTED = str.maketrans({c: "\\" + c for c in ".*+?^${}()|[]\\/"})
# variable namespace -> the extension that defines it
_NAMESPACES = {"global": "include", "env": "vnd.dovecot.environment", "tst": "vnd.dovecot.testsuite"}


def template(v, s):
    """Parts list for a string with variable references, or None for a constant."""
    text = s.value
    if "${" not in text:
        return None
    parts: list = []
    pos = 0
    found = False
    for start, end, name in _references(text):
        if _is_number(name):
            # the number's decimal value: leading zeros count for nothing (${001} is ${1}, as
            # Pigeonhole reads it, however many); a value past any match is one number past all
            digits = name.lstrip("0") or "0"
            kind = ("match", int(digits) if len(digits) < 6 else 10 ** 6)
            if kind[1] > v.settings.sieve_max_match_values:
                # RFC 5229 6: a reference past the match variables the implementation supports
                # MUST be a syntax error, found at compile time (sievec: "match value index 33
                # out of range (max: 32)", one per reference). Tests: tests/sieve/test_sievec_counts_s16.py
                v.error(s, f"match value index {digits} out of range (max: {v.settings.sieve_max_match_values})")
        elif _is_name(name):
            ns = name.lower().split(".")
            # names are case-insensitive (RFC 5229 3), the namespace too; an env. item's name is
            # matched exactly, as the environment test matches it (RFC 5183 4; Pigeonhole)
            kind = ("var", "env." + name[4:] if ns[0] == "env" and len(ns) > 1 else name.lower())
            if len(ns) == 1 and ns[0] not in v.data.get("globals", ()):
                # a use as a local variable: a `global` for the name after it is an error
                # (RFC 6609 3.3; include's _validate_global reads this)
                v.data.setdefault("local_references", set()).add(ns[0])
            if len(ns) > 1 and _NAMESPACES.get(ns[0]) not in v.required:
                # a namespace whose extension the script did not require is a compile error
                # (RFC 5229 3): global. needs include, env. vnd.dovecot.environment
                v.error(s, f"referring to variable in unknown namespace '{ns[0]}'")
            elif len(ns) > 2 and ns[0] == "tst":
                v.error(s, f"invalid variable name '{name}'")
        elif _is_numbered_in_namespace(name):
            ns = name.lower().split(".")
            kind = ("var", name.lower())
            if _NAMESPACES.get(ns[0]) not in v.required:
                v.error(s, f"referring to variable in unknown namespace '{ns[0]}'")
            else:
                # no namespace Owlery knows has numbered variables: global's are named by
                # `global` (identifiers, RFC 6609 3.3), env's are environment items (Pigeonhole:
                # "invalid variable name within env namespace: encountered numeric variable name")
                v.error(s, f"{_NAMESPACES[ns[0]]}: invalid variable name within {ns[0]} namespace `{name}': "
                           "encountered numeric variable name")
        else:
            continue
        if start > pos:
            parts.append(text[pos:start])
        parts.append(kind)
        pos = end
        found = True
    if not found:
        return None
    if pos < len(text):
        parts.append(text[pos:])
    return parts


def lookup(rt, name: str) -> str:
    if "." in name:
        ns, rest = name.split(".", 1)
        if ns == "global":
            return rt.ext.get("globals", {}).get(rest, "")
        if ns == "env":
            from sieve.extensions.environment import env_value
            v = env_value(rt, rest)
            return v if v is not None else ""
        if ns == "tst":
            if rt.testsuite is not None and rest == "path":
                return rt.testsuite.script_dir
            return ""
        return ""
    scope = rt.vars
    if name in rt.ext.get("global_names", ()):
        return rt.ext.get("globals", {}).get(name, "")
    return scope.get(name, "")


def expand(rt, parts) -> str:
    out = []
    size = 0
    limit = rt.settings.sieve_max_string_length
    for p in parts:
        if isinstance(p, str):
            out.append(p)
            size += len(p)
        else:
            kind, name = p
            if kind == "match":
                val = rt.match_values[name] if name < len(rt.match_values) else ""
            else:
                val = lookup(rt, name)
            out.append(val)
            size += len(val)
        if size > limit:
            raise SieveRuntimeError("expanded string is too long (sieve_max_string_length)")
    rt.step(1 + size // 1024)
    rt.charge_memory(size)
    s = "".join(out)
    if not s.isascii() and any("\udc80" <= c <= "\udcff" for c in s):
        # octets that were no UTF-8 apart (${hex:C3}, then ${hex:A9}) may be together: a
        # string is its octets (RFC 5228 2.4.2.4), as Pigeonhole joins them
        s = s.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
    return s


# --- set modifiers -------------------------------------------------------------------

def _quotewildcard(s: str) -> str:
    return s.translate(_WILDCARD_QUOTED)


def _quoteregex(s: str) -> str:
    return s.translate(_REGEX_QUOTED)


def _encodeurl(s: str) -> str:
    from urllib.parse import quote
    return quote(s.encode("utf-8", "surrogateescape"), safe="-._~")


def _seq_len(lead: int) -> int:
    """The octets a UTF-8 sequence with this first octet claims (one for an octet no sequence
    starts with), as Dovecot's uni_utf8_char_bytes reads it."""
    if lead < 0xC2 or lead > 0xFD:
        return 1
    return 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4 if lead < 0xF8 else 5 if lead < 0xFC else 6


def _length(s: str) -> str:
    """:length, the characters of s (RFC 5229 4.1.3). Text that is not UTF-8 (a match value
    that cuts a character: '?' takes one octet, RFC 5228 2.7.1) has no characters to count;
    it is counted as Pigeonhole counts it: each first octet with the octets it claims as one,
    a sequence cut short by the end of the string as none."""
    if s.isascii() or not any("\udc80" <= c <= "\udcff" for c in s):
        return str(len(s))
    b = s.encode("utf-8", "surrogateescape")
    n = i = 0
    while i < len(b):
        i += _seq_len(b[i])
        n += i <= len(b)
    return str(n)


_ASCII_UP = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ASCII_LOW = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

MODIFIERS = {
    # name: (precedence, function); higher precedence applied first (RFC 5229 4.1). Case is
    # changed for US-ASCII letters only, as i;ascii-casemap and Pigeonhole do: Unicode case
    # mapping depends on the language (Turkish i) and can change the length ('ß' -> 'SS').
    "lower": (40, lambda s: s.translate(_ASCII_LOW)),
    "upper": (40, lambda s: s.translate(_ASCII_UP)),
    "lowerfirst": (30, lambda s: s[:1].translate(_ASCII_LOW) + s[1:]),
    "upperfirst": (30, lambda s: s[:1].translate(_ASCII_UP) + s[1:]),
    "quotewildcard": (20, _quotewildcard),
    "quoteregex": (20, _quoteregex),
    "encodeurl": (15, _encodeurl),
    "length": (10, _length),
}
MODIFIER_EXT = {"quoteregex": "regex", "encodeurl": "enotify"}


def modifiers_first(v, node, args) -> bool:
    """set's and extracttext's modifiers, checked before anything else of their arguments as
    Pigeonhole does (Validator.bind's arguments_first); for set with two positionals, the name
    before the value's type too. True when it reported an error."""
    from sieve.parser import StrList, Tag
    before = v.errors
    lead = 0
    while lead < len(args) and isinstance(args[lead], Tag):
        lead += 1
    if any(isinstance(a, Tag) for a in args[lead:]) or len(args) - lead != (2 if node.name == "set" else 1):
        return False              # (a tag among the positionals, or their count: the binding says so)
    check_modifiers(v, args[:lead])
    pos = args[lead:]
    if v.errors == before and node.name == "set" and len(pos) == 2 and isinstance(pos[0], StrList) \
            and len(pos[0].items) == 1 and not pos[0].bracketed \
            and not (isinstance(pos[1], StrList) and len(pos[1].items) == 1 and not pos[1].bracketed):
        check_name(v, pos[0].items[0], pos[0].items[0].value)
    return v.errors != before


def _validate_set(v, node):
    mods = []
    for a in node.args:
        from sieve.parser import Tag
        if isinstance(a, Tag):
            mods.append(a)
    # the modifiers (tags) first: when they conflict, the name is not looked at (one error for
    # `set :lower :lower "${1}" "x"`, as in Pigeonhole)
    errors = v.errors
    node.data["mods"] = check_modifiers(v, mods)
    if node.pos and v.errors == errors:
        name = node.pos[0].items[0].value
        check_name(v, node.pos[0], name)


def check_modifiers(v, tags) -> list[str]:
    """The modifiers among `tags` (set's, extracttext's), highest precedence first; an error
    for the first that has the precedence of an earlier one (one error, as in sievec, which
    names the set command for extracttext's too)."""
    out = []
    seen_prec = {}
    for t in tags:
        if t.name not in MODIFIERS:
            continue
        prec = MODIFIERS[t.name][0]
        # RFC 5229 4: "an error to use two or more modifiers of the same precedence" -- a
        # repeated modifier (:lower :lower) is two of them too, as Pigeonhole rules.
        if prec in seen_prec:
            v.error(t, f"modifiers :{seen_prec[prec]} and :{t.name} specified for the set command "
                       "conflict having equal precedence")
            break
        seen_prec[prec] = t.name
        out.append(t.name)
    return sorted(out, key=lambda m: -MODIFIERS[m][0])


def check_name(v, where, name: str, allow_global_ns=True) -> None:
    low = name.lower()
    if not _is_name(name):
        # (Pigeonhole's words: a number names a match variable)
        v.error(where, "cannot assign to match variable" if _is_number(name) else f"invalid variable name '{name}'")
        return
    parts = low.split(".")
    if len(parts) > 1:
        if parts[0] == "global" and allow_global_ns and len(parts) == 2:
            if "include" not in v.required:
                v.error(where, "referring to variable in unknown namespace 'global'")
            return
        if _NAMESPACES.get(parts[0]) not in v.required:
            v.error(where, f"referring to variable in unknown namespace '{parts[0]}'")
        else:
            v.error(where, f"cannot assign to variable '{name}' (namespace not writable)")
        return
    if len(name) > v.settings.sieve_max_variable_name:
        v.error(where, f"variable name '{name}' is too long")
    vars_ = v.data.setdefault("variables", set())
    vars_.add(low)
    if len(vars_) > v.settings.sieve_max_variables and not v.data.get("variables_over"):
        # once per script, at the first variable past the limit, as sievec reports it (a script
        # declaring 1,000 variables is one error, not 745). Tests: tests/sieve/test_sievec_counts_s16.py
        v.data["variables_over"] = True
        v.error(where, f"number of variables exceeds the maximum ({v.settings.sieve_max_variables})")


def assign(rt, name: str, value: str) -> None:
    limit = rt.settings.sieve_max_variable_size
    if len(value) * 4 > limit:
        raw = value.encode("utf-8", "surrogateescape")
        if len(raw) > limit:
            # cut at the byte limit without splitting a UTF-8 sequence
            value = raw[:limit].decode("utf-8", "ignore")
    low = name.lower()
    if low.startswith("global."):
        rt.ext.setdefault("globals", {})[low[7:]] = value
    elif low in rt.ext.get("global_names", ()):
        rt.ext.setdefault("globals", {})[low] = value
    else:
        rt.vars[low] = value


# Modifiers that escape characters: their output is cut at the variable size limit
# between escaped units, never inside one (a half escape would change the meaning).
_UNIT_ESCAPES = {"quotewildcard": _quotewildcard, "quoteregex": _quoteregex, "encodeurl": _encodeurl}


def _escape_bounded(fn, value: str, limit: int) -> str:
    out = fn(value)
    if len(out.encode("utf-8", "surrogateescape")) <= limit:
        return out
    parts = []
    size = 0
    for ch in value:
        unit = fn(ch)
        n = len(unit.encode("utf-8", "surrogateescape"))
        if size + n > limit:
            break
        parts.append(unit)
        size += n
    return "".join(parts)


def _run_set(rt, node):
    name = node.pos[0].items[0].value
    value = rt.s(node.pos[1])
    limit = rt.settings.sieve_max_variable_size
    for m in node.data.get("mods", ()):
        # a modifier builds a new string at most a few times the input's size (encodeurl: 3x
        # plus its bounded copy); charge before building it
        rt.charge_memory(len(value) * (4 if m in _UNIT_ESCAPES else 1))
        if m in _UNIT_ESCAPES:
            value = _escape_bounded(_UNIT_ESCAPES[m], value, limit)
        else:
            value = MODIFIERS[m][1](value)
    assign(rt, name, value)


def _run_string(rt, node):
    values = rt.sl(node.pos[0])
    if node.tags.get("match-type") == "count":
        values = [x for x in values if x != ""]
    return rt.match(node, values, rt.sl(node.pos[1]))


def _prepare(v, s) -> None:
    s.parts = template(v, s)


def _begin_run(rt) -> None:
    rt.match_vars_enabled = True


_SET_TAGS = tuple(TagDef(m, group=None, key="mod:" + m) for m in
                  ("lower", "upper", "lowerfirst", "upperfirst", "quotewildcard", "length"))

EXTENSION = Extension(
    name="variables",
    commands=(
        CommandDef("set", positional=(STRING, STRING), tags=_SET_TAGS, validate=_validate_set, run=_run_set,
                   arg_names=("name", "value"), arguments_first=modifiers_first),
        CommandDef("string", kind="test", positional=(STRINGLIST, STRINGLIST), match=True, run=_run_string,
                   arg_names=("source", "key list")),
    ),
    prepare_string=_prepare,
    expand_string=expand,
    begin_run=_begin_run,
)
