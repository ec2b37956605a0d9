"""vnd.dovecot.debug (Pigeonhole, spec-bosch-sieve-debug): `debug_log <message>` writes
"DEBUG: <message>" to the log (owlery.sieve, INFO), cleaned of control characters and cut to
MAX_MESSAGE characters so a script can neither forge log lines nor flood them. Under the
testsuite harness the line goes to the harness output, as Pigeonhole's testsuite prints it.
Tests: tests/sieve/test_extprograms.py (debug_log), conformance extensions/vnd.dovecot/debug/.
"""

from __future__ import annotations

import logging

from sieve.extensions.base import STRING, CommandDef, Extension

log = logging.getLogger("owlery.sieve")

MAX_MESSAGE = 1024  # characters of one debug_log message that reach the log


def _run(rt, node):
    text = rt.s(node.pos[0]).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = "".join(c if c.isprintable() else "?" for c in text[: MAX_MESSAGE + 1])
    text = text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."
    suite = rt.testsuite
    if suite is not None:
        suite.echo(f"DEBUG: {text}")
        return
    log.info("sieve: %s: DEBUG: %s", getattr(rt.script, "name", "script"), text)


EXTENSION = Extension(
    name="vnd.dovecot.debug",
    commands=(CommandDef("debug_log", positional=(STRING,), run=_run, arg_names=("message",)),),
    rfc="vendor (Pigeonhole, spec-bosch-sieve-debug)",
    summary="write a message to the delivery log (debug_log)",
)
