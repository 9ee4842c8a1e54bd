"""Dagster's instance storage lives in the embedded PostgreSQL through dagster.yaml."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import psycopg

from confluence_assets.db.connection import resolve_dagster_storage_url
from confluence_assets.db.urls import with_database

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_dagster_yaml_stores_runs_and_events_in_postgres(embedded_server, tmp_path, monkeypatch):
    storage_url = resolve_dagster_storage_url()
    assert storage_url.startswith("postgresql+psycopg2://")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("CONFLUENCE_ASSETS_DAGSTER_STORAGE_URL", storage_url)

    @dg.asset
    def probe_asset() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"rows": 3})

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = dg.materialize([probe_asset], instance=instance)
        assert result.success
        event = instance.get_latest_materialization_event(dg.AssetKey("probe_asset"))
        assert event.asset_materialization.metadata["rows"].value == 3

    with psycopg.connect(with_database(embedded_server.server_url, "dagster")) as conn:
        runs = conn.execute("SELECT count(*) FROM runs WHERE run_id = %s", (result.run_id,)).fetchone()[0]
    assert runs == 1
