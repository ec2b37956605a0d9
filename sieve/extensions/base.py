"""Declarative definitions an extension is made of: commands, tests, tags, match types,
and the hooks through which it changes what other extensions' commands do.

Each extension file builds one `Extension` value from `CommandDef`/`TagDef`/`MatchTypeDef`
data plus `validate` and `run` functions; sieve.extensions lists them in one registry tuple.
Used by sieve.validator (argument checking) and sieve.interpreter (dispatch); neither names
an extension: what one extension adds to another's command (imap4flags' :flags on keep,
copy's :copy on redirect, mailbox's :create, special-use's :specialuse, extlists' :list, the
mime tags on header) or to the whole run (imap4flags' flags for the implicit keep, variables'
string templates) comes in through the `Extension` hooks below.
A leaf (imports nothing of the engine), so the interpreter and every extension import it.
Tests: tests/sieve/test_conformance.py, tests/sieve/test_extension_hooks.py.
"""

from __future__ import annotations

from _collections_abc import Callable   # = collections.abc, without loading collections (LDA start-up)

from owlery.record import Record

TYPE_CHECKING = False     # not `from typing import ...`: the LDA's start-up pays for every import (~1.7 ms)
if TYPE_CHECKING:
    from typing import Any

STRING, STRINGLIST, NUMBER = "string", "string-list", "number"


class StopScript(Exception):
    """`stop`: ends the whole run (all includes)."""


class ReturnScript(Exception):
    """include's `return`: ends the current (included) script."""


class TagDef(Record, frozen=True):
    """A tagged argument `:name [param]`. `group`: tags in one group exclude each other."""

    name: str
    param: str | None = None
    group: str | None = None
    key: str | None = None
    # may be given more than once, the last one counting (Pigeonhole accepts :last, :anychild,
    # :name, :once, :optional and vacation's :handle twice, and their RFCs do not forbid it;
    # tests/sieve/test_compile_errors_generated.py)
    repeat: bool = False
    # the error when the tag repeats or conflicts with one of its group, as Pigeonhole words it
    # (str.format with tag, prev (the tag it conflicts with), cmd and what); None: "encountered
    # duplicate :tag argument for the cmd what"
    conflict: str | None = None
    # what the error for a wrong parameter says it requires ("a string parameter"), where
    # Pigeonhole words it apart; None: "a string as parameter"
    param_words: str | None = None

    @property
    def slot(self) -> str:
        return self.key or self.group or self.name


class CommandDef(Record, frozen=True):
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
    # names of the positional arguments, as Pigeonhole's diagnostics give them ("argument 1
    # (header names)"); found by feeding sievec a wrong-typed argument in each position
    arg_names: tuple[str, ...] = ()
    loop: bool = False                         # its block is a loop (sieve_max_loop_nesting)
    # arguments_first(v, node, args) -> bool (True: it reported an error, binding stops): run
    # before the arguments are bound, for what Pigeonhole checks before the positional count and
    # types (set's modifiers) or reads in another shape (size), so that the first error found
    # says what Pigeonhole says
    arguments_first: Callable | None = None
    # the optional positional argument is the first of two (setflag [<variablename>] <flags>),
    # which Pigeonhole's argument errors say ("either a string (variable name) or a string-list")
    leading_optional: bool = False
    # its one argument is a string or a string list as require's is: a wrong one is worded so
    single_list_argument: bool = False


class MatchTypeDef(Record, frozen=True):
    """A match type (`:is`, `:count "gt"`, `:regex`) an extension makes available.

    bind(v, node, d, what, tag, nxt) -> int | None: reads the match type's own parameter
    (`nxt`, the argument after the tag); returns how many arguments it took, or None after
    reporting an error. check(v, node, comparator): runs once the comparator and match type
    are known to go together (e.g. compiles the constant keys)."""

    name: str
    bind: Callable | None = None
    check: Callable | None = None


class Extension(Record, frozen=True):
    """One Sieve extension (capability string `name`)."""

    name: str
    commands: tuple[CommandDef, ...] = ()
    extra_tags: tuple[tuple[str, TagDef], ...] = ()        # (command name, tag) added to others
    # (command name, check(validator, node)): rules for the tags this extension adds to another
    # extension's command, run after that command's own checks (e.g. index: :last needs :index)
    tag_checks: tuple[tuple[str, Any], ...] = ()
    # (command name, check(validator, node, args) -> bool): run before that command's arguments
    # are bound (True: it reported an error, binding stops), for what Pigeonhole checks of a
    # tag as it reads it, before the positional arguments (index: :last without :index)
    early_checks: tuple[tuple[str, Any], ...] = ()
    # (command name, check(validator, node, what)): run as soon as that command's arguments
    # are bound without error, before its sub-tests and block (e.g. mime: :anychild needs :mime)
    argument_checks: tuple[tuple[str, Any], ...] = ()
    # (command name, hook(rt, node, action) -> action): fills in what this extension's tags on
    # another extension's action command mean (e.g. copy: :copy on redirect and fileinto)
    action_hooks: tuple[tuple[str, Any], ...] = ()
    begin_run: Callable | None = None                       # begin_run(rt): a run starts
    end_run: Callable | None = None                         # end_run(rt): the top script ended
    # rt.ext keys that belong to the message, not to one script: carried from script to script
    # of one delivery (Pigeonhole's multiscript message context; e.g. imap4flags' internal
    # flags set in a global before script apply to the user script's fileinto and keep)
    message_context: tuple[str, ...] = ()
    prepare_string: Callable | None = None                  # prepare_string(v, s): compile time
    expand_string: Callable | None = None                   # expand_string(rt, parts) -> str
    match_types: tuple[MatchTypeDef, ...] = ()
    address_parts: tuple[str, ...] = ()
    comparators: tuple[str, ...] = ()
    modifiers: tuple[tuple[str, int], ...] = ()             # variables set modifiers (name, precedence)
    implies: tuple[str, ...] = ()
    # extensions this one cannot be used with in one script, declared on the deprecated one
    # (imapflags: imap4flags): loading either while the other is loaded is an error
    # (Validator._load says which one stays)
    conflicts: tuple[str, ...] = ()
    # extensions that should not be required together with this one (spamtestplus: spamtest),
    # a warning as sievec gives
    not_with: tuple[str, ...] = ()
    hidden: bool = False                                    # not in the capability list
    # the specification ("RFC 5228 section 4.1", "draft-...", "vendor (...)") and a one-line
    # description, for `owlery sieve extensions`; sieve.extensions fills them from its table
    # for extensions that do not declare them
    rfc: str = ""
    summary: str = ""
    requires: tuple[str, ...] = ()                          # must be required together with
