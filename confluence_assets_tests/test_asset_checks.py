"""The five asset checks of chunk_embeddings, each shown failing on the kind of damage it exists for.

One sandbox space is synced once (dg.materialize against the sandbox servers, embedded PostgreSQL).
Each test damages that database inside a transaction it rolls back, and runs every check: the damaged
one fails with a description naming what is wrong, the others still pass. One test runs Dagster again
on a copy of the damaged database and reads the five results from the run.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from confluence_assets.db.urls import with_database
from confluence_assets.defs.checks import CHECKS
from confluence_assets.defs.partitions import SPACES_PARTITIONS_NAME
from confluence_assets.sandbox import Site
from confluence_assets.sync import checks, sources
from confluence_assets.sync.staging import upsert_staged_pages
from confluence_assets_tests.pipeline_support import (
    changed_pages,
    chunk_embeddings,
    generated_site,
    only_space,
    resources_for,
    sandbox_servers,
    sync_space,
)

MODEL, DIMENSIONS = "text-embedding-3-small", 1536  # what resources_for configures
FIVE = set(CHECKS)


@dataclass
class Synced:
    url: str
    server_url: str
    database: str
    key: str
    site: Site
    result: dg.ExecuteInJobResult


def _create(server_url: str, name: str, template: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
    return with_database(server_url, name)


def _drop(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def synced(server_url, _migrated_template):
    database = f"t_checks_{uuid.uuid4().hex[:10]}"
    url = _create(server_url, database, _migrated_template)
    site = generated_site(23, pages=8)
    key = only_space(site)
    with sandbox_servers(site) as sb, dg.DagsterInstance.ephemeral() as instance:
        result = sync_space(instance, resources_for(sb, url), key)
    yield Synced(url, server_url, database, key, site, result)
    _drop(server_url, database)


@pytest.fixture
def conn(synced):
    """A connection whose changes are rolled back: every test damages the same synced space afresh."""
    with psycopg.connect(synced.url) as conn:
        yield conn
        conn.rollback()


def run_checks(conn: psycopg.Connection, key: str, watermark=...) -> dict[str, checks.CheckOutcome]:
    """The five checks as chunk_embeddings runs them, after a sync whose watermark is ``watermark``
    (default: the stored one); the watermark check also reads the database."""
    state = sources.get_sync_state(conn, f"confluence_{key}")
    watermark = state.watermark if watermark is ... else watermark
    return {
        "every_live_page_has_chunks": checks.pages_without_chunks(conn, key),
        "every_chunk_embedded": checks.chunks_without_embedding(conn, key, DIMENSIONS),
        "no_orphan_chunks": checks.orphan_chunks(conn, key),
        "embedding_model_matches": checks.embedding_dimension_matches(conn, key, MODEL, DIMENSIONS),
        "watermark_current": checks.watermark_current(state, watermark, conn),
    }


def failing(outcomes: dict[str, checks.CheckOutcome]) -> set[str]:
    return {name for name, outcome in outcomes.items() if not outcome.passed}


def a_page(conn: psycopg.Connection, key: str, n: int = 0) -> tuple[str, str]:
    """The n-th live page (by id) that has chunks: (page id, title)."""
    return conn.execute(
        """SELECT p.page_id, p.title FROM confluence_pages p
           WHERE p.source_id = %s AND NOT p.is_deleted
             AND EXISTS (SELECT 1 FROM archon_crawled_pages c WHERE c.metadata->>'page_id' = p.page_id)
           ORDER BY p.page_id OFFSET %s LIMIT 1""",
        (f"confluence_{key}", n),
    ).fetchone()


def a_chunk(conn: psycopg.Connection, page_id: str) -> int:
    return conn.execute(
        "SELECT min(id) FROM archon_crawled_pages WHERE metadata->>'page_id' = %s", (page_id,)
    ).fetchone()[0]


# A chunk's Confluence page id is metadata confluence_page_id (page_id too in the seed layout):
# confluence_chunk_page_id, sql/0.1.0/090_confluence_archon_pages.sql.
UNKNOWN_PAGE = """metadata || '{"page_id": "999000111", "confluence_page_id": "999000111"}'"""


def copy_chunk_as(conn: psycopg.Connection, chunk_id: int, metadata_sql: str, url: str) -> None:
    """A copy of a chunk with other metadata (``metadata_sql`` is an SQL expression over ``metadata``)."""
    conn.execute(
        f"""INSERT INTO archon_crawled_pages (url, chunk_number, content, metadata, source_id, embedding_1536,
                                              embedding_model, embedding_dimension)
            SELECT %s, chunk_number, content, {metadata_sql}, source_id, embedding_1536, embedding_model,
                   embedding_dimension
            FROM archon_crawled_pages WHERE id = %s""",  # noqa: S608 - test-written SQL expressions only
        (url, chunk_id),
    )


# -- a clean sync --------------------------------------------------------------------------------------


def test_a_clean_sync_passes_every_check(synced, conn):
    outcomes = run_checks(conn, synced.key)
    assert set(outcomes) == FIVE and failing(outcomes) == set()
    live = len(synced.site.live_pages(synced.key))
    assert outcomes["every_live_page_has_chunks"].description == f"all {live} live pages have chunks"
    assert outcomes["embedding_model_matches"].description == f"every chunk is embedded with {MODEL}/{DIMENSIONS}"
    assert outcomes["watermark_current"].metadata["pages_unfinished"] == 0


def test_a_full_materialize_reports_all_five_check_results(synced):
    evaluations = [
        e for e in synced.result.get_asset_check_evaluations() if e.asset_key == dg.AssetKey("chunk_embeddings")
    ]
    assert Counter(e.check_name for e in evaluations) == Counter(FIVE)  # each once, none missing
    for e in evaluations:
        assert e.passed, (e.check_name, e.description)
        assert e.asset_key == dg.AssetKey("chunk_embeddings") and e.partition == synced.key
        assert e.description
    severity = {e.check_name: e.severity for e in evaluations}
    assert severity.pop("watermark_current") == dg.AssetCheckSeverity.WARN
    assert set(severity.values()) == {dg.AssetCheckSeverity.ERROR}


# -- each kind of damage -------------------------------------------------------------------------------


def test_a_live_page_without_chunks(synced, conn):
    page_id, title = a_page(conn, synced.key)
    conn.execute("DELETE FROM archon_crawled_pages WHERE metadata->>'page_id' = %s", (page_id,))
    outcomes = run_checks(conn, synced.key)
    assert failing(outcomes) == {"every_live_page_has_chunks"}
    outcome = outcomes["every_live_page_has_chunks"]
    live = len(synced.site.live_pages(synced.key))
    assert outcome.description == f"1 of {live} live pages without chunks (not searchable): {page_id} {title!r}"
    assert outcome.metadata["pages_without_chunks"] == 1 and outcome.metadata["examples"] == [f"{page_id} {title!r}"]


def test_a_page_whose_chunks_sit_in_another_space_has_none(synced, conn):
    page_id, title = a_page(conn, synced.key)
    conn.execute(
        """INSERT INTO archon_sources (source_id, source_url, source_display_name, title, metadata)
           VALUES ('confluence_ELSEWHERE', 'x', 'x', 'x', '{}')"""
    )
    conn.execute(
        "UPDATE archon_crawled_pages SET source_id = 'confluence_ELSEWHERE' WHERE metadata->>'page_id' = %s",
        (page_id,),
    )
    outcomes = run_checks(conn, synced.key)
    assert failing(outcomes) == {"every_live_page_has_chunks"}
    assert page_id in outcomes["every_live_page_has_chunks"].description
    elsewhere = checks.orphan_chunks(conn, "ELSEWHERE")  # and there they are orphans
    assert not elsewhere.passed and "of a page of another space" in elsewhere.description


def test_a_chunk_without_embedding(synced, conn):
    page_id, _ = a_page(conn, synced.key, 1)
    conn.execute("UPDATE archon_crawled_pages SET embedding_1536 = NULL WHERE id = %s", (a_chunk(conn, page_id),))
    outcomes = run_checks(conn, synced.key)
    assert failing(outcomes) == {"every_chunk_embedded"}
    outcome = outcomes["every_chunk_embedded"]
    assert outcome.description == (
        f"1 chunk without a {DIMENSIONS}-d embedding (vector search misses them), on 1 page: page {page_id}: 1"
    )
    assert outcome.metadata["chunks"] == 1


@pytest.mark.parametrize("damage", ["page deleted", "page unknown", "page row gone", "no page id"])
def test_an_orphan_chunk(synced, conn, damage):
    page_id, _ = a_page(conn, synced.key, 2)
    chunks = conn.execute(
        "SELECT count(*) FROM archon_crawled_pages WHERE metadata->>'page_id' = %s", (page_id,)
    ).fetchone()[0]
    if damage == "page deleted":  # soft-deleted, its chunks left behind
        conn.execute("UPDATE confluence_pages SET is_deleted = TRUE, deleted_at = now() WHERE page_id = %s", (page_id,))
        expected, reason, orphans = page_id, "deleted page", chunks
    elif damage == "page unknown":  # a chunk of a page the space never had
        copy_chunk_as(conn, a_chunk(conn, page_id), UNKNOWN_PAGE, "confluence://X/1")
        expected, reason, orphans = "999000111", "unknown page", 1
    elif damage == "page row gone":
        conn.execute("DELETE FROM confluence_pages WHERE page_id = %s", (page_id,))
        expected, reason, orphans = page_id, "unknown page", chunks
    else:
        copy_chunk_as(conn, a_chunk(conn, page_id), "metadata - 'page_id' - 'confluence_page_id'", "confluence://X/2")
        expected, reason, orphans = "-", "no page id", 1
    outcomes = run_checks(conn, synced.key)
    assert failing(outcomes) == {"no_orphan_chunks"}
    outcome = outcomes["no_orphan_chunks"]
    assert outcome.passed is False and outcome.metadata["orphan_chunks"] == orphans
    assert outcome.description.startswith(f"{orphans} chunk{'s' if orphans > 1 else ''} belonging to no live page (")
    assert f"{expected} ({reason}): {orphans}" in outcome.description
    assert outcome.metadata["by_reason"] == {reason: orphans}


def test_chunks_of_another_model_or_dimension(synced, conn):
    first, _ = a_page(conn, synced.key, 0)
    second, _ = a_page(conn, synced.key, 1)
    # Same dimension, another model: its vectors live in another space, not comparable.
    conn.execute(
        "UPDATE archon_crawled_pages SET embedding_model = 'text-embedding-ada-002' WHERE id = %s",
        (a_chunk(conn, first),),
    )
    outcomes = run_checks(conn, synced.key)
    assert failing(outcomes) == {"embedding_model_matches"}
    assert outcomes["embedding_model_matches"].description == (
        f"1 chunk embedded with another model/dimension than {MODEL}/{DIMENSIONS} (text-embedding-ada-002/1536: 1); "
        "their vectors are not comparable with the query's"
    )
    # A 768-d model: no 1536-d vector either.
    conn.execute(
        """UPDATE archon_crawled_pages SET embedding_768 = array_fill(0.5, ARRAY[768])::vector,
                  embedding_1536 = NULL, embedding_model = 'nomic-embed-text', embedding_dimension = 768
           WHERE metadata->>'page_id' = %s""",
        (second,),
    )
    outcomes = run_checks(conn, synced.key)
    assert failing(outcomes) == {"embedding_model_matches", "every_chunk_embedded"}
    outcome = outcomes["embedding_model_matches"]
    assert "nomic-embed-text/768" in outcome.description and "text-embedding-ada-002/1536: 1" in outcome.description
    assert outcome.metadata["by_model"]["nomic-embed-text/768"] >= 1


def _newest_indexed(conn: psycopg.Connection, key: str) -> tuple[str, str, datetime]:
    page_id, title, when = conn.execute(
        """SELECT page_id, title, last_modified FROM confluence_pages WHERE source_id = %s AND NOT is_deleted
           ORDER BY last_modified DESC, page_id LIMIT 1""",
        (f"confluence_{key}",),
    ).fetchone()
    return page_id, title, when.astimezone(UTC)


def test_a_watermark_behind_the_newest_staged_change(synced, conn):
    source_id = f"confluence_{synced.key}"
    state = sources.get_sync_state(conn, source_id)
    assert state.watermark == state.pending_watermark == _newest_indexed(conn, synced.key)[2]
    behind = state.watermark - timedelta(hours=1)
    sources.merge_metadata(conn, source_id, {"last_sync_timestamp": behind.isoformat()})
    outcomes = run_checks(conn, synced.key)
    assert failing(outcomes) == {"watermark_current"}
    description = outcomes["watermark_current"].description
    assert description.startswith(f"watermark {behind.isoformat()} did not reach the newest change: ")
    assert f"the newest change staged is {state.pending_watermark.isoformat()}" in description
    # The check as chunk_embeddings calls it (no connection) finds this one too.
    assert not checks.watermark_current(sources.get_sync_state(conn, source_id), behind).passed


def test_no_watermark_although_pages_are_indexed(synced, conn):
    # The sync state lost (or never had) its watermark and pending watermark while pages are indexed:
    # without the database the check has nothing to compare with and passes.
    source_id = f"confluence_{synced.key}"
    _, _, newest = _newest_indexed(conn, synced.key)
    conn.execute(
        """UPDATE archon_sources SET metadata = metadata - 'last_sync_timestamp' - 'pending_sync_watermark'
           WHERE source_id = %s""",
        (source_id,),
    )
    state = sources.get_sync_state(conn, source_id)
    assert state.watermark is None and state.pending_watermark is None
    assert checks.watermark_current(state, None).passed  # blind without the database
    outcomes = run_checks(conn, synced.key)
    assert failing(outcomes) == {"watermark_current"}
    live = len(synced.site.live_pages(synced.key))
    assert outcomes["watermark_current"].description == (
        f"watermark none did not reach the newest change: {live} live pages indexed (newest change "
        f"{newest.isoformat()}) but no watermark: every sync is a full load"
    )


def test_a_watermark_behind_the_newest_indexed_change_is_reported_not_failed(synced, conn):
    # What reconciliation leaves when it indexes a change CQL had not listed: the next sync catches up.
    source_id = f"confluence_{synced.key}"
    _, _, newest = _newest_indexed(conn, synced.key)
    behind = (newest - timedelta(hours=1)).isoformat()
    sources.merge_metadata(conn, source_id, {"last_sync_timestamp": behind, "pending_sync_watermark": behind})
    outcome = run_checks(conn, synced.key)["watermark_current"]
    assert outcome.passed and outcome.metadata["newest_change_indexed"] == newest.isoformat()
    assert outcome.metadata["watermark"] == behind


def test_a_watermark_held_back_by_a_page_left_staged(synced, conn):
    # What chunk_embeddings sees when a staged page is not indexed yet: complete_sync keeps the watermark.
    source_id = f"confluence_{synced.key}"
    page_id, title = a_page(conn, synced.key, 3)
    newest = _newest_indexed(conn, synced.key)[2] + timedelta(minutes=5)
    version = conn.execute("SELECT version FROM confluence_pages WHERE page_id = %s", (page_id,)).fetchone()[0]
    upsert_staged_pages(conn, [(source_id, page_id, version + 1, title, newest, "updated", json.dumps({}), "run-x")])
    sources.raise_pending_watermark(conn, source_id, newest)
    state_before = sources.get_sync_state(conn, source_id)
    watermark = sources.complete_sync(conn, source_id, {})
    assert watermark < newest
    outcomes = run_checks(conn, synced.key, watermark)
    assert failing(outcomes) == {"watermark_current"}
    outcome = checks.watermark_current(state_before, watermark, conn)
    assert not outcome.passed and outcome.metadata["pages_unfinished"] == 1
    assert f"the newest change staged is {newest.isoformat()}" in outcome.description
    assert f"1 staged page not indexed yet (newest change {newest.isoformat()})" in outcome.description
    assert not checks.watermark_current(state_before, watermark).passed  # as chunk_embeddings calls it


# -- the same damage through Dagster ---------------------------------------------------------------------


def test_dagster_reports_each_failing_check_with_its_description(synced):
    """On a copy of the synced database: four kinds of damage, a page edited in Confluence and staged but
    not indexed, then chunk_embeddings alone. Its five check results fail, each saying why."""
    database = f"t_checks_{uuid.uuid4().hex[:10]}"
    url = _create(synced.server_url, database, synced.database)
    try:
        with psycopg.connect(url) as db:
            without, _ = a_page(db, synced.key, 0)
            unembedded, _ = a_page(db, synced.key, 1)
            other_model, _ = a_page(db, synced.key, 2)
            edited, _ = a_page(db, synced.key, 3)
            db.execute("DELETE FROM archon_crawled_pages WHERE metadata->>'page_id' = %s", (without,))
            db.execute(
                "UPDATE archon_crawled_pages SET embedding_1536 = NULL WHERE id = %s", (a_chunk(db, unembedded),)
            )
            copy_chunk_as(db, a_chunk(db, edited), UNKNOWN_PAGE, "confluence://X/1")
            db.execute(
                "UPDATE archon_crawled_pages SET embedding_model = 'text-embedding-ada-002' WHERE id = %s",
                (a_chunk(db, other_model),),
            )
        synced.site.edit_page(edited, body="<p>An edit staged but not indexed yet.</p>")
        with sandbox_servers(synced.site) as sb, dg.DagsterInstance.ephemeral() as instance:
            resources = resources_for(sb, url)
            instance.add_dynamic_partitions(SPACES_PARTITIONS_NAME, [synced.key])
            for asset in (changed_pages, chunk_embeddings):
                result = dg.materialize([asset], partition_key=synced.key, instance=instance, resources=resources)
                assert result.success  # failed checks do not fail the run; they show on the asset
        evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert len(result.get_asset_check_evaluations()) == 5 and set(evaluations) == FIVE
        assert {name for name, e in evaluations.items() if e.passed} == set()
        assert without in evaluations["every_live_page_has_chunks"].description
        assert f"page {unembedded}: 1" in evaluations["every_chunk_embedded"].description
        assert "999000111 (unknown page): 1" in evaluations["no_orphan_chunks"].description
        assert "text-embedding-ada-002/1536: 1" in evaluations["embedding_model_matches"].description
        assert "the newest change staged is" in evaluations["watermark_current"].description
    finally:
        _drop(synced.server_url, database)
