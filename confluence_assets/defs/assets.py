"""The asset graph: confluence_spaces -> changed_pages -> page_metadata -> page_chunks -> chunk_embeddings.

Asset bodies are thin: they resolve the partition, open a connection, take the space's lock, call one
plain step from confluence_assets.sync and turn its summary into metadata a user reads in the UI.
Nothing flows between assets in memory: each step reads and writes the durable staging tables.
"""

import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import dagster as dg
import psycopg

from confluence_assets.confluence.cql import InvalidTimeZoneError
from confluence_assets.confluence.errors import (
    ConfluenceAuthError,
    ConfluenceConfigError,
    ConfluenceError,
    ConfluenceNotFoundError,
    ConfluencePermissionError,
    ConfluenceRequestError,
)
from confluence_assets.confluence.keys import (
    InvalidSpaceKeyError,
    partition_key_to_space_key,
    source_id_for,
    space_key_to_partition_key,
)
from confluence_assets.content import ConversionError, chunk_markdown, convert_page
from confluence_assets.defs.partitions import SPACES_PARTITIONS_NAME, confluence_spaces_partitions_def
from confluence_assets.defs.reporting import changes_table, failures_table, skipped_table, space_table
from confluence_assets.defs.resources import (
    ConfluenceResource,
    EmbeddingsResource,
    PostgresResource,
    SpaceSelectionResource,
)
from confluence_assets.embeddings import EmbeddingAuthError, EmbeddingConfigError, EmbeddingError, EmbeddingQuotaError
from confluence_assets.sync import checks, sources
from confluence_assets.sync.changes import stage_changes
from confluence_assets.sync.chunk_step import ChunkSettings, chunk_staged
from confluence_assets.sync.convert_step import convert_staged
from confluence_assets.sync.embed_step import embed_and_swap
from confluence_assets.sync.locks import space_lock
from confluence_assets.sync.reconcile import reconcile_space
from confluence_assets.sync.spaces import SelectionError, refresh_spaces

GROUP = "confluence"
CONFLUENCE_POOL = "confluence_api"  # limits concurrent Confluence-calling steps across runs
# Steps that call Confluence or the embeddings provider retry a transient failure (the provider still
# failing after the client's own retries, a lost database connection) twice, ~30 s then ~60 s later.
# Failures a retry cannot mend (credentials, settings, permissions, quota) raise allow_retries=False.
STEP_RETRY_POLICY = dg.RetryPolicy(
    max_retries=2,
    delay=float(os.environ.get("CONFLUENCE_STEP_RETRY_DELAY_SECONDS") or 30),
    backoff=dg.Backoff.EXPONENTIAL,
    jitter=dg.Jitter.PLUS_MINUS,
)
FINAL_ERRORS = (
    ConfluenceAuthError,
    ConfluenceConfigError,
    ConfluencePermissionError,
    ConfluenceNotFoundError,
    ConfluenceRequestError,
    EmbeddingAuthError,
    EmbeddingConfigError,
    EmbeddingQuotaError,
    InvalidSpaceKeyError,
    InvalidTimeZoneError,
    SelectionError,
    sources.InvalidStrategyError,
)


@contextmanager
def clear_failures() -> Iterator[None]:
    """Errors a user must act on fail the step with their one-line message as the failure description.
    A transient one is also logged first: Dagster's retry event shows only that a retry was requested."""
    try:
        yield
    except FINAL_ERRORS as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    except (ConfluenceError, EmbeddingError) as exc:
        raise _transient(str(exc)) from None
    except psycopg.OperationalError as exc:
        raise _transient(
            f"lost the database connection ({_first_line(exc)}); staged work is kept and the next "
            "attempt continues from it"
        ) from None


def _transient(description: str) -> dg.Failure:
    dg.get_dagster_logger().warning(f"{description} (the step is retried per its retry policy)")
    return dg.Failure(description=description)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _space(context: dg.AssetExecutionContext) -> tuple[str, str]:
    with clear_failures():
        space_key = partition_key_to_space_key(context.partition_key)
    return space_key, source_id_for(space_key)


