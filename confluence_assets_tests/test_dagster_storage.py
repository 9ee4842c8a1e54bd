"""Dagster's instance storage lives in the embedded PostgreSQL through dagster.yaml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import psycopg

from confluence_assets.db.connection import resolve_dagster_storage_url
from confluence_assets.db.urls import sqlalchemy_psycopg2_url, with_database

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


def test_migrate_with_dagster_home_creates_the_pools_before_any_run(migrated_db_url, embedded_server, tmp_path):
    """Dagster creates a pool on first claim and races when several runs claim a new pool at once; a
    deployment's `confluence-assets migrate` creates ours up front, idempotently, limited by dagster.yaml."""
    database = f"dagster_pools_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(embedded_server.server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    storage_url = sqlalchemy_psycopg2_url(with_database(embedded_server.server_url, database))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DATABASE_URL": migrated_db_url,
        "DAGSTER_HOME": str(home),
        "CONFLUENCE_ASSETS_DAGSTER_STORAGE_URL": storage_url,
    }
    cli = str(Path(sys.executable).parent / "confluence-assets")
    for _ in range(2):
        out = subprocess.run([cli, "migrate"], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert f"Dagster pool confluence_api: 2 slots (DAGSTER_HOME={home})" in out.stdout
    with psycopg.connect(with_database(embedded_server.server_url, database)) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM concurrency_slots WHERE concurrency_key = 'confluence_api' AND NOT deleted"
        ).fetchone()[0]
        default = conn.execute(
            "SELECT using_default_limit FROM concurrency_limits WHERE concurrency_key = 'confluence_api'"
        ).fetchone()[0]
    assert rows == 2 and default  # still governed by dagster.yaml's default_limit
