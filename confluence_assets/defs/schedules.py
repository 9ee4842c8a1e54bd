"""The weekly reconciliation: one run per space whose deletion strategy asks for it. :func:`build_schedules`
makes it with the cron expression, time zone and default status of the loaded settings."""

from __future__ import annotations

import dagster as dg

from confluence_assets import settings
from confluence_assets.confluence.keys import space_key_to_partition_key
from confluence_assets.defs.jobs import confluence_reconciliation_job
from confluence_assets.defs.partitions import space_keys
from confluence_assets.defs.resources import PostgresResource
from confluence_assets.sync import sources


def reconciliation_tick(context: dg.ScheduleEvaluationContext, database: PostgresResource):
    """The spaces on weekly_reconciliation get a run each; every_sync and on_demand ones none."""
    keys = space_keys(context.instance)
    with database.connect() as conn:
        due = sources.spaces_with_strategy(conn, keys, sources.WEEKLY_RECONCILIATION)
    if not due:
        return dg.SkipReason(f"no space uses {sources.WEEKLY_RECONCILIATION} ({len(keys)} spaces)")
    stamp = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "manual"
    return [dg.RunRequest(run_key=f"{k}:reconcile:{stamp}", partition_key=space_key_to_partition_key(k)) for k in due]


def build_schedules(automation: settings.AutomationSettings) -> list[dg.ScheduleDefinition]:
    schedule = dg.schedule(
        name="confluence_reconciliation_schedule",
        job=confluence_reconciliation_job,
        cron_schedule=automation.reconciliation_cron,
        execution_timezone=automation.reconciliation_timezone,
        default_status=(
            dg.DefaultScheduleStatus.RUNNING if automation.running_by_default else dg.DefaultScheduleStatus.STOPPED
        ),
        description=(
            "Weekly reconciliation (Sunday 03:00 by default): one run per space whose deletion strategy is "
            "weekly_reconciliation. Spaces on every_sync reconcile with each sync; on_demand ones only by hand."
        ),
    )(reconciliation_tick)
    return [schedule]


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(schedules=build_schedules(settings.load().automation))
