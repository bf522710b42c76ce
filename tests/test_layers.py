"""Layers point down: every import in ``src/deepmmsearch`` (lazy ones inside functions, ``TYPE_CHECKING`` ones and
the ``"module:function"`` strings of the registries included) stays in its own layer or goes to a lower one, and no
modules or folders import each other round a cycle."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "deepmmsearch"


@dataclass(frozen=True)
class Layer:
    doc: str
    units: tuple[str, ...]  # top-level folders or modules of the package


# Bottom first. A unit may import its own layer and the layers before it in this list, never those after it.
LAYERS = (
    Layer("the vocabulary: errors, tag grammar, records and hits, config", ("errors", "protocol", "records", "config")),
    Layer(
        "leaf helpers: image loading, devices and threads, progress bars, atomic folder builds",
        ("images", "devices", "progress", "files"),
    ),
    Layer("the local search engine: knowledge bases, text and image indexes, grounding, embedder", ("engine",)),
    Layer("the web client: HTTP with limits and retries, address safety, page fetching", ("web",)),
    Layer("every tool backend (local, web, summarizers, grounders) by name, the cache, the toolbox", ("tools",)),
    Layer("the Qwen-VL families: models from configs, tokenizers, chat templates, processors", ("models",)),
    Layer("what writes the assistant's turns: API, local model, vLLM, script, oracle", ("policies",)),
    Layer("the episode loop, and the wiring of a policy and a toolbox into an agent", ("agent", "runner")),
    Layer("benchmark loaders, judges, the evaluation harness and reports", ("eval",)),
    Layer("the recipe's stages: the offline world, teacher data, alignment, SFT, GRPO", ("world", "data", "train")),
    Layer("programs: the end-to-end demo, the self-check, the HTTP server", ("demo", "doctor", "serve")),
    Layer("the dmms command and the package's public namespace", ("cli", "__init__", "__main__")),
)

# Folders of the package without Python in them (the configs link) hold data: the README names them, no layer does.
DATA_FOLDERS = {
    p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")) and not any(p.rglob("*.py"))
}

# A registry names a backend as "deepmmsearch.x.y:factory" and imports it when chosen: an import all the same.
_MODULE_STRING = re.compile(r"deepmmsearch(\.\w+)+:\w+")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _unit(module: str) -> str:
    """The top-level folder or module a module belongs to (``__init__`` for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(module: str) -> int:
    unit = _unit(module)
    return next(i for i, layer in enumerate(LAYERS) if unit in layer.units)


def _imports(module: str) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every reference from ``module`` to another module of the package."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # "from pkg import sub" imports the submodule pkg.sub when there is one.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_STRING.fullmatch(node.value):
            targets = [node.value.partition(":")[0]]
        else:
            continue
        for target in targets:
            while target and target not in MODULES and "." in target:  # "pkg.mod.attr" -> "pkg.mod"
                target = target.rpartition(".")[0]
            if target in MODULES and target != module:
                yield node.lineno, target


GRAPH = {module: sorted({target for _, target in _imports(module)}) for module in MODULES}


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, []):
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
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_every_module_has_a_layer():
    units = [unit for layer in LAYERS for unit in layer.units]
    assert len(units) == len(set(units)), "a unit is listed in two layers"
    missing = sorted({_unit(m) for m in MODULES} - set(units))
    assert not missing, f"add these folders or modules to a layer in LAYERS: {missing}"
    stale = sorted(set(units) - {_unit(m) for m in MODULES})
    assert not stale, f"LAYERS names units the package no longer has: {stale}"


def test_no_import_runs_up_the_layers():
    upward = {
        f"{MODULES[module].relative_to(REPO)}:{line} imports {target} "
        f"(layer {_layer(module)}, {_unit(module)}, is below layer {_layer(target)}, {_unit(target)})"
        for module in MODULES
        for line, target in _imports(module)
        if _layer(target) > _layer(module)
    }
    assert not upward, "imports that run up the layers:\n" + "\n".join(sorted(upward))


def test_no_module_cycle():
    cycles = _cycles(GRAPH)
    assert not cycles, "modules that import each other round a cycle:\n" + "\n".join(map(str, cycles))


def test_no_folder_cycle():
    folders: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        folders.setdefault(_unit(module), set()).update(_unit(t) for t in targets if _unit(t) != _unit(module))
    cycles = _cycles({unit: sorted(targets) for unit, targets in folders.items()})
    assert not cycles, "folders that import each other round a cycle:\n" + "\n".join(map(str, cycles))


def test_the_checker_sees_lazy_imports_and_registry_strings():
    # Guards the checker itself: a lazy import and a registry string are edges, so cycles hidden in them count.
    assert "deepmmsearch.policies.vllm" in GRAPH["deepmmsearch.policies"]
    registry_targets = {t for t in GRAPH["deepmmsearch.tools"] if t.startswith("deepmmsearch.tools.")}
    assert "deepmmsearch.tools.local" in registry_targets
    assert _cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]


def test_readme_layout_names_every_folder_in_layer_order():
    layout = (REPO / "README.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"^\s+(\w+)(?:/|\.py)\s", layout, flags=re.MULTILINE)
    units = {_unit(m) for m in MODULES} - {"__init__", "__main__"}
    assert "configs" in DATA_FOLDERS  # the link the demo and a wheel read the recipes through
    folders = units | DATA_FOLDERS
    assert not folders - set(named), f"the README's Layout section does not name: {sorted(folders - set(named))}"
    assert not set(named) - folders, f"the README's Layout section names what the package lacks: {set(named) - folders}"
    layers = [_layer(f"deepmmsearch.{unit}") for unit in named if unit not in DATA_FOLDERS]
    assert layers == sorted(layers), f"the README's Layout section must list the layers bottom first: {named}"
