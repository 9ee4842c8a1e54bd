"""Helpers for pipeline tests: sandbox servers, resources pointing at them, and ground-truth comparison.

Everything is real: the sandbox servers over HTTP (driven by atlassian-python-api and openai), the
embedded PostgreSQL, and Dagster's `materialize` on a real instance.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import psycopg

from confluence_assets import settings
from confluence_assets.defs.assets import build_assets
from confluence_assets.defs.partitions import SPACES_PARTITIONS_NAME
from confluence_assets.defs.resources import (
    ConfluenceResource,
    EmbeddingsResource,
    PostgresResource,
    SpaceSelectionResource,
)
from confluence_assets.sandbox import ConfluenceServer, EmbeddingsServer, Site, generate_corpus

# The code location's assets, built as it builds them (conftest.py sets a short step retry delay first).
ASSETS = build_assets(settings.load())
confluence_spaces = ASSETS.confluence_spaces
changed_pages = ASSETS.changed_pages
page_reconciliation = ASSETS.page_reconciliation
page_metadata = ASSETS.page_metadata
page_attachments = ASSETS.page_attachments
page_chunks = ASSETS.page_chunks
chunk_embeddings = ASSETS.chunk_embeddings
SYNC_ASSETS = [changed_pages, page_metadata, page_attachments, page_chunks, chunk_embeddings]
# A space's permission run, as the daily schedule requests it: the refresh, then what it staged again.
PERMISSION_ASSETS = [ASSETS.page_permissions, page_metadata, page_attachments, page_chunks, chunk_embeddings]
ALL_ASSETS = [
    confluence_spaces,
    changed_pages,
    page_reconciliation,
    page_metadata,
    page_attachments,
    page_chunks,
    chunk_embeddings,
]
SITE_ZONE = "Asia/Seoul"
SITE_NOW = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)  # the sandbox clock of every generated test site
SEARCH = "GET /wiki/rest/api/content/search"  # the CQL listing endpoint, as fault rules name it
DOWNLOAD = "GET /wiki/rest/api/content/{id}/child/attachment/{attachmentId}/download"  # redirects to:
MEDIA = "GET /media/file/{fileId}/binary"


def generated_site(seed: int, *, spaces: int = 1, pages: int = 20, empty_pages: int = 0) -> Site:
    """A sandbox site in Seoul time with a generated corpus (no large pages), its clock at SITE_NOW."""
    site = Site(timezone=SITE_ZONE)
    site.clock.set(SITE_NOW)
    generate_corpus(site, seed=seed, spaces=spaces, pages_per_space=pages, large_pages=0, empty_pages=empty_pages)
    return site


def only_space(site: Site) -> str:
    return next(iter(site.spaces))


def step_failure_message(result: dg.ExecuteInJobResult) -> str:
    """What the UI shows for the failed step: the Failure's description, else the innermost error."""
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    data = failure.step_failure_data
    if data.user_failure_data and data.user_failure_data.description:
        return data.user_failure_data.description
    error = data.error
    while error.cause is not None:  # Dagster wraps an unexpected exception: show what it wraps
        error = error.cause
    return error.message.strip()


@dataclass
class Sandbox:
    site: Site
    conf: ConfluenceServer
    emb: EmbeddingsServer


@contextmanager
def sandbox_servers(site: Site, **confluence_options: Any):
    """The two servers; ``confluence_options`` go to ConfluenceServer (``v1_removed``, ``rate_limit``, ...)."""
    with ConfluenceServer(site, **confluence_options) as conf, EmbeddingsServer() as emb:
        yield Sandbox(site, conf, emb)


def resources_for(sandbox: Sandbox, db_url: str, **overrides: Any) -> dict[str, Any]:
    confluence = dict(
        url=sandbox.conf.url,
        email=sandbox.conf.email,
        api_token=sandbox.conf.api_token,
        site_timezone=SITE_ZONE,
        backoff_seconds=0.01,
        backoff_max_seconds=0.05,
        retry_after_cap_seconds=0.5,
    )
    confluence.update(overrides.pop("confluence", {}))
    embeddings = dict(api_key=sandbox.emb.api_key, base_url=sandbox.emb.url, dimensions=1536, max_retries=3)
    embeddings.update(overrides.pop("embeddings", {}))
    return {
        "confluence": ConfluenceResource(**confluence),
        "database": PostgresResource(database_url=db_url),
        "embeddings": EmbeddingsResource(**embeddings),
        "space_selection": SpaceSelectionResource(**overrides.pop("space_selection", {})),
    }


