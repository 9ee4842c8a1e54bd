"""Sensors, reconciliation and the schedule: evaluated on a real Dagster instance against the sandbox."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
import pytest

from confluence_assets.defs.assets import page_chunks, page_metadata, page_reconciliation
from confluence_assets.defs.automation import (
    confluence_change_sensor,
    confluence_reconciliation_schedule,
    confluence_space_sensor,
)
from confluence_assets.sandbox import Site, generate_corpus
from confluence_assets_tests.pipeline_support import (
    SEARCH,
    SITE_NOW,
    assert_matches_site,
    asset_metadata,
    db_state,
    discover_spaces,
    generated_site,
    resources_for,
    sandbox_servers,
    sync_space,
)


@pytest.fixture
def site() -> Site:
    return generated_site(21, spaces=3, pages=12)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def _spaces(site: Site) -> list[str]:
    return sorted(site.spaces)


def _tick(sensor, instance, resources, cursor=None):
    context = dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor)
    return sensor(context), context


def _synced(site, instance, db_url, sb):
    resources = resources_for(sb, db_url)
    discover_spaces(instance, resources)
    for key in _spaces(site):
        sync_space(instance, resources, key)
    return resources


def _search_requests(sb) -> int:
    return sb.conf.stats.count(SEARCH)


# -- change sensor ----------------------------------------------------------------------------------------


def test_no_change_skips_with_one_probe_per_space(migrated_db_url, instance, site):
    with sandbox_servers(site) as sb:
        resources = _synced(site, instance, migrated_db_url, sb)
        before = _search_requests(sb)
        result, _ = _tick(confluence_change_sensor, instance, resources)
        probes = _search_requests(sb) - before
    assert not result.run_requests
    assert result.skip_reason.skip_message.startswith("No changes in 3 spaces checked")
    for key in _spaces(site):
        assert key in result.skip_reason.skip_message
    assert probes == 3


def test_one_edited_page_requests_a_run_for_its_space_only(migrated_db_url, instance, site):
    with sandbox_servers(site) as sb:
        resources = _synced(site, instance, migrated_db_url, sb)
        edited_space = _spaces(site)[1]
        page = site.live_pages(edited_space)[4]
        site.clock.advance(minutes=20)
        site.edit_page(page.id, body="<p>sensor sees this</p>")
        result, _ = _tick(confluence_change_sensor, instance, resources)
        again, _ = _tick(confluence_change_sensor, instance, resources)
        # The run for that change happens; afterwards the same change requests nothing.
        sync_space(instance, resources, edited_space)
        after_sync, _ = _tick(confluence_change_sensor, instance, resources)
    assert [(r.partition_key, r.run_key) for r in result.run_requests] == [
        (edited_space, f"{edited_space}:{page.id}:v{page.version + 1}")
    ]
    # The same change yields the same run_key, which Dagster never launches twice.
    assert [r.run_key for r in again.run_requests] == [r.run_key for r in result.run_requests]
    assert not after_sync.run_requests


def test_a_failing_space_is_reported_and_the_others_still_requested(migrated_db_url, instance, site):
    keys = _spaces(site)
    with sandbox_servers(site) as sb:
        resources = _synced(site, instance, migrated_db_url, sb)
        site.clock.advance(minutes=20)
        for key in keys:
            site.edit_page(site.live_pages(key)[2].id, body=f"<p>changed {key}</p>")
        sb.conf.faults.add(SEARCH, status=403, query={"cql": f'*space = "{keys[0]}"*'}, times=None)
        result, context = _tick(confluence_change_sensor, instance, resources)
    assert sorted(r.partition_key for r in result.run_requests) == keys[1:]
    cursor = json.loads(result.cursor)
    assert keys[0] in cursor["errors"] and "HTTP 403" in cursor["errors"][keys[0]]


def test_never_synced_and_half_finished_spaces_are_requested(migrated_db_url, instance, site):
    from confluence_assets.defs.assets import changed_pages

    keys = _spaces(site)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        discover_spaces(instance, resources)
        sync_space(instance, resources, keys[0])
        sync_space(instance, resources, keys[1])
        # keys[1]: a later run staged and converted a change, then died before the embeddings.
        site.clock.advance(minutes=9)
        site.edit_page(site.live_pages(keys[1])[1].id, body="<p>half done</p>")
        dg.materialize([changed_pages, page_metadata], partition_key=keys[1], instance=instance, resources=resources)
        result, _ = _tick(confluence_change_sensor, instance, resources)
    by_space = {r.partition_key: r for r in result.run_requests}
    assert set(by_space) == {keys[1], keys[2]}
    assert by_space[keys[2]].run_key == f"{keys[2]}:initial:{datetime.now(UTC).date().isoformat()}"
    assert by_space[keys[1]].run_key.startswith(f"{keys[1]}:staged:")


def test_spaces_with_a_run_in_flight_are_not_probed(migrated_db_url, instance, site):
    keys = _spaces(site)
    with sandbox_servers(site) as sb:
        resources = _synced(site, instance, migrated_db_url, sb)
        from confluence_assets.defs.jobs import confluence_sync_job
        from confluence_assets_tests.pipeline_support import SYNC_ASSETS

        job = dg.Definitions(assets=SYNC_ASSETS, jobs=[confluence_sync_job], resources=resources)
        instance.create_run_for_job(
            job.resolve_job_def("confluence_sync_job"),
            tags={"dagster/partition": keys[0]},
            status=dg.DagsterRunStatus.STARTED,
        )
        before = _search_requests(sb)
        result, _ = _tick(confluence_change_sensor, instance, resources)
        probes = _search_requests(sb) - before
    assert probes == 2
    assert f"skipped with a run in flight: {keys[0]}" in result.skip_reason.skip_message


def test_two_hundred_spaces_are_probed_well_inside_the_sensor_timeout(migrated_db_url, instance):
    site = Site(timezone="Asia/Seoul")
    site.clock.set(SITE_NOW)
    keys = [f"S{i:03d}" for i in range(200)]
    for key in keys:
        site.add_space(key, homepage_body="<p>home</p>", when=SITE_NOW - timedelta(days=1))
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        instance.add_dynamic_partitions("confluence_spaces", keys)
        with psycopg.connect(migrated_db_url, autocommit=True) as conn:
            conn.execute(
                """INSERT INTO archon_sources (source_id, metadata)
                   SELECT 'confluence_' || k, jsonb_build_object('last_sync_timestamp', %s::text)
                   FROM unnest(%s::text[]) k""",
                (SITE_NOW.isoformat(), keys),
            )
        sb.conf.faults.add(SEARCH, delay=0.05, times=None)  # a little real-world latency per probe
        started = time.monotonic()
        result, _ = _tick(confluence_change_sensor, instance, resources)
        seconds = time.monotonic() - started
        probes = _search_requests(sb)
    assert probes == 200
    assert result.skip_reason.skip_message.startswith("No changes in 200 spaces checked")
    assert seconds < 30, seconds


# -- space sensor -----------------------------------------------------------------------------------------


def test_a_new_space_gets_a_partition_and_its_first_sync(migrated_db_url, instance, site):
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        discover_spaces(instance, resources)
        quiet, _ = _tick(confluence_space_sensor, instance, resources)
        site.add_space("NEWS", "Newsroom", homepage_body="<p>fresh</p>")
        result, _ = _tick(confluence_space_sensor, instance, resources)
    assert quiet.skip_reason.skip_message.startswith("No new or removed spaces")
    today = datetime.now(UTC).date().isoformat()
    assert [(r.partition_key, r.run_key) for r in result.run_requests] == [("NEWS", f"NEWS:initial:{today}")]
    # The sensor records what it did as a materialization of confluence_spaces.
    (event,) = result.asset_events
    assert event.asset_key == dg.AssetKey("confluence_spaces") and event.metadata["partitions_added"].value == ["NEWS"]
    adds = [r for r in result.dynamic_partitions_requests if isinstance(r, dg.AddDynamicPartitionsRequest)]
    assert adds and list(adds[0].partition_keys) == ["NEWS"]
    with psycopg.connect(migrated_db_url) as conn:
        row = conn.execute("SELECT title FROM archon_sources WHERE source_id = 'confluence_NEWS'").fetchone()
    assert row == ("Newsroom",)


# -- reconciliation ---------------------------------------------------------------------------------------


def _reconcile(instance, resources, key, **kwargs):
    from confluence_assets.defs.assets import chunk_embeddings

    return dg.materialize(
        [page_reconciliation, page_metadata, page_chunks, chunk_embeddings],
        partition_key=key,
        instance=instance,
        resources=resources,
        **kwargs,
    )


def test_trash_purge_and_restore(migrated_db_url, instance, site):
    key = _spaces(site)[0]
    with sandbox_servers(site) as sb:
        resources = _synced(site, instance, migrated_db_url, sb)
        pages = site.live_pages(key)
        trashed, purged = pages[3], pages[5]
        site.trash_page(trashed.id)
        site.trash_page(purged.id)
        site.purge_page(purged.id)
        # CQL cannot see deletions: a sync changes nothing.
        sync_space(instance, resources, key)
        assert not db_state(migrated_db_url, key)["pages"][trashed.id]["is_deleted"]
        result = _reconcile(instance, resources, key)
        meta = asset_metadata(result, "page_reconciliation")
        state = assert_matches_site(site, migrated_db_url, key)
        assert state["pages"][trashed.id]["is_deleted"] and state["pages"][purged.id]["is_deleted"]
        assert meta["deleted"] == 2 and meta["chunks_removed"] > 0
        with psycopg.connect(migrated_db_url) as conn:
            deleted_at = conn.execute(
                "SELECT deleted_at FROM confluence_pages WHERE page_id = %s", (trashed.id,)
            ).fetchone()[0]
        assert deleted_at is not None
        site.restore_page(trashed.id)
        restored = _reconcile(instance, resources, key)
    assert asset_metadata(restored, "page_reconciliation")["restored"] == 1
    state = assert_matches_site(site, migrated_db_url, key)
    assert not state["pages"][trashed.id]["is_deleted"] and state["chunks"][trashed.id]
    recorded = state["source"]["last_full_reconciliation"]
    assert recorded["restored"] == 1 and recorded["deleted"] == 0 and recorded["duration_seconds"] >= 0


def test_a_change_cql_missed_is_requeued_and_synced(migrated_db_url, instance, site):
    key = _spaces(site)[0]
    with sandbox_servers(site) as sb:
        resources = _synced(site, instance, migrated_db_url, sb)
        page = site.live_pages(key)[6]
        watermark = datetime.fromisoformat(db_state(migrated_db_url, key)["source"]["last_sync_timestamp"])
        # An edit stamped well before the watermark (as a clock-skewed or misreported change would be).
        site.edit_page(page.id, body="<p>late arrival</p>", when=watermark - timedelta(days=2))
        sync = sync_space(instance, resources, key)
        assert asset_metadata(sync, "changed_pages")["pages_updated"] == 0
        result = _reconcile(instance, resources, key)
    assert asset_metadata(result, "page_reconciliation")["requeued"] == 1
    assert asset_metadata(result, "page_metadata")["pages_converted"] == 1
    assert_matches_site(site, migrated_db_url, key)


def test_moves_are_found_by_reconciliation(migrated_db_url, instance, site):
    key = _spaces(site)[0]
    with sandbox_servers(site) as sb:
        resources = _synced(site, instance, migrated_db_url, sb)
        pages = site.live_pages(key)
        mover = next(p for p in pages if p.parent_id and p.parent_id != pages[0].id)
        site.move_page(mover.id, pages[0].id)
        result = _reconcile(instance, resources, key)
    assert asset_metadata(result, "page_reconciliation")["requeued"] >= 1
    assert_matches_site(site, migrated_db_url, key)


def test_a_listing_that_fails_half_way_deletes_nothing(migrated_db_url, instance, site):
    site_big = Site(timezone="Asia/Seoul")
    site_big.clock.set(SITE_NOW)
    generate_corpus(site_big, seed=8, spaces=1, pages_per_space=300, large_pages=0, empty_pages=0)
    key = _spaces(site_big)[0]
    with sandbox_servers(site_big) as sb:
        resources = _synced(site_big, instance, migrated_db_url, sb)
        for page in site_big.live_pages(key)[1:4]:
            site_big.trash_page(page.id)
        # The second page of the id listing fails for good (every retry).
        sb.conf.faults.add("GET /wiki/api/v2/spaces/*/pages", status=500, skip=1, times=None)
        result = _reconcile(instance, resources, key, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "HTTP 500 after every retry" in failure.step_failure_data.error.message
    state = db_state(migrated_db_url, key)
    assert not any(row["is_deleted"] for row in state["pages"].values())
    assert len(state["chunks"]) == len(state["pages"])


def test_every_sync_strategy_reconciles_with_each_sync(migrated_db_url, instance, site):
    key = _spaces(site)[0]
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url, space_selection={"deletion_strategies": {key: "every_sync"}})
        discover_spaces(instance, resources)
        sync_space(instance, resources, key)
        gone = site.live_pages(key)[2]
        site.trash_page(gone.id)
        result = sync_space(instance, resources, key)
    assert asset_metadata(result, "changed_pages")["reconciliation"]["deleted"] == 1
    assert db_state(migrated_db_url, key)["pages"][gone.id]["is_deleted"]
    assert_matches_site(site, migrated_db_url, key)


def test_the_schedule_runs_weekly_reconciliation_spaces_only(migrated_db_url, instance, site):
    keys = _spaces(site)
    with sandbox_servers(site) as sb:
        strategies = {keys[0]: "every_sync", keys[1]: "on_demand"}
        resources = resources_for(sb, migrated_db_url, space_selection={"deletion_strategies": strategies})
        discover_spaces(instance, resources)
        context = dg.build_schedule_context(
            instance=instance,
            resources=resources,
            scheduled_execution_time=datetime(2026, 6, 7, 3, 0, tzinfo=UTC),
        )
        requests = confluence_reconciliation_schedule(context)
    assert [(r.partition_key, r.run_key) for r in requests] == [
        (keys[2], f"{keys[2]}:reconcile:2026-06-07T03:00:00+00:00")
    ]


def test_deletion_strategy_can_be_set_through_reconciliation_config(migrated_db_url, instance, site):
    key = _spaces(site)[0]
    with sandbox_servers(site) as sb:
        resources = _synced(site, instance, migrated_db_url, sb)
        config = {"ops": {"page_reconciliation": {"config": {"deletion_strategy": "on_demand"}}}}
        _reconcile(instance, resources, key, run_config=config)
        bad = {"ops": {"page_reconciliation": {"config": {"deletion_strategy": "sometimes"}}}}
        failed = _reconcile(instance, resources, key, run_config=bad, raise_on_error=False)
    assert db_state(migrated_db_url, key)["source"]["deletion_check_strategy"] == "on_demand"
    assert not failed.success
    message = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data.error.message
    assert "deletion strategy must be one of weekly_reconciliation, every_sync, on_demand" in message
