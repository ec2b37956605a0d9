"""Settings: each one declared once (name, type, default, unit, doc) and loaded from TOML.

A module that uses a setting declares it at module level with `setting(...)`; the
declaration registers itself here. The TOML file is flat, like Postfix's main.cf:
`greylist_delay = "5m"`. A key's prefix (text before the first `_`, or a longer
registered section) names the section, and `owlery.sections.SECTION_MODULES` says
which module declares that section, so loading a file imports only what it needs.

Every value is typed, tables and lists included: `list_of(item)` and `table_of(value, keys=)`
check each entry (`choice`, `matching(regex)`, `satisfying(predicate)` where a delivery
reads the setting at import, `registered(registry)` for names such as milter stages), so a
bad entry is refused when the file is read, never later in a daemon.
Errors name the file, the line (the entry's own, in any TOML form) and the entry, e.g.
`owlery.toml:3: milter_symbol_scores.SPF_FAIL: bad value: expected a number, got 'high'`,
and every error of a file is reported at once.

Talks to: nothing but the file system. Tests: tests/core/test_settings.py,
tests/core/test_settings_tables.py
"""

from __future__ import annotations

import sys

from owlery.lazyre import lazy
from owlery.record import Record

# Not imported at run time (the LDA's start-up pays for every import: typing ~1.7 ms).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ipaddress
    from collections.abc import Callable, Collection, Iterable, Mapping
    from typing import Any

DEFAULT_CONFIG_PATH = "/etc/owlery/owlery.toml"


class SettingsError(Exception):
    """A configuration problem, with where it was found (file, key, line) and why."""

    def __init__(self, reason: str, *, path: str | None = None, key: str | None = None,
                 line: int | None = None):
        self.reason = reason
        self.path = path
        self.key = key
        self.line = line
        where = ""
        if path:
            where = path + (f":{line}" if line else "") + ": "
        super().__init__(where + (f"{key}: " if key else "") + reason)


class SettingsErrors(SettingsError):
    """Several problems in one file, all reported at once (like `postconf` does), one per line."""

    def __init__(self, errors: list[SettingsError]):
        first = errors[0]
        self.errors = errors
        Exception.__init__(self, f"{len(errors)} errors in {first.path or 'the settings'}:\n"
                           + "\n".join(f"  {e}" for e in errors))
        self.reason, self.path, self.key, self.line = first.reason, first.path, first.key, first.line


# ---------------------------------------------------------------------------
# Types: each parses a TOML value into a Python value or raises ValueError.
# ---------------------------------------------------------------------------

class SettingType(Record, frozen=True):
    """A named parser from a TOML value to a Python value, with its inverse for `show`."""

    name: str
    parse: Callable[[Any], Any]
    render: Callable[[Any], Any] = lambda v: v


def _parse_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    raise ValueError(f"expected true or false, got {v!r}")


def _parse_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"expected an integer, got {v!r}")
    return v


def _finite(v: float) -> float:
    """`v`, unless TOML's nan or inf: a nan score or time compares false with everything, so it
    would silently turn a threshold or a delay off (`x - x` is 0 only for finite numbers; no
    math import at LDA start-up)."""
    if v - v != 0:
        raise ValueError(f"expected a finite number, got {v!r}")
    return v


def _parse_float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"expected a number, got {v!r}")
    return _finite(float(v))


def _parse_str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected a string, got {v!r}")
    return v


_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "ms": 0.001}


def _number_and_unit(text: str, number_chars: str) -> tuple[str, str]:
    """`text` stripped and split where its leading run of `number_chars` ends, the unit stripped
    (by hand: settings are parsed at import, and `re` would cost every LDA run ~20 M instructions)."""
    s = text.strip()
    end = 0
    while end < len(s) and s[end] in number_chars:
        end += 1
    return s[:end], s[end:].lstrip()


