"""The extension registry loads an extension's module when a script names it (sieve.extensions).

A process pays only for the extensions its scripts require: importing the package loads none,
a lookup loads the one module that declares the name (its hints: _MODULE_OF, _TABLE_MODULE,
_ACTION_HOOK_MODULES, _EXPAND_MODULES, checked here against the modules), and iterating
loads them all. Compiling and running scripts gives the same results, diagnostics included,
whether the registry was loaded piecemeal or whole.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sieve import extensions

ROOT = Path(__file__).resolve().parents[2]


def _by_module():
    extensions._load_all()
    return dict(extensions._modules_loaded)


def test_every_name_finds_its_module():
    for mod, exts in _by_module().items():
        for e in exts:
            assert extensions.module_of(e.name) == mod, e.name
    assert extensions.module_of("no-such-extension") is None


def test_match_types_address_parts_and_comparators_are_hinted():
    seen: dict[str, dict[str, str]] = {t: {} for t in extensions._TABLE_MODULE}
    for mod, exts in _by_module().items():
        for e in exts:
            names = {"MATCH_TYPES": [m.name for m in e.match_types], "ADDRESS_PARTS": list(e.address_parts),
                     "COMPARATORS": list(e.comparators)}
            for table, keys in names.items():
                for key in keys:
                    assert key not in seen[table], f"{table} {key}: declared twice"
                    seen[table][key] = mod
                    if mod != "core":
                        assert extensions._TABLE_MODULE[table].get(key) == mod, (table, key)
    for table, hints in extensions._TABLE_MODULE.items():
        assert all(seen[table].get(k) == m for k, m in hints.items()), table


def test_hook_modules_are_listed():
    for mod, exts in _by_module().items():
        if any(e.action_hooks for e in exts):
            assert mod in extensions._ACTION_HOOK_MODULES + extensions._OWN_HOOK_MODULES, mod
        if any(e.expand_string for e in exts):
            assert mod in extensions._EXPAND_MODULES, mod


CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from sieve import extensions
whole = sys.argv[2] == "whole"
before = sorted(m for m in sys.modules if m.startswith("sieve.extensions."))
if whole:
    extensions._load_all()
from sieve.api import Envelope, SieveCompileError, compile_script, run
out = {"before": before, "results": []}
for src in json.loads(sys.stdin.read()):
    try:
        script = compile_script(src)
    except SieveCompileError as e:
        out["results"].append(["error", [str(d) for d in e.diagnostics]])
        continue
    r = run(script, b"From: a+x@example.org\nTo: b@example.org\nSubject: Hello 42\n\nbody\n",
            Envelope(mail_from="a+x@example.org", rcpt_to="b+tag@example.org"))
    # (a vacation reply has a fresh Message-ID and Date: its class and reason are enough)
    out["results"].append(["ok", r.status, [type(a).__name__ + (a.reason if hasattr(a, "reason") else repr(a))
                                            for a in r.actions], r.errors])
out["loaded"] = sorted(m for m in sys.modules if m.startswith("sieve.extensions."))
print(json.dumps(out))
"""

SCRIPTS = [
    'require ["fileinto", "mailbox"]; if header :contains "subject" "hello" { fileinto :create "Hi"; }',
    'require ["relational", "comparator-i;ascii-numeric"]; '
    'if header :value "gt" :comparator "i;ascii-numeric" "subject" "1" { discard; }',
    'if header :count "gt" "subject" "0" { discard; }',                        # relational not required
    'require ["subaddress", "envelope"]; if envelope :detail "to" "tag" { keep; }',
    'require "envelope"; if envelope :user "to" "b" { keep; }',                  # subaddress not required
    'require ["imap4flags", "copy", "fileinto"]; addflag "\\\\Seen"; fileinto :copy :flags "\\\\Flagged" "X";',
    'require "variables"; set "a" "${1}x"; if header :matches "subject" "Hello *" { set "n" "${1}"; }',
    'require "vacation-seconds"; vacation :seconds 60 "away";',
    'require "no-such-extension"; keep;',
    'if header :regex "subject" "x" { keep; }',
    'require "fileinto"; fileinto :flags "x" "y";',
    'if address :comparator "i;unicode-casemap" :domain "from" "example.org" { stop; }',
]


def _child(mode: str) -> dict:
    r = subprocess.run([sys.executable, "-I", "-S", "-c", CHILD, str(ROOT), mode], input=json.dumps(SCRIPTS),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_piecemeal_loading_gives_the_same_results_as_the_whole_registry():
    piecemeal, whole = _child("piecemeal"), _child("whole")
    assert piecemeal["before"] == ["sieve.extensions.base"]      # importing the package loads no extension
    assert piecemeal["results"] == whole["results"]
    assert "sieve.extensions.enotify" not in piecemeal["loaded"]
    assert "sieve.extensions.enotify" in whole["loaded"]
