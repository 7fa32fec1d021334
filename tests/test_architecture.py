"""The package's shape, checked from its source (ast): imports point down the layers, and no two
modules import each other, directly or around a cycle. docs/architecture.md describes the layers."""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "einsearch"
# A subpackage may import only subpackages of a lower rank (and itself). Equal ranks are peers that
# never import each other. Root modules (errors, memo, plugins) are below everything.
RANKS = {"cli": 6, "report": 5, "search": 4, "storage": 3, "evaluators": 2, "export": 2, "grammar": 1, "ops": 0,
         "tasks": 0}
ROOT_MODULES = {"einsearch", "einsearch.errors", "einsearch.memo", "einsearch.plugins"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING" or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported einsearch module, only for type checking) for every import in the file, at any depth."""
    tree = ast.parse(path.read_text(), str(path))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            typing_only |= {id(n) for child in node.body for n in ast.walk(child)}
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            # `from einsearch.x import y` imports einsearch.x.y when y is a module
            targets = [f"{base}.{a.name}" if (PACKAGE.parent / f"{base}.{a.name}".replace(".", "/")).with_suffix(".py")
                       .exists() or (PACKAGE.parent / f"{base}.{a.name}".replace(".", "/")).is_dir() else base
                       for a in node.names]
        else:
            continue
        found += [(t, id(node) in typing_only) for t in targets if t == "einsearch" or t.startswith("einsearch.")]
    return found


def all_imports() -> dict[str, list[tuple[str, bool]]]:
    return {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def subpackage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANKS else None


def test_every_subpackage_has_a_rank():
    found = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert found == set(RANKS), "add the new subpackage to RANKS and docs/architecture.md"


def test_imports_point_down_the_layers():
    upward = []
    for module, targets in all_imports().items():
        source = subpackage(module)
        for target, _ in targets:
            dest = subpackage(target)
            if source is None or dest is None or dest == source:
                assert dest is not None or target in ROOT_MODULES or source is None, f"{module} imports {target}"
                continue
            if RANKS[dest] >= RANKS[source]:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_no_import_cycles():
    graph = nx.DiGraph()
    modules = all_imports()
    for module, targets in modules.items():
        graph.add_node(module)
        for target, typing_only in targets:
            # a parent package's __init__ importing its own children is how packages re-export
            if not typing_only and target in modules and target != module and not module.startswith(target + "."):
                if not target.startswith(module + "."):
                    graph.add_edge(module, target)
    cycles = list(nx.simple_cycles(graph, length_bound=6))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c + [c[0]]) for c in cycles[:10])


@pytest.mark.parametrize("module", ["einsearch.cli", "einsearch"])
def test_checker_sees_known_imports(module):
    """The walker itself: it finds the imports it must judge (a walker that finds none would pass all)."""
    found = {t for t, _ in all_imports()[module]}
    assert found, module
