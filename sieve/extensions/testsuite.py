"""vnd.dovecot.testsuite: the test language of Pigeonhole's .svtest files, as commands
and tests that delegate to the harness (sieve.testsuite.Suite) attached to the run.

Hidden: only scripts compiled with extra_extensions=("vnd.dovecot.testsuite",) may
require it. Tests: tests/sieve/test_conformance.py, tests/sieve/svtest/.
"""

from __future__ import annotations

from sieve.errors import SieveRuntimeError
from sieve.extensions.base import NUMBER, STRING, STRINGLIST, CommandDef, Extension, TagDef

# Pigeonhole's testsuite objects (testsuite-objects.c): "message" has no members, "envelope"
# has from/to/orig_to/auth. Object and member names match case-insensitively.
SET_OBJECTS = {"message": (), "envelope": ("from", "to", "orig_to", "auth")}


def _suite(rt):
    if rt.testsuite is None:
        raise SieveRuntimeError("testsuite command used outside the testsuite harness")
    return rt.testsuite


def _validate_test(v, node):
    if "test" in v.enclosing:
        v.error(node, "tests cannot be nested")


def _validate_set(v, node):
    """The object argument is read at compile time as written (Pigeonhole takes its text
    even when it holds a variable reference), so an unknown object or member is a compile
    error. A bare "envelope" compiles; setting it does nothing at run time."""
    if not node.pos or not hasattr(node.pos[0], "items") or len(node.pos[0].items) != 1:
        return
    text = node.pos[0].items[0].value
    obj, dot, member = text.partition(".")
    members = SET_OBJECTS.get(obj.lower())
    if members is None:
        v.error(node.pos[0], f"unknown testsuite object '{obj}'")
    elif dot and member.lower() not in members:
        v.error(node.pos[0], f"member '{member}' does not exist for testsuite object '{obj}'")


def _validate_mailbox(v, node):
    """test_mailbox_create/delete: a literal name that is not UTF-8 is a compile error
    (Pigeonhole's sieve_mailbox_check_name checks UTF-8 only)."""
    if node.pos and v.is_literal(node.pos[0]):
        name = node.pos[0].items[0].value
        if not _utf8_ok(name):
            v.error(node, f"{node.name} command: invalid mailbox `{name}' specified: invalid utf-8")


def _utf8_ok(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _validate_message(v, node):
    if "source" not in node.tags:
        v.error(node, "the test_message command requires either the :smtp or the :folder tag")


def _call(method):
    def run(rt, node):
        return getattr(_suite(rt), method)(rt, node)

    return run


def _cmd(name, method, **kw):
    return CommandDef(name, run=_call(method), **kw)


def _test(name, method, **kw):
    return CommandDef(name, kind="test", run=_call(method), **kw)


EXTENSION = Extension(
    name="vnd.dovecot.testsuite",
    hidden=True,
    commands=(
        _cmd("test", "cmd_test", positional=(STRING,), block="required", validate=_validate_test, toplevel_only=True),
        _cmd("test_fail", "cmd_fail", positional=(STRING,)),
        _cmd("test_set", "cmd_set", positional=(STRING, STRING), validate=_validate_set),
        _cmd(
            "test_message",
            "cmd_message",
            positional=(NUMBER,),
            tags=(TagDef("smtp", group="source"), TagDef("folder", STRING, group="source")),
            validate=_validate_message,
        ),
        _test(
            "test_message",
            "test_message",
            positional=(NUMBER,),
            tags=(TagDef("smtp", group="source"), TagDef("folder", STRING, group="source")),
            validate=_validate_message,
        ),
        _cmd("test_message_print", "cmd_message_print"),
        _cmd("test_mailbox_create", "cmd_mailbox_create", positional=(STRING,), validate=_validate_mailbox),
        _cmd("test_mailbox_delete", "cmd_mailbox_delete", positional=(STRING,), validate=_validate_mailbox),
        _cmd("test_result_reset", "cmd_result_reset"),
        _cmd("test_result_print", "cmd_result_print"),
        _test(
            "test_result_action",
            "test_result_action",
            positional=(STRINGLIST,),
            match=True,
            tags=(TagDef("index", NUMBER),),
        ),
        _test("test_result_execute", "test_result_execute"),
        _test("test_script_compile", "test_script_compile", positional=(STRING,)),
        _test("test_script_run", "test_script_run", tags=(TagDef("append_result"),)),
        _test("test_multiscript", "test_multiscript", positional=(STRINGLIST,)),
        _test("test_error", "test_error", positional=(STRINGLIST,), match=True, tags=(TagDef("index", NUMBER),)),
        _cmd("test_config_set", "cmd_config_set", positional=(STRING, STRING)),
        _cmd("test_config_unset", "cmd_config_unset", positional=(STRING,)),
        _cmd("test_config_reload", "cmd_config_reload", tags=(TagDef("extension", STRING),)),
        _cmd("test_binary_save", "cmd_binary_save", positional=(STRING,)),
        _cmd("test_binary_load", "cmd_binary_load", positional=(STRING,)),
        _cmd(
            "test_imap_metadata_set", "cmd_metadata_set", positional=(STRING, STRING), tags=(TagDef("mailbox", STRING),)
        ),
    ),
)
