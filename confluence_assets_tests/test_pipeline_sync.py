"""The asset graph end to end: real Dagster runs, sandbox Confluence + embeddings over HTTP, embedded
PostgreSQL, verified by SQL against the sandbox's ground truth."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
import pytest

from confluence_assets.sandbox import Site, generate_corpus, load_samples
from confluence_assets.sandbox.shapes import CHILDREN_EXPANSION_LIMIT
from confluence_assets.sync.attachment_step import BATCH as COMMENT_BATCH
from confluence_assets_tests.pipeline_support import (
    ALL_ASSETS,
    DOWNLOAD,
    MEDIA,
    SEARCH,
    SITE_NOW,
    SYNC_ASSETS,
    assert_matches_site,
    asset_metadata,
    changed_pages,
    db_state,
    discover_spaces,
    generated_site,
    resources_for,
    sandbox_servers,
    sync_space,
    table_snapshot,
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
            live = site.live_pages(key)
            assert meta["full_load"] is True and meta["pages_created"] == len(live)
            # Bodies come with the listing: one search request per 50 pages, no per-page round trips, except
            # one for each page with more attachments than the expansion lists (three of the real samples).
            overflowing = sum(len(p.attachments) > CHILDREN_EXPANSION_LIMIT for p in live)
            assert overflowing == (3 if key == "QM" else 0)
            # Plus, once per space (its first sync), who may read it: the space, its permissions, its groups.
            assert 2 <= meta["space_permission_requests"] <= 4
            assert meta["api_calls"] - meta["space_permission_requests"] <= len(live) // 50 + 1 + overflowing
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
    assert (changed["pages_created"], changed["pages_updated"]) == (0, 0)
    assert changed["pages_unchanged"] >= 1  # the overlap window re-reads the newest pages, skipped by version
    assert asset_metadata(result, "chunk_embeddings")["chunks_created"] == 0


# Confluence requests each asset may make when it runs alone after a full sync of a space of <= 50 pages:
# the space listing; the incremental search (overlap window); the v2 space lookup, its page and blog post
# listings and the CQL listing of its folders, whiteboards, databases and embeds.
RERUN_REQUESTS = {
    "confluence_spaces": 1,
    "changed_pages": 1,
    "page_reconciliation": 5,  # the page listings, then one listing of the comments and attachments
    "page_metadata": 0,
    "page_attachments": 0,
    "page_chunks": 0,
    "chunk_embeddings": 0,
}


def test_each_asset_rerun_alone_is_a_noop(migrated_db_url, instance, site):
    key = _space(site)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        discover_spaces(instance, resources)
        sync_space(instance, resources, key)
        before = table_snapshot(migrated_db_url, key)
        assert before["confluence_pages"] and before["archon_crawled_pages"]
        assert [a.key.path[-1] for a in ALL_ASSETS] == list(RERUN_REQUESTS)
        for asset in ALL_ASSETS:
            name = asset.key.path[-1]
            calls, embeddings = sb.conf.stats.total, sb.emb.stats.requests
            partition = {} if name == "confluence_spaces" else {"partition_key": key}
            result = dg.materialize([asset], instance=instance, resources=resources, selection=[asset.key], **partition)
            assert result.success, name
            assert table_snapshot(migrated_db_url, key) == before, name
            assert sb.emb.stats.requests == embeddings, name
            assert sb.conf.stats.total - calls == RERUN_REQUESTS[name], (name, sb.conf.stats.snapshot())


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
    assert (changed["pages_created"], changed["pages_updated"]) == (0, 1)
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


@pytest.mark.parametrize("overlap_minutes", [10, 0], ids=["default-overlap", "no-overlap"])
def test_a_page_created_in_the_minute_the_watermark_straddles_is_not_missed(
    migrated_db_url, instance, site, overlap_minutes
):
    """With no overlap window only the minute flooring of the CQL date stands between the late page and
    being missed: the search must start at the watermark's minute, not after it."""
    key = _space(site)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url, confluence={"overlap_minutes": overlap_minutes})
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
    changed = asset_metadata(result, "changed_pages")
    since = datetime(2026, 6, 1, 19, 0) - timedelta(minutes=overlap_minutes)  # the watermark's minute in Seoul
    assert f'lastModified >= "{since:%Y-%m-%d %H:%M}"' in changed["cql"]
    assert changed["pages_created"] == 1
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
    from confluence_assets_tests.conftest import _create_database, _drop_database
    from confluence_assets_tests.pipeline_support import changed_pages, page_metadata

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


def _metadata(db_url: str, page_id: str) -> dict:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT metadata FROM confluence_pages WHERE page_id = %s", (page_id,)).fetchone()[0]


