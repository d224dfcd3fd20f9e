"""croft's layers import downward only, and no import circle exists (docs/architecture.md, "Layers").

Every ``import`` statement of every module under ``croft/`` is read with ``ast`` (function-level
imports too: a lazy import still ties the two modules together), resolved to the croft module it
names, and checked against :data:`LAYERS`. To place a new top-level part, add it to ``LAYERS``.
"""
import ast
import os
from collections import defaultdict

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "croft")

#: Bottom to top. A module may import its own part and the parts of its floor or below; parts on
#: one floor (the front ends at the top) may import each other. ``croft`` is the package itself.
LAYERS = [
    ("utils",),
    ("config",),
    ("clip",),
    ("ood",),
    ("data",),
    ("results",),
    ("evaluation",),
    ("engine",),
    ("trainers",),
    ("sweep", "predict", "dassl_bridge", "train", "croft"),
    ("testing",),
]

#: Test fixtures: nothing in the library imports them (tests, tools and the demo do).
FIXTURES = ("croft.testing",)

#: The one lasting exception, with its reason.
EXCEPTIONS = {
    ("croft.engine.checks", "croft.trainers"):
        "check_cfg, the run checks every front end calls first, registers every trainer before looking "
        "TRAINER.NAME up (TRAINER_REGISTRY lives in the engine, the trainers one floor up)",
}

#: Known violations that are being removed; delete an entry when its import goes (the test says so).
LATER = {}


def _module_name(path):
    parts = os.path.relpath(path, REPO)[:-len(".py")].split(os.sep)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def croft_modules():
    """``{module name: file path}`` of every module under croft/."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                found[_module_name(path)] = path
    return found


def _imported(module, path, modules):
    """``[(line, imported croft module)]`` of every import statement in ``path``."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # ``from pkg import name``: the submodule pkg.name when it is one, else pkg itself
            targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in modules else origin for a in node.names]
        else:
            continue
        for target in targets:
            if target == "croft" or target.startswith("croft."):
                while target not in modules:  # ``import croft.clip.backbone.x``-style names: the module
                    target = target.rpartition(".")[0]
                found.append((node.lineno, target))
    return found


def import_graph():
    """``{(importer, imported): first line}`` over croft's modules (a module importing itself left out)."""
    modules = croft_modules()
    edges = {}
    for module, path in modules.items():
        for line, target in _imported(module, path, modules):
            if target != module:
                edges.setdefault((module, target), f"{os.path.relpath(path, REPO)}:{line}")
    return edges


def part(module):
    return "croft" if module == "croft" else module.split(".")[1]


def floor(module):
    name = part(module)
    for index, parts in enumerate(LAYERS):
        if name in parts:
            return index
    raise AssertionError(f"{module}: croft/{name} is in no layer; add it to LAYERS in tests/test_layers.py "
                         "and to docs/architecture.md")


def _is_fixture(module, fixtures):
    return any(module == f or module.startswith(f + ".") for f in fixtures)


def _cycles(edges):
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    graph = defaultdict(list)
    for a, b in edges:
        graph[a].append(b)
    index, low, on_stack, stack, counter, found = {}, {}, set(), [], [0], []
    for root in sorted(set(graph) | {b for _, b in edges}):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_the_import_reader_resolves_croft_imports(graph):
    """The reader sees relative, absolute, package and function-level imports (else every rule passes)."""
    assert ("croft.engine.trainer", "croft.engine.checkpoint") in graph        # from .checkpoint import ...
    assert ("croft.trainers.clip_base", "croft.engine.shared") in graph        # from ..engine import shared
    assert ("croft.trainers.clip_base", "croft.data.feature_cache") in graph   # inside a method
    assert ("croft.engine.checks", "croft.trainers") in graph                  # from .. import trainers
    assert ("croft.trainers.croft", "croft.trainers.croft_objective") in graph
    assert len(graph) > 150 and all(a != b for a, b in graph)


def test_every_part_has_a_floor():
    for module in croft_modules():
        floor(module)


def test_layers_import_downward_only(graph):
    upward = [f"{where}: {a} imports {b} (croft/{part(a)} is below croft/{part(b)})"
              for (a, b), where in sorted(graph.items())
              if floor(b) > floor(a) and not _is_fixture(a, FIXTURES) and (a, b) not in EXCEPTIONS
              and (a, b) not in LATER]
    assert not upward, "imports that run up the layers (docs/architecture.md, Layers):\n" + "\n".join(upward)


def fixture_imports(graph):
    """Imports of croft.testing by the library (croft.testing's own modules may import each other)."""
    return [f"{where}: {a} imports the test fixture {b}" for (a, b), where in sorted(graph.items())
            if _is_fixture(b, FIXTURES) and not _is_fixture(a, FIXTURES) and (a, b) not in LATER]


def test_the_library_imports_no_test_fixture(graph):
    bad = fixture_imports(graph)
    assert not bad, "\n".join(bad)


def test_no_import_circle(graph):
    circles = _cycles(graph)
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_at_most_one_documented_exception():
    assert len(EXCEPTIONS) <= 1 and all(reason.strip() for reason in EXCEPTIONS.values())


def test_allow_lists_hold_only_imports_that_exist(graph):
    """An entry whose import is gone must leave the list, so that the list only shrinks."""
    stale = [f"{a} -> {b}" for a, b in {**EXCEPTIONS, **LATER} if (a, b) not in graph]
    assert not stale, "remove from tests/test_layers.py (the import is gone): " + ", ".join(stale)


def test_the_rules_catch_what_they_forbid():
    """The checks themselves, on made-up graphs: an upward import, a circle and a fixture import are found."""
    assert floor("croft.data.feature_cache") < floor("croft.engine.shared")
    assert floor("croft.utils.logging") == 0 and floor("croft.train") == floor("croft.sweep.runner")
    circle = {("croft.data.feature_cache", "croft.engine.shared"): "", ("croft.engine.shared", "croft.engine.fingerprint"): "",
              ("croft.engine.fingerprint", "croft.data.feature_cache"): "", ("croft.engine.shared", "croft.utils.x"): ""}
    assert _cycles(circle) == [["croft.data.feature_cache", "croft.engine.fingerprint", "croft.engine.shared"]]
    assert _cycles({("a", "b"): "", ("b", "c"): ""}) == []
    fixture = {("croft.data.datasets.base", "croft.testing.synthetic"): "x.py:1",
               ("croft.testing.demo_data", "croft.testing.synthetic"): "", ("croft.testing.render", "croft.utils.atomic"): ""}
    assert fixture_imports(fixture) == ["x.py:1: croft.data.datasets.base imports the test fixture croft.testing.synthetic"]