@dg.asset(
    group_name=GROUP,
    kinds={"confluence", "postgres"},
    pool=CONFLUENCE_POOL,
    retry_policy=STEP_RETRY_POLICY,
    description=(
        "The Confluence spaces to sync: every space the credentials can see, filtered by the space "
        "selection (keys, type, status). Upserts one archon_sources row per space and keeps one "
        "`confluence_spaces` partition per selected space."
    ),
)
def confluence_spaces(
    context: dg.AssetExecutionContext,
    confluence: ConfluenceResource,
    database: PostgresResource,
    space_selection: SpaceSelectionResource,
) -> dg.MaterializeResult:
    started = time.monotonic()
    with clear_failures():
        api = confluence.api()
        with database.connect() as conn:
            existing = [
                partition_key_to_space_key(k) for k in context.instance.get_dynamic_partitions(SPACES_PARTITIONS_NAME)
            ]
            refresh = refresh_spaces(api, conn, existing, **space_selection.choice())
    selection = refresh.selection
    added = [space_key_to_partition_key(k) for k in refresh.added]
    removed = [space_key_to_partition_key(k) for k in refresh.removed]
    if added:
        context.instance.add_dynamic_partitions(SPACES_PARTITIONS_NAME, added)
    for key in removed:
        context.instance.delete_dynamic_partition(SPACES_PARTITIONS_NAME, key)
    for key in selection.invalid_keys:
        context.log.warning(f"space key {key!r} is not a valid space key for partitions; skipped")
    if selection.missing_includes:
        context.log.warning(f"included spaces not visible to these credentials: {selection.missing_includes}")
    context.log.info(f"{len(selection.selected)} spaces selected of {refresh.visible} visible; +{added} -{removed}")
    return dg.MaterializeResult(
        metadata={
            "spaces_visible": refresh.visible,
            "spaces_selected": len(selection.selected),
            "partitions_added": dg.MetadataValue.json(added),
            "partitions_removed": dg.MetadataValue.json(removed),
            "spaces": dg.MetadataValue.md(space_table(selection.selected)),
            "api_calls": api.stats.attempts,
            "duration_seconds": round(time.monotonic() - started, 2),
        }
    )


class ChangedPagesConfig(dg.Config):
    full_scan: bool = False  # list the whole space instead of changes since the watermark
    reprocess: bool = False  # treat unchanged pages as updated (after a converter/chunker upgrade)


@dg.asset(
    partitions_def=confluence_spaces_partitions_def,
    deps=[confluence_spaces],
    group_name=GROUP,
    kinds={"confluence", "postgres"},
    pool=CONFLUENCE_POOL,
    retry_policy=STEP_RETRY_POLICY,
    description=(
        "Pages of the space created or modified since the watermark (minus an overlap window), fetched "
        "with their bodies by CQL in the site's time zone, classified new/updated/unchanged against what "
        "is indexed and staged durably in confluence_sync_staged_pages. The first run loads the whole space."
    ),
)
def changed_pages(
    context: dg.AssetExecutionContext,
    config: ChangedPagesConfig,
    confluence: ConfluenceResource,
    database: PostgresResource,
) -> dg.MaterializeResult:
    space_key, source_id = _space(context)
    started = time.monotonic()
    with clear_failures():
        api = confluence.api()
        zone = confluence.zone()
        with space_lock(database.url, source_id), database.connect() as conn:
            summary = stage_changes(
                api,
                conn,
                space_key,
                run_id=context.run_id,
                overlap=confluence.overlap,
                zone=zone,
                full=config.full_scan,
                reprocess=config.reprocess,
            )
            reconciled = None
            if sources.get_sync_state(conn, source_id).deletion_strategy == "every_sync":
                reconciled = reconcile_space(api, conn, space_key, run_id=context.run_id)
                context.log.info(f"{space_key}: reconciled (every_sync): {reconciled.as_metadata()}")
            sources.record_run_metrics(
                conn,
                source_id,
                context.run_id,
                {
                    "pages_created": summary.new,
                    "pages_updated": summary.updated + summary.restored,
                    "pages_unchanged": summary.unchanged,
                    "pages_deleted": len(reconciled.deleted) if reconciled else 0,
                    "api_calls": api.stats.attempts,
                },
            )
    context.log.info(
        f"{space_key}: {summary.seen} pages listed, {summary.new} new, {summary.updated} updated, "
        f"{summary.restored} restored, {summary.unchanged} unchanged ({api.stats.attempts} API calls)"
    )
    return dg.MaterializeResult(
        metadata={
            "cql": summary.cql,
            "full_load": summary.full_load,
            "pages_listed": summary.seen,
            "pages_new": summary.new,
            "pages_updated": summary.updated,
            "pages_restored": summary.restored,
            "pages_unchanged": summary.unchanged,
            "pages_already_staged": summary.already_staged,
            "pages_skipped": len(summary.skipped),
            "skipped_pages": dg.MetadataValue.md(skipped_table(summary.skipped)),
            "attachment_requests": summary.attachment_requests,
            "api_calls": api.stats.attempts,
            "api_retries": api.stats.retries,
            "newest_change_seen": summary.newest_change.isoformat() if summary.newest_change else "none",
            "changed_pages": dg.MetadataValue.md(changes_table(summary.changes)),
            "reconciliation": dg.MetadataValue.json(reconciled.as_metadata() if reconciled else "not this sync"),
            "duration_seconds": round(time.monotonic() - started, 2),
        }
    )


