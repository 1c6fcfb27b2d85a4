"""docker/compose.yaml only sets variables that are real settings, and they validate."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from core.configdoc import iter_variables

COMPOSE = Path(__file__).resolve().parents[2] / "docker" / "compose.yaml"
KNOWN = {variable for variable, _default, _description in iter_variables()}


def _roomcast_env(compose: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for service in compose["services"].values():
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        for name, value in environment.items():
            if name.startswith("ROOMCAST_"):
                found[name] = str(value)
    return found


def test_compose_sets_only_real_settings() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    variables = _roomcast_env(compose)
    assert "ROOMCAST_DATABASE__URL" in variables  # the anchor was read
    unknown = sorted(set(variables) - KNOWN)
    assert not unknown, f"compose.yaml sets variables that are not settings: {unknown}"


def test_compose_values_validate(monkeypatch: Any) -> None:
    from core.settings import load_settings

    compose = yaml.safe_load(COMPOSE.read_text())
    for name, value in _roomcast_env(compose).items():
        # ${VAR:-default} → default; ${VAR:?message} → a plausible production value
        value = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)
        value = re.sub(
            r"\$\{[A-Z_]+:\?[^}]*\}", "x" * 40 if "SECRET" in name else "127.0.0.1", value
        )
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.mode == "production"
    assert settings.storage.backend == "s3"


def test_every_service_image_command_is_a_cli_command() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    commands = {
        service["command"][0]
        for service in compose["services"].values()
        if service.get("image", "").startswith("roomcast") and "command" in service
    }
    assert commands == {"api", "live", "worker", "migrate"}
