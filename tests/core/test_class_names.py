"""One meaning per class name: every top-level class in the project's packages is defined in
exactly one module (issue 14, item 9).

Two products each with their own `Action`, `Session` or `Outcome` make a traceback, a log
line, a grep or a review comment ambiguous, and invite importing the wrong one. A class that
needs a short name inside its own module can still be imported under an alias where it is
used; the definition carries the unique name. Checked on the source (no import), like
tests/core/test_import_contracts.py. Anyone can print the duplicates:
`python -m tests.core.test_class_names`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("owlery", "policyd", "milters", "sieve", "socketmap", "web")


def class_definitions(root: Path = ROOT) -> dict[str, list[str]]:
    """Top-level class name -> the modules (paths relative to `root`) that define it."""
    defs: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in tree.body:
                if isinstance(node, ast.ClassDef):
                    defs.setdefault(node.name, []).append(str(path.relative_to(root)))
    return defs


def duplicates(root: Path = ROOT) -> dict[str, list[str]]:
    return {name: paths for name, paths in sorted(class_definitions(root).items()) if len(paths) > 1}


def test_every_top_level_class_name_is_defined_once():
    dups = duplicates()
    assert not dups, "class names defined in more than one module (rename all but one):\n" + "\n".join(
        f"  {name}: {', '.join(paths)}" for name, paths in dups.items())


def test_the_scan_finds_a_duplicate(tmp_path):
    """The check itself: two packages defining one name are reported, nested classes are not."""
    (tmp_path / "policyd").mkdir()
    (tmp_path / "web").mkdir()
    (tmp_path / "policyd" / "a.py").write_text("class Thing:\n    class Inner:\n        pass\n")
    (tmp_path / "web" / "b.py").write_text("import dataclasses\n\n\n@dataclasses.dataclass\nclass Thing:\n"
                                           "    x: int\n\n\nclass Inner:\n    pass\n")
    for package in ("owlery", "milters", "sieve", "socketmap"):
        (tmp_path / package).mkdir()
    assert duplicates(tmp_path) == {"Thing": ["policyd/a.py", "web/b.py"]}


if __name__ == "__main__":
    for name, paths in duplicates().items():
        print(name, " ".join(paths))
    sys.exit(1 if duplicates() else 0)