class ReconciliationConfig(dg.Config):
    deletion_strategy: str | None = None  # set this space's strategy (weekly_reconciliation, every_sync, on_demand)


@dg.asset(
    partitions_def=confluence_spaces_partitions_def,
    deps=[confluence_spaces],
    group_name=GROUP,
    kinds={"confluence", "postgres"},
    pool=CONFLUENCE_POOL,
    retry_policy=STEP_RETRY_POLICY,
    description=(
        "Compares every live page id of the space (listed to the last cursor, ids only) with "
        "confluence_pages: pages gone from Confluence are soft-deleted and their chunks removed; pages newer "
        "than indexed (changes CQL missed), moved pages and restored pages are staged for page_metadata. "
        "A listing that fails part-way deletes nothing."
    ),
)
def page_reconciliation(
    context: dg.AssetExecutionContext,
    config: ReconciliationConfig,
    confluence: ConfluenceResource,
    database: PostgresResource,
) -> dg.MaterializeResult:
    space_key, source_id = _space(context)
    with clear_failures():
        api = confluence.api()
        with space_lock(database.url, source_id), database.connect() as conn:
            if config.deletion_strategy:
                sources.set_deletion_strategy(conn, source_id, config.deletion_strategy)
            summary = reconcile_space(api, conn, space_key, run_id=context.run_id)
    context.log.info(f"{space_key}: {summary.as_metadata()}")
    return dg.MaterializeResult(
        metadata={
            "live_pages": summary.live_pages,
            "stored_live_pages": summary.stored_live,
            "deleted": len(summary.deleted),
            "restored": len(summary.restored),
            "requeued": len(summary.requeued),
            "vanished": len(summary.vanished),
            "skipped": len(summary.skipped),
            "skipped_pages": dg.MetadataValue.md(skipped_table(summary.skipped)),
            "chunks_removed": summary.chunks_removed,
            "api_calls": summary.api_calls,
            "duration_seconds": round(summary.duration_seconds, 2),
            "deleted_page_ids": dg.MetadataValue.json(summary.deleted[:200]),
            "requeued_page_ids": dg.MetadataValue.json(summary.requeued[:200]),
            "restored_page_ids": dg.MetadataValue.json(summary.restored[:200]),
            "vanished_page_ids": dg.MetadataValue.json(summary.vanished[:200]),
        }
    )


