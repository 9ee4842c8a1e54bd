"""The weekly reconciliation and the daily permission refresh. :func:`build_schedules` makes them with the
cron expressions, time zone and default status of the loaded settings."""

from __future__ import annotations

import dagster as dg

from confluence_assets import settings
from confluence_assets.confluence.keys import space_key_to_partition_key
from confluence_assets.defs.jobs import confluence_permissions_job, confluence_reconciliation_job
from confluence_assets.defs.partitions import space_keys
from confluence_assets.defs.resources import PostgresResource
from confluence_assets.sync import sources

# A space's permission run: the refresh, then what it staged again (withdrawn and moved pages).
SPACE_PERMISSION_ASSETS = ("page_permissions", "page_metadata", "page_attachments", "page_chunks", "chunk_embeddings")


def _stamp(context: dg.ScheduleEvaluationContext) -> str:
    return context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "manual"


def reconciliation_tick(context: dg.ScheduleEvaluationContext, database: PostgresResource):
    """The spaces on weekly_reconciliation get a run each; every_sync and on_demand ones none."""
    keys = space_keys(context.instance)
    with database.connect() as conn:
        due = sources.spaces_with_strategy(conn, keys, sources.WEEKLY_RECONCILIATION)
    if not due:
        return dg.SkipReason(f"no space uses {sources.WEEKLY_RECONCILIATION} ({len(keys)} spaces)")
    stamp = _stamp(context)
    return [dg.RunRequest(run_key=f"{k}:reconcile:{stamp}", partition_key=space_key_to_partition_key(k)) for k in due]


def permissions_tick(context: dg.ScheduleEvaluationContext):
    """page_permissions for every space partition (a run each) and one run of confluence_groups."""
    keys = space_keys(context.instance)
    if not keys:
        return dg.SkipReason("no space partitions yet")
    stamp = _stamp(context)
    spaces = [
        dg.RunRequest(
            run_key=f"{k}:permissions:{stamp}",
            partition_key=space_key_to_partition_key(k),
            asset_selection=[dg.AssetKey(k) for k in SPACE_PERMISSION_ASSETS],
        )
        for k in keys
    ]
    groups = dg.RunRequest(run_key=f"groups:{stamp}", asset_selection=[dg.AssetKey("confluence_groups")])
    return [*spaces, groups]


def build_schedules(automation: settings.AutomationSettings) -> list[dg.ScheduleDefinition]:
    status = dg.DefaultScheduleStatus.RUNNING if automation.running_by_default else dg.DefaultScheduleStatus.STOPPED
    reconciliation = dg.schedule(
        name="confluence_reconciliation_schedule",
        job=confluence_reconciliation_job,
        cron_schedule=automation.reconciliation_cron,
        execution_timezone=automation.reconciliation_timezone,
        default_status=status,
        description=(
            "Weekly reconciliation (Sunday 03:00 by default): one run per space whose deletion strategy is "
            "weekly_reconciliation, permissions refreshed with it. Spaces on every_sync reconcile with each "
            "sync; on_demand ones only by hand."
        ),
    )(reconciliation_tick)
    permissions = dg.schedule(
        name="confluence_permissions_schedule",
        job=confluence_permissions_job,
        cron_schedule=automation.permissions_cron,
        execution_timezone=automation.reconciliation_timezone,
        default_status=status,
        description=(
            f"Daily permission refresh (02:30 by default, {settings.CONFLUENCE_PERMISSIONS_CRON}): "
            "page_permissions for every space (a run each) and confluence_groups, so permission and membership "
            "changes, which touch no page, take effect within a day."
        ),
    )(permissions_tick)
    return [reconciliation, permissions]


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(schedules=build_schedules(settings.load().automation))
