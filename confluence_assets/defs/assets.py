"""The asset graph: confluence_spaces -> changed_pages -> page_metadata -> page_attachments -> page_chunks ->
chunk_embeddings,
page_reconciliation beside changed_pages, and page_permissions -> confluence_groups beside them
(defs/permissions.py).

Asset bodies are thin: inside :func:`~confluence_assets.defs.execution.space_step` (the partition's space,
its lock, a connection) they call one plain step of confluence_assets.sync and return its summary's
figures as metadata. Nothing flows between assets in memory: each step reads and writes the durable
staging tables. :func:`build_assets` makes them with the step retry policy of the loaded settings.
"""

import time
from dataclasses import dataclass, fields
from functools import partial

import dagster as dg

from confluence_assets import settings
from confluence_assets.content import ConversionError, chunk_markdown, convert_page
from confluence_assets.defs.attachments import attachment_options, build_attachment_asset
from confluence_assets.defs.checks import (
    CheckInputs,
    check_results,
    check_specs,
    mass_deletion_check_spec,
    mass_deletion_result,
)
from confluence_assets.defs.execution import (
    CONFLUENCE_POOL,
    clear_failures,
    embeddings_freshness,
    space_step,
    step_retry_policy,
)
from confluence_assets.defs.partitions import (
    apply_partition_requests,
    confluence_spaces_partitions_def,
    partition_requests,
    space_keys,
)
from confluence_assets.defs.permissions import build_permission_assets
from confluence_assets.defs.reporting import changes_table, skipped_table, space_refresh_metadata
from confluence_assets.defs.resources import (
    ConfluenceResource,
    EmbeddingsResource,
    PostgresResource,
    SpaceSelectionResource,
)
from confluence_assets.sync import sources
from confluence_assets.sync.changes import stage_changes
from confluence_assets.sync.chunk_step import ChunkSettings, chunk_staged
from confluence_assets.sync.convert_step import convert_staged
from confluence_assets.sync.embed_step import embed_and_swap
from confluence_assets.sync.permission_refresh import read_space_permissions_once, space_summaries
from confluence_assets.sync.reconcile import reconcile_space
from confluence_assets.sync.spaces import refresh_spaces

GROUP = "confluence"


class ChangedPagesConfig(dg.Config):
    full_scan: bool = False  # list the whole space instead of changes since the watermark
    reprocess: bool = False  # treat unchanged pages as updated (after a converter/chunker upgrade)
    confirm_mass_deletion: bool = False  # every_sync spaces: delete beyond CONFLUENCE_MASS_DELETION_LIMIT


class ReconciliationConfig(dg.Config):
    deletion_strategy: str | None = None  # set this space's strategy (weekly_reconciliation, every_sync, on_demand)
    # carry out deletions beyond CONFLUENCE_MASS_DELETION_LIMIT (after checking why so many pages are gone)
    confirm_mass_deletion: bool = False


class PageChunksConfig(dg.Config):
    chunk_tokens: int = 800
    overlap_tokens: int = 80
    max_tokens: int | None = None  # None: the embedding model's input limit (EmbeddingsResource.chunk_token_limit)


@dataclass(frozen=True)
class SyncAssets:
    confluence_spaces: dg.AssetsDefinition
    changed_pages: dg.AssetsDefinition
    page_reconciliation: dg.AssetsDefinition
    page_metadata: dg.AssetsDefinition
    page_attachments: dg.AssetsDefinition
    page_chunks: dg.AssetsDefinition
    chunk_embeddings: dg.AssetsDefinition
    page_permissions: dg.AssetsDefinition
    confluence_groups: dg.AssetsDefinition

    @property
    def all(self) -> list[dg.AssetsDefinition]:
        return [getattr(self, f.name) for f in fields(self)]


