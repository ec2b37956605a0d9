"""owlery.lazyre: module-level patterns compiled at their first use.

A lazy pattern that does not compile would fail only when first used, maybe on a rare path,
so every one in the project is compiled here, and each behaves as its compiled pattern.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from owlery.lazyre import LazyPattern, lazy

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("owlery", "sieve", "policyd", "milters")


def modules_with_lazy_patterns() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "lazy(" in path.read_text(encoding="utf-8") and path.name != "lazyre.py":
                rel = path.relative_to(ROOT).with_suffix("")
                names.append(".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts))
    return names


def test_every_lazy_pattern_in_the_project_compiles():
    found = 0
    names = modules_with_lazy_patterns()
    assert "sieve.address" in names and "owlery.maildir" in names
    for name in names:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if isinstance(value, LazyPattern):
                assert isinstance(value.compiled(), re.Pattern), f"{name}.{attr}"
                found += 1
    assert found >= 8


def test_a_lazy_pattern_acts_as_the_compiled_one():
    text = 'say "a \\"b\\"" and "c"'
    for flags in (0, re.I):
        pattern, eager = lazy(r'"(?:[^"\\]|\\.)*"', flags), re.compile(r'"(?:[^"\\]|\\.)*"', flags)
        assert "match" not in vars(pattern)                 # nothing compiled yet
        assert pattern.findall(text) == eager.findall(text)
        assert pattern.match is not None and "match" in vars(pattern)   # bound methods kept
        assert pattern.search(text).span() == eager.search(text).span()
        assert pattern.sub("Q", text) == eager.sub("Q", text)
        assert pattern.fullmatch('"x"') and not pattern.fullmatch("x")
        assert pattern.pattern == eager.pattern and pattern.flags == eager.flags
        assert [m.group() for m in pattern.finditer(text)] == eager.findall(text)
    bytes_pattern = lazy(rb"=([0-9A-F]{2})")
    assert bytes_pattern.sub(lambda m: bytes([int(m.group(1), 16)]), b"a=3Db") == b"a=b"


def test_a_broken_pattern_fails_at_first_use():
    broken = lazy("(")
    try:
        broken.match("x")
    except re.error:
        pass
    else:
        raise AssertionError("compiled a broken pattern")