def parse_duration(v: Any) -> float:
    """Seconds from a number or a string like "300", "5m", "2d", "250ms"."""
    if isinstance(v, bool):
        raise ValueError(f"expected a duration, got {v!r}")
    if isinstance(v, (int, float)):
        if v < 0:
            raise ValueError("a duration cannot be negative")
        return _finite(float(v))
    if isinstance(v, str):
        number, unit = _number_and_unit(v, "0123456789.")
        if unit in _DURATION_UNITS and all(p and p.isdigit() for p in number.split(".", 1)):
            return float(number) * _DURATION_UNITS[unit]
    raise ValueError(f"expected a duration such as 300, \"5m\" or \"2d\", got {v!r}")


def _render_duration(v: float) -> Any:
    return int(v) if float(v).is_integer() else v


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}


def parse_size(v: Any) -> int:
    """Bytes from an integer or a string like "10M", "512k", "2G" (powers of 1024)."""
    if isinstance(v, bool):
        raise ValueError(f"expected a size, got {v!r}")
    if isinstance(v, int):
        if v < 0:
            raise ValueError("a size cannot be negative")
        return v
    if isinstance(v, str):
        number, unit = _number_and_unit(v, "0123456789")
        unit = unit.lower()
        prefix = unit[:1] if unit[:1] in ("k", "m", "g", "t") else ""
        if number and unit[len(prefix):] in ("", "i", "b", "ib"):      # 10M, 10 MB, 10MiB, 10Mi
            return int(number) * _SIZE_UNITS[prefix]
    raise ValueError(f"expected a size such as 1048576 or \"10M\", got {v!r}")


def _parse_network(v: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    import ipaddress      # here: only network settings need it (~1 ms per LDA run)
    try:
        return ipaddress.ip_network(_parse_str(v), strict=False)
    except ValueError as e:
        raise ValueError(f"bad network {v!r}: {e}") from None


def _parse_endpoint(v: Any) -> str:
    from owlery.endpoints import parse_endpoint  # local: endpoints imports nothing heavy either
    parse_endpoint(_parse_str(v))
    return v


def choice(*options: str) -> SettingType:
    """A string that must be one of `options`."""
    def parse(v: Any) -> str:
        s = _parse_str(v)
        if s not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {s!r}")
        return s
    return SettingType("one of " + "|".join(options), parse)


def int_range(low: int | None = None, high: int | None = None) -> SettingType:
    """An integer within [low, high]."""
    def parse(v: Any) -> int:
        n = _parse_int(v)
        if (low is not None and n < low) or (high is not None and n > high):
            raise ValueError(f"expected an integer from {low} to {high}, got {n}")
        return n
    return SettingType("integer", parse)


def matching(pattern: str, what: str) -> SettingType:
    """A string the regular expression `pattern` matches whole; `what` names it in errors.
    Compiled at the first value checked (a declaration's default is one)."""
    compiled = lazy(pattern)

    def parse(v: Any) -> str:
        s = _parse_str(v)
        if not compiled.fullmatch(s):
            raise ValueError(f"expected {what}, got {s!r}")
        return s
    return SettingType(what, parse)


def registered(names: Collection[str], what: str, *, normalise: Callable[[str], str] | None = None) -> SettingType:
    """A string naming an entry of the registry `names` (after `normalise`, e.g. str.upper).

    `names` is read each time a value is parsed, so an entry registered later counts.
    """
    def parse(v: Any) -> str:
        s = _parse_str(v)
        key = normalise(s) if normalise else s
        if key not in names:
            raise ValueError(f"unknown {what} {s!r} (known: {', '.join(sorted(names))})")
        return key
    return SettingType(what, parse)


# A path to a bad entry inside a value: table keys (str) and list positions (int, from 0).
EntryPath = tuple[str | int, ...]


class BadEntries(ValueError):
    """Bad entries inside a list or table value, each with its path: all of them, not just the first."""

    def __init__(self, problems: list[tuple[EntryPath, str]]):
        self.problems = problems
        super().__init__("; ".join(_entry_text(path, reason) for path, reason in problems))


def _entry_text(path: EntryPath, reason: str) -> str:
    keys, items = _entry_where(path)
    return f"{keys.lstrip('.')}: {items}{reason}" if keys else items + reason


def _entry_where(path: EntryPath) -> tuple[str, str]:
    """(`.KEY` for each table key, quoted unless bare; `item N: ` for each list position, from 1)."""
    keys = items = ""
    for part in path:
        if isinstance(part, int):
            items += f"item {part + 1}: "
        else:
            keys += "." + _toml_key(part)
    return keys, items


def _check_entry(parse: Callable[[Any], Any], raw: Any, where: EntryPath,
                 problems: list[tuple[EntryPath, str]]) -> tuple[bool, Any]:
    """(True, parsed) or (False, None) with the problems (nested ones under `where`) recorded."""
    try:
        return True, parse(raw)
    except BadEntries as e:
        problems.extend((where + path, reason) for path, reason in e.problems)
    except ValueError as e:
        problems.append((where, str(e)))
    return False, None


def list_of(item: SettingType, *, name: str | None = None, non_empty: bool = False) -> SettingType:
    """A list whose every item is an `item` (a lone string counts as a list of one); a tuple."""
    type_name = name or f"list of {item.name}"

    def parse(v: Any) -> tuple:
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, (list, tuple)):
            raise ValueError(f"expected a {type_name}, got {v!r}")
        if non_empty and not v:
            raise ValueError(f"expected a {type_name} with at least one item")
        out, problems = [], []
        for position, raw in enumerate(v):
            ok, value = _check_entry(item.parse, raw, (position,), problems)
            if ok:
                out.append(value)
        if problems:
            raise BadEntries(problems)
        return tuple(out)
    return SettingType(type_name, parse, lambda v: [item.render(x) for x in v])