def build_assets(loaded: settings.Settings) -> SyncAssets:
    """The nine assets, their Confluence- and embedding-calling steps retried per ``loaded.automation``."""
    retry = step_retry_policy(loaded.automation)
    space_asset = partial(dg.asset, partitions_def=confluence_spaces_partitions_def, group_name=GROUP)
    calls_confluence = {"kinds": {"confluence", "postgres"}, "pool": CONFLUENCE_POOL, "retry_policy": retry}

    @dg.asset(
        group_name=GROUP,
        **calls_confluence,
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
                refresh = refresh_spaces(api, conn, space_keys(context.instance), **space_selection.choice())
                permissions = space_summaries(conn, [s.key for s in refresh.selection.selected])
        apply_partition_requests(context.instance, partition_requests(refresh.added, refresh.removed))
        selection = refresh.selection
        for key in selection.invalid_keys:
            context.log.warning(f"space key {key!r} is not a valid space key for partitions; skipped")
        if selection.missing_includes:
            context.log.warning(f"included spaces not visible to these credentials: {selection.missing_includes}")
        if refresh.deleted_in_archon:
            context.log.warning(
                f"spaces whose source was deleted in Archon, left out until `confluence-assets restore-space KEY`: "
                f"{refresh.deleted_in_archon}"
            )
        context.log.info(
            f"{len(selection.selected)} spaces selected of {refresh.visible} visible; "
            f"+{refresh.added} -{refresh.removed}"
        )
        return dg.MaterializeResult(
            metadata={
                **space_refresh_metadata(refresh, permissions),
                "api_calls": api.stats.attempts,
                "duration_seconds": round(time.monotonic() - started, 2),
            }
        )

    @space_asset(
        deps=[confluence_spaces],
        **calls_confluence,
        check_specs=[mass_deletion_check_spec("changed_pages")],
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
        with space_step(context, database) as step:
            api = confluence.api()
            summary = stage_changes(
                api,
                step.conn,
                step.space_key,
                run_id=context.run_id,
                overlap=confluence.overlap,
                zone=confluence.zone(),
                full=config.full_scan,
                reprocess=config.reprocess,
                rendered_macros=confluence.rendered_macros,
                content_types=confluence.content_types,
                child_types=loaded.attachments.child_types,
            )
            # A new space: who may read it now, not at the first scheduled permission refresh.
            permission_requests = read_space_permissions_once(api, step.conn, step.space_key)
            reconciled = None
            if sources.deletion_strategy(step.conn, step.source_id) == sources.EVERY_SYNC:
                reconciled = reconcile_space(
                    api,
                    step.conn,
                    step.space_key,
                    run_id=context.run_id,
                    rendered_macros=confluence.rendered_macros,
                    content_types=confluence.content_types,
                    child_types=loaded.attachments.child_types,
                    deletion_limit=loaded.mass_deletion,
                    confirm_mass_deletion=config.confirm_mass_deletion,
                )
                context.log.info(f"{step.space_key}: reconciled ({sources.EVERY_SYNC}): {reconciled.as_metadata()}")
            figures = summary.metrics()
            step.record(
                {
                    **figures,
                    "pages_deleted": len(reconciled.deleted) if reconciled else 0,
                    "space_permission_requests": permission_requests,
                    "api_calls": api.stats.attempts,
                }
            )
        context.log.info(
            f"{step.space_key}: {summary.seen} pages listed, {summary.new} new, {summary.updated} updated, "
            f"{summary.restored} restored, {summary.unchanged} unchanged ({api.stats.attempts} API calls)"
        )
        return step.result(
            {
                "cql": summary.cql,
                "full_load": summary.full_load,
                **figures,
                "skipped_pages": dg.MetadataValue.md(skipped_table(summary.skipped)),
                "restriction_unknown_page_ids": dg.MetadataValue.json(
                    [p for p, _ in summary.restrictions_unknown][:200]
                ),
                "space_permission_requests": permission_requests,
                "api_calls": api.stats.attempts,
                "api_retries": api.stats.retries,
                **api.stats.rate_limit_metadata(),  # requests, 429s, seconds waited, lowest Remaining
                "newest_change_seen": summary.newest_change.isoformat() if summary.newest_change else "none",
                "changed_pages": dg.MetadataValue.md(changes_table(summary.changes)),
                "reconciliation": dg.MetadataValue.json(reconciled.as_metadata() if reconciled else "not this sync"),
            },
            check_results=[mass_deletion_result("changed_pages", reconciled, config.confirm_mass_deletion)],
        )

    @space_asset(
        deps=[confluence_spaces],
        **calls_confluence,
        check_specs=[mass_deletion_check_spec("page_reconciliation")],
        description=(
            "Compares every live page id of the space (listed to the last cursor, ids only) with "
            "confluence_pages: pages gone from Confluence are soft-deleted and their chunks removed; pages newer "
            "than indexed (changes CQL missed), moved pages, pages stored with stale ancestors and restored pages "
            "are staged for page_metadata. A listing that fails part-way deletes nothing; more deletions than "
            "CONFLUENCE_MASS_DELETION_LIMIT wait for confirm_mass_deletion (its blocking check fails until then)."
        ),
    )
    def page_reconciliation(
        context: dg.AssetExecutionContext,
        config: ReconciliationConfig,
        confluence: ConfluenceResource,
        database: PostgresResource,
    ) -> dg.MaterializeResult:
        with space_step(context, database) as step:
            api = confluence.api()
            if config.deletion_strategy:
                sources.set_deletion_strategy(step.conn, step.source_id, config.deletion_strategy)
            summary = reconcile_space(
                api,
                step.conn,
                step.space_key,
                run_id=context.run_id,
                rendered_macros=confluence.rendered_macros,
                content_types=confluence.content_types,
                child_types=loaded.attachments.child_types,
                deletion_limit=loaded.mass_deletion,
                confirm_mass_deletion=config.confirm_mass_deletion,
            )
        context.log.info(f"{step.space_key}: {summary.metrics()}")
        return step.result(
            {
                **summary.metrics(),
                "skipped_pages": dg.MetadataValue.md(skipped_table(summary.skipped)),
                **{f"{kind}_page_ids": dg.MetadataValue.json(ids[:200]) for kind, ids in summary.page_ids().items()},
            },
            check_results=[mass_deletion_result("page_reconciliation", summary, config.confirm_mass_deletion)],
        )

    # page_permissions stages pages again (withdrawn or moved ones): page_metadata runs after it.
    page_permissions, confluence_groups = build_permission_assets(GROUP, retry, confluence_spaces)

    @space_asset(
        deps=[changed_pages, page_reconciliation, page_permissions],
        kinds={"python", "postgres"},
        description=(
            "Converts each staged page's storage XHTML to Markdown and extracts its metadata (ancestors, "
            "children, authors, labels, Jira links, mentions, internal/external/asset links, headings), "
            "then upserts confluence_pages with the materialised path. Pages that cannot be converted are "
            "recorded with their error; the others land."
        ),
    )
    def page_metadata(context: dg.AssetExecutionContext, database: PostgresResource) -> dg.MaterializeResult:
        with space_step(context, database) as step:
            summary = convert_staged(
                step.conn,
                step.space_key,
                base_url=sources.base_url(step.conn, step.source_id),
                convert=convert_page,
                conversion_error=ConversionError,
                progress=step.progress("pages converted"),
                batch_size=loaded.confluence.sync_batch_size,
            )
            shown = {"restriction_unknown_page_ids": dg.MetadataValue.json(summary.restrictions_unknown[:200])}
            return step.finish(summary, shown)

    # Attachments and comments of the converted pages (defs/attachments.py), chunked with them.
    page_attachments = build_attachment_asset(
        GROUP, page_metadata, attachment_options(loaded.attachments), calls_confluence
    )

    @space_asset(
        deps=[page_metadata, page_attachments],
        kinds={"python", "postgres"},
        description=(
            "Splits each converted page into section-aware chunks (heading breadcrumb, code blocks and table "
            "rows kept whole where they fit) with a stable content hash, into confluence_sync_staged_chunks."
        ),
    )
    def page_chunks(
        context: dg.AssetExecutionContext,
        config: PageChunksConfig,
        database: PostgresResource,
        embeddings: EmbeddingsResource,
    ) -> dg.MaterializeResult:
        max_tokens = config.max_tokens or embeddings.chunk_token_limit()
        with space_step(context, database) as step:
            summary = chunk_staged(
                step.conn,
                step.space_key,
                base_url=sources.base_url(step.conn, step.source_id),
                chunker=_chunker,
                settings=ChunkSettings(config.chunk_tokens, config.overlap_tokens, max_tokens),
                progress=step.progress("pages chunked"),
                batch_size=loaded.confluence.sync_batch_size,
                knowledge_type=sources.knowledge_type(step.conn, step.source_id),
            )
            return step.finish(summary, {"chunk_token_limit": min(config.chunk_tokens, max_tokens)})

    @space_asset(
        deps=[page_chunks],
        kinds={"openai", "postgres"},
        check_specs=check_specs("chunk_embeddings"),
        freshness_policy=embeddings_freshness(loaded.automation),
        retry_policy=retry,
        description=(
            "Embeds only chunks whose content hash has no embedding yet for the configured model and dimension, "
            "in batches, then swaps each page's chunks into archon_crawled_pages in one transaction. Only then "
            "does the space's watermark advance."
        ),
    )
    def chunk_embeddings(
        context: dg.AssetExecutionContext, database: PostgresResource, embeddings: EmbeddingsResource
    ) -> dg.MaterializeResult:
        with space_step(context, database) as step:
            embedder = embeddings.embedder()
            summary = embed_and_swap(
                step.conn,
                step.space_key,
                embedder,
                progress=lambda what, n: context.log.info(f"{step.space_key}: {n} {what}"),
                connect=database.connect,
            )
            figures = {
                **summary.metrics(),
                "embedding_requests": embedder.stats.requests,
                "embedding_tokens": embedder.stats.tokens,
                # Expected 0: chunks are cut to the model's limit (page_chunks); more means a model change
                # since the chunks were cut, and the model reads only their head.
                "embedding_inputs_over_model_limit": embedder.stats.over_limit,
            }
            run_totals = step.record(figures)
            state_before = sources.get_sync_state(step.conn, step.source_id)
            watermark = sources.complete_sync(step.conn, step.source_id, run_totals)
            results = check_results(
                "chunk_embeddings",
                CheckInputs(step.conn, step.space_key, embedder.model, embedder.dimensions, state_before, watermark),
            )
        return step.result(
            {
                **figures,
                "watermark": watermark.isoformat() if watermark else "none",
                "embedding_seconds": round(summary.embed_seconds, 2),
                "swap_seconds": round(summary.swap_seconds, 2),
            },
            summary.failed,
            check_results=results,
        )

    return SyncAssets(
        confluence_spaces,
        changed_pages,
        page_reconciliation,
        page_metadata,
        page_attachments,
        page_chunks,
        chunk_embeddings,
        page_permissions,
        confluence_groups,
    )


def _chunker(markdown: str, title: str, **kwargs) -> list:
    # Looked up at call time, so a test can put a failing chunker in its place.
    return chunk_markdown(markdown, title, **kwargs)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=build_assets(settings.load()).all)
