"""Issue 8, faults: what real deployments see, injected into real runs (Dagster `materialize`, the sandbox
servers over HTTP, the embedded PostgreSQL). Each test ends by comparing the database with the sandbox's
ground truth (or with an undisturbed sync), so "survived" means "lost nothing", not "did not crash"."""

from __future__ import annotations

import json
import threading
import time

import dagster as dg
import pytest

from confluence_assets.embeddings import Embedder
from confluence_assets.sandbox import Site
from confluence_assets_tests.pipeline_support import (
    SEARCH,
    assert_matches_site,
    asset_metadata,
    db_state,
    generated_site,
    only_space,
    page_reconciliation,
    resources_for,
    sandbox_servers,
    step_failure_message,
    sync_space,
)
from confluence_assets_tests.reliability_support import (
    InvariantReader,
    compare_databases,
    terminate_backends,
    wait_until,
)

EMBED = "POST /v1/embeddings"
PAGE_SIZE = 10  # small pages so that every fault lands mid-pagination


@pytest.fixture
def site() -> Site:
    return generated_site(31, pages=45, empty_pages=1)


def _resources(sb, db_url: str, **confluence):
    return resources_for(sb, db_url, confluence={"page_size": PAGE_SIZE, **confluence})


def _listing_requests(site: Site, key: str) -> int:
    return len(site.live_pages(key)) // PAGE_SIZE + 1


# ---------------------------------------------------------------------------------------------- Confluence


@pytest.mark.parametrize("retry_after", [None, 1], ids=["no-retry-after", "retry-after-1s"])
def test_a_429_storm_slows_the_sync_down_and_it_completes(migrated_db_url, instance, site, retry_after):
    key = only_space(site)
    with sandbox_servers(site) as sb:
        # Every other request is refused, for the whole run.
        storm = sb.conf.faults.add(SEARCH, status=429, retry_after=retry_after, every=2, times=None)
        started = time.monotonic()
        result = sync_space(instance, _resources(sb, migrated_db_url), key)
        elapsed = time.monotonic() - started
    meta = asset_metadata(result, "changed_pages")
    comment_retries = asset_metadata(result, "page_attachments")["api_retries"]  # its comment search is refused too
    assert storm.applied >= _listing_requests(site, key) - 1
    assert meta["api_retries"] + comment_retries == storm.applied
    assert meta["pages_listed"] == len(site.live_pages(key))
    if retry_after:  # honoured, capped at retry_after_cap_seconds (0.5 s in the tests)
        assert elapsed >= 0.5 * storm.applied
    assert_matches_site(site, migrated_db_url, key)


def test_5xx_bursts_are_retried_and_nothing_is_lost(migrated_db_url, instance, site):
    key = only_space(site)
    with sandbox_servers(site) as sb:
        rules = [
            # Requests 2-3, 6-8 and 10-11 fail; each burst is shorter than the retries of one request.
            sb.conf.faults.add(SEARCH, status=500, skip=1, times=2),
            sb.conf.faults.add(SEARCH, status=502, skip=5, times=3),
            sb.conf.faults.add(SEARCH, status=503, retry_after=1, skip=9, times=2),
        ]
        result = sync_space(instance, _resources(sb, migrated_db_url), key)
    assert [r.applied for r in rules] == [2, 3, 2]
    meta = asset_metadata(result, "changed_pages")
    assert meta["api_retries"] == 7 and meta["pages_listed"] == len(site.live_pages(key))
    assert_matches_site(site, migrated_db_url, key)


def test_timeouts_and_connection_resets_mid_pagination_skip_and_duplicate_nothing(migrated_db_url, instance, site):
    key = only_space(site)
    with sandbox_servers(site) as sb:
        slow = sb.conf.faults.add(SEARCH, delay=1.6, skip=2, times=2)  # read timeouts (0.5 s: rounded up to 1 s)
        resets = sb.conf.faults.add(SEARCH, reset=True, skip=3, times=3)
        result = sync_space(instance, _resources(sb, migrated_db_url, timeout_seconds=0.5), key)
    assert slow.applied == 2 and resets.applied == 3
    meta = asset_metadata(result, "changed_pages")
    # Every page listed exactly once: the retried request is the same cursor, not the next one.
    assert meta["pages_listed"] == meta["pages_created"] == len(site.live_pages(key))
    assert meta["api_retries"] >= 4  # one request was both slow and reset
    assert_matches_site(site, migrated_db_url, key)


