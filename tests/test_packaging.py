"""What the package declares: every import of the benchmarks is installed by the base install or the bench extra."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    """A requirement's distribution name, normalized as PyPI does (``rank_bm25`` = ``rank-bm25``)."""
    return re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]).lower()


def _third_party_imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m != "deepmmsearch"}


def test_the_bench_extra_covers_every_benchmark_import() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["bench"]}
    installed_by = packages_distributions()  # module -> distributions, for what is installed here
    missing = {}
    for script in sorted((REPO / "bench").glob("*.py")):
        for module in _third_party_imports(script):
            # A module not installed here is looked up by its own name (rank_bm25 is the rank-bm25 distribution).
            names = {_name(d) for d in installed_by.get(module, [])} or {_name(module)}
            if not names & declared:
                missing[f"{script.name}: {module}"] = sorted(names)
    assert not missing, f"add to the bench extra in pyproject.toml: {missing}"


def test_the_configs_ship_inside_the_package() -> None:
    """``src/deepmmsearch/configs`` links to ``configs/``, and package data takes every file of it into a wheel, so
    the demo reads its recipe from the package wherever it is installed."""
    from importlib.resources import files
    from pathlib import PurePosixPath

    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["deepmmsearch"]
    for path in sorted((REPO / "configs").rglob("*")):
        if path.is_file():
            relative = PurePosixPath("configs", *path.relative_to(REPO / "configs").parts)
            assert any(relative.match(glob) for glob in globs), f"{relative} is not in the package data"
            assert (files("deepmmsearch") / str(relative)).read_bytes() == path.read_bytes()
