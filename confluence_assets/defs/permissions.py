"""The permission assets: page_permissions (per space, beside changed_pages under confluence_spaces) and
confluence_groups (site-wide, after them). Thin, like the others: they call
confluence_assets.sync.permission_refresh and show its figures. :func:`build_permission_assets` makes them
for :func:`confluence_assets.defs.assets.build_assets`."""

import time
from typing import Any

import dagster as dg

from confluence_assets.defs.execution import CONFLUENCE_POOL, clear_failures, space_step
from confluence_assets.defs.partitions import confluence_spaces_partitions_def
from confluence_assets.defs.reporting import named_failures_table
from confluence_assets.defs.resources import ConfluenceResource, PostgresResource
from confluence_assets.sync.permission_refresh import GroupSummary, refresh_groups, refresh_space_permissions

MAX_NAMED = 200  # page ids and group names listed in metadata


def group_metadata(summary: GroupSummary) -> dict[str, Any]:
    return {
        **summary.metrics(),
        "unknown_groups": dg.MetadataValue.json([name for name, _ in summary.unknown[:MAX_NAMED]]),
    }


def build_permission_assets(
    group: str, retry: dg.RetryPolicy, confluence_spaces: dg.AssetsDefinition
) -> tuple[dg.AssetsDefinition, dg.AssetsDefinition]:
    calls_confluence: dict[str, Any] = {
        "group_name": group,
        "kinds": {"confluence", "postgres"},
        "pool": CONFLUENCE_POOL,
        "retry_policy": retry,
    }

    @dg.asset(
        partitions_def=confluence_spaces_partitions_def,
        deps=[confluence_spaces],
        **calls_confluence,
        description=(
            "Refreshes who may read the space (v2 space permissions, anonymous access from v1) and the read "
            "restriction of every stored page of it, changed or not: one CQL listing with only the restriction "
            "expanded (200 pages a request), plus one request per page whose restriction names more than 100 "
            "users or groups. Permission changes make no page version, so only this sees them (daily, and "
            "with every reconciliation). Fail closed: what cannot be read is unknown, visible to nobody. Pages "
            "showing a page whose permissions narrowed (includes, child lists, reports) are withdrawn at once and, "
            "with moved pages (hidden until synced), staged again for page_metadata in the same run."
        ),
    )
    def page_permissions(
        context: dg.AssetExecutionContext, confluence: ConfluenceResource, database: PostgresResource
    ) -> dg.MaterializeResult:
        with space_step(context, database) as step:
            api = confluence.api()
            summary = refresh_space_permissions(
                api,
                step.conn,
                step.space_key,
                run_id=context.run_id,
                rendered_macros=confluence.rendered_macros,
                content_types=confluence.content_types,
            )
            step.record(summary.metrics())
        now = summary.access
        assert now is not None  # every refresh that returns has read the space's state
        context.log.info(
            f"{step.space_key}: {summary.pages_listed} pages listed, {now.restricted_pages} restricted, "
            f"{now.unknown_pages} not known; space permissions {summary.space_status} ({summary.requests} requests)"
        )
        for page_id, reason in summary.failed_pages[:20]:
            context.log.warning(f"page {page_id}: restriction unknown (hidden): {reason}")
        if summary.withdrawn or summary.moved:
            context.log.info(
                f"{step.space_key}: {len(summary.withdrawn)} pages withdrawn (they showed a page whose permissions "
                f"narrowed), {len(summary.moved)} moved pages hidden; {len(summary.restaged)} staged for page_metadata"
            )
        return step.result(
            {
                **summary.metrics(),
                "live_pages": now.live_pages,
                "restricted_pages": now.restricted_pages,
                "inherited_restriction_pages": now.inherited_pages,
                "unknown_restriction_pages": now.unknown_pages,
                "unknown_page_ids": dg.MetadataValue.json(now.unknown_page_ids[:MAX_NAMED]),
                "withdrawn_page_ids": dg.MetadataValue.json(summary.withdrawn[:MAX_NAMED]),
                "moved_page_ids": dg.MetadataValue.json(summary.moved[:MAX_NAMED]),
                "staged_again_page_ids": dg.MetadataValue.json(summary.restaged[:MAX_NAMED]),
                "failed_restriction_reads": dg.MetadataValue.md(named_failures_table(summary.failed_pages, "page")),
                "space_permissions": summary.space_status,
                "space_permissions_error": summary.space_error or "none",
                **group_metadata(summary.groups),
                "requests": summary.requests,
                "last_refreshed": summary.refreshed_at.isoformat() if summary.refreshed_at else "never",
            }
        )

    @dg.asset(
        deps=[page_permissions],
        **calls_confluence,
        description=(
            "Refreshes, site-wide, the members of every group a stored space permission or read restriction "
            "names (membersByGroupId, 200 a request) and the users' e-mails and names for searching as them. "
            "Membership changes touch no page: they take effect with this refresh. A group that cannot be "
            "listed is unknown and loses its stored members (fail closed)."
        ),
    )
    def confluence_groups(
        context: dg.AssetExecutionContext, confluence: ConfluenceResource, database: PostgresResource
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        with clear_failures():
            api = confluence.api()
            with database.connect() as conn:
                summary = refresh_groups(api, conn)
        for name, reason in summary.unknown[:20]:
            context.log.warning(f"group {name}: members unknown: {reason}")
        context.log.info(
            f"{summary.listed} groups listed, {len(summary.unknown)} unknown ({summary.requests} requests)"
        )
        return dg.MaterializeResult(
            metadata={
                **group_metadata(summary),
                "failed_groups": dg.MetadataValue.md(named_failures_table(summary.unknown, "group")),
                "api_calls": api.stats.attempts,
                "duration_seconds": round(time.monotonic() - started, 2),
            }
        )

    return page_permissions, confluence_groups
