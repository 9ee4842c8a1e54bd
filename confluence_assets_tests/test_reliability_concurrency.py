"""Issue 8, concurrency: the Confluence request bound under a 429 storm with several spaces syncing at once,
the change sensor's probe threads, two runs of the same space (the queue keeps them apart; if they meet
anyway the per-space lock serialises their steps), and runs of different spaces in parallel."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from datetime import timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml

from confluence_assets.confluence.client import ConfluenceAPI
from confluence_assets.sync.locks import space_lock_key
from confluence_assets.sync.probe import probe_spaces
from confluence_assets_tests.crash_matrix import start_worker
from confluence_assets_tests.pipeline_support import (
    SEARCH,
    SITE_NOW,
    assert_matches_site,
    generated_site,
    sandbox_servers,
)
from confluence_assets_tests.reliability_support import InvariantReader

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def deployed_home(embedded_server, tmp_path, monkeypatch):
    """A DAGSTER_HOME with the project's dagster.yaml (PostgreSQL storage, run queue, pools), its pools
    created up front as `confluence-assets migrate` / `dev` do in a deployment."""
    from confluence_assets.db.connection import resolve_dagster_storage_url
    from confluence_assets.defs.pools import prepare_pools_in

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("CONFLUENCE_ASSETS_DAGSTER_STORAGE_URL", resolve_dagster_storage_url())
    assert prepare_pools_in(str(home)) == {"confluence_api": 2}
    return str(home)


def _wait_all(children, timeout: float = 300) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    for child in children:
        try:
            codes.append(child.wait(max(1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            child.kill()
            codes.append(child.wait())
    return codes


def test_the_run_queue_allows_one_run_per_space_and_pools_confluence_steps():
    config = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
    assert config["concurrency"]["pools"]["default_limit"] == 2
    from confluence_assets.defs.execution import CONFLUENCE_POOL
    from confluence_assets_tests.pipeline_support import changed_pages, confluence_spaces, page_reconciliation

    for asset in (changed_pages, confluence_spaces, page_reconciliation):
        assert asset.op.pool == CONFLUENCE_POOL


def test_a_429_storm_over_four_spaces_syncing_at_once_stays_within_the_pool(migrated_db_url, deployed_home):
    site = generated_site(51, spaces=4, pages=60)
    keys = sorted(site.spaces)
    with dg.DagsterInstance.from_config(deployed_home) as instance:  # four run workers, one instance
        instance.add_dynamic_partitions("confluence_spaces", keys)
    with sandbox_servers(site) as sb:
        sb.conf.faults.add(SEARCH, delay=0.2, times=None)  # every request takes a while: listings overlap
        storm = sb.conf.faults.add(SEARCH, status=429, retry_after=1, every=3, times=None)
        started = time.monotonic()
        children = [
            start_worker(sb.conf, sb.emb, key, migrated_db_url, page_size=5, dagster_home=deployed_home) for key in keys
        ]
        codes = _wait_all(children)
        elapsed = time.monotonic() - started
        peak, overlapping = sb.conf.stats.max_in_flight, sb.conf.stats.peak_requests
    assert codes == [0, 0, 0, 0], codes  # every run finished: no deadlock, no failure
    assert storm.applied >= 4
    # The confluence_api pool (2) bounds the Confluence-calling steps; each makes one request at a time.
    assert peak <= 2, f"{peak} requests in flight at once: {overlapping}"
    assert peak == 2, "the runs never overlapped: the bound was not exercised"
    for key in keys:
        assert_matches_site(site, migrated_db_url, key)
    print(f"4 spaces under a 429 storm ({storm.applied} refused): {elapsed:.1f}s, at most {peak} requests at once")


def test_the_change_sensor_probes_with_at_most_its_eight_threads(migrated_db_url):
    site = generated_site(51, spaces=12, pages=3)
    keys = sorted(site.spaces)
    with sandbox_servers(site) as sb, psycopg.connect(migrated_db_url, autocommit=True) as conn:
        for key in keys:
            conn.execute(
                "INSERT INTO archon_sources (source_id, source_url, source_display_name, title, metadata) "
                "VALUES (%s, 'u', %s, %s, jsonb_build_object('last_sync_timestamp', %s::text))",
                (f"confluence_{key}", key, key, (SITE_NOW - timedelta(days=1)).isoformat()),
            )
        sb.conf.faults.add(SEARCH, delay=0.3, times=None)
        sb.conf.faults.add(SEARCH, status=429, every=4, times=None)
        results, not_reached = probe_spaces(
            lambda: ConfluenceAPI(sb.conf.url, email=sb.conf.email, api_token=sb.conf.api_token),
            conn,
            keys,
            overlap=timedelta(minutes=10),
            zone=None,
        )
        peak = sb.conf.stats.max_in_flight
    assert not not_reached and len(results) == 12 and all(r.status != "error" for r in results)
    assert 5 <= peak <= 8, peak  # the measurement sees parallelism, and never more than the 8 workers


def test_two_runs_of_the_same_space_are_serialised_by_the_space_lock(migrated_db_url, server_url):
    site = generated_site(51, spaces=1, pages=40)
    key = next(iter(site.spaces))
    waited: list[int] = []
    granted_max = [0]
    stop = threading.Event()

    # The space's lock only: each step also runs the migration check, which takes an advisory lock of its own.
    unsigned = space_lock_key(f"confluence_{key}") & 0xFFFF_FFFF_FFFF_FFFF
    classid, objid = unsigned >> 32, unsigned & 0xFFFF_FFFF

    def watch_locks() -> None:
        with psycopg.connect(server_url, autocommit=True) as conn:
            while not stop.is_set():
                rows = conn.execute(
                    """SELECT granted, count(*) FROM pg_locks WHERE locktype = 'advisory'
                         AND classid = %s::oid AND objid = %s::oid AND objsubid = 1 GROUP BY granted""",
                    (classid, objid),
                ).fetchall()
                counts = dict(rows)
                granted_max[0] = max(granted_max[0], counts.get(True, 0))
                if counts.get(False):
                    waited.append(counts[False])
                time.sleep(0.005)

    with sandbox_servers(site) as sb, InvariantReader(migrated_db_url, key) as reader:
        sb.conf.faults.add(SEARCH, delay=0.2, times=None)
        sb.emb.faults.add("POST /v1/embeddings", delay=0.2, times=None)
        watcher = threading.Thread(target=watch_locks, daemon=True)
        watcher.start()
        # Two run workers that bypassed the queue (separate ephemeral instances).
        codes = _wait_all([start_worker(sb.conf, sb.emb, key, migrated_db_url, page_size=10) for _ in range(2)])
        stop.set()
        watcher.join(5)
    assert codes == [0, 0]
    assert waited, "the two runs never contended for the space: the test did not exercise the lock"
    assert granted_max[0] == 1  # one step of the space at a time
    assert not reader.violations, reader.violations[:5]
    assert_matches_site(site, migrated_db_url, key)
