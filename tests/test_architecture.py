"""The package rules of shared/DESIGN.md, checked on the source.

- ``core``'s pure modules (everything outside ``core/adapters/``) import no I/O or media library.
- ``api``, ``live``, ``recorder``, ``workers`` do not import one another; only ``roomcast`` (the
  composition root) may combine them. ``live`` may import ``recorder`` only in its composition
  root module ``live/node.py`` (DESIGN: "recorder (wired in its composition root)").
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_PURE_CORE = {
    "aiortc",
    "aioice",
    "av",
    "celery",
    "fastapi",
    "starlette",
    "sqlalchemy",
    "alembic",
    "boto3",
    "botocore",
    "redis",
    "uvicorn",
    "psycopg",
}
APPS = ("api", "live", "recorder", "workers")
COMPOSITION_ROOTS = {Path("live/node.py")}


def _modules(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def _imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_there_is_code_to_check() -> None:
    assert any(_modules("core")), "core/ has no modules"


def test_pure_core_imports_no_io_libraries() -> None:
    offenders = []
    for path in _modules("core"):
        relative = path.relative_to(ROOT)
        if relative.parts[:2] == ("core", "adapters"):
            continue
        bad = _imported_top_levels(path) & FORBIDDEN_IN_PURE_CORE
        if bad:
            offenders.append(f"{relative}: {sorted(bad)}")
    assert not offenders, "pure core modules import I/O libraries:\n" + "\n".join(offenders)


@pytest.mark.parametrize("app", APPS)
def test_apps_do_not_import_each_other(app: str) -> None:
    others = set(APPS) - {app}
    offenders = []
    for path in _modules(app):
        relative = path.relative_to(ROOT)
        if relative in COMPOSITION_ROOTS:
            continue
        bad = _imported_top_levels(path) & others
        if bad:
            offenders.append(f"{relative}: {sorted(bad)}")
    assert not offenders, f"{app} imports other apps:\n" + "\n".join(offenders)


def test_core_imports_no_app() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {sorted(bad)}"
        for path in _modules("core")
        if (bad := _imported_top_levels(path) & (set(APPS) | {"roomcast"}))
    ]
    assert not offenders, "core imports apps:\n" + "\n".join(offenders)


def test_settings_are_never_built_at_import_time() -> None:
    offenders = []
    for package in ("core", *APPS):
        for path in _modules(package):
            tree = ast.parse(path.read_text())
            for node in tree.body:  # module level only
                if isinstance(node, (ast.Assign, ast.AnnAssign, ast.Expr)):
                    for call in ast.walk(node):
                        if (
                            isinstance(call, ast.Call)
                            and isinstance(call.func, ast.Name)
                            and call.func.id in {"Settings", "load_settings"}
                        ):
                            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, "module-level settings instances:\n" + "\n".join(offenders)
