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



# -- layers point down (docs/architecture.md) -------------------------------------------------------------------

#: the runtime's layers, lowest first: a module may import its own layer and the ones below, never one above.
#: Keys are the first name under ``ims_runtime`` (a subpackage or a top-level module; "" = the package itself).
LAYERS: tuple[frozenset[str], ...] = tuple(frozenset(layer) for layer in (
    {"", "errors", "paths", "atomic", "logs", "types", "inputs"},  # foundations
    {"backends", "catalog"},                                   # running one model file; artefacts by name
    {"spec"},                                                  # the deployment spec (uses the backend registry)
    {"temporal", "contract"},                                  # per-frame signals, temporal features; the contract
    {"policy", "messages"},                                    # the pure policy; the one encoder
    {"stages"},                                                # detector, camera check, face-state, fatigue
    {"pipeline", "publish", "telemetry"},                      # sources, speed input, pipeline; ZeroMQ; telemetry
    {"replay", "eval", "bench", "service", "report", "fleet"}, # what runs a pipeline or reads its output
    {"commands", "cli"},                                       # argument parsing
    {"toolchain"},                                             # offline extra: may import the runtime
))

#: upward imports that are allowed, each with its reason
ALLOWED_UPWARD = {
    # `ims-runtime bench` builds its optional PyTorch-eager baseline row with the toolchain, lazily and only
    # when the toolchain extra is installed; bench is a developer command, not the vehicle path
    ("ims_runtime.commands.bench", "ims_runtime.toolchain.torch_backend"),
}


def layer_of(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else ""
    for index, layer in enumerate(LAYERS):
        if key in layer:
            return index
    raise AssertionError(f"{module}: not in any layer — add it to LAYERS and docs/architecture.md")


def test_every_runtime_import_points_down_the_layers() -> None:
    graph = import_graph(PACKAGE_DIR)
    upward = sorted((module, target, f"layer {layer_of(module)} → {layer_of(target)}")
                    for module, targets in graph.items() for target in targets
                    if target.startswith("ims_runtime") and layer_of(target) > layer_of(module)
                    and (module, target) not in ALLOWED_UPWARD)
    assert not upward, "imports pointing up the layers (docs/architecture.md):\n" + "\n".join(map(str, upward))


def test_the_runtime_never_imports_torch_and_the_policy_holds_no_socket() -> None:
    graph = import_graph(PACKAGE_DIR)
    runtime = {m: t for m, t in graph.items() if layer_of(m) < LAYERS.index(frozenset({"toolchain"}))}
    assert not [(m, x) for m, targets in runtime.items() for x in targets if x.split(".")[0] == "torch"]
    policy = {x for m, targets in graph.items() if m.startswith("ims_runtime.policy") for x in targets}
    assert not {x for x in policy if x.split(".")[0] in ("zmq", "socket", "time")}, policy


def test_the_layer_table_is_the_one_documented() -> None:
    doc = (PACKAGE_DIR.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    for index, layer in enumerate(LAYERS):
        row = next(line for line in doc.splitlines() if line.startswith(f"| {index} |"))
        named = {name for name in layer if name}
        assert all(f"`{name}`" in row for name in named), (index, row)
