"""Declarative definitions an extension is made of: commands, tests, tags, match types.

Each extension file builds one `Extension` value from `CommandDef`/`TagDef` data plus
`validate` and `run` functions; sieve.extensions lists them in one registry tuple.
Used by sieve.validator (argument checking) and sieve.interpreter (dispatch).
Tests: tests/sieve/test_conformance.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

STRING, STRINGLIST, NUMBER = "string", "string-list", "number"


@dataclasses.dataclass(frozen=True)
class TagDef:
    """A tagged argument `:name [param]`. `group`: tags in one group exclude each other."""

    name: str
    param: str | None = None
    group: str | None = None
    key: str | None = None

    @property
    def slot(self) -> str:
        return self.key or self.group or self.name


@dataclasses.dataclass(frozen=True)
class CommandDef:
    """A command or test as data: its arguments, block rules, and behaviour."""

    name: str
    kind: str = "command"                      # "command" | "test"
    positional: tuple[str, ...] = ()
    optional_positional: int = 0               # how many trailing positionals may be absent
    tags: tuple[TagDef, ...] = ()
    match: bool = False                        # takes :comparator and a match type
    address_part: bool = False                 # takes :all/:localpart/:domain/...
    block: str = "none"                        # "none" | "optional" | "required"
    subtests: Any = 0                          # 0 | 1 | "list"
    validate: Callable | None = None           # validate(v, node): extra checks
    run: Callable | None = None                # run(rt, node) -> None | bool
    toplevel_only: bool = False


@dataclasses.dataclass(frozen=True)
class Extension:
    """One Sieve extension (capability string `name`)."""

    name: str
    commands: tuple[CommandDef, ...] = ()
    extra_tags: tuple[tuple[str, TagDef], ...] = ()        # (command name, tag) added to others
    # (command name, check(validator, node)): rules for the tags this extension adds to another
    # extension's command, run after that command's own checks (e.g. index: :last needs :index)
    tag_checks: tuple[tuple[str, Any], ...] = ()
    match_types: tuple[str, ...] = ()                       # e.g. ("count", "value")
    address_parts: tuple[str, ...] = ()
    comparators: tuple[str, ...] = ()
    modifiers: tuple[tuple[str, int], ...] = ()             # variables set modifiers (name, precedence)
    implies: tuple[str, ...] = ()
    hidden: bool = False                                    # not in the capability list
    # the specification ("RFC 5228 section 4.1", "draft-...", "vendor (...)") and a one-line
    # description, for `owlery sieve extensions`; sieve.extensions fills them from its table
    # for extensions that do not declare them
    rfc: str = ""
    summary: str = ""
    requires: tuple[str, ...] = ()                          # must be required together with