def table_of(value: SettingType, *, keys: SettingType | None = None, name: str | None = None) -> SettingType:
    """A TOML table whose keys are `keys` (any string by default) and values are `value`; a dict."""
    key_type = keys or Str
    type_name = name or f"table of {key_type.name} = {value.name}"

    def parse(v: Any) -> dict:
        if not isinstance(v, dict):
            raise ValueError(f"expected a {type_name}, got {v!r}")
        out: dict = {}
        given: dict = {}
        problems: list[tuple[EntryPath, str]] = []
        for raw_key, raw in v.items():
            ok, key = _check_entry(key_type.parse, raw_key, (raw_key,), problems)
            if not ok:
                continue
            if key in given:
                problems.append(((raw_key,), f"given twice (as {given[key]!r} and {raw_key!r})"))
                continue
            given[key] = raw_key
            ok, parsed = _check_entry(value.parse, raw, (raw_key,), problems)
            if ok:
                out[key] = parsed
        if problems:
            raise BadEntries(problems)
        return out
    return SettingType(type_name, parse, lambda v: {key_type.render(k): value.render(x) for k, x in v.items()})


Bool = SettingType("boolean", _parse_bool)
Int = SettingType("integer", _parse_int)
Float = SettingType("number", _parse_float)
Str = SettingType("string", _parse_str)
StrList = list_of(Str, name="list of strings")
Duration = SettingType("duration", parse_duration, _render_duration)
Size = SettingType("size", parse_size)
Network = SettingType("network", _parse_network, str)
Networks = list_of(Network, name="list of networks")
Endpoint = SettingType("endpoint", _parse_endpoint)
Endpoints = list_of(Endpoint, name="list of endpoints")


# ---------------------------------------------------------------------------
# Declarations
# ---------------------------------------------------------------------------

class Setting(Record, frozen=True):
    """One declared setting. `default` is already a parsed value (or None for unset)."""

    name: str
    type: SettingType
    default: Any
    unit: str | None
    doc: str
    module: str

    @property
    def section(self) -> str:
        return section_of(self.name)


_REGISTRY: dict[str, Setting] = {}


def satisfying(accepts: Callable[[str], bool], what: str) -> SettingType:
    """A string `accepts` returns true for; `what` names it in errors. For checks a delivery
    makes at import (defaults), where a `matching` pattern would load `re` (owlery.lazyre)."""
    def parse(v: Any) -> str:
        s = _parse_str(v)
        if not accepts(s):
            raise ValueError(f"expected {what}, got {s!r}")
        return s
    return SettingType(what, parse)