def _chunk_text(db_url: str, page_id: str) -> str:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT content FROM archon_crawled_pages WHERE metadata->>'page_id' = %s ORDER BY chunk_number",
            (page_id,),
        ).fetchall()
    return "\n".join(r[0] for r in rows)


def _mention(user) -> str:
    return f'<ac:link><ri:user ri:account-id="{user.account_id}" /></ac:link>'


def test_mentions_show_the_names_of_users_who_authored_pages(migrated_db_url, instance, site):
    """Names come from what the sync already has (authors of staged payloads, then of stored pages), with no
    request for users; a user who authored nothing stays @user:<id>."""
    key = _space(site)
    creator = site.add_user("Mention Creator")
    editor = site.add_user("Mention Editor")
    quiet = site.add_user("Quiet Reader")  # mentioned, authored nothing
    site.create_page(key, "Page by the mention creator", "<p>mine</p>", author=creator)
    edited = site.live_pages(key)[5].id
    site.edit_page(edited, body="<p>edited by the editor</p>", author=editor)
    first, second = site.live_pages(key)[2].id, site.live_pages(key)[3].id
    site.edit_page(first, body=f"<p>ask {_mention(creator)}, {_mention(editor)} or {_mention(quiet)}</p>")
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        sync_space(instance, resources, key)
        mentions = {m["account_id"]: m["display_name"] for m in _metadata(migrated_db_url, first)["user_mentions"]}
        assert mentions == {
            creator.account_id: "Mention Creator",
            editor.account_id: "Mention Editor",
            quiet.account_id: None,
        }
        text = _chunk_text(migrated_db_url, first)
        assert "@Mention Creator" in text and "@Mention Editor" in text and f"@user:{quiet.account_id}" in text
        # Next sync: only this page is staged; the creator is known from the stored pages' metadata.
        site.clock.advance(minutes=5)
        site.edit_page(second, body=f"<p>thanks {_mention(creator)}</p>")
        calls = sb.conf.stats.total
        result = sync_space(instance, resources, key)
        assert sb.conf.stats.total - calls <= 2  # the incremental search; nothing asked about users
    assert asset_metadata(result, "page_metadata")["pages_converted"] == 1
    assert _metadata(migrated_db_url, second)["user_mentions"][0]["display_name"] == "Mention Creator"
    assert "@Mention Creator" in _chunk_text(migrated_db_url, second)
    assert_matches_site(site, migrated_db_url, key)


def test_children_lists_come_from_the_stored_tree(migrated_db_url, instance, site):
    """The expansion lists 25 children; the parent's version does not change when a child is added, moved
    away or trashed, so the parent is not re-staged: its list must follow the stored tree all the same."""
    from confluence_assets.sync import sources

    key = _space(site)
    home = site.spaces[key].homepage_id
    hub = site.create_page(key, "Hub with many children", "<p>hub</p>")
    kids = [site.create_page(key, f"Hub child {i:02d}", f"<p>child {i}</p>", parent_id=hub.id) for i in range(30)]
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        sync_space(instance, resources, key)
        listed = [c["id"] for c in _metadata(migrated_db_url, hub.id)["children"]]
        assert listed == site.child_ids(hub.id) and len(listed) == 30  # all of them, in Confluence's order
        assert_matches_site(site, migrated_db_url, key)

        with psycopg.connect(migrated_db_url) as conn:
            sources.set_deletion_strategy(conn, f"confluence_{key}", "every_sync")  # moves and trash are found
        site.clock.advance(minutes=5)
        added = site.create_page(key, "Hub child added later", "<p>new</p>", parent_id=hub.id)
        site.move_page(kids[3].id, home)  # no new version: reconciliation finds it
        site.trash_page(kids[7].id)
        result = sync_space(instance, resources, key)
    changed = asset_metadata(result, "changed_pages")
    assert (changed["pages_created"], changed["pages_updated"]) == (1, 0)
    # Requeued: the moved child, and the added one (staged by the search, not stored yet).
    assert (changed["reconciliation"]["deleted"], changed["reconciliation"]["requeued"]) == (1, 2)
    assert asset_metadata(result, "page_metadata")["pages_converted"] == 2  # added and moved: not the hub
    listed = [c["id"] for c in _metadata(migrated_db_url, hub.id)["children"]]
    assert listed == site.child_ids(hub.id)
    assert added.id in listed and kids[3].id not in listed and kids[7].id not in listed
    assert kids[3].id in {c["id"] for c in _metadata(migrated_db_url, home)["children"]}
    assert_matches_site(site, migrated_db_url, key)


