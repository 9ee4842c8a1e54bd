"""page_attachments: the staged pages' attachments (downloaded and extracted only when new or changed) and
comments, between page_metadata and page_chunks. Thin: one call of sync/attachment_step.py."""

from typing import Any

import dagster as dg

from confluence_assets import settings
from confluence_assets.defs.execution import space_step
from confluence_assets.defs.partitions import confluence_spaces_partitions_def
from confluence_assets.defs.reporting import extraction_table, failed_attachments_table
from confluence_assets.defs.resources import ConfluenceResource, PostgresResource
from confluence_assets.sync import sources
from confluence_assets.sync.attachment_step import MB, AttachmentOptions, sync_attachments


def attachment_options(loaded: settings.AttachmentSettings) -> AttachmentOptions:
    return AttachmentOptions(
        attachments=loaded.enabled,
        comments=loaded.comments,
        max_bytes=loaded.max_mb * MB,
        timeout_seconds=loaded.timeout_seconds,
        max_text_chars=loaded.max_text_chars,
    )


def build_attachment_asset(
    group: str, page_metadata: dg.AssetsDefinition, options: AttachmentOptions, calls_confluence: dict[str, Any]
) -> dg.AssetsDefinition:
    @dg.asset(
        name="page_attachments",
        partitions_def=confluence_spaces_partitions_def,
        group_name=group,
        deps=[page_metadata],
        **calls_confluence,
        description=(
            "The converted pages' attachments and comments. An attachment new to the index, with a new version "
            "or extracted by an older extractor is downloaded (streamed, size- and time-limited) and its text "
            "extracted in bounded worker processes into confluence_attachments; unchanged ones cost nothing, "
            "removed ones are deleted. Comments (footer, inline, replies) come by one CQL search per 50 pages "
            "into confluence_comments. page_chunks chunks both with the page."
        ),
    )
    def page_attachments(
        context: dg.AssetExecutionContext, confluence: ConfluenceResource, database: PostgresResource
    ) -> dg.MaterializeResult:
        with space_step(context, database) as step:
            api = confluence.api()
            summary = sync_attachments(
                api,
                step.conn,
                step.space_key,
                base_url=sources.base_url(step.conn, step.source_id),
                options=options,
                progress=step.progress("pages' attachments and comments read"),
            )
            figures = summary.metrics()
            step.record(figures)
        for failure in summary.failed:
            context.log.warning(
                f"page {failure.page_id}: attachment {failure.file_name!r} ({failure.attachment_id}) failed: "
                f"{failure.reason}"
            )
        return step.result(
            {
                **figures,
                "failed_attachments": dg.MetadataValue.md(failed_attachments_table(summary.failed)),
                "extraction_by_type": dg.MetadataValue.md(extraction_table(summary.by_type)),
                "api_calls": api.stats.attempts,
                "api_retries": api.stats.retries,
            }
        )

    return page_attachments
