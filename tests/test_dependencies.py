"""Every third-party import in the shipped packages is a declared runtime dependency.

`make test` installs the test extras too, so a runtime import of a test-only package (httpx once
was one) would pass the suite and break `make run`. This test reads the imports of the shipped
packages and maps them to distributions.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions, requires
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("core", "live", "recorder", "workers", "api", "roomcast")


def _declared_runtime() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = set()
    for requirement in project["dependencies"]:
        name = requirement.split(";")[0]
        for stop in "<>=!~[ ":
            name = name.split(stop)[0]
        names.add(name.strip().lower().replace("_", "-"))
    return names


def _with_direct_requirements(declared: set[str]) -> set[str]:
    """Declared distributions plus what they themselves require (kombu via celery, botocore via
    boto3, aioice via aiortc, starlette via fastapi): pinned by the package we chose."""
    closure = set(declared)
    for name in declared:
        for requirement in requires(name) or []:
            if "extra ==" in requirement:
                continue
            dep = requirement.split(";")[0]
            for stop in "<>=!~[ (":
                dep = dep.split(stop)[0]
            closure.add(dep.strip().lower().replace("_", "-"))
    return closure


def _top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_runtime_imports_are_declared_dependencies() -> None:
    declared = _with_direct_requirements(_declared_runtime())
    module_to_dists = packages_distributions()
    missing: list[str] = []
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            for module in _top_level_imports(path):
                if module in SHIPPED or module in sys.stdlib_module_names or module == "__future__":
                    continue
                dists = {d.lower().replace("_", "-") for d in module_to_dists.get(module, [])}
                if not dists:
                    missing.append(f"{path.relative_to(ROOT)}: {module} (not installed)")
                elif not dists & declared:
                    missing.append(f"{path.relative_to(ROOT)}: {module} from {sorted(dists)}")
    if missing:
        pytest.fail("runtime imports not in [project].dependencies:\n" + "\n".join(missing))