def _is_setting_name(name: str) -> bool:
    """`component_name`, i.e. [a-z][a-z0-9]*(_[a-z0-9]+)+, checked without loading `re` for
    every declaration."""
    words = name.split("_")
    return len(words) > 1 and "a" <= name[:1] <= "z" and all(w and _NAME_CHARS.issuperset(w) for w in words)


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def setting(name: str, type: SettingType, default: Any, doc: str, *, unit: str | None = None) -> Setting:
    """Declare a setting once, at module level, beside the code that uses it.

    `default` is given in the same form a TOML file would give it and parsed now,
    so a bad default fails at import, not in production. None means "unset".
    """
    frame = sys._getframe(1)       # not inspect: it costs the LDA ~6 ms to import
    caller = frame.f_globals.get("__name__", "?")
    if not _is_setting_name(name):
        raise ValueError(f"setting name {name!r} must be component_name in snake case")
    if not doc or not doc.strip():
        raise ValueError(f"setting {name} needs a doc")
    parsed = None if default is None else type.parse(default)
    existing = _REGISTRY.get(name)
    if existing is not None and existing.module != caller:
        raise ValueError(f"setting {name} declared twice ({existing.module} and {caller})")
    s = Setting(name, type, parsed, unit, doc.strip(), caller)
    _REGISTRY[name] = s
    return s


def declared() -> Mapping[str, Setting]:
    """Every setting declared so far (import the section modules first for all of them)."""
    return dict(_REGISTRY)


def section_of(key: str) -> str:
    """The section a key belongs to: the longest registered section prefix, else its first word."""
    from owlery.sections import SECTION_MODULES
    best = key.split("_", 1)[0]
    for section in SECTION_MODULES:
        if key.startswith(section + "_") and len(section) > len(best):
            best = section
    return best


def import_section(section: str) -> None:
    from owlery.sections import SECTION_MODULES
    for module in SECTION_MODULES.get(section, ()):
        __import__(module)       # not importlib.import_module: importlib loads warnings (LDA start-up)


def import_all_sections() -> None:
    from owlery.sections import SECTION_MODULES
    for section in SECTION_MODULES:
        import_section(section)


# ---------------------------------------------------------------------------
# Effective values
# ---------------------------------------------------------------------------

class Settings:
    """Effective, immutable settings: defaults overlaid with a file's values.

    Read a value as an attribute, `settings.greylist_delay`, or by declaration,
    `settings[GREYLIST_DELAY]`. Reading an undeclared name is an AttributeError.
    """

    def __init__(self, values: Mapping[str, Any] | None = None, path: str | None = None,
                 lines: Mapping[str, int] | None = None):
        self._values = dict(values or {})
        self.path = path
        self._lines = dict(lines or {})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._values:
            return self._values[name]
        decl = _REGISTRY.get(name)
        if decl is None:
            import_section(section_of(name))
            decl = _REGISTRY.get(name)
        if decl is None:
            raise AttributeError(f"no setting named {name}")
        return decl.default

    def __getitem__(self, decl: Setting) -> Any:
        return getattr(self, decl.name)

    def is_set(self, name: str) -> bool:
        """True when the file gave this key (even to its default value)."""
        return name in self._values

    def line_of(self, name: str) -> int | None:
        return self._lines.get(name)

    def replace(self, **values: Any) -> "Settings":
        """A copy with some values replaced, each parsed by its declared type (for tests and flags)."""
        new = dict(self._values)
        for key, raw in values.items():
            new[key] = _parse_one(key, raw, self.path, lambda entry: None)
        return Settings(new, self.path, self._lines)

    def effective(self, only_non_default: bool = False) -> list[tuple[Setting, Any]]:
        """(declaration, value) pairs for every declared setting, sorted by name."""
        out = []
        for name in sorted(_REGISTRY):
            decl = _REGISTRY[name]
            value = self._values.get(name, decl.default)
            if only_non_default and value == decl.default:
                continue
            out.append((decl, value))
        return out


def _key_re(key: str) -> str:
    import re
    return r"""(?:"%s"|'%s'|%s)""" % ((re.escape(key),) * 3)


_ANY_HEADER = r"""\s*\[\[?[\w\s."'-]+\]\]?\s*(?:#.*)?$"""      # compiled when a file has tables