@pytest.mark.parametrize("times", [1, 3, 5], ids=["once", "three-times", "five-times"])
def test_empty_pages_with_a_next_link_do_not_end_the_listing(migrated_db_url, instance, site, times):
    key = only_space(site)
    with sandbox_servers(site) as sb:
        empty = sb.conf.faults.add(SEARCH, empty_page=True, skip=2, times=times)
        result = sync_space(instance, _resources(sb, migrated_db_url), key)
    assert empty.applied == times
    assert asset_metadata(result, "changed_pages")["pages_listed"] == len(site.live_pages(key))
    assert_matches_site(site, migrated_db_url, key)


def test_many_empty_pages_in_a_row_from_restricted_content_do_not_end_the_listing(migrated_db_url, instance, site):
    key = only_space(site)
    other = site.add_user("Restricted Reader", email="reader@example.com", api_token="other-token")
    ordered = sorted(site.live_pages(key), key=lambda p: (p.last_modified, int(p.id)))
    for page in ordered[5:40]:  # restrictions are applied after the window is cut
        site.restrict_page(page.id, other)
    with sandbox_servers(site) as sb:
        readable = {p.id for p in site.live_pages(key, user=sb.conf.user)}
        windows = [{p.id for p in ordered[i : i + 5]} & readable for i in range(0, len(ordered), 5)]
        first_after_gap = next(i for i in range(1, len(windows)) if windows[i] and not windows[i - 1])
        assert sum(1 for w in windows[1:first_after_gap] if not w) >= 6  # more empty pages in a row than 5
        result = sync_space(instance, _resources(sb, migrated_db_url, page_size=5), key)
    assert asset_metadata(result, "changed_pages")["pages_listed"] == len(readable)
    assert set(db_state(migrated_db_url, key)["chunks"]) == readable


def test_a_listing_that_never_finishes_fails_the_run_instead_of_ending_early(migrated_db_url, instance, site):
    key = only_space(site)
    with sandbox_servers(site) as sb:
        endless = sb.conf.faults.add(SEARCH, empty_page=True, skip=1, times=None)
        result = sync_space(instance, _resources(sb, migrated_db_url), key, raise_on_error=False)
    # Per attempt: the same page again, retried 5 times after the first; the step itself is retried twice.
    assert not result.success and endless.applied == 7 * (page_reconciliation.op.retry_policy.max_retries + 1)
    message = step_failure_message(result)
    assert "the listing was not taken as complete" in message and message.count("\n") == 0
    state = db_state(migrated_db_url, key)
    assert not state["chunks"] and state["source"].get("last_sync_timestamp") is None


def test_empty_pages_during_reconciliation_delete_nothing(migrated_db_url, instance, site):
    key = only_space(site)
    with sandbox_servers(site) as sb:
        resources = _resources(sb, migrated_db_url)
        sync_space(instance, resources, key)
        before = db_state(migrated_db_url, key)
        # The v2 id listing of reconciliation: an empty page with a next link, several in a row.
        empty = sb.conf.faults.add("GET /wiki/api/v2/spaces/{id}/pages", empty_page=True, skip=0, times=4)
        result = dg.materialize(
            [page_reconciliation], partition_key=key, instance=instance, resources=resources, raise_on_error=False
        )
    after = db_state(migrated_db_url, key)
    assert after["pages"] == before["pages"] and after["chunks"] == before["chunks"]
    assert result.success and asset_metadata(result, "page_reconciliation")["deleted"] == 0
    assert empty.applied == 4


