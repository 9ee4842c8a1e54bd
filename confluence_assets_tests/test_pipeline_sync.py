"""The asset graph end to end: real Dagster runs, sandbox Confluence + embeddings over HTTP, embedded
PostgreSQL, verified by SQL against the sandbox's ground truth."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import psycopg
import pytest

from confluence_assets.sandbox import Site, generate_corpus, load_samples
from confluence_assets_tests.pipeline_support import (
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
    return generated_site(11, pages=40, empty_pages=1)


def _space(site: Site) -> str:
    return next(key for key in site.spaces if key != "QM")


def test_full_sync_of_a_generated_space_and_the_real_samples(migrated_db_url, instance):
    site = Site(timezone="Asia/Seoul")
    info = generate_corpus(site, seed=5, spaces=1, pages_per_space=40, large_pages=1, empty_pages=2)
    load_samples(site, "QM")
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        discover_spaces(instance, resources)
        assert sorted(instance.get_dynamic_partitions("confluence_spaces")) == sorted([info.space_keys[0], "QM"])
        for key in (info.space_keys[0], "QM"):
            result = sync_space(instance, resources, key)
            assert all(c.passed for c in result.get_asset_check_evaluations())
            assert_matches_site(site, migrated_db_url, key)
            meta = asset_metadata(result, "changed_pages")
            assert meta["full_load"] is True and meta["pages_new"] == len(site.live_pages(key))
            # Bodies come with the listing: one search request per 50 pages, no per-page round trips.
            assert meta["api_calls"] <= len(site.live_pages(key)) // 50 + 1
    with psycopg.connect(migrated_db_url) as conn:
        sources = dict(
            conn.execute(
                "SELECT source_id, metadata FROM archon_sources WHERE metadata->>'source_type' = 'confluence'"
            ).fetchall()
        )
        empty_chunks = conn.execute(
            "SELECT count(*) FROM archon_crawled_pages WHERE metadata->>'page_id' = ANY(%s)",
            (list(info.empty_page_ids),),
        ).fetchone()[0]
    assert set(sources) == {f"confluence_{info.space_keys[0]}", "confluence_QM"}
    qm = sources["confluence_QM"]
    assert qm["confluence_space_key"] == "QM" and qm["deletion_check_strategy"] == "weekly_reconciliation"
    assert qm["total_pages"] == len(site.live_pages("QM"))
    assert qm["sync_metrics"]["pages_created"] == len(site.live_pages("QM"))
    assert qm["last_sync_timestamp"] and qm["last_sync_completed_at"]
    assert empty_chunks == len(info.empty_page_ids)  # empty pages are still findable by title


def test_rerunning_without_changes_is_a_noop(migrated_db_url, instance, site):
    key = _space(site)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        sync_space(instance, resources, key)
        before = db_state(migrated_db_url, key)
        requests_before = sb.emb.stats.requests
        calls_before = sb.conf.stats.total
        result = sync_space(instance, resources, key)
        after = db_state(migrated_db_url, key)
        assert sb.emb.stats.requests == requests_before  # no new embeddings
        assert sb.conf.stats.total - calls_before <= 2
    assert after["pages"] == before["pages"] and after["chunks"] == before["chunks"]
    changed = asset_metadata(result, "changed_pages")
    assert (changed["pages_new"], changed["pages_updated"]) == (0, 0)
    assert changed["pages_unchanged"] >= 1  # the overlap window re-reads the newest pages, skipped by version
    assert asset_metadata(result, "chunk_embeddings")["chunks_written"] == 0


def test_each_asset_rerun_alone_is_a_noop(migrated_db_url, instance, site):
    key = _space(site)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        sync_space(instance, resources, key)
        before = db_state(migrated_db_url, key)
        from confluence_assets_tests.pipeline_support import SYNC_ASSETS

        for asset in SYNC_ASSETS:
            result = dg.materialize(
                [asset], partition_key=key, instance=instance, resources=resources, selection=[asset.key]
            )
            assert result.success
            assert db_state(migrated_db_url, key)["chunks"] == before["chunks"], asset.key
    assert db_state(migrated_db_url, key)["pages"] == before["pages"]


def test_editing_one_paragraph_reembeds_only_that_pages_changed_chunks(migrated_db_url, instance, site):
    key = _space(site)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        sync_space(instance, resources, key)
        before = db_state(migrated_db_url, key)
        # The page with the most chunks, one paragraph in its middle edited.
        target = max(before["chunks"], key=lambda pid: len(before["chunks"][pid]))
        body = site.snapshot(target).body
        paragraphs = [i for i in range(len(body)) if body.startswith("<p>", i)]
        cut = paragraphs[len(paragraphs) // 2] + 3
        site.clock.advance(minutes=7)
        site.edit_page(target, body=body[:cut] + "Quarterly zeppelin inspection notes. " + body[cut:])
        inputs_before = sb.emb.stats.inputs
        result = sync_space(instance, resources, key)
        reembedded = sb.emb.stats.inputs - inputs_before
    after = db_state(migrated_db_url, key)
    changed = asset_metadata(result, "changed_pages")
    assert (changed["pages_new"], changed["pages_updated"]) == (0, 1)
    assert asset_metadata(result, "page_metadata")["pages_converted"] == 1
    old_hashes = {c[4] for c in before["chunks"][target]}
    new_hashes = {c[4] for c in after["chunks"][target]}
    assert 1 <= reembedded <= 2  # the edited chunk and at most its overlap neighbour
    assert len(new_hashes - old_hashes) == reembedded
    assert asset_metadata(result, "chunk_embeddings")["chunks_reused"] == len(after["chunks"][target]) - reembedded
    for pid in before["chunks"]:
        if pid != target:
            assert after["chunks"][pid] == before["chunks"][pid]
    assert after["pages"][target]["version"] == before["pages"][target]["version"] + 1
    assert_matches_site(site, migrated_db_url, key)


def test_rename_updates_title_and_descendant_breadcrumb_paths(migrated_db_url, instance, site):
    key = _space(site)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        sync_space(instance, resources, key)
        parent = next(p for p in site.live_pages(key) if p.parent_id and site.child_ids(p.id))
        site.clock.advance(minutes=3)
        site.rename_page(parent.id, "Renamed Runbook Index")
        result = sync_space(instance, resources, key)
    assert asset_metadata(result, "changed_pages")["pages_updated"] == 1
    state = assert_matches_site(site, migrated_db_url, key)
    assert state["pages"][parent.id]["title"] == "Renamed Runbook Index"


def test_a_link_by_title_resolves_to_the_page_that_has_the_title_now(migrated_db_url, instance, site):
    """Found by the crash matrix: the stored (old) title of a page renamed in the same sync used to resolve,
    so the outcome depended on how much of an interrupted run had been converted."""
    key = _space(site)
    target, linker, newcomer = site.live_pages(key)[1:4]
    old_title = target.title

    def links_to(title: str) -> str:
        return f'<p>see <ac:link><ri:page ri:content-title="{title}"/></ac:link></p>'

    def resolved(page_id: str) -> dict[str, str | None]:
        with psycopg.connect(migrated_db_url) as conn:
            (links,) = conn.execute(
                "SELECT metadata->'internal_links' FROM confluence_pages WHERE page_id = %s", (page_id,)
            ).fetchone()
        return {link["page_title"]: link["page_id"] for link in links}

    site.edit_page(linker.id, body=links_to(old_title))
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        sync_space(instance, resources, key)
        assert resolved(linker.id) == {old_title: target.id}
        site.clock.advance(minutes=3)
        site.rename_page(target.id, "Renamed Target")
        site.edit_page(linker.id, body=links_to(old_title) + "<p>edited</p>")  # the link itself is now stale
        site.edit_page(newcomer.id, body=links_to("Renamed Target"))
        sync_space(instance, resources, key)
    assert resolved(linker.id) == {old_title: None}  # no page has that title any more
    assert resolved(newcomer.id) == {"Renamed Target": target.id}


def test_a_moved_page_brings_its_subtree_paths_along(migrated_db_url, instance, site):
    key = _space(site)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        sync_space(instance, resources, key)
        pages = site.live_pages(key)
        mover = next(p for p in pages if p.parent_id and site.child_ids(p.id))
        new_parent = next(
            p for p in pages if p.id != mover.id and mover.id not in p.ancestors and p.id != mover.parent_id
        )
        site.move_page(mover.id, new_parent.id)
        # A move makes no new version; an edit of the moved page (or reconciliation) brings it in.
        site.clock.advance(minutes=2)
        site.edit_page(mover.id, body=site.snapshot(mover.id).body + "<p>moved</p>")
        sync_space(instance, resources, key)
    assert_matches_site(site, migrated_db_url, key)  # descendants' paths were rewritten too


def test_a_page_created_in_the_minute_the_watermark_straddles_is_not_missed(migrated_db_url, instance, site):
    key = _space(site)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        site.clock.set(datetime(2026, 6, 1, 10, 0, 10, tzinfo=UTC))
        home = site.live_pages(key)[0].id
        site.create_page(key, "Watermark minute early page", "<p>early</p>", parent_id=home)
        sync_space(instance, resources, key)
        watermark = db_state(migrated_db_url, key)["source"]["last_sync_timestamp"]
        assert watermark.startswith("2026-06-01T10:00:10")
        # Same minute, later second: CQL's minute precision cannot tell it from the watermark.
        site.clock.set(datetime(2026, 6, 1, 10, 0, 50, tzinfo=UTC))
        late = site.create_page(key, "Watermark minute late page", "<p>late</p>", parent_id=home)
        result = sync_space(instance, resources, key)
    assert asset_metadata(result, "changed_pages")["pages_new"] == 1
    assert late.id in assert_matches_site(site, migrated_db_url, key)["pages"]


@pytest.mark.parametrize("configured_zone", ["America/Los_Angeles", None], ids=["zone-set", "zone-unknown"])
def test_a_non_utc_site_time_zone_loses_nothing(migrated_db_url, instance, configured_zone):
    site = Site(timezone="America/Los_Angeles")  # UTC-7/-8: naive UTC literals would look hours ahead
    site.clock.set(SITE_NOW)
    generate_corpus(site, seed=2, spaces=1, pages_per_space=15, large_pages=0, empty_pages=0)
    key = _space(site)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url, confluence={"site_timezone": configured_zone})
        sync_space(instance, resources, key)
        for minutes in (1, 2, 30):
            site.clock.advance(minutes=minutes)
            page = site.live_pages(key)[minutes % 10]
            site.edit_page(page.id, body=f"<p>edit after {minutes} minutes</p>")
            result = sync_space(instance, resources, key)
            assert asset_metadata(result, "changed_pages")["pages_updated"] == 1
    assert_matches_site(site, migrated_db_url, key)


def test_a_run_killed_between_metadata_and_embeddings_converges(migrated_db_url, server_url, instance, site):
    from confluence_assets.defs.assets import changed_pages, page_metadata
    from confluence_assets_tests.conftest import _create_database, _drop_database

    key = _space(site)
    reference_url = _create_database(server_url, "t_reference_sync", template="ca_template_migrated")
    try:
        with sandbox_servers(site) as sb:
            resources = resources_for(sb, migrated_db_url)
            partial = dg.materialize(
                [changed_pages, page_metadata],
                partition_key=key,
                instance=_with_partition(instance, key),
                resources=resources,
            )
            assert partial.success
            mid = db_state(migrated_db_url, key)
            assert mid["staged"] == len(site.live_pages(key)) and not mid["chunks"]
            assert mid["source"].get("last_sync_timestamp") is None  # the watermark did not move
            sync_space(instance, resources, key)
            sync_space(instance, resources_for(sb, reference_url), key)
        assert_matches_site(site, migrated_db_url, key)
        interrupted, undisturbed = db_state(migrated_db_url, key), db_state(reference_url, key)
        assert interrupted["chunks"] == undisturbed["chunks"]
        assert interrupted["pages"] == undisturbed["pages"]
    finally:
        _drop_database(server_url, "t_reference_sync")


def _with_partition(instance: dg.DagsterInstance, key: str) -> dg.DagsterInstance:
    if key not in instance.get_dynamic_partitions("confluence_spaces"):
        instance.add_dynamic_partitions("confluence_spaces", [key])
    return instance


def test_a_page_the_embedder_rejects_is_recorded_and_the_rest_land(migrated_db_url, instance, site):
    key = _space(site)
    victim = site.live_pages(key)[3]
    site.edit_page(victim.id, body="<p>" + " ".join(f"word{i}" for i in range(30000)) + "</p>")
    # Chunks allowed far above the model's limit: the sandbox rejects that page's inputs (HTTP 400).
    config = {"ops": {"page_chunks": {"config": {"chunk_tokens": 60000, "overlap_tokens": 0, "max_tokens": 60000}}}}
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        result = sync_space(instance, resources, key, run_config=config)
    meta = asset_metadata(result, "chunk_embeddings")
    assert meta["pages_failed"] == 1 and victim.id in meta["failed_pages"]
    assert "maximum context length" in meta["failed_pages"]
    state = db_state(migrated_db_url, key)
    assert victim.id not in state["chunks"]
    assert set(state["chunks"]) == {p.id for p in site.live_pages(key)} - {victim.id}
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["every_live_page_has_chunks"] is False and checks["every_chunk_embedded"] is True
    with psycopg.connect(migrated_db_url) as conn:
        stage, error = conn.execute(
            "SELECT stage, error FROM confluence_sync_staged_pages WHERE page_id = %s", (victim.id,)
        ).fetchone()
    assert stage == "failed" and "embedding input rejected" in error


def test_wrong_credentials_fail_the_run_clearly_and_keep_the_watermark(migrated_db_url, instance, site):
    key = _space(site)
    with sandbox_servers(site) as sb:
        good = resources_for(sb, migrated_db_url)
        sync_space(instance, good, key)
        watermark = db_state(migrated_db_url, key)["source"]["last_sync_timestamp"]
        site.clock.advance(minutes=5)
        site.edit_page(site.live_pages(key)[1].id, body="<p>changed</p>")
        bad = resources_for(sb, migrated_db_url, confluence={"api_token": "not-the-token"})
        result = sync_space(instance, bad, key, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.error.message
    assert "rejected the credentials (HTTP 401)" in message and "CONFLUENCE_EMAIL and CONFLUENCE_API_TOKEN" in message
    assert "not-the-token" not in message
    assert db_state(migrated_db_url, key)["source"]["last_sync_timestamp"] == watermark
