"""The package's structure, checked from its imports: which module imports which, read from the source (AST).

:func:`import_graph` is the reusable part: every import statement of every module of a package — at module level,
inside functions and classes, and under ``if TYPE_CHECKING:`` — resolved to the module it loads. Tests build on it:
no import cycle inside the toolchain (below); a layer-order test for the runtime can use the same graph.
"""

from __future__ import annotations

import ast
import graphlib
import itertools
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "ims_runtime"


def module_name(package_dir: Path, path: Path) -> str:
    """``<package_dir>/a/b.py`` → ``<package>.a.b``; ``<package_dir>/a/__init__.py`` → ``<package>.a``."""
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:`` (imports there never run)."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, type_checking: bool) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement in ``tree`` (any depth), leaving out the body of ``if TYPE_CHECKING:`` blocks
    unless ``type_checking``."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        if not type_checking and _is_type_checking_block(node):
            pending.extend(node.orelse)  # type: ignore[attr-defined]
            continue
        pending.extend(ast.iter_child_nodes(node))
    return found


def import_graph(package_dir: Path, *, type_checking: bool = True) -> dict[str, set[str]]:
    """``{module: {modules it imports}}`` for every ``.py`` file under ``package_dir`` (a package folder).

    * Every import counts: module level, inside functions/methods (a lazy import is still a dependency), and
      inside ``if TYPE_CHECKING:`` blocks unless ``type_checking=False`` (an annotation-only dependency).
    * ``import a.b`` → ``a.b``; ``from a import b`` → ``a.b`` when ``a.b`` is a module of the package, else ``a``
      (``b`` is a name defined in ``a``); relative imports are resolved against the importing module's package.
    * Imports of modules outside the package (``numpy``, ``torch``) are recorded under their full dotted name, so
      a test can also check e.g. that a layer never imports ``torch``: filter on the name's first part.
    * Parent packages' ``__init__`` modules, which Python runs on the way to a submodule, are not added: the graph
      holds what the source names.

    Modules are dotted names starting with the package's own name (``ims_runtime.toolchain.runner``).
    """
    files = sorted(package_dir.rglob("*.py"))
    modules = {module_name(package_dir, path): path for path in files}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets: set[str] = set()
        for node in _imports(tree, type_checking):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            if node.level:  # relative: level 1 = this module's package
                package = name.split(".") if is_package else name.split(".")[:-1]
                base_parts = package[:len(package) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                targets.add(candidate if candidate in modules else base)
        targets.discard(name)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]], within: str) -> list[str] | None:
    """An import cycle among the modules whose name is ``within`` or starts with ``within + "."``, as a path that
    ends where it starts (``[a, b, a]``: a imports b imports a), or None when there is none."""
    def inside(module: str) -> bool:
        return module == within or module.startswith(within + ".")

    sub = {m: {t for t in targets if inside(t)} for m, targets in graph.items() if inside(m)}
    try:
        tuple(graphlib.TopologicalSorter(sub).static_order())
    except graphlib.CycleError as exc:
        # graphlib lists the cycle as [x, ..., x] following "depends on" edges, i.e. importer → imported reversed
        return list(reversed(exc.args[1]))
    return None


# -- the helper itself, on a small package made for the purpose ------------------------------------------------

def test_import_graph_resolves_every_kind_of_import(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import leaf\n")
    (pkg / "sub" / "leaf.py").write_text("import numpy as np\n")
    (pkg / "top.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from pkg.sub import leaf, helper_name\n"
        "from .sub.leaf import thing\n"
        "if TYPE_CHECKING:\n    from pkg import typed_only\n"
        "def lazy():\n    from ..outside import x\n    import pkg.sub\n")
    graph = import_graph(pkg)
    assert graph["pkg.sub"] == {"pkg.sub.leaf"}
    assert graph["pkg.sub.leaf"] == {"numpy"}
    assert graph["pkg.top"] == {"typing", "pkg.sub.leaf", "pkg.sub", "pkg", "outside"}
    assert "pkg" not in import_graph(pkg, type_checking=False)["pkg.top"]  # only the TYPE_CHECKING import named it


def test_find_cycle_reports_the_path_in_import_order() -> None:
    graph = {"p.a": {"p.b", "numpy"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "q.x": {"q.x2"}, "q.x2": {"q.x"}}
    cycle = find_cycle(graph, "p")
    assert cycle is not None and cycle[0] == cycle[-1] and sorted(cycle[1:]) == ["p.a", "p.b", "p.c"]
    assert all(imported in graph[importer] for importer, imported in itertools.pairwise(cycle))  # importer first
    assert find_cycle({"p.a": {"p.b"}, "p.b": set()}, "p") is None
    assert find_cycle(graph, "p.b") is None  # only modules inside the prefix count


# -- the package ----------------------------------------------------------------------------------------------

def test_toolchain_has_no_import_cycle() -> None:
    """Every toolchain import counts, lazy and annotation-only ones too: a cycle hidden behind a function-level
    import still means the modules cannot be understood (or tested) one without the other."""
    cycle = find_cycle(import_graph(PACKAGE_DIR), "ims_runtime.toolchain")
    assert cycle is None, "import cycle in the toolchain: " + " -> ".join(cycle or [])