def discover_spaces(instance: dg.DagsterInstance, resources: dict) -> dg.ExecuteInJobResult:
    result = dg.materialize([confluence_spaces], instance=instance, resources=resources)
    assert result.success
    return result


def sync_space(
    instance: dg.DagsterInstance, resources: dict, space_key: str, *, raise_on_error: bool = True, run_config=None
) -> dg.ExecuteInJobResult:
    if space_key not in instance.get_dynamic_partitions(SPACES_PARTITIONS_NAME):
        instance.add_dynamic_partitions(SPACES_PARTITIONS_NAME, [space_key])
    return dg.materialize(
        SYNC_ASSETS,
        partition_key=space_key,
        instance=instance,
        resources=resources,
        raise_on_error=raise_on_error,
        run_config=run_config,
        selection=[a.key for a in SYNC_ASSETS],
    )


def refresh_space_permissions(
    instance: dg.DagsterInstance, resources: dict, space_key: str, *, assets: list | None = None
) -> dg.ExecuteInJobResult:
    """The space's permission run (``assets``: a part of it); it must succeed."""
    chosen = assets or PERMISSION_ASSETS
    result = dg.materialize(chosen, partition_key=space_key, instance=instance, resources=resources)
    assert result.success, step_failure_message(result)
    return result


def asset_metadata(result: dg.ExecuteInJobResult, asset: str) -> dict[str, Any]:
    events = result.asset_materializations_for_node(asset)
    assert events, f"no materialization of {asset}"
    return {k: v.value for k, v in events[-1].metadata.items()}


def db_state(db_url: str, space_key: str) -> dict[str, Any]:
    """What the database holds for a space: pages and their chunks, for comparisons."""
    source_id = f"confluence_{space_key}"
    with psycopg.connect(db_url) as conn:
        pages = {
            pid: dict(title=t, version=v, indexed_version=iv, path=p, is_deleted=d)
            for pid, t, v, iv, p, d in conn.execute(
                """SELECT page_id, title, version, indexed_version, path, is_deleted FROM confluence_pages
                   WHERE source_id = %s""",
                (source_id,),
            )
        }
        chunks: dict[str, list[tuple]] = {}
        for pid, number, content, url, has_emb, h in conn.execute(
            """SELECT confluence_chunk_page_id(metadata), chunk_number, content, url, embedding_1536 IS NOT NULL,
                      metadata->>'content_hash'
               FROM archon_crawled_pages WHERE source_id = %s ORDER BY 1, 2""",
            (source_id,),
        ):
            chunks.setdefault(pid, []).append((number, content, url, has_emb, h))
        staged = conn.execute(
            "SELECT count(*) FROM confluence_sync_staged_pages WHERE source_id = %s AND stage <> 'failed'",
            (source_id,),
        ).fetchone()[0]
        source_meta = conn.execute("SELECT metadata FROM archon_sources WHERE source_id = %s", (source_id,)).fetchone()
        metadata = dict(
            conn.execute("SELECT page_id, metadata FROM confluence_pages WHERE source_id = %s", (source_id,)).fetchall()
        )
        chunk_keys = conn.execute(
            "SELECT url, chunk_number, count(*) FROM archon_crawled_pages WHERE source_id = %s GROUP BY 1, 2",
            (source_id,),
        ).fetchall()
    return {
        "pages": pages,
        "chunks": chunks,
        "staged": staged,
        "source": source_meta[0] if source_meta else None,
        "metadata": metadata,
        "chunk_keys": {(url, number): n for url, number, n in chunk_keys},
    }


# archon_sources.metadata keys every run rewrites (its bookkeeping), left out of table snapshots.
RUN_BOOKKEEPING = {"current_run_metrics", "sync_metrics", "last_sync_completed_at", "last_full_reconciliation"}