@dg.asset(
    partitions_def=confluence_spaces_partitions_def,
    deps=[changed_pages, page_reconciliation],
    group_name=GROUP,
    kinds={"python", "postgres"},
    description=(
        "Converts each staged page's storage XHTML to Markdown and extracts its metadata (ancestors, "
        "children, authors, labels, Jira links, mentions, internal/external/asset links, headings), "
        "then upserts confluence_pages with the materialised path. Pages that cannot be converted are "
        "recorded with their error; the others land."
    ),
)
def page_metadata(context: dg.AssetExecutionContext, database: PostgresResource) -> dg.MaterializeResult:
    space_key, source_id = _space(context)
    started = time.monotonic()
    with clear_failures(), space_lock(database.url, source_id), database.connect() as conn:
        base_url = _base_url(conn, source_id)
        summary = convert_staged(
            conn,
            space_key,
            base_url=base_url,
            convert=convert_page,
            conversion_error=ConversionError,
            progress=lambda n: context.log.info(f"{space_key}: {n} pages converted"),
        )
        sources.record_run_metrics(
            conn, source_id, context.run_id, {"pages_converted": summary.converted, "pages_failed": len(summary.failed)}
        )
    for failure in summary.failed:
        context.log.warning(f"page {failure.page_id} ({failure.title}) failed: {failure.error}")
    return dg.MaterializeResult(
        metadata={
            "pages_converted": summary.converted,
            "pages_failed": len(summary.failed),
            "pages_moved": summary.moved,
            "internal_links_resolved_by_title": summary.links_resolved,
            "failed_pages": dg.MetadataValue.md(failures_table(summary.failed)),
            "duration_seconds": round(time.monotonic() - started, 2),
        }
    )


class PageChunksConfig(dg.Config):
    chunk_tokens: int = 800
    overlap_tokens: int = 80
    max_tokens: int = 8191  # the embedding model's input limit


@dg.asset(
    partitions_def=confluence_spaces_partitions_def,
    deps=[page_metadata],
    group_name=GROUP,
    kinds={"python", "postgres"},
    description=(
        "Splits each converted page into section-aware chunks (heading breadcrumb, code blocks and table "
        "rows kept whole where they fit) with a stable content hash, into confluence_sync_staged_chunks."
    ),
)
def page_chunks(
    context: dg.AssetExecutionContext, config: PageChunksConfig, database: PostgresResource
) -> dg.MaterializeResult:
    space_key, source_id = _space(context)
    started = time.monotonic()
    with clear_failures(), space_lock(database.url, source_id), database.connect() as conn:
        summary = chunk_staged(
            conn,
            space_key,
            base_url=_base_url(conn, source_id),
            chunker=chunk_markdown,
            settings=ChunkSettings(config.chunk_tokens, config.overlap_tokens, config.max_tokens),
            progress=lambda n: context.log.info(f"{space_key}: {n} pages chunked"),
        )
        sources.record_run_metrics(conn, source_id, context.run_id, {"chunks_staged": summary.chunks})
    for failure in summary.failed:
        context.log.warning(f"page {failure.page_id} ({failure.title}) failed: {failure.error}")
    return dg.MaterializeResult(
        metadata={
            "pages_chunked": summary.pages,
            "chunks": summary.chunks,
            "tokens_estimated": summary.tokens,
            "pages_failed": len(summary.failed),
            "failed_pages": dg.MetadataValue.md(failures_table(summary.failed)),
            "duration_seconds": round(time.monotonic() - started, 2),
        }
    )


CHECKS = {
    "every_live_page_has_chunks": "Every live page of the space has at least one chunk",
    "every_chunk_embedded": "No chunk of the space lacks an embedding for the configured dimension",
    "no_orphan_chunks": "No chunk belongs to a deleted or unknown page",
    "embedding_model_matches": "Every chunk is embedded with the configured model and dimension",
    "watermark_current": "The watermark reached the newest change this sync saw (nothing left staged)",
}


