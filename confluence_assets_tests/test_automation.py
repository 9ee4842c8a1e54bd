"""Sensors, reconciliation and the schedule: evaluated on a real Dagster instance against the sandbox."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from confluence_assets import settings
from confluence_assets.defs.schedules import build_schedules
from confluence_assets.defs.sensors import build_sensors
from confluence_assets.sandbox import Limits, Site, generate_corpus
from confluence_assets_tests.pipeline_support import (
    SEARCH,
    SITE_NOW,
    assert_matches_site,
    asset_metadata,
    db_state,
    discover_spaces,
    generated_site,
    page_chunks,
    page_metadata,
    page_reconciliation,
    resources_for,
    sandbox_servers,
    step_failure_message,
    sync_space,
)

# The sensors and the schedule, built as the code location builds them.
confluence_change_sensor, confluence_space_sensor = build_sensors(settings.load().automation)
confluence_reconciliation_schedule, confluence_permissions_schedule = build_schedules(settings.load().automation)


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
    from confluence_assets_tests.pipeline_support import changed_pages

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
    from confluence_assets_tests.pipeline_support import chunk_embeddings

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


def test_a_stale_path_or_ancestor_title_is_requeued_by_reconciliation(migrated_db_url, instance, site):
    """Whatever left a page's stored path or its ancestors' titles behind the tree (a payload older than an
    ancestor's move or rename), reconciliation sees it in its listing's parents and titles and mends it;
    a second reconciliation then finds nothing to requeue."""
    key = _spaces(site)[0]
    with sandbox_servers(site) as sb:
        resources = _synced(site, instance, migrated_db_url, sb)
        deep = [p for p in site.live_pages(key) if len(p.ancestors) >= 2]
        wrong_path, wrong_title = deep[0], deep[1]
        with psycopg.connect(migrated_db_url, autocommit=True) as conn:
            stale = "/" + "/".join([wrong_path.ancestors[0], wrong_path.id])  # the middle ancestors left out
            conn.execute(
                """UPDATE confluence_pages SET path = %s, metadata = jsonb_set(metadata, '{path}', to_jsonb(%s::text))
                   WHERE page_id = %s""",
                (stale, stale, wrong_path.id),
            )
            conn.execute(
                """UPDATE confluence_pages
                   SET metadata = jsonb_set(metadata, '{ancestors,0,title}', '"An old title"') WHERE page_id = %s""",
                (wrong_title.id,),
            )
        result = _reconcile(instance, resources, key)
        requeued = asset_metadata(result, "page_reconciliation")["requeued_page_ids"]
        assert sorted(requeued) == sorted({wrong_path.id, wrong_title.id})
        again = _reconcile(instance, resources, key)
    assert asset_metadata(again, "page_reconciliation")["requeued"] == 0
    assert_matches_site(site, migrated_db_url, key)


def test_a_requeued_ancestor_covers_a_stale_page_only_when_its_rewrite_would_make_it_right():
    """The soak's page: stored under 194/15, while 15 has since moved (under 107) and 194 moved too.
    194's rewrite would keep 15 under 194, so the page is fetched again; 15's own rewrite would be right."""
    from confluence_assets.sync.reconcile import LivePage, stale_trees

    parents = {"1": None, "12": "1", "16": "1", "107": "16", "15": "107", "37": "15", "194": "16"}
    live = {pid: LivePage(1, parent, f"page {pid}") for pid, parent in parents.items()}

    def stored(paths: dict[str, str]) -> dict:
        right = {"1": "/1", "12": "/1/12", "16": "/1/16", "107": "/1/16/107", "15": "/1/16/107/15", "194": "/1/16/194"}
        return {pid: (path, f"page {pid}", []) for pid, path in {**right, **paths}.items()}

    moved_194 = stored({"194": "/1/12/194", "37": "/1/12/194/15/37"})
    assert stale_trees(live, moved_194, requeued={"194"}) == {"37"}
    moved_15 = stored({"15": "/1/12/194/15", "37": "/1/12/194/15/37"})
    assert stale_trees(live, moved_15, requeued={"15"}) == set()
    assert stale_trees(live, moved_15, requeued=set()) == {"15"}  # its fetch rewrites 37 too
    old_title = stored({})
    old_title["37"] = ("/1/16/107/15/37", "page 37", [{"id": "1", "title": "an old title"}])
    assert stale_trees(live, old_title, requeued={"15"}) == {"37"}  # 15 is only newer: no rewrite below it


def test_a_listing_that_fails_half_way_deletes_nothing(migrated_db_url, instance, site, quick_step_retries):
    site_big = Site(timezone="Asia/Seoul")
    site_big.clock.set(SITE_NOW)
    generate_corpus(site_big, seed=8, spaces=1, pages_per_space=60, large_pages=0, empty_pages=0)
    key = _spaces(site_big)[0]
    # v2 listings capped at 25 a request (Confluence caps silently; the next link says so): 3 requests.
    with sandbox_servers(site_big, limits=Limits(v2_max=25)) as sb:
        resources = _synced(site_big, instance, migrated_db_url, sb)
        for page in site_big.live_pages(key)[1:4]:
            site_big.trash_page(page.id)
        # The second page of the id listing fails for good (every retry).
        sb.conf.faults.add("GET /wiki/api/v2/spaces/*/pages", status=500, skip=1, times=None)
        result = _reconcile(instance, resources, key, raise_on_error=False)
    assert not result.success
    assert "HTTP 500 after every retry" in step_failure_message(result)
    assert _events(result, "STEP_UP_FOR_RETRY", "page_reconciliation") == 2  # transient: the step retried
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


# -- the change sensor's budget, rate limits and unreadable pages ----------------------------------------------


def _watermarked_site(count: int) -> tuple[Site, list[str]]:
    site = Site(timezone="Asia/Seoul")
    site.clock.set(SITE_NOW)
    keys = [f"B{i:03d}" for i in range(count)]
    for key in keys:
        site.add_space(key, homepage_body="<p>home</p>", when=SITE_NOW - timedelta(days=1))
    return site, keys


def _mark_synced(db_url: str, keys: list[str]) -> None:
    """archon_sources rows with a watermark, as a finished sync leaves them (so each space gets probed)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO archon_sources (source_id, metadata)
               SELECT 'confluence_' || k, jsonb_build_object('last_sync_timestamp', %s::text)
               FROM unnest(%s::text[]) k""",
            (SITE_NOW.isoformat(), keys),
        )


def _done_in(result) -> set[str]:
    cursor = json.loads(result.cursor)
    return set(cursor["not_reached"]) | set(cursor["errors"])


def test_the_probe_budget_holds_and_the_spaces_not_reached_go_first_next_tick(migrated_db_url, instance, monkeypatch):
    from confluence_assets.defs import sensors

    site, keys = _watermarked_site(40)
    budget = 1.5
    monkeypatch.setattr(sensors, "PROBE_BUDGET_SECONDS", budget)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        instance.add_dynamic_partitions("confluence_spaces", keys)
        _mark_synced(migrated_db_url, keys)
        sb.conf.faults.add(SEARCH, delay=1.0, times=None)  # 8 probes at a time, 1 s each: 5 s for all 40
        started = time.monotonic()
        first, _ = _tick(confluence_change_sensor, instance, resources)
        seconds = time.monotonic() - started
        time.sleep(1.0)  # the probes still running at the deadline finish in the background
        sent = _search_requests(sb)
        second, _ = _tick(confluence_change_sensor, instance, resources, cursor=first.cursor)
    assert seconds < budget + 1.0, seconds
    not_reached = json.loads(first.cursor)["not_reached"]
    # The first 8 answered in time; the 8 running at the deadline were abandoned, the queued ones cancelled.
    assert len(not_reached) == 32 and not_reached == [k for k in keys if k not in keys[:8]]
    assert sent <= 16, sent
    assert first.skip_reason.skip_message.endswith("; 32 left for the next tick")
    answered_second = set(keys) - _done_in(second)
    assert len(answered_second) == 8 and answered_second <= set(not_reached)  # the ones left over went first


def test_successive_ticks_probe_every_space_before_any_space_twice(migrated_db_url, instance, monkeypatch):
    """The rotation at scale (bench/sensor_scale.py measures it at 1,000 spaces): each tick reaches only part
    of the spaces, and the cursor makes the ticks cover all of them before probing any space again."""
    from confluence_assets.defs import sensors

    site, keys = _watermarked_site(24)
    budget = 1.5
    monkeypatch.setattr(sensors, "PROBE_BUDGET_SECONDS", budget)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        instance.add_dynamic_partitions("confluence_spaces", keys)
        _mark_synced(migrated_db_url, keys)
        sb.conf.faults.add(SEARCH, delay=1.0, times=None)  # 8 answers per tick: three ticks for 24 spaces
        answered_per_tick: list[set[str]] = []
        cursor = None
        while len(answered_per_tick) < 6 and set().union(*answered_per_tick) != set(keys):
            started = time.monotonic()
            result, _ = _tick(confluence_change_sensor, instance, resources, cursor=cursor)
            assert time.monotonic() - started < budget + 1.0
            assert not result.run_requests
            cursor = result.cursor
            answered_per_tick.append(set(keys) - _done_in(result))
            time.sleep(1.0)  # the probes abandoned at the deadline finish, as between real ticks
    probed = set().union(*answered_per_tick)
    assert probed == set(keys), sorted(set(keys) - probed)
    assert all(answered_per_tick), [len(a) for a in answered_per_tick]
    # Spaces not reached yet go first: a tick answers a space again only once it answered every one left.
    earlier: set[str] = set()
    for answered in answered_per_tick:
        left = set(keys) - earlier
        assert answered <= left or left <= answered, (sorted(left), sorted(answered))
        earlier |= answered
    assert len(answered_per_tick) <= 4, [len(a) for a in answered_per_tick]


def test_a_rate_limited_space_does_not_hold_the_tick_up(migrated_db_url, instance, site, monkeypatch):
    from confluence_assets.defs import sensors

    keys = _spaces(site)
    monkeypatch.setattr(sensors, "PROBE_BUDGET_SECONDS", 15.0)
    with sandbox_servers(site) as sb:
        _synced(site, instance, migrated_db_url, sb)
        # The sync's production settings: 30 s timeout, 6 retries, Retry-After honoured up to 120 s.
        production = {"backoff_seconds": 0.5, "backoff_max_seconds": 30.0, "retry_after_cap_seconds": 120.0}
        resources = resources_for(sb, migrated_db_url, confluence=production)
        site.clock.advance(minutes=20)
        site.edit_page(site.live_pages(keys[1])[3].id, body="<p>changed</p>")
        sb.conf.faults.add(SEARCH, status=429, retry_after=120, query={"cql": f'*space = "{keys[0]}"*'}, times=None)
        started = time.monotonic()
        result, _ = _tick(confluence_change_sensor, instance, resources)
        seconds = time.monotonic() - started
    assert seconds < 6, seconds  # one retry after at most 3 s, not 6 x 120 s
    assert [r.partition_key for r in result.run_requests] == [keys[1]]
    cursor = json.loads(result.cursor)
    assert "HTTP 429" in cursor["errors"][keys[0]] and cursor["not_reached"] == []


def _leaf_pages(site: Site, key: str):
    return [p for p in site.live_pages(key) if not site.child_ids(p.id) and p.parent_id]


def test_a_change_behind_an_unreadable_newest_page_is_found(migrated_db_url, instance, site):
    key = _spaces(site)[0]
    with sandbox_servers(site) as sb:
        resources = _synced(site, instance, migrated_db_url, sb)
        visible, hidden = _leaf_pages(site, key)[:2]
        site.clock.advance(minutes=20)
        site.edit_page(visible.id, body="<p>a change everyone can read</p>")
        site.clock.advance(minutes=1)
        site.edit_page(hidden.id, body="<p>newer, but restricted</p>")
        site.restrict_page(hidden.id, site.add_user("Someone Else"))
        result, _ = _tick(confluence_change_sensor, instance, resources)
    # The first result page (limit 1) is empty with a next link; the probe follows it to the readable change.
    assert [(r.partition_key, r.run_key) for r in result.run_requests] == [
        (key, f"{key}:{visible.id}:v{visible.version + 1}")
    ]


def test_only_unreadable_changes_request_one_sync_per_watermark(migrated_db_url, instance, site):
    keys = _spaces(site)
    key = keys[0]
    with sandbox_servers(site) as sb:
        resources = _synced(site, instance, migrated_db_url, sb)
        watermark = db_state(migrated_db_url, key)["source"]["last_sync_timestamp"]
        other = site.add_user("Someone Else")
        site.clock.advance(minutes=20)
        for page in _leaf_pages(site, key)[:6]:  # more than the probe follows
            site.clock.advance(minutes=1)
            site.edit_page(page.id, body="<p>restricted change</p>")
            site.restrict_page(page.id, other)
        before = _search_requests(sb)
        first, _ = _tick(confluence_change_sensor, instance, resources)
        probes = _search_requests(sb) - before
        again, _ = _tick(confluence_change_sensor, instance, resources)
        sync_space(instance, resources, key)  # sees nothing it can read: the watermark stays
        after_sync, _ = _tick(confluence_change_sensor, instance, resources)
    expected = [(key, f"{key}:hidden:{watermark}")]
    assert [(r.partition_key, r.run_key) for r in first.run_requests] == expected
    assert probes == 6 + len(keys) - 1  # one request and five next links for key, one for each other space
    # The same run key every tick (Dagster launches it once), until the watermark moves on.
    assert [(r.partition_key, r.run_key) for r in again.run_requests] == expected
    assert [(r.partition_key, r.run_key) for r in after_sync.run_requests] == expected


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_forbidden_and_missing_spaces_are_named_in_the_tick(migrated_db_url, instance, site):
    keys = _spaces(site)
    with sandbox_servers(site) as sb:
        resources = _synced(site, instance, migrated_db_url, sb)
        sb.conf.faults.add(SEARCH, status=403, query={"cql": f'*space = "{keys[0]}"*'}, times=None)
        sb.conf.faults.add(SEARCH, status=404, query={"cql": f'*space = "{keys[1]}"*'}, times=None)
        quiet, _ = _tick(confluence_change_sensor, instance, resources)
        site.clock.advance(minutes=20)
        site.edit_page(site.live_pages(keys[2])[1].id, body="<p>changed</p>")
        context = dg.build_sensor_context(instance=instance, resources=resources)
        handler = _Messages()
        context.log.addHandler(handler)
        busy = confluence_change_sensor(context)
    # Nothing changed: the skip reason names the failing spaces and why.
    reason = quiet.skip_reason.skip_message
    assert reason.startswith(f"No changes in 1 spaces checked ({keys[2]}); 2 failed (")
    assert re.search(rf"{keys[0]}: [^;]*HTTP 403", reason) and re.search(rf"{keys[1]}: [^;]*HTTP 404", reason)
    # A tick that requests runs has no skip reason: its log names them.
    assert [r.partition_key for r in busy.run_requests] == [keys[2]]
    log = "\n".join(handler.messages)
    assert re.search(rf"space {keys[0]}: .*HTTP 403", log) and re.search(rf"space {keys[1]}: .*HTTP 404", log)


# -- space sensor: removals -------------------------------------------------------------------------------


def test_removed_and_excluded_spaces_get_their_partitions_deleted(migrated_db_url, instance, site):
    keys = _spaces(site)
    with sandbox_servers(site) as sb:
        discover_spaces(instance, resources_for(sb, migrated_db_url))
        site.restrict_space(keys[0], site.add_user("Someone Else"))  # gone for these credentials
        resources = resources_for(sb, migrated_db_url, space_selection={"exclude_keys": [keys[1]]})
        result, _ = _tick(confluence_space_sensor, instance, resources)
    assert not result.run_requests
    deletes = [r for r in result.dynamic_partitions_requests if isinstance(r, dg.DeleteDynamicPartitionsRequest)]
    assert [sorted(r.partition_keys) for r in deletes] == [sorted(keys[:2])]
    assert not [r for r in result.dynamic_partitions_requests if isinstance(r, dg.AddDynamicPartitionsRequest)]
    (event,) = result.asset_events
    assert sorted(event.metadata["partitions_removed"].value) == sorted(keys[:2])


# -- on_demand reconciliation -----------------------------------------------------------------------------


def test_an_on_demand_space_is_reconciled_by_hand_only(migrated_db_url, instance, site):
    keys = _spaces(site)
    key = keys[0]
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url, space_selection={"deletion_strategies": {key: "on_demand"}})
        discover_spaces(instance, resources)
        for k in keys:
            sync_space(instance, resources, k)
        gone = site.live_pages(key)[3]
        site.trash_page(gone.id)
        sync_space(instance, resources, key)  # a sync of an on_demand space does not reconcile
        assert not db_state(migrated_db_url, key)["pages"][gone.id]["is_deleted"]
        context = dg.build_schedule_context(
            instance=instance, resources=resources, scheduled_execution_time=datetime(2026, 6, 7, 3, 0, tzinfo=UTC)
        )
        scheduled = confluence_reconciliation_schedule(context)
        assert key not in [r.partition_key for r in scheduled] and len(scheduled) == len(keys) - 1
        by_hand = _reconcile(instance, resources, key)
    assert asset_metadata(by_hand, "page_reconciliation")["deleted"] == 1
    state = assert_matches_site(site, migrated_db_url, key)
    assert state["pages"][gone.id]["is_deleted"] and gone.id not in state["chunks"]
    assert state["source"]["deletion_check_strategy"] == "on_demand"


# -- retries: step retry policy for transient failures, none for failures retrying cannot fix --------------

REPO_ROOT = Path(__file__).resolve().parents[1]
RETRIED_ASSETS = ("confluence_spaces", "changed_pages", "page_reconciliation", "chunk_embeddings")


@pytest.fixture
def quick_step_retries(monkeypatch):
    """The assets' own retry policies, with their delay cut to 10 ms (production: ~30 s, then ~90 s)."""
    from confluence_assets_tests.pipeline_support import ASSETS

    for name in RETRIED_ASSETS:
        op = getattr(ASSETS, name).op
        policy = op.retry_policy
        assert policy is not None, f"{name} has no retry policy"
        assert (policy.max_retries, policy.backoff, policy.jitter) == (2, dg.Backoff.EXPONENTIAL, dg.Jitter.PLUS_MINUS)
        monkeypatch.setattr(op, "_retry_policy", policy._replace(delay=0.01))


def test_the_step_retry_delay_is_30_seconds_unless_its_variable_says_otherwise():
    script = (
        "from confluence_assets.definitions import load_definitions\n"
        "d = load_definitions()\n"
        f"print(sorted({{d.get_assets_def(n).op.retry_policy.delay for n in {RETRIED_ASSETS!r}}}))"
    )
    delays = {}
    for value in (None, "0.25"):
        env = {k: v for k, v in os.environ.items() if k != "CONFLUENCE_STEP_RETRY_DELAY_SECONDS"}
        if value:
            env["CONFLUENCE_STEP_RETRY_DELAY_SECONDS"] = value
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        delays[value] = out.stdout.strip()
    assert delays == {None: "[30.0]", "0.25": "[0.25]"}


def _events(result, event_type: str, step: str) -> int:
    return sum(1 for e in result.all_events if e.event_type_value == event_type and e.step_key == step)


def test_a_transient_embedding_failure_is_retried_by_the_step(migrated_db_url, instance, site, quick_step_retries):
    key = _spaces(site)[0]
    with sandbox_servers(site) as sb:
        # The client retries once (2 requests per attempt); the provider fails 4 requests in a row, then
        # recovers: attempts 1 and 2 of the step fail, attempt 3 (the policy's last retry) succeeds.
        resources = resources_for(sb, migrated_db_url, embeddings={"max_retries": 1})
        discover_spaces(instance, resources)
        outage = sb.emb.faults.add("POST /v1/embeddings", status=500, times=4)
        result = sync_space(instance, resources, key)
    assert result.success
    assert outage.applied == 4
    assert _events(result, "STEP_UP_FOR_RETRY", "chunk_embeddings") == 2
    assert_matches_site(site, migrated_db_url, key)


def _project_run_retries() -> dict:
    import yaml

    config = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    return config["run_retries"]


@pytest.mark.parametrize("service", ["confluence", "embeddings"])
def test_a_rejected_credential_fails_the_step_once_and_the_run_is_not_retried(
    migrated_db_url, site, quick_step_retries, service
):
    from dagster._core.events import RunFailureReason
    from dagster._core.execution.retries import auto_reexecution_should_retry_run

    key = _spaces(site)[0]
    with dg.instance_for_test(overrides={"run_retries": _project_run_retries()}) as instance:
        with sandbox_servers(site) as sb:
            resources = resources_for(sb, migrated_db_url)
            discover_spaces(instance, resources)
            if service == "confluence":
                rejected = sb.conf.faults.add(SEARCH, status=401, times=None)
                step = "changed_pages"
            else:
                rejected = sb.emb.faults.add("POST /v1/embeddings", status=401, times=None)
                step = "chunk_embeddings"
            result = sync_space(instance, resources, key, raise_on_error=False)
        assert not result.success
        assert "HTTP 401" in step_failure_message(result)
        assert _events(result, "STEP_START", step) == 1 and _events(result, "STEP_UP_FOR_RETRY", step) == 0
        assert rejected.applied == 1  # one request: neither the client nor Dagster asked again
        run = instance.get_run_by_id(result.run_id)
        # A step failure is final; a run whose worker crashed is still retried as a whole run.
        assert not auto_reexecution_should_retry_run(instance, run, RunFailureReason.STEP_FAILURE)
        assert auto_reexecution_should_retry_run(instance, run, RunFailureReason.RUN_WORKER_RESTART)
