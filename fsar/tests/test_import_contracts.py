"""The layering is a checked contract (pyproject.toml, [tool.importlinter]):
lint-imports passes here, fails on a copy with a forbidden import planted, every
package of the project is under the contracts, and no app has an import cycle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
PACKAGES = CONFIG["root_packages"]
NOT_APPS = {"bench"}  # measured from outside; may import anything, like the tests


def contract(contract_id: str) -> dict:
    return next(c for c in CONFIG["contracts"] if c["id"] == contract_id)


def lint_imports(where: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(where)}
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=where, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    """The packages (without their tests, which the contracts ignore) and pyproject.toml."""
    where = tmp_path_factory.mktemp("layers")
    skip = shutil.ignore_patterns("tests", "__pycache__", "*.pyc")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, where / package, ignore=skip)
    shutil.copy(ROOT / "pyproject.toml", where / "pyproject.toml")
    return where


def test_the_contracts_hold_here():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONFIG['contracts'])} kept, 0 broken." in result.stdout


def test_the_unmodified_copy_passes(copy):
    result = lint_imports(copy)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "planted", "broken"),
    [
        ("tasks/models.py", "import fsar", ["No app imports fsar", "Layers:"]),
        ("tasks/services.py", "from reviews import services", ["tasks imports neither reviews nor billing"]),
        ("billing/services.py", "import reviews.selectors", ["billing and reviews never import each other"]),
        ("core/roles.py", "import audit.chain", ["Layers:"]),
        ("reviews/services/callbacks.py", "from reviews import jobs", ["Inside an app"]),
        ("reviews/selectors.py", "from reviews.services import errors", ["Inside an app"]),
        ("deployments/models.py", "import assurance.models", ["Layers:"]),
        ("reviews/selectors.py", "import assurance.selectors", ["Layers:"]),
        ("assurance/models.py", "import billing.models", ["assurance does not import billing"]),
        ("assurance/selectors.py", "from assurance import services", ["Inside an app"]),
        ("assurance/gate.py", "import fsar.gate", ["No app imports fsar", "Layers:"]),
        ("indicators/models.py", "import billing.models", ["indicators does not import billing"]),
        ("indicators/models.py", "import assurance.models", ["Layers:"]),
        ("assurance/models.py", "import indicators.models", ["Layers:"]),
        ("reviews/models.py", "import indicators.models", ["Layers:"]),
        ("indicators/models.py", "import fsar", ["No app imports fsar", "Layers:"]),
    ],
)
def test_a_planted_forbidden_import_breaks_the_contract(copy, module, planted, broken):
    path = copy / module
    original = path.read_text()
    path.write_text(f"{original}\n{planted}  # planted by the test\n")
    try:
        result = lint_imports(copy)
    finally:
        path.write_text(original)
    assert result.returncode != 0
    for name in broken:
        assert any(line.startswith(name) and line.endswith("BROKEN") for line in result.stdout.splitlines()), (
            result.stdout
        )


def test_every_package_of_the_project_is_under_the_contracts():
    """A new app (deployments, assurance…) fails here until it is a root package, a
    layer, and forbidden from importing fsar (docs/architecture.md says where)."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - NOT_APPS
    assert packages == set(PACKAGES), "add the new package to [tool.importlinter] root_packages"
    layered = {tail.strip().strip("()") for layer in contract("layers")["layers"] for tail in layer.split("|")}
    assert set(PACKAGES) <= layered, "put the new package in the layers contract"
    assert set(contract("no-app-imports-fsar")["source_modules"]) == set(PACKAGES) - {"fsar"}
    testpaths = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"]
    assert set(PACKAGES) <= set(testpaths), "add the new package to [tool.pytest.ini_options] testpaths"


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, directly or not."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == module:
                    break
            found.append(group)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_app_has_an_import_cycle(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    cycles = {}
    for package in PACKAGES:
        modules = {
            m for m in graph.find_descendants(package) | {package} if ".tests" not in m and ".migrations" not in m
        }
        edges = {m: graph.find_modules_directly_imported_by(m) & modules for m in modules}
        cycles[package] = [sorted(group) for group in strongly_connected(edges) if len(group) > 1]
    assert cycles == {package: [] for package in PACKAGES}


def test_the_cycle_finder_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}, {"d"}]