def _partitioned_check_specs(asset: str, checks: dict[str, str]) -> list[dg.AssetCheckSpec]:
    """One check per space partition, so the UI shows each space's results. Partitioned checks are a
    Dagster preview feature; its warning would otherwise greet every process that loads the code."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(name, asset=asset, description=d, partitions_def=confluence_spaces_partitions_def)
            for name, d in checks.items()
        ]


@dg.asset(
    partitions_def=confluence_spaces_partitions_def,
    deps=[page_chunks],
    group_name=GROUP,
    kinds={"openai", "postgres"},
    check_specs=_partitioned_check_specs("chunk_embeddings", CHECKS),
    retry_policy=STEP_RETRY_POLICY,
    description=(
        "Embeds only chunks whose content hash has no embedding yet for the configured model and dimension, "
        "in batches, then swaps each page's chunks into archon_crawled_pages in one transaction. Only then "
        "does the space's watermark advance."
    ),
)
def chunk_embeddings(
    context: dg.AssetExecutionContext, database: PostgresResource, embeddings: EmbeddingsResource
) -> dg.MaterializeResult:
    space_key, source_id = _space(context)
    started = time.monotonic()
    with clear_failures():
        embedder = embeddings.embedder()
        with space_lock(database.url, source_id), database.connect() as conn:
            summary = embed_and_swap(
                conn,
                space_key,
                embedder,
                progress=lambda what, n: context.log.info(f"{space_key}: {n} {what}"),
                connect=database.connect,
            )
            run_metrics = sources.record_run_metrics(
                conn,
                source_id,
                context.run_id,
                {
                    "chunks_created": summary.chunks_written,
                    "chunks_reused": summary.chunks_reused,
                    "embeddings_requested": summary.hashes_embedded,
                    "embedding_requests": embedder.stats.requests,
                    "embedding_tokens": embedder.stats.tokens,
                    "pages_failed": len(summary.failed),
                },
            )
            state_before = sources.get_sync_state(conn, source_id)
            watermark = sources.complete_sync(conn, source_id, _final_metrics(run_metrics))
            check_results = _check_results(
                conn, space_key, embedder.model, embedder.dimensions, state_before, watermark
            )
    for failure in summary.failed:
        context.log.warning(f"page {failure.page_id} ({failure.title}) failed: {failure.error}")
    return dg.MaterializeResult(
        metadata={
            "pages_swapped": summary.pages_swapped,
            "chunks_written": summary.chunks_written,
            "chunks_replaced": summary.chunks_deleted,
            "chunks_reused": summary.chunks_reused,
            "embeddings_requested": summary.hashes_embedded,
            "embedding_requests": embedder.stats.requests,
            "embedding_tokens": embedder.stats.tokens,
            "pages_failed": len(summary.failed),
            "failed_pages": dg.MetadataValue.md(failures_table(summary.failed)),
            "watermark": watermark.isoformat() if watermark else "none",
            "embedding_seconds": round(summary.embed_seconds, 2),
            "swap_seconds": round(summary.swap_seconds, 2),
            "duration_seconds": round(time.monotonic() - started, 2),
        },
        check_results=check_results,
    )


def _base_url(conn, source_id: str) -> str:
    return sources.get_sync_state(conn, source_id).metadata.get("confluence_base_url") or ""


def _final_metrics(run_metrics: dict) -> dict:
    metrics = {k: v for k, v in run_metrics.items() if k != "started_at"}
    started = run_metrics.get("started_at")
    if started:
        metrics["last_sync_duration_seconds"] = round(
            (datetime.now(UTC) - datetime.fromisoformat(started)).total_seconds(), 1
        )
    return metrics


def _check_results(conn, space_key, model, dimensions, state_before, watermark) -> list[dg.AssetCheckResult]:
    outcomes = {
        "every_live_page_has_chunks": checks.pages_without_chunks(conn, space_key),
        "every_chunk_embedded": checks.chunks_without_embedding(conn, space_key, dimensions),
        "no_orphan_chunks": checks.orphan_chunks(conn, space_key),
        "embedding_model_matches": checks.embedding_dimension_matches(conn, space_key, model, dimensions),
        "watermark_current": checks.watermark_current(state_before, watermark, conn),
    }
    return [
        dg.AssetCheckResult(
            check_name=name,
            asset_key="chunk_embeddings",
            passed=outcome.passed,
            description=outcome.description,
            metadata=outcome.metadata,
            severity=dg.AssetCheckSeverity.ERROR if name != "watermark_current" else dg.AssetCheckSeverity.WARN,
        )
        for name, outcome in outcomes.items()
    ]