def _line_of(text: str, key: str, entry: str | None = None) -> int | None:
    """The line that gives top-level `key` or, with `entry`, that table entry of it.

    `key = ...` (an inline table is one line), dotted `key.entry = ...`, or a `[key]` table
    and its `entry = ...` line. An entry whose own line is not found falls back to the key's.
    """
    if entry is None:
        # A flat file's `key = value` without a regex (each key's three cost the LDA ~3 ms per
        # message); any other line naming the key, or a table header, takes the full scan.
        for number, line in enumerate(text.splitlines(), 1):
            stripped = line.lstrip()
            if stripped.startswith("["):
                break
            if key in line:
                if stripped.startswith(key) and stripped[len(key):].lstrip().startswith("="):
                    return number
                break
        else:
            return None
    import re
    assign = re.compile(r"\s*%s\s*=" % _key_re(key))
    dotted = re.compile(r"\s*%s\s*\." % _key_re(key))
    own_header = re.compile(r"\s*\[\s*%s\s*\]\s*(?:#.*)?$" % _key_re(key))
    entry_assign = re.compile(r"\s*%s\s*=" % _key_re(entry)) if entry is not None else None
    dotted_entry = re.compile(r"\s*%s\s*\.\s*%s\s*=" % (_key_re(key), _key_re(entry))) if entry is not None else None
    in_own_table: bool | None = None        # None: top level; then whether inside [key]
    fallback = None
    for number, line in enumerate(text.splitlines(), 1):
        if own_header.match(line):
            in_own_table = True
            fallback = fallback or number
        elif re.match(_ANY_HEADER, line):
            in_own_table = False
        elif in_own_table is None and assign.match(line):
            return number
        elif in_own_table is None and dotted.match(line):
            if dotted_entry is None or dotted_entry.match(line):
                return number
            fallback = fallback or number
        elif in_own_table and entry_assign is not None and entry_assign.match(line):
            return number
        if entry is None and fallback:
            return fallback
    return fallback


def _parse_one(key: str, raw: Any, path: str | None, line_of: Callable[[str | None], int | None]) -> Any:
    """The parsed value of `key`, or SettingsError(s) naming the key (and bad entries) and their lines."""
    decl = _REGISTRY.get(key)
    if decl is None:
        import_section(section_of(key))
        decl = _REGISTRY.get(key)
    if decl is None:
        hint = _did_you_mean(key)
        raise SettingsError("unknown setting" + (f" (did you mean {hint}?)" if hint else ""),
                            path=path, key=key, line=line_of(None))
    try:
        return decl.type.parse(raw)
    except BadEntries as e:
        errors = []
        for where, reason in e.problems:
            keys, items = _entry_where(where)
            first_key = next((part for part in where if isinstance(part, str)), None)
            errors.append(SettingsError(f"bad value: {items}{reason}", path=path, key=key + keys,
                                        line=line_of(first_key)))
        raise errors[0] if len(errors) == 1 else SettingsErrors(errors) from None
    except ValueError as e:
        raise SettingsError(f"bad value: {e}", path=path, key=key, line=line_of(None)) from None


def _did_you_mean(key: str) -> str | None:
    import difflib
    import_section(section_of(key))
    matches = difflib.get_close_matches(key, list(_REGISTRY), n=1, cutoff=0.75)
    return matches[0] if matches else None


_BARE_KEY = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
# Characters TOML allows nowhere but as the line end ("\n", "\r\n"): a file with one goes to tomllib.
_CONTROL = frozenset(chr(c) for c in [*range(0x20), 0x7F]) - {"\t", "\n"}


def scan_flat(text: str) -> dict[str, Any] | None:
    """The values of a flat settings file by a line scan, or None when only a TOML parser can
    tell (tomllib then: ~5 ms to import, paid by every in-process LDA run). Flat: each line
    blank, a comment, or `bare_key = value  # comment`, the value a string without escapes, true,
    false, a plain decimal integer, or a one-line list of such strings; each key once. Whatever
    this returns, tomllib.loads returns too (tests/core/test_settings_scan.py)."""
    flat = text.replace("\r\n", "\n")
    if "\\" in flat or flat.startswith("\ufeff") or not _CONTROL.isdisjoint(flat):
        return None
    out: dict[str, Any] = {}
    for line in flat.split("\n"):
        line = line.strip(" \t")
        if not line or line[0] == "#":
            continue
        key, eq, rest = line.partition("=")
        key = key.rstrip(" \t")
        if not eq or not key or not _BARE_KEY.issuperset(key) or key in out:
            return None
        value, rest = _scan_value(rest.lstrip(" \t"))
        if value is None or (rest and rest[0] != "#"):
            return None
        out[key] = value
    return out


