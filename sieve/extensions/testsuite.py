"""vnd.dovecot.testsuite: the test language of Pigeonhole's .svtest files, as commands
and tests that delegate to the harness (sieve.testsuite.Suite) attached to the run.

Hidden: only scripts compiled with extra_extensions=("vnd.dovecot.testsuite",) may
require it. Tests: tests/sieve/test_conformance.py, tests/sieve/svtest/.
"""

from __future__ import annotations

from sieve.errors import SieveRuntimeError
from sieve.extensions.base import NUMBER, STRING, STRINGLIST, CommandDef, Extension, TagDef

SET_OBJECTS = ("message", "envelope.from", "envelope.to", "envelope.orig_to", "envelope.auth")


def _suite(rt):
    if rt.testsuite is None:
        raise SieveRuntimeError("testsuite command used outside the testsuite harness")
    return rt.testsuite


def _validate_test(v, node):
    if "test" in v.enclosing:
        v.error(node, "tests cannot be nested")


def _validate_set(v, node):
    if node.pos and v.is_literal(node.pos[0]):
        obj = node.pos[0].items[0].value.lower()
        if obj not in SET_OBJECTS:
            v.error(node.pos[0], f"test_set: unknown testsuite object '{obj}'")


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
        _cmd("test", "cmd_test", positional=(STRING,), block="required", validate=_validate_test,
             toplevel_only=True),
        _cmd("test_fail", "cmd_fail", positional=(STRING,)),
        _cmd("test_set", "cmd_set", positional=(STRING, STRING), validate=_validate_set),
        _cmd("test_message", "cmd_message", positional=(NUMBER,), tags=(
            TagDef("smtp", group="source"), TagDef("folder", STRING, group="source")),
            validate=_validate_message),
        _test("test_message", "test_message", positional=(NUMBER,), tags=(
            TagDef("smtp", group="source"), TagDef("folder", STRING, group="source")),
            validate=_validate_message),
        _cmd("test_message_print", "cmd_noop"),
        _cmd("test_mailbox_create", "cmd_mailbox_create", positional=(STRING,)),
        _cmd("test_mailbox_delete", "cmd_mailbox_delete", positional=(STRING,)),
        _cmd("test_result_reset", "cmd_result_reset"),
        _cmd("test_result_print", "cmd_noop"),
        _test("test_result_action", "test_result_action", positional=(STRINGLIST,), match=True,
              tags=(TagDef("index", NUMBER),)),
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
        _cmd("test_imap_metadata_set", "cmd_metadata_set", positional=(STRING, STRING),
             tags=(TagDef("mailbox", STRING),)),
    ),
)
