"""Module docstrings: every product module has one, and every path its Tests line names exists.

The Tests part of a docstring starts at a `Tests:` that opens a line or follows a space, and runs
to the next blank line or the end of the docstring (it may wrap over several lines). Every
repository path under tests in it must exist: a glob must match at least one file, a path
ending in a slash must be a directory. A bare test file name without its folder is refused
as well, since nobody can tell which folder it lives in.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTS = ("owlery", "policyd", "milters", "sieve", "socketmap", "web")
SCANNED = (*PRODUCTS, "bench", "tests")

TESTS_PART = re.compile(r"(?:^|(?<=\s))Tests?:(.*?)(?:\n[ \t]*\n|\Z)", re.S | re.M)
TESTS_PATH = re.compile(r"(?<![\w/.-])tests/[\w/*.-]*")
BARE_TEST_FILE = re.compile(r"(?<![\w/.-])test_[\w*]+\.py\b")


def find_tests_parts(doc: str) -> list[str]:
    """The text of every Tests part of a docstring."""
    return [m.group(1) for m in TESTS_PART.finditer(doc)]


def referenced_paths(doc: str) -> tuple[list[str], list[str]]:
    """(tests/... paths, bare test file names) named in the docstring's Tests parts."""
    paths, bare = [], []
    for part in find_tests_parts(doc):
        paths += [ref.rstrip(".,;:") for ref in TESTS_PATH.findall(part)]
        bare += BARE_TEST_FILE.findall(part)
    return paths, bare


def problems(doc: str, root: Path) -> list[str]:
    """What is wrong with the Tests parts of `doc`, paths relative to `root`."""
    paths, bare = referenced_paths(doc)
    out = []
    for ref in paths:
        if "*" in ref:
            if not any(p.is_file() for p in root.glob(ref)):
                out.append(f"{ref}: no file matches")
        elif ref.endswith("/"):
            if not (root / ref).is_dir():
                out.append(f"{ref}: no such directory")
        elif not (root / ref).exists():
            out.append(f"{ref}: no such file")
    out += [f"{name}: name the file with its folder (tests/...)" for name in bare]
    return out


def python_files() -> list[Path]:
    files = [p for top in SCANNED for p in sorted((ROOT / top).rglob("*.py"))]
    for p in sorted((ROOT / "scripts").iterdir()):
        first_line = p.read_bytes().split(b"\n", 1)[0] if p.is_file() else b""
        if p.suffix == ".py" or (first_line.startswith(b"#!") and b"python" in first_line):
            files.append(p)
    return files


def module_docstring(path: Path) -> str | None:
    return ast.get_docstring(ast.parse(path.read_bytes(), filename=str(path)))


def test_every_tests_path_in_a_docstring_exists():
    files = python_files()
    assert len(files) > 100 and any(p.parent.name == "scripts" for p in files)
    bad = []
    for path in files:
        doc = module_docstring(path)
        if doc:
            bad += [f"{path.relative_to(ROOT)}: {why}" for why in problems(doc, ROOT)]
    assert not bad, "docstring Tests: lines naming tests that do not exist:\n" + "\n".join(bad)


def cited_test_files(doc: str) -> list[str]:
    """Every tests/....py file a docstring names, in its Tests part or in its prose ("checked by
    tests/policyd/test_x.py"): a cited test that does not exist sends a reader nowhere."""
    return [ref.rstrip(".,;:)") for ref in TESTS_PATH.findall(doc) if ref.rstrip(".,;:)").endswith(".py")]


def test_every_test_file_any_docstring_cites_exists():
    """Class and function docstrings of the product, bench and scripts too, and their prose as
    well as their Tests parts (a module's prose once cited a test file that never existed)."""
    bad = []
    for path in python_files():
        if path.is_relative_to(ROOT / "tests"):
            continue        # tests' own docstrings show example paths (this file's do)
        for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node) or ""
                bad += [f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 1)}: {ref}"
                        for ref in cited_test_files(doc) if "*" not in ref and not (ROOT / ref).is_file()]
    assert not bad, "docstrings citing test files that do not exist:\n" + "\n".join(bad)


def test_cited_test_files_are_read_from_prose_and_tests_parts():
    assert cited_test_files(SAMPLE) == ["tests/not/checked_here.py", "tests/a/test_one.py",
                                        "tests/e2e/test_x_*.py", "tests/later.py"]
    assert cited_test_files("(see tests/policyd/test_y.py).") == ["tests/policyd/test_y.py"]


