"""slotlab's layers, checked at package level (the module graph of ``test_layout``: ast over the sources, imports
inside functions included, collapsed to one node per subpackage or top-level module).

The layers, bottom to top (an arrow: "may import"):

    modules, metrics  <-  models  <-  data  <-  tasks  <-  inference  <-  train

Top-level modules (and the zoo package) are placed in three groups, listed below so that a new one has to be placed:

- FOUNDATIONS import no layer, so every layer may import them (errors, file writing, drawing, the slot noise, ...).
- PART_OF: modules that belong to a layer and count as part of it: ``config`` / ``validate`` check configs
  against the tasks' schemas and the data registry (tasks layer); ``segment``, ``evaluate`` and the ``zoo`` prepare
  images, evaluate and resolve trained models (inference layer).
- FRONT_ENDS sit above every layer (the CLI and what only it uses): no layer imports them.

Checked: the groups are complete and foundations stay foundations; no layer imports a front end; no cycle
between the layers (``slotlab.tasks`` and ``slotlab.train`` importing each other was one); ``tasks`` does not
import ``train``; ``inference`` does not import ``train`` or Lightning, neither directly nor through what it imports
(statically: no path in the layer graph; at run time: importing ``slotlab.inference.api`` in a fresh process
leaves Lightning and ``slotlab.train`` out of ``sys.modules``; the data modules, which are Lightning
DataModules, are imported only where a task needs data).
"""

from __future__ import annotations

import ast
import subprocess
import sys

from test_layout import PACKAGE, cycles, import_graph, module_names

LAYERS = ("modules", "metrics", "models", "data", "tasks", "inference", "train")
FOUNDATIONS = {
    "atomic",
    "checkpoint_format",
    "checks",
    "config_keys",
    "config_limits",
    "config_rules",
    "config_schema",
    "defaults",
    "drawing",
    "errors",
    "eval_output",
    "losses",
    "machine",
    "mp4",
    "noise",
    "plots",
    "run_lock",
    "runs",
    "torch_workarounds",
    "viz",
}
PART_OF = {"config": "tasks", "validate": "tasks", "segment": "inference", "evaluate": "inference", "zoo": "inference"}
FRONT_ENDS = {"", "cli", "figures", "official", "report", "report_config"}  # "": slotlab/__init__.py, the facade

TRAINING_STACK = ("lightning", "pytorch_lightning")


def node(module: str) -> str:
    """slotlab.tasks.base -> "tasks", slotlab.config -> "config", slotlab -> "" (the package's __init__)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def package_graph() -> dict[str, set[str]]:
    """node -> the nodes its modules import (self-imports dropped)."""
    graph: dict[str, set[str]] = {}
    for module, deps in import_graph().items():
        graph.setdefault(node(module), set()).update(node(d) for d in deps)
    for a, deps in graph.items():
        deps.discard(a)
    return graph


def layer_graph() -> dict[str, set[str]]:
    """The package graph with PART_OF merged into their layer: layer -> the layers (and other nodes) it imports."""
    merged: dict[str, set[str]] = {}
    for a, deps in package_graph().items():
        merged.setdefault(PART_OF.get(a, a), set()).update(PART_OF.get(d, d) for d in deps)
    for a, deps in merged.items():
        deps.discard(a)
    return merged


def reach(graph: dict[str, set[str]], start: str) -> dict[str, list[str]]:
    """Every node reachable from ``start``, with one path to it."""
    paths = {start: [start]}
    todo = [start]
    while todo:
        a = todo.pop()
        for b in sorted(graph.get(a, ())):
            if b not in paths:
                paths[b] = [*paths[a], b]
                todo.append(b)
    return paths


def external_imports(path) -> set[str]:
    """The top-level names of the non-slotlab packages a source file imports anywhere (functions included)."""
    names = set()
    for n in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(n, ast.Import):
            names |= {a.name.split(".")[0] for a in n.names}
        elif isinstance(n, ast.ImportFrom) and not n.level and n.module:
            names.add(n.module.split(".")[0])
    return names - {"slotlab"}


def test_every_top_level_module_is_placed_and_foundations_import_no_layer():
    graph = package_graph()
    placed = set(LAYERS) | FOUNDATIONS | set(PART_OF) | FRONT_ENDS
    assert set(graph) - placed == set(), f"place these in FOUNDATIONS, PART_OF or FRONT_ENDS: {set(graph) - placed}"
    assert placed - set(graph) == set(), f"listed here but not in slotlab/: {placed - set(graph)}"
    wrong = {f: sorted(graph[f] - FOUNDATIONS) for f in FOUNDATIONS if graph[f] - FOUNDATIONS}
    assert not wrong, f"foundations may import only foundations: {wrong}"


def test_no_layer_imports_a_front_end():
    graph = layer_graph()
    wrong = {a: sorted(graph[a] & FRONT_ENDS) for a in LAYERS if graph[a] & FRONT_ENDS}
    assert not wrong, f"front ends imported by a layer: {wrong}"


def test_no_cycle_between_the_layers():
    graph = layer_graph()
    assert "tasks" in graph["train"] and "tasks" in graph["inference"]  # the graph was read
    found = cycles({a: graph[a] & set(LAYERS) for a in LAYERS})
    assert not found, f"package-level import cycles: {found} ({ {a: sorted(graph[a] & set(LAYERS)) for a in LAYERS} })"


def test_tasks_do_not_import_the_training_stack():
    paths = reach(layer_graph(), "tasks")
    assert "train" not in paths, " -> ".join(paths.get("train", []))
    direct = {m for m, deps in import_graph().items() if node(m) == "tasks" and any(node(d) == "train" for d in deps)}
    assert not direct, f"tasks modules importing slotlab.train: {sorted(direct)}"


def test_inference_does_not_import_the_training_stack():
    paths = reach(layer_graph(), "inference")
    assert "train" not in paths, "inference reaches slotlab.train: " + " -> ".join(paths.get("train", []))
    assert {"tasks", "models"} <= set(paths)  # the graph was read
    files = {m: p for m, p in module_names().items() if PART_OF.get(node(m), node(m)) == "inference"}
    assert "slotlab.inference.api" in files and "slotlab.segment" in files
    wrong = {m: sorted(external_imports(p) & set(TRAINING_STACK)) for m, p in files.items()}
    assert not {m: w for m, w in wrong.items() if w}, f"inference-layer modules importing Lightning: {wrong}"


def test_importing_the_inference_api_loads_no_training_stack():
    code = (
        "import sys, slotlab.inference.api\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')"
        " or m.startswith('slotlab.train'))\n"
        "print(' '.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", (
        f"`import slotlab.inference.api` loaded {out.stdout.strip()} (find who: python -X importtime -c "
        "'import slotlab.inference.api' 2>&1 | grep -B5 lightning)"
    )


def test_the_checks_see_a_cycle_and_a_reach():
    """The checkers themselves, on a made-up graph: tasks <-> train is a cycle, and train is reachable."""
    graph = {"tasks": {"train"}, "train": {"tasks"}, "inference": {"tasks"}}
    assert cycles(graph) == [["tasks", "train"]]
    assert reach(graph, "inference")["train"] == ["inference", "tasks", "train"]
