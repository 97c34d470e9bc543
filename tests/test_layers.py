"""The house stays as built: every import in the package (function-level ones too) points down the layers,
no module imports another in a circle, and no private name crosses a module.

Layers, bottom to top (docs/architecture.md):
errors/config -> data -> models -> training -> tasks -> export -> jobs -> cli
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ptft_keras"
LAYERS = {
    "errors": 0, "config": 0, "version": 0, "hub": 0, "storage": 0,
    "data": 1,
    "models": 2,
    "training": 3,
    "tasks": 4,
    "export": 5,
    "jobs": 6,
    "cli": 7, "testing": 7,  # nothing in the package imports either
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path):
    """`(imported module, [names], line)` of every import statement in the file, at any depth."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, [alias.name for alias in node.names], node.lineno


def package_graph():
    """module -> {imported ptft_keras module: first line}, plus the private names imported across modules."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph, private = defaultdict(dict), []
    for name, path in modules.items():
        for target, names, line in imports_of(path):
            if not target.startswith("ptft_keras"):
                continue
            for imported in names or [None]:
                # `from ptft_keras.data import batching` imports the module ptft_keras.data.batching
                full = f"{target}.{imported}" if imported and f"{target}.{imported}" in modules else target
                if full != name:
                    graph[name].setdefault(full, line)
                if imported and imported.startswith("_") and not imported.startswith("__") and full == target and target != name:
                    private.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported} from {target}")
    return modules, graph, private


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_top_level_module_and_subpackage_has_a_layer():
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())}
    assert names <= set(LAYERS), f"give these a layer in LAYERS and docs/architecture.md: {names - set(LAYERS)}"


def test_imports_point_down_the_layers():
    modules, graph, _ = package_graph()
    upward = []
    for source, targets in graph.items():
        if source == "ptft_keras":  # the root re-exports lazily, by name; it imports only errors
            assert set(targets) <= {"ptft_keras.errors", "ptft_keras.version"}, targets
            continue
        for target, line in targets.items():
            if target == "ptft_keras":
                upward.append(f"{modules[source].relative_to(PACKAGE.parent)}:{line} imports the package root")
            elif layer_of(target) > layer_of(source):
                upward.append(f"{modules[source].relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not upward, "a lower layer imports a higher one:\n" + "\n".join(upward)


def strongly_connected(graph) -> list[list[str]]:
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            result.append(component)

    for node in list(graph):
        if node not in index:
            visit(node)
    return result


def test_no_import_cycle_between_modules():
    _, graph, _ = package_graph()
    cycles = [sorted(c) for c in strongly_connected(graph) if len(c) > 1]
    assert not cycles, f"modules importing each other in a circle: {cycles}"


def test_no_private_name_crosses_a_module():
    _, _, private = package_graph()
    assert not private, "private names imported across modules (give them a public name):\n" + "\n".join(private)


def test_the_checker_sees_an_upward_function_level_import(tmp_path, monkeypatch):
    """The checks above can fail: an upward import inside a function is found."""
    fake = tmp_path / "ptft_keras"
    (fake / "data").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "data" / "__init__.py").write_text("")
    (fake / "data" / "x.py").write_text("def f():\n    from ptft_keras.jobs.finetune import finetune\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake, raising=False)
    monkeypatch.setitem(globals(), "PACKAGE", fake)
    with pytest.raises(AssertionError, match="data/x.py:2 imports ptft_keras.jobs.finetune"):
        test_imports_point_down_the_layers()
