"""A compiled Sieve script: what sieve.validator produces and sieve.interpreter runs.

A leaf (it imports only sieve.errors), so the validator builds it and the interpreter and
the public API (sieve.api, which re-exports it) read it without importing one another.
Tests: tests/sieve/test_api.py (compile_script, ScriptCache).
"""

from __future__ import annotations

from owlery.record import Record
from sieve.errors import Diagnostic


class Script(Record, eq=False):
    """A compiled (validated) script, shareable between runs: a run changes nothing in it but
    the match spec each test node caches in its `data` (sieve/interpreter.py, built from the
    node alone, so runs that race write equal values)."""

    name: str
    source: str
    tree: object                        # sieve.validator's checked tree
    requires: frozenset[str]
    warnings: tuple[Diagnostic, ...] = ()
    path: str | None = None