ATTACHMENTS_ENDPOINT = "GET /wiki/rest/api/content/{id}/child/attachment"


def test_attachments_beyond_the_expansion_are_listed_at_one_request_per_such_page(migrated_db_url, instance, site):
    key = _space(site)
    crowded = site.create_page(key, "Page with many attachments", "<p>files</p>")
    names = [f"scan-{i:02d}.pdf" for i in range(60)]
    for name in names:
        site.add_attachment(crowded.id, name)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        result = sync_space(instance, resources, key)
        assert sb.conf.stats[ATTACHMENTS_ENDPOINT] == 1  # the rest of the list in one request, for that page only
        searches = sb.conf.stats[SEARCH] - asset_metadata(result, "page_attachments")["comment_requests"]
    changed = asset_metadata(result, "changed_pages")
    assert changed["api_calls"] - changed["space_permission_requests"] == searches + 1
    assets = _metadata(migrated_db_url, crowded.id)["asset_links"]
    assert [a["title"] for a in assets] == names
    assert all(a["id"] and a["media_type"] == "application/pdf" and a["download_url"] for a in assets)
    assert_matches_site(site, migrated_db_url, key)


def test_a_generated_full_sync_makes_at_most_one_request_per_25_pages(migrated_db_url, instance):
    site = generated_site(4, pages=100)
    key = _space(site)
    with sandbox_servers(site) as sb:
        result = sync_space(instance, resources_for(sb, migrated_db_url), key)
        requests = sb.conf.stats.total
        downloads = sb.conf.stats[DOWNLOAD] + sb.conf.stats[MEDIA]
    pages = len(site.live_pages(key))
    once = asset_metadata(result, "changed_pages")["space_permission_requests"]  # who may read the space
    files = asset_metadata(result, "page_attachments")
    # Every attachment is downloaded once (its redirect followed: two requests); comments cost one search
    # per batch of pages; everything else (listing with bodies, attachments and restrictions) <= 1 per 25.
    assert downloads == 2 * files["attachments_downloaded"] > 0 and not files["attachments_failed"]
    assert files["comment_requests"] <= math.ceil(pages / COMMENT_BATCH)
    assert requests - once - downloads - files["comment_requests"] <= pages / 25 and once <= 4
    assert_matches_site(site, migrated_db_url, key)


@pytest.mark.parametrize(
    "ids",
    [("900100", "900200", "900300", "900400"), ("900400", "900100", "900300", "900200")],
    ids=["moved-page-converted-first", "renamed-page-converted-first"],
)
def test_a_moved_subtree_with_a_renamed_middle_page_has_right_paths_and_ancestors(migrated_db_url, instance, site, ids):
    """Only the moved page (edited) and the renamed one are staged; their descendants, never re-staged, get
    their path column, metadata.path and metadata.ancestors (ids, titles, urls) rewritten in the same
    transaction, whichever of the two is converted first."""
    key = _space(site)
    top = site.create_page(key, "Subtree top", "<p>top</p>", page_id=ids[0])
    middle = site.create_page(key, "Subtree middle", "<p>middle</p>", parent_id=top.id, page_id=ids[1])
    lower = site.create_page(key, "Subtree lower", "<p>lower</p>", parent_id=middle.id, page_id=ids[2])
    leaf = site.create_page(key, "Subtree leaf", "<p>leaf</p>", parent_id=lower.id, page_id=ids[3])
    new_parent = next(p for p in site.live_pages(key) if len(p.ancestors) >= 2 and p.id not in ids)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        sync_space(instance, resources, key)
        site.clock.advance(minutes=3)
        site.move_page(top.id, new_parent.id)
        site.edit_page(top.id, body="<p>top, moved</p>")
        site.rename_page(middle.id, "Subtree middle renamed")
        result = sync_space(instance, resources, key)
    assert asset_metadata(result, "page_metadata")["pages_converted"] == 2
    state = assert_matches_site(site, migrated_db_url, key)
    urls = {pid: meta["page_url"] for pid, meta in state["metadata"].items()}
    assert "Subtree+middle+renamed" in urls[middle.id]
    for page in (middle, lower, leaf):
        snap = site.snapshot(page.id)
        meta = state["metadata"][page.id]
        assert state["pages"][page.id]["path"] == meta["path"] == "/" + "/".join([*snap.ancestors, page.id])
        assert meta["ancestors"] == [
            {"id": a, "title": t, "url": urls[a]} for a, t in zip(snap.ancestors, snap.ancestor_titles, strict=True)
        ]
    assert new_parent.id in [a["id"] for a in state["metadata"][leaf.id]["ancestors"]]


