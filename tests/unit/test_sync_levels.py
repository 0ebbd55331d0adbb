"""Which scope levels go to the hub is a setting, checked against the catalog at start.

Proves: by default only the province is synced; the setting is read from the environment
as a JSON list; a level the catalog does not know stops the service before it serves,
with a message naming the setting, the unknown level and the levels that exist.
"""

from __future__ import annotations

import pytest

from services.connector.app import build_app
from services.connector.intake import SyncLevelsError, sync_levels
from services.connector.settings import ConnectorSection, ConnectorSettings
from shared.catalog import load_catalog
from shared.settings import REPO_ROOT
from tests.harness import service_settings

pytestmark = pytest.mark.unit

CATALOG = load_catalog(REPO_ROOT / "catalog")
UNREACHABLE_KAFKA = "127.0.0.1:1"
UNREACHABLE_POSTGRES = "postgresql://nobody@127.0.0.1:1/none"


def test_by_default_only_the_province_is_synced() -> None:
    assert sync_levels(CATALOG, ConnectorSection().sync_levels) == {"province"}


def test_the_levels_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAOCAO_CONNECTOR__SYNC_LEVELS", '["province", "district"]')
    assert ConnectorSettings().connector.sync_levels == ("province", "district")


def test_an_unknown_level_stops_the_service_with_a_clear_message() -> None:
    settings = service_settings(
        ConnectorSettings,
        "unit_",
        UNREACHABLE_KAFKA,
        UNREACHABLE_POSTGRES,
        connector=ConnectorSection(sync_levels=("province", "provnce")),
    )
    with pytest.raises(SyncLevelsError) as raised:
        build_app(settings)
    message = str(raised.value)
    assert "BAOCAO_CONNECTOR__SYNC_LEVELS" in message
    assert "provnce" in message
    assert "the catalog's unit types are commune, department, district" in message


def test_no_level_at_all_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1 item"):
        ConnectorSection(sync_levels=())