def table_snapshot(db_url: str, space_key: str) -> dict[str, Any]:
    """Every row the space owns, every column (updated_at and ids included), for "nothing changed"
    comparisons: confluence_pages, archon_crawled_pages, staging, and the source row without the
    bookkeeping each run writes (RUN_BOOKKEEPING, updated_at)."""
    source_id = f"confluence_{space_key}"
    with psycopg.connect(db_url) as conn:

        def rows(query: str) -> list[tuple]:
            return conn.execute(query, (source_id,)).fetchall()

        source = conn.execute(
            """SELECT source_url, source_display_name, title, summary, total_word_count, metadata
               FROM archon_sources WHERE source_id = %s""",
            (source_id,),
        ).fetchone()
        return {
            "confluence_pages": rows("SELECT * FROM confluence_pages WHERE source_id = %s ORDER BY page_id"),
            "archon_crawled_pages": rows(
                "SELECT * FROM archon_crawled_pages WHERE source_id = %s ORDER BY url, chunk_number"
            ),
            "staged_pages": rows("SELECT * FROM confluence_sync_staged_pages WHERE source_id = %s ORDER BY page_id"),
            "staged_chunks": rows(
                "SELECT source_id, page_id, chunk_number, content_hash FROM confluence_sync_staged_chunks "
                "WHERE source_id = %s ORDER BY page_id, chunk_number"
            ),
            "source": (*source[:-1], {k: v for k, v in source[-1].items() if k not in RUN_BOOKKEEPING}),
        }


def assert_matches_site(site: Site, db_url: str, space_key: str) -> dict[str, Any]:
    """Every live page present once with the sandbox's title, version, path (column and metadata.path),
    ancestors (ids and titles), children (ids, as a set), labels, creator and attachments (every one,
    beyond the expansion's 25 too); chunks exactly once per
    (url, chunk_number), all embedded; no page that is not live is searchable."""
    state = db_state(db_url, space_key)
    live = {p.id: p for p in site.live_pages(space_key)}
    stored_live = {pid: row for pid, row in state["pages"].items() if not row["is_deleted"]}
    assert set(stored_live) == set(live), (
        f"missing {sorted(set(live) - set(stored_live))[:5]}, extra {sorted(set(stored_live) - set(live))[:5]}"
    )
    for pid, snap in live.items():
        row, meta = stored_live[pid], state["metadata"][pid]
        assert row["version"] == snap.version and row["indexed_version"] == snap.version, (pid, row, snap.version)
        assert row["title"] == snap.title
        path = "/" + "/".join([*snap.ancestors, pid])
        assert row["path"] == path and meta["path"] == path, (pid, row["path"], meta["path"], snap.ancestors)
        ancestors = [(a["id"], a["title"]) for a in meta["ancestors"]]
        assert ancestors == list(zip(snap.ancestors, snap.ancestor_titles, strict=True)), (pid, ancestors)
        children = {c["id"] for c in meta["children"]}
        assert children == set(site.child_ids(pid)), (pid, sorted(children ^ set(site.child_ids(pid))))
        assert sorted(meta["labels"]) == sorted(snap.labels), (pid, meta["labels"], snap.labels)
        assert (meta["created_by"] or {}).get("account_id") == site.page(pid).author_id, (pid, meta["created_by"])
        listed = sorted(a["title"] for a in meta["asset_links"] if a["id"])  # id None: used, not listed
        assert listed == sorted(snap.attachments), (pid, len(listed), len(snap.attachments))
        chunks = state["chunks"].get(pid)
        assert chunks, f"page {pid} has no chunks"
        assert [c[0] for c in chunks] == list(range(len(chunks)))
        assert all(c[2].split("#")[0] == meta["page_url"] for c in chunks), (pid, chunks[0][2])  # a real link
        assert all(c[3] for c in chunks), f"page {pid} has unembedded chunks"
    assert set(state["chunks"]) <= set(live), "chunks of pages that are not live"
    twice = {key: n for key, n in state["chunk_keys"].items() if n != 1}
    assert not twice, f"chunks stored more than once per (url, chunk_number): {sorted(twice)[:5]}"
    assert state["staged"] == 0
    return state
