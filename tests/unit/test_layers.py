"""The package layers and the absence of import cycles (docs/architecture.md, "Layout").

Imports point down only: core <- decoders, models, sinks <- worker.  core/ imports nothing
of sidepath but itself; decoders/, models/ and sinks/ never import worker/; among those three
only models/ may import decoders/ (a model's input is the decoders' ``Media``).

Every import counts, wherever it stands: at module level, inside a function (a lazy import
that "breaks" a cycle only defers it) and under ``if TYPE_CHECKING:`` (a type-only cycle is
still two modules that cannot be read apart).  An import of ``sidepath.a.b`` is an edge to
that module only, not to the packages above it (their __init__ files hold docstrings and
re-exports, which would make every package cycle with itself).
"""
from __future__ import annotations

import ast
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: top-level folders installed as sidepath.<name> (setup.cfg's package_dir)
PACKAGES = ("core", "decoders", "models", "sinks", "worker")
#: which packages each may import (besides itself)
ALLOWED = {
    "core": set(),
    "decoders": {"core"},
    "models": {"core", "decoders"},
    "sinks": {"core"},
    "worker": {"core", "decoders", "models", "sinks"},
}


def _modules() -> dict[str, Path]:
    """sidepath module name -> file, without following symlinks."""
    out: dict[str, Path] = {}
    for top in PACKAGES:
        base = ROOT / top
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d).is_symlink() and d != "__pycache__"]
            for f in filenames:
                if f.endswith(".py"):
                    rel = (Path(dirpath) / f).relative_to(ROOT).with_suffix("")
                    parts = list(rel.parts)
                    if parts[-1] == "__init__":
                        parts.pop()
                    out[".".join(["sidepath", *parts])] = Path(dirpath) / f
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The sidepath modules (or packages) that a module imports, anywhere in it."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod for a in node.names]
        else:
            continue
        for t in targets:
            if t == "sidepath" or not t.startswith("sidepath."):
                continue
            while t not in MODULES and t.count(".") > 1:  # sidepath.x.y.Name -> sidepath.x.y
                t = t.rsplit(".", 1)[0]
            if t != name:
                found.add(t)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> str:
    return module.split(".")[1]


def test_the_tree_is_found() -> None:
    assert {"sidepath.core.errors", "sidepath.worker.engine.poll_loop", "sidepath.sinks.base"} <= set(MODULES)


def test_imports_point_down_only() -> None:
    wrong = sorted(f"{m} imports {t}" for m, targets in GRAPH.items() for t in targets
                   if _layer(t) != _layer(m) and _layer(t) not in ALLOWED[_layer(m)])
    assert not wrong, ("imports that point up or sideways (core <- decoders, models, sinks <- worker):\n  "
                       + "\n  ".join(wrong))


#: inside worker/: the engine and its operations (metrics, health, lag) run the streaming worker;
#: the finite jobs, the CLI and the development helpers are built on top of them, never under
WORKER_TOP = ("sidepath.worker.jobs", "sidepath.worker.cli", "sidepath.worker.dev")
WORKER_BELOW = ("sidepath.worker.engine", "sidepath.worker.ops")


def _under(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_the_engine_and_ops_never_import_the_jobs_cli_or_dev_helpers() -> None:
    wrong = sorted(f"{m} imports {t}" for m, targets in GRAPH.items() if _under(m, WORKER_BELOW)
                   for t in targets if _under(t, WORKER_TOP))
    assert not wrong, "worker/engine and worker/ops import from the layer above them:\n  " + "\n  ".join(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            for nxt in it:
                if nxt not in graph:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_no_import_cycles() -> None:
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles (lazy and TYPE_CHECKING imports count):\n  " + "\n  ".join(
        " <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