def test_a_page_trashed_between_the_listing_and_its_fetch_is_recorded_not_fatal(migrated_db_url, instance, site):
    key = only_space(site)
    with sandbox_servers(site) as sb:
        resources = _resources(sb, migrated_db_url)
        sync_space(instance, resources, key)
        # Two pages changed in ways CQL cannot see, so reconciliation fetches them by id ...
        home = site.live_pages(key)[0].id
        deep = [p for p in site.live_pages(key) if len(p.ancestors) >= 2 and not site.child_ids(p.id)]
        moved, victim = deep[0], deep[1]
        for page in (moved, victim):
            site.move_page(page.id, home)
        # ... and one of them is trashed while the fetch by id is on its way.
        gate = sb.conf.faults.add(SEARCH, query={"cql": "*id in*"}, delay=0.5, times=1)
        trasher = threading.Thread(
            target=lambda: wait_until(lambda: gate.seen >= 1) and site.trash_page(victim.id), daemon=True
        )
        trasher.start()
        result = dg.materialize(
            [page_reconciliation], partition_key=key, instance=instance, resources=resources, raise_on_error=False
        )
        trasher.join(5)
        assert result.success
        meta = asset_metadata(result, "page_reconciliation")
        assert meta["requeued"] == 1 and victim.id in meta["vanished_page_ids"]
        sync_space(instance, resources, key)  # the requeued page lands
        # The next reconciliation removes the trashed page.
        dg.materialize([page_reconciliation], partition_key=key, instance=instance, resources=resources)
    state = db_state(migrated_db_url, key)
    assert state["pages"][victim.id]["is_deleted"] and victim.id not in state["chunks"]
    assert state["pages"][moved.id]["path"] == f"/{home}/{moved.id}"


def test_a_401_mid_run_fails_clearly_and_keeps_the_watermark(migrated_db_url, instance, site):
    key = only_space(site)
    with sandbox_servers(site) as sb:
        resources = _resources(sb, migrated_db_url)
        sync_space(instance, resources, key)
        watermark = db_state(migrated_db_url, key)["source"]["last_sync_timestamp"]
        for i, page in enumerate(site.live_pages(key)[:25]):
            site.clock.advance(seconds=61)
            site.edit_page(page.id, body=f"<p>edit {i}</p>")
        sb.conf.faults.add(SEARCH, status=401, skip=1, times=1)  # the token is revoked after one page
        result = sync_space(instance, resources, key, raise_on_error=False)
        assert not result.success
        message = step_failure_message(result)
        assert message.count("\n") == 0 and "rejected the credentials (HTTP 401)" in message
        assert "CONFLUENCE_EMAIL and CONFLUENCE_API_TOKEN" in message
        mid = db_state(migrated_db_url, key)
        assert mid["source"]["last_sync_timestamp"] == watermark
        sync_space(instance, resources, key)  # credentials fixed: the next run finishes the job
    assert_matches_site(site, migrated_db_url, key)
    assert db_state(migrated_db_url, key)["source"]["last_sync_timestamp"] > watermark


# ---------------------------------------------------------------------------------------------- embeddings


def test_embedding_429s_with_retry_after_and_500s_are_survived(migrated_db_url, instance, site):
    key = only_space(site)
    with sandbox_servers(site) as sb:
        limited = sb.emb.faults.add(EMBED, status=429, retry_after=0.2, times=2)
        failing = sb.emb.faults.add(EMBED, status=500, skip=3, times=2)
        resources = resources_for(sb, migrated_db_url, embeddings={"batch_size": 16})
        sync_space(instance, resources, key)
    assert limited.applied == 2 and failing.applied == 2
    assert_matches_site(site, migrated_db_url, key)


def test_one_over_long_input_is_reported_alone_and_the_rest_of_its_batch_lands(embedded_server):
    from confluence_assets.sandbox import EmbeddingsServer

    texts = [f"ordinary chunk number {i} about zeppelins" for i in range(64)]
    texts[37] = " ".join(f"word{i}" for i in range(9000))  # over the model's 8,191 tokens
    with EmbeddingsServer() as emb:
        embedder = Embedder(model="text-embedding-3-small", dimensions=1536, api_key=emb.api_key, base_url=emb.url)
        result = embedder.embed(texts)
        requests = emb.stats.requests
    assert set(result.rejected) == {37} and "maximum context length" in result.rejected[37]
    assert all(v is not None for i, v in enumerate(result.vectors) if i != 37) and result.vectors[37] is None
    assert requests <= 1 + 2 * 6  # bisection: two requests per level of a 64-input batch
    assert embedder.stats.inputs == 63


