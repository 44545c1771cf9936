"""The house rules of docs/ARCHITECTURE.md, checked on the source: floors, no cycles, no private imports.

Every module of ``src/sigmax`` sits on a floor (:data:`FLOORS`); a module may import only from its own
floor or lower ones, never a private (underscore) name of another module, and never cite a file that
is not in the repository. No module is over 800 lines.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "sigmax"
ROOT = SRC.parents[1]

#: module-name prefix -> floor (the longest matching prefix wins); see docs/ARCHITECTURE.md
FLOORS = {
    "sigmax._tolerance": 0,
    "sigmax._format": 0,
    "sigmax._dask": 0,
    "sigmax._dask_select": 0,
    "sigmax._dask_metrics": 5,
    "sigmax._dask_metrics_ranking": 5,
    "sigmax._dask_metrics_smooth": 5,
    "sigmax._dask_calibration": 6,
    "sigmax._array": 0,
    "sigmax._inputs": 0,
    "sigmax._dispatch": 1,
    "sigmax._kernels": 1,
    "sigmax.activations": 2,
    "sigmax.losses": 3,
    "sigmax._losses": 3,
    "sigmax._loss_checks": 3,
    "sigmax.io": 3,
    "sigmax._io_dask": 3,
    "sigmax._persist": 3,
    "sigmax.interpret": 4,
    "sigmax.check": 5,
    "sigmax._rules": 5,
    "sigmax.metrics": 5,
    "sigmax._metrics": 5,
    "sigmax._binning": 5,
    "sigmax.calibration": 6,
    "sigmax._calibration": 6,
    "sigmax._scalers": 6,
    "sigmax.conformal": 6,
    "sigmax.datasets": 6,
    "sigmax.sklearn": 6,
    "sigmax.torch": 7,
    "sigmax.report": 8,
    "sigmax.cli": 9,
    "sigmax.testing": 10,
    "sigmax.__main__": 10,
}


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}
#: compiled extension modules (``sigmax._kernels._ck``): modules too, though not Python files
EXTENSIONS = {_module_name(p.with_name(p.name.split(".")[0] + ".py")) for p in SRC.rglob("*.c")}


def floor(name: str) -> int:
    best = None
    for prefix, f in FLOORS.items():
        if name == prefix or name.startswith(prefix + ".") or name.startswith(prefix + "_"):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, f)
    if best is None:
        raise AssertionError(f"{name} has no floor: add it to FLOORS here and to docs/ARCHITECTURE.md")
    return best[1]


def _imports(name: str, path: pathlib.Path):
    """(imported module, imported names, line) for every sigmax import of ``path``, lazy ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("sigmax"):
                continue
            names = [a.name for a in node.names]
            # "from . import x" imports the module sigmax.x
            subs = [f"{mod}.{n}" for n in names if f"{mod}.{n}" in MODULES or f"{mod}.{n}" in EXTENSIONS]
            if subs:
                for s in subs:
                    yield s, [], node.lineno
                names = [n for n in names if f"{mod}.{n}" not in MODULES and f"{mod}.{n}" not in EXTENSIONS]
                if not names:
                    continue
            yield mod, names, node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("sigmax"):
                    yield a.name, [], node.lineno


def _type_checking_lines(path: pathlib.Path) -> set[int]:
    """Lines inside ``if TYPE_CHECKING:`` blocks (annotations only, never executed)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in ast.walk(node):
                if hasattr(sub, "lineno"):
                    lines.add(sub.lineno)
    return lines


def _edges():
    for name, path in MODULES.items():
        skip = _type_checking_lines(path)
        for mod, names, line in _imports(name, path):
            if line in skip:
                continue
            yield name, path, mod, names, line


def test_every_module_has_a_floor():
    for name in MODULES:
        if name == "sigmax":
            continue
        floor(name)


def test_no_import_from_a_higher_floor():
    bad = []
    for name, path, mod, _, line in _edges():
        if name == "sigmax" or mod == "sigmax":
            continue  # the package root only re-exports
        if floor(mod) > floor(name):
            bad.append(f"{path.relative_to(ROOT)}:{line}: {name} (floor {floor(name)}) imports {mod} "
                       f"(floor {floor(mod)})")
    assert not bad, "lower floors must not reach up:\n" + "\n".join(bad)


def test_no_private_name_imported_across_modules():
    bad = []
    for name, path, mod, names, line in _edges():
        if mod == name:
            continue
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        if private:
            bad.append(f"{path.relative_to(ROOT)}:{line}: imports {', '.join(private)} from {mod}")
    assert not bad, "private names are private to their module:\n" + "\n".join(bad)


def test_no_import_cycle():
    graph: dict[str, set[str]] = {n: set() for n in MODULES}
    for name, _, mod, _, _ in _edges():
        if mod in MODULES and mod != name and name != "sigmax" and mod != "sigmax":
            graph[name].add(mod)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                cycle = stack[stack.index(m):] + [m]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)


@pytest.mark.parametrize("path", sorted(p for p in SRC.rglob("*") if p.suffix in (".py", ".c", ".h")),
                         ids=lambda p: str(p.relative_to(SRC)))
def test_module_size(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= 800, f"{path.relative_to(ROOT)} has {n} lines; split it by responsibility (docs/ARCHITECTURE.md)"


def test_code_cites_only_files_in_the_repository():
    bad = [str(p.relative_to(ROOT)) for p in SRC.rglob("*") if p.suffix in (".py", ".c", ".h")
           and "DESIGN.md" in p.read_text(encoding="utf-8")]
    assert not bad, f"these cite DESIGN.md, a file outside the repository (cite docs/ARCHITECTURE.md): {bad}"


def test_architecture_doc_names_every_floor():
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    missing = [prefix for prefix in FLOORS if prefix.replace("sigmax.", "") not in doc]
    assert not missing, f"docs/ARCHITECTURE.md does not describe {missing}"