def _scan_value(text: str) -> tuple[Any, str]:
    """(value, what follows it with leading blanks removed), or (None, "") when not simple."""
    if text[:1] in ('"', "'"):
        end = text.find(text[0], 1)
        if end < 0 or text[1:3] == text[0] * 2:        # unterminated, or a multi-line string
            return None, ""
        return text[1:end], text[end + 1:].lstrip(" \t")
    if text[:1] == "[":
        items: list[str] = []
        rest = text[1:].lstrip(" \t")
        while rest[:1] != "]":
            if rest[:1] not in ('"', "'"):
                return None, ""
            item, rest = _scan_value(rest)
            if item is None:
                return None, ""
            items.append(item)
            if rest[:1] == ",":
                rest = rest[1:].lstrip(" \t")
            elif rest[:1] != "]":
                return None, ""
        return items, rest[1:].lstrip(" \t")
    word, hash_mark, comment = text.partition("#")
    word = word.rstrip(" \t")
    rest = hash_mark + comment
    if word in ("true", "false"):
        return word == "true", rest
    if word == "0" or (0 < len(word) <= 18 and word[0] in "123456789" and all(c in "0123456789" for c in word)):
        return int(word), rest
    return None, ""


def parse_text(text: str, path: str = "<string>") -> Settings:
    """Parse TOML text into Settings, rejecting unknown keys and bad values with file:line."""
    data = scan_flat(text)
    if data is None:
        import tomllib
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            import re
            m = re.search(r"line (\d+)", str(e))
            raise SettingsError(f"not valid TOML: {e}", path=path,
                                line=int(m.group(1)) if m else None) from None
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    errors: list[SettingsError] = []
    for key, raw in data.items():
        line = _line_of(text, key)
        try:
            values[key] = _parse_one(key, raw, path, lambda entry, key=key: _line_of(text, key, entry))
        except SettingsErrors as e:       # keep going: report every problem in the file at once
            errors.extend(e.errors)
        except SettingsError as e:
            errors.append(e)
        if line:
            lines[key] = line
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SettingsErrors(sorted(errors, key=lambda e: e.line or 0))
    return Settings(values, path, lines)


def load(path: str | None, *, missing_ok: bool = True) -> Settings:
    """Load a TOML settings file. A missing file means built-in defaults when missing_ok."""
    if path is None:
        path = DEFAULT_CONFIG_PATH
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if missing_ok:
            return Settings(path=None)
        raise SettingsError("no such file", path=path) from None
    except OSError as e:
        raise SettingsError(f"cannot read: {e.strerror}", path=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SettingsError(f"not UTF-8 at byte {e.start}", path=path) from None
    return parse_text(text, path)


def render_toml_value(decl: Setting, value: Any) -> str:
    """A value as TOML text, for `owlery config show` and default config files."""
    if value is None:
        return '""  # unset'
    return _toml(decl.type.render(value))


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(str(k))} = {_toml(x)}" for k, x in v.items()) + " }"
    return _toml(str(v))


def _toml_key(key: str) -> str:
    """A TOML key: bare when it may be, else quoted."""
    bare = key and key.isascii() and key.replace("_", "a").replace("-", "a").isalnum()
    return key if bare else _toml(key)


def describe(decls: Iterable[Setting]) -> str:
    """A reference listing (name, type, default, unit, doc) for docs and `config show --doc`."""
    out = []
    for d in decls:
        unit = f" ({d.unit})" if d.unit else ""
        out.append(f"{d.name} = {render_toml_value(d, d.default)}   # {d.type.name}{unit}\n    {d.doc}")
    return "\n".join(out)