def test_exhausted_embedding_quota_fails_clearly_and_writes_nothing_half(migrated_db_url, instance, site):
    key = only_space(site)
    quota = json.dumps(
        {
            "error": {
                "message": "You exceeded your current quota, please check your plan and billing details.",
                "type": "insufficient_quota",
                "param": None,
                "code": "insufficient_quota",
            }
        }
    )
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url, embeddings={"batch_size": 16, "max_retries": 1})
        sb.emb.faults.add(EMBED, status=429, body=quota, skip=2, times=None)
        result = sync_space(instance, resources, key, raise_on_error=False)
        assert not result.success
        message = step_failure_message(result)
        assert "quota is exhausted" in message and message.count("\n") == 0
        mid = db_state(migrated_db_url, key)
        assert not mid["chunks"] and mid["source"].get("last_sync_timestamp") is None  # no page half-swapped
        assert mid["staged"] == len(site.live_pages(key))
        sb.emb.faults.clear()
        sync_space(instance, resources, key)
    assert_matches_site(site, migrated_db_url, key)


# ---------------------------------------------------------------------------------------------- database


def test_database_connections_dropped_mid_run_the_step_is_retried_and_converges(
    migrated_db_url, server_url, instance, site
):
    from confluence_assets.db.urls import database_name
    from confluence_assets_tests.conftest import _create_database, _drop_database

    key = only_space(site)
    reference_url = _create_database(server_url, "t_reference_dbdrop", template="ca_template_migrated")
    try:
        with sandbox_servers(site) as sb:
            resources = resources_for(sb, migrated_db_url, embeddings={"batch_size": 8})
            # The embedding step is slowed down; meanwhile every connection of the run is killed.
            gate = sb.emb.faults.add(EMBED, delay=1.0, skip=2, times=1)
            killed: list[int] = []
            killer = threading.Thread(
                target=lambda: (
                    wait_until(lambda: gate.seen >= 1)
                    and killed.append(terminate_backends(server_url, database_name(migrated_db_url)))
                ),
                daemon=True,
            )
            with InvariantReader(migrated_db_url, key) as reader:
                killer.start()
                result = sync_space(instance, resources, key, raise_on_error=False)
                killer.join(10)
                assert killed and killed[0] >= 2  # the step's connection and the space lock's
                retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
                assert result.success and len(retries) == 1, [e.message for e in retries]
                assert retries[0].step_key == "chunk_embeddings"
                logged = [
                    e.user_message
                    for e in instance.all_logs(result.run_id)
                    if "lost the database connection" in e.user_message and "retried" in e.user_message
                ]
                assert logged, "the reason of the retry is in the run's log"
                sync_space(instance, resources, key)  # and a run after it is a no-op
            sync_space(instance, resources_for(sb, reference_url), key)
        assert not reader.violations, reader.violations[:5]
        assert_matches_site(site, migrated_db_url, key)
        comparison = compare_databases(migrated_db_url, reference_url, key)
        assert not comparison.differences, comparison.differences
    finally:
        _drop_database(server_url, "t_reference_dbdrop")


def test_the_embedded_server_restarted_between_runs(migrated_db_url, embedded_server, instance, site):
    from confluence_assets.db import embedded

    key = only_space(site)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        sync_space(instance, resources, key)
        assert embedded.stop_embedded_server()
        assert not embedded.is_running()
        restarted = embedded.ensure_embedded_server()
        assert restarted.server_url == embedded_server.server_url
        site.clock.advance(minutes=3)
        edited = site.live_pages(key)[4]
        site.edit_page(edited.id, body="<p>after the restart</p>")
        result = sync_space(instance, resources, key)
    assert asset_metadata(result, "changed_pages")["pages_updated"] == 1
    assert_matches_site(site, migrated_db_url, key)