def test_a_page_the_chunker_fails_on_is_recorded_and_the_rest_land(migrated_db_url, instance, site, monkeypatch):
    from confluence_assets.content import chunk_markdown
    from confluence_assets.defs import assets

    key = _space(site)
    victim = site.live_pages(key)[4]

    def chunker(markdown, title, **kwargs):
        if title == victim.title:
            raise RecursionError("maximum recursion depth exceeded")
        return chunk_markdown(markdown, title, **kwargs)

    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        monkeypatch.setattr(assets, "chunk_markdown", chunker)
        result = sync_space(instance, resources, key)
        chunked = asset_metadata(result, "page_chunks")
        assert chunked["pages_chunked"] == len(site.live_pages(key)) - 1 and chunked["pages_failed"] == 1
        assert victim.id in chunked["failed_pages"] and "RecursionError" in chunked["failed_pages"]
        state = db_state(migrated_db_url, key)
        assert set(state["chunks"]) == {p.id for p in site.live_pages(key)} - {victim.id}
        with psycopg.connect(migrated_db_url) as conn:
            stage, error, attempts = conn.execute(
                "SELECT stage, error, attempts FROM confluence_sync_staged_pages WHERE page_id = %s", (victim.id,)
            ).fetchone()
        assert (stage, attempts) == ("failed", 1)
        assert error == "chunking failed: RecursionError: maximum recursion depth exceeded"
        monkeypatch.setattr(assets, "chunk_markdown", chunk_markdown)
        sync_space(instance, resources, key)  # the next run converts and chunks it again
    assert_matches_site(site, migrated_db_url, key)


def test_a_search_result_without_version_is_skipped_with_its_reason(
    migrated_db_url, instance, site, monkeypatch, caplog
):
    from confluence_assets.sandbox.shapes import Renderer

    key = _space(site)
    victim = site.live_pages(key)[6]
    render = Renderer.content

    def content(self, page, expand=None, *, top=False):
        out = render(self, page, expand, top=top)
        if page.id == victim.id:
            out.pop("version", None)
        return out

    monkeypatch.setattr(Renderer, "content", content)
    with sandbox_servers(site) as sb:
        result = sync_space(instance, resources_for(sb, migrated_db_url), key)
    changed = asset_metadata(result, "changed_pages")
    assert changed["pages_listed"] == len(site.live_pages(key))
    assert changed["pages_created"] == len(site.live_pages(key)) - 1 and changed["pages_skipped"] == 1
    assert victim.id in changed["skipped_pages"] and "without version information" in changed["skipped_pages"]
    assert set(db_state(migrated_db_url, key)["pages"]) == {p.id for p in site.live_pages(key)} - {victim.id}
    assert f"page {victim.id} came without version information" in caplog.text


@pytest.mark.parametrize("change", ["move", "rename"])
def test_a_page_staged_before_its_ancestor_moved_gets_the_new_path(migrated_db_url, instance, site, change):
    """A descendant staged before its ancestor moved (or was renamed) and the ancestor staged after: the
    two payloads disagree on the tree, and the later one must win, whichever page id comes first."""
    key = _space(site)
    pages = site.live_pages(key)
    leaf = next(p for p in pages if len(p.ancestors) >= 3)
    mover = site.snapshot(leaf.ancestors[1])  # below the root, above the leaf's parent
    new_parent = next(p for p in pages if p.id not in (mover.id, *mover.ancestors) and mover.id not in p.ancestors)
    only = [changed_pages.key]
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        sync_space(instance, resources, key)
        site.clock.advance(minutes=3)
        site.edit_page(leaf.id, body=leaf.body + "<p>edited</p>")
        assert dg.materialize(SYNC_ASSETS, partition_key=key, instance=instance, resources=resources, selection=only)
        site.clock.advance(minutes=3)
        if change == "move":
            site.move_page(mover.id, new_parent.id)
            site.edit_page(mover.id, body=mover.body + "<p>moved</p>")
        else:
            site.rename_page(mover.id, mover.title + " renamed")
        assert dg.materialize(SYNC_ASSETS, partition_key=key, instance=instance, resources=resources, selection=only)
        sync_space(instance, resources, key)
    assert int(mover.id) < int(leaf.id)  # the order by id would store the ancestor first
    state = assert_matches_site(site, migrated_db_url, key)
    snap = site.snapshot(leaf.id)
    assert state["pages"][leaf.id]["path"] == "/" + "/".join([*snap.ancestors, leaf.id])
    assert [a["title"] for a in state["metadata"][leaf.id]["ancestors"]] == list(snap.ancestor_titles)
