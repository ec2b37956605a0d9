"""The house rules on imports, checked on the source: who may import whom, and no new cycles.

Every import statement counts, at module top or inside a function (an import in a
function runs too, only later); imports under `if TYPE_CHECKING:` do not, since they never
run. A registry that loads modules by name counts too when the name is written out:
`importlib.import_module("a.b")` is an edge to a.b, and `import_module(f"a.{name}")` an edge to
every module under `a.` (a name read from settings or a table is not followed). Rules (../shared/DESIGN.md, "Rules of the house"):
- the core (`owlery`, except the composition root `owlery.app`) imports no product;
- the products (`policyd`, `milters`, `sieve`) do not import one another;
- nothing imports `owlery.app` but itself (tests and benches may);
- no import cycle among the project's modules (KNOWN_CYCLES, the allowance, is empty and
  may only stay so).
Anyone can print the graph: `python -m tests.core.test_import_contracts`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("owlery", "policyd", "milters", "sieve", "socketmap", "web")
PRODUCTS = ("policyd", "milters", "sieve", "socketmap", "web")
APP = "owlery.app"

# Strongly connected components allowed to exist: none. The issue "The seams" ended the last
# ones (sieve.api <-> interpreter/validator: Script and Result moved to leaves; owlery.state and
# owlery.quarantine <-> their engines: the interface moved to a `base` leaf the engines import,
# the factory stays in the package). A cycle, even one closed by an import inside a function,
# fails the test.
KNOWN_CYCLES: list[frozenset[str]] = []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _dynamic_import(node: ast.Call, known: dict[str, Path]) -> set[str]:
    """Modules an `import_module(...)` call names: a literal, or every module under the
    literal prefix of an f-string."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name != "import_module" or not node.args:
        return set()
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return {arg.value}
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        prefix = str(arg.values[0].value)
        if prefix.endswith("."):
            return {m for m in known if m.startswith(prefix)}
    return set()


def _imports(tree: ast.AST, module: str, is_package: bool, known: dict[str, Path]) -> set[str]:
    """Project modules named by the import statements in `tree` (TYPE_CHECKING blocks skipped)
    and by `import_module` calls with a written-out name."""
    out: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[:len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            for alias in node.names:
                candidate = f"{prefix}.{alias.name}"
                out.add(candidate if candidate in known else prefix)
        elif isinstance(node, ast.Call):
            out |= _dynamic_import(node, known)
        stack.extend(ast.iter_child_nodes(node))
    return {name for name in out if name.split(".")[0] in PACKAGES and name in known}


def import_graph() -> dict[str, set[str]]:
    known = project_modules()
    graph = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        graph[name] = _imports(tree, name, path.name == "__init__.py", known) - {name}
    return graph


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def _edges(graph, source_ok, target_ok):
    return sorted(f"{a} -> {b}" for a, targets in graph.items() if source_ok(a)
                  for b in targets if target_ok(a, b))


def test_the_core_imports_no_product():
    graph = import_graph()
    bad = _edges(graph, lambda a: _within(a, "owlery") and not _within(a, APP),
                 lambda a, b: b.split(".")[0] in PRODUCTS)
    assert bad == []


def test_products_do_not_import_one_another():
    graph = import_graph()
    bad = _edges(graph, lambda a: a.split(".")[0] in PRODUCTS,
                 lambda a, b: b.split(".")[0] in PRODUCTS and b.split(".")[0] != a.split(".")[0])
    assert bad == []


def test_nothing_imports_the_composition_root():
    graph = import_graph()
    bad = _edges(graph, lambda a: not _within(a, APP), lambda a, b: _within(b, APP))
    assert bad == []


def test_no_import_cycle_beyond_the_known_ones():
    found = cycles(import_graph())
    new = [sorted(c) for c in found if not any(c <= known for known in KNOWN_CYCLES)]
    assert new == []


def test_known_cycles_are_still_real():
    """A cycle that was fixed leaves KNOWN_CYCLES, so the list only shrinks."""
    found = cycles(import_graph())
    stale = [sorted(k) for k in KNOWN_CYCLES if not any(c & k for c in found)]
    assert stale == []


def test_the_checker_sees_imports_inside_functions_and_skips_type_checking(tmp_path):
    known = {"owlery.a": Path("a"), "sieve.b": Path("b"), "sieve.c": Path("c"), "sieve": Path("s")}
    tree = ast.parse("def f():\n    from sieve import b\nif TYPE_CHECKING:\n    import sieve.c\n")
    assert _imports(tree, "owlery.a", False, known) == {"sieve.b"}
    assert cycles({"x": {"y"}, "y": {"z"}, "z": {"x"}, "w": {"x"}}) == [frozenset({"x", "y", "z"})]


def test_the_checker_follows_registries_that_load_modules_by_written_name():
    known = {"sieve.ext": Path("e"), "sieve.ext.a": Path("a"), "sieve.ext.b": Path("b"), "sieve.c": Path("c")}
    tree = ast.parse("import importlib\n"
                     "def load(names, other):\n"
                     "    for n in names:\n"
                     "        importlib.import_module(f'sieve.ext.{n}')\n"
                     "    importlib.import_module('sieve.c')\n"
                     "    importlib.import_module(other)\n")
    assert _imports(tree, "sieve.ext", True, known) == {"sieve.ext.a", "sieve.ext.b", "sieve.c"}


if __name__ == "__main__":   # print the graph: one line per module with what it imports
    g = import_graph()
    for mod in sorted(g):
        print(f"{mod}: {' '.join(sorted(g[mod]))}")
    for c in cycles(g):
        print("cycle:", " ".join(sorted(c)), file=sys.stderr)
