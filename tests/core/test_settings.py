from __future__ import annotations

from pathlib import Path

import pytest

from core.configdoc import iter_variables, render
from core.errors import ConfigurationError
from core.settings import load_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_page_matches_settings_class() -> None:
    assert DOC.read_text() == render(), "run: python -m core.configdoc > docs/configuration.md"


def test_every_variable_is_documented_with_a_description() -> None:
    for variable, _default, description in iter_variables():
        assert description, f"{variable} has no description"


def test_nested_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOMCAST_REDIS__URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("ROOMCAST_RTC__HOST_ADDRESSES", "127.0.0.1, ::1")
    settings = load_settings()
    assert settings.redis.url == "redis://127.0.0.1:1/0"
    assert settings.rtc.host_addresses == ["127.0.0.1", "::1"]


def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOMCAST_API__PORT", "not-a-port")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert str(info.value).startswith("ROOMCAST_API__PORT: ")


def test_production_refuses_placeholder_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOMCAST_MODE", "production")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert "ROOMCAST_AUTH__SECRET_KEY" in str(info.value)
    monkeypatch.setenv("ROOMCAST_AUTH__SECRET_KEY", "x" * 40)
    assert load_settings().mode == "production"


def test_development_defaults_are_embedded(tmp_path: Path) -> None:
    settings = load_settings(var_dir=str(tmp_path))
    assert settings.database_url.startswith("sqlite:///")
    assert settings.storage_dir == tmp_path / "storage"
    assert settings.rtc.ice_servers == []