def test_every_product_module_has_a_docstring():
    missing = [str(p.relative_to(ROOT)) for top in PRODUCTS for p in sorted((ROOT / top).rglob("*.py"))
               if not module_docstring(p)]
    assert not missing, "modules without a docstring:\n" + "\n".join(missing)


SAMPLE = """The thing: what it is.

Longer text naming tests/not/checked_here.py (not in a Tests part), and `Tests:` quoted.
Talks to: DNS. Tests: tests/a/test_one.py (a real
server), tests/e2e/test_x_*.py and tests/dir/, test_bare.py;
the conformance run (extensions/body/).

After the blank line: tests/later.py is not part of it.
"""


def test_extractor_reads_a_wrapped_tests_part_and_stops_at_the_blank_line():
    assert referenced_paths(SAMPLE) == (["tests/a/test_one.py", "tests/e2e/test_x_*.py", "tests/dir/"],
                                        ["test_bare.py"])
    assert referenced_paths("What.\n\nTests: tests/a.py.") == (["tests/a.py"], [])
    assert referenced_paths("What.\n\nTests: none directly; conformance extensions/x/.") == ([], [])
    assert referenced_paths("What.\nUnitTests: tests/a.py") == ([], [])


def test_checker_accepts_existing_paths_and_reports_each_missing_one(tmp_path):
    (tmp_path / "tests/a").mkdir(parents=True)
    (tmp_path / "tests/a/test_one.py").write_text("")
    (tmp_path / "tests/e2e").mkdir()
    (tmp_path / "tests/dir").mkdir()
    assert problems(SAMPLE, tmp_path) == ["tests/e2e/test_x_*.py: no file matches",
                                          "test_bare.py: name the file with its folder (tests/...)"]
    (tmp_path / "tests/e2e/test_x_postfix.py").write_text("")
    assert problems(SAMPLE.replace(", test_bare.py", ""), tmp_path) == []
    (tmp_path / "tests/a/test_one.py").unlink()
    (tmp_path / "tests/dir").rmdir()
    (tmp_path / "tests/dir").write_text("a file, not a directory")
    assert problems(SAMPLE.replace(", test_bare.py", ""), tmp_path) == [
        "tests/a/test_one.py: no such file", "tests/dir/: no such directory"]


# --- SECURITY sections of the daemons' entry modules (issue 13) ---------------------------------
# Each long-running program and the LDA says in its module docstring whom it trusts, what
# whoever reaches it can do, and which user it runs as: the entry module of each command.
DAEMON_ENTRY_MODULES = {
    "policyd": "policyd/service.py",
    "milter": "milters/adapter.py",
    "lmtpd": "sieve/delivery/lmtpd.py",
    "lda": "sieve/delivery/lda.py",
    "managesieve": "sieve/managesieve/service.py",
    "socketmap": "socketmap/service.py",
    "web": "web/service.py",
    "run": "owlery/app/supervisor.py",          # `owlery run`, the supervisor of the others
}
SECURITY_SECTION = re.compile(r"^SECURITY:[ \t]*(\S.*?)(?:\n[ \t]*\n|\n(?=[A-Z][\w ]*:)|\Z)", re.S | re.M)


def security_section(doc: str | None) -> str | None:
    """The text of the docstring's SECURITY section (a line opening with `SECURITY:`, to the
    next blank line or `Name:` line), or None."""
    m = SECURITY_SECTION.search(doc or "")
    return " ".join(m.group(1).split()) if m else None


def test_every_daemon_entry_module_has_a_security_section():
    from tests.core.test_systemd import DAEMONS
    # every daemon the systemd units run, the LDA and the supervisor
    assert set(DAEMON_ENTRY_MODULES) >= {*DAEMONS, "lda", "run"}, set(DAEMONS) - set(DAEMON_ENTRY_MODULES)
    missing = [f"{name} ({path})" for name, path in DAEMON_ENTRY_MODULES.items()
               if len(security_section(module_docstring(ROOT / path)) or "") < 40]
    assert not missing, "daemon entry modules without a SECURITY section in their docstring:\n" + "\n".join(missing)


def test_security_section_is_found_only_where_a_line_opens_with_it():
    doc = "What.\n\nSECURITY: trusts Postfix; whoever connects can ask\nwho exists.\nTalks to: LDAP.\n"
    assert security_section(doc) == "trusts Postfix; whoever connects can ask who exists."
    assert security_section("What.\nSECURITY: short.\n\nMore.") == "short."
    assert security_section("What. See the SECURITY: part elsewhere.\nTalks to: x.") is None
    assert security_section("What.\nSECURITY:\n\nTalks to: x.") is None
    assert security_section(None) is None
