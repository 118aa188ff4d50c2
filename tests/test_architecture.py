"""The package's shape, enforced: layers import only earlier layers, no cycles, no private
imports across modules, no file over 500 lines, and the torch-free paths stay torch-free.

Layers, in order (see the README's layout section):
  errors, files → contract → metrics → checks → runtime → ci | decisions | integrations
  → train → cli
``traingate/__init__.py`` is the public façade and may import any layer; no layer inside the
package imports it (the command line, above every layer, may).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = {"traingate": REPO / "src" / "traingate", "traingate_cli": REPO / "cli" / "traingate_cli"}
PYTHON_TREES = ["src", "cli", "tests", "falsifiers", "benchmarks"]
MAX_LINES = 500

# A layer may import its own and lower ranks; two layers of one rank may not import each other.
RANK = {
    "errors": 0,
    "files": 0,
    "contract": 1,
    "metrics": 2,
    "checks": 3,
    "runtime": 4,
    "ci": 5,
    "decisions": 5,
    "integrations": 5,
    "train": 6,
    "cli": 7,
}


def module_name(path: Path) -> str:
    """``src/traingate/ci/report/html.py`` → ``traingate.ci.report.html``."""
    for top, root in SOURCES.items():
        if path.is_relative_to(root):
            parts = [top, *path.relative_to(root).with_suffix("").parts]
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise ValueError(path)


def layer(module: str) -> str | None:
    """The layer a module belongs to; None for the façade ``traingate`` itself."""
    parts = module.split(".")
    if parts[0] == "traingate_cli" or module == "traingate.__main__":  # python -m traingate
        return "cli"
    if len(parts) == 1:
        return None
    return parts[1]


def package_modules() -> dict[str, Path]:
    return {
        module_name(p): p
        for root in SOURCES.values()
        for p in sorted(root.rglob("*.py"))
        if "_shipped" not in p.parts
    }


def imports(path: Path, module: str) -> Iterator[tuple[str, list[str], int]]:
    """Every import in the file (module level and inside functions): (module, names, line)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, [a.name for a in node.names], node.lineno


def ours(module: str) -> bool:
    return module.split(".")[0] in SOURCES


def test_layers_import_only_earlier_layers() -> None:
    wrong = []
    for module, path in package_modules().items():
        mine = layer(module)
        if mine is None:
            continue  # the façade composes every layer
        for target, names, line in imports(path, module):
            if not ours(target):
                continue
            targets = [target] if layer(target) else [f"{target}.{n}" for n in names]
            for t in targets:
                theirs = layer(t)
                if theirs is None and mine == "cli":
                    continue  # the command line sits above the façade
                if theirs is None or theirs not in RANK:
                    wrong.append(f"{path}:{line}: {module} imports the façade `{t}`")
                elif RANK[theirs] > RANK[mine] or (RANK[theirs] == RANK[mine] and theirs != mine):
                    wrong.append(f"{path}:{line}: {mine} layer imports {theirs} (`{t}`)")
    assert not wrong, "\n".join(wrong)


def test_every_package_module_is_in_a_layer() -> None:
    unknown = {layer(m) for m in package_modules() if layer(m) is not None and layer(m) not in RANK}
    assert not unknown, f"modules outside the layers: {sorted(unknown)}"


def test_no_import_cycle() -> None:
    modules = package_modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for target, names, _ in imports(path, module):
            for t in [target, *(f"{target}.{n}" for n in names)]:
                if t in modules and t != module:
                    graph[module].add(t)
    # Tarjan's strongly connected components: any component of two or more is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def python_files() -> list[Path]:
    return [
        p
        for tree in PYTHON_TREES
        for p in sorted((REPO / tree).rglob("*.py"))
        if "fixtures" not in p.parts
    ]


def test_no_private_name_is_imported_from_another_module() -> None:
    wrong = []
    for path in python_files():
        module = module_name(path) if path.is_relative_to(REPO / "src") else path.stem
        for target, names, line in imports(path, module):
            if not ours(target):
                continue
            private = [p for p in target.split(".") if p.startswith("_") and p != "__init__"]
            private += [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                wrong.append(f"{path.relative_to(REPO)}:{line}: {target} {private}")
    assert not wrong, "\n".join(wrong)


def test_no_python_file_is_over_500_lines() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in python_files()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, long


def test_tests_mirror_the_layers() -> None:
    folders = {p.name for p in (REPO / "tests").iterdir() if p.is_dir() and p.name != "fixtures"}
    layers = {p.name for p in SOURCES["traingate"].iterdir() if p.is_dir() and p.name in RANK}
    assert layers <= folders, f"layers without a test folder: {sorted(layers - folders)}"
    assert (REPO / "tests" / "checks" / "test_non_divergence.py").is_file()


HEAVY = ("torch", "numpy", "pyarrow")


@pytest.mark.parametrize(
    "code",
    [
        "import traingate",
        "import traingate.contract.validation",
        "import traingate.checks",
        "import traingate_cli.contracts_cmd",
        # the whole `contracts validate` path, run in-process on the shipped contracts
        "import sys\n"
        "from traingate_cli.contracts_cmd import main\n"
        "sys.argv = ['contracts', 'validate', 'contracts', '--strict']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code",
    ],
    ids=["traingate", "contract", "checks", "cli", "contracts-validate"],
)
def test_torch_free_paths_import_no_torch_numpy_or_pyarrow(code: str) -> None:
    probe = (
        f"{code}\nimport sys\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
