"""What keeps the index fresh unattended: the change sensor, the space sensor, the weekly reconciliation.

The sensors' work is plain code (confluence_assets.sync.probe, confluence_assets.sync.spaces); here it is
turned into run requests, dynamic-partition requests, cursors and skip reasons.
"""

import json
import os
from datetime import UTC, datetime

import dagster as dg

from confluence_assets.confluence.errors import ConfluenceError
from confluence_assets.confluence.keys import partition_key_to_space_key, source_id_for, space_key_to_partition_key
from confluence_assets.defs.jobs import confluence_reconciliation_job, confluence_sync_job
from confluence_assets.defs.partitions import SPACES_PARTITIONS_NAME, confluence_spaces_partitions_def
from confluence_assets.defs.reporting import space_table
from confluence_assets.defs.resources import ConfluenceResource, PostgresResource, SpaceSelectionResource
from confluence_assets.sync.probe import probe_spaces
from confluence_assets.sync.spaces import refresh_spaces

CHANGE_SENSOR_INTERVAL = int(os.environ.get("CONFLUENCE_CHANGE_SENSOR_INTERVAL_SECONDS") or 3600)
SPACE_SENSOR_INTERVAL = int(os.environ.get("CONFLUENCE_SPACE_SENSOR_INTERVAL_SECONDS") or 3600)
RECONCILIATION_CRON = os.environ.get("CONFLUENCE_RECONCILIATION_CRON") or "0 3 * * 0"  # Sundays 03:00
RECONCILIATION_TIMEZONE = os.environ.get("CONFLUENCE_RECONCILIATION_TIMEZONE") or "UTC"
# Sensors and the schedule start running when the code location loads, unless this says "stopped".
_STOPPED = (os.environ.get("CONFLUENCE_AUTOMATION_DEFAULT") or "running").lower() == "stopped"
SENSOR_DEFAULT = dg.DefaultSensorStatus.STOPPED if _STOPPED else dg.DefaultSensorStatus.RUNNING
SCHEDULE_DEFAULT = dg.DefaultScheduleStatus.STOPPED if _STOPPED else dg.DefaultScheduleStatus.RUNNING
# Probes still unanswered after this are left for the next tick (first in line), so a tick ends well
# inside Dagster's 60 s sensor timeout; each probe request gives up within PROBE_TIMEOUT_SECONDS anyway.
PROBE_BUDGET_SECONDS = 40.0
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _spaces_with_runs_in_flight(instance: dg.DagsterInstance) -> set[str]:
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=confluence_sync_job.name, statuses=IN_FLIGHT), limit=1000
    )
    return {r.dagster_run.tags.get("dagster/partition") for r in records} - {None}


def _summary(names: list[str], limit: int = 20) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


@dg.sensor(
    job=confluence_sync_job,
    minimum_interval_seconds=CHANGE_SENSOR_INTERVAL,
    default_status=SENSOR_DEFAULT,
    description=(
        "One cheap CQL probe per space (lastModified since the watermark, limit 1, no body); requests a sync "
        "run for exactly the spaces that changed, never twice for the same change."
    ),
)
def confluence_change_sensor(
    context: dg.SensorEvaluationContext, confluence: ConfluenceResource, database: PostgresResource
) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    partitions = context.instance.get_dynamic_partitions(SPACES_PARTITIONS_NAME)
    busy = _spaces_with_runs_in_flight(context.instance)
    # Spaces a previous tick did not reach go first, so every space is probed within two ticks.
    pending = [k for k in cursor.get("not_reached", []) if k in partitions]
    ordered = pending + [k for k in partitions if k not in pending]
    keys = [partition_key_to_space_key(k) for k in ordered if k not in busy]
    with database.connect() as conn:
        results, not_reached = probe_spaces(
            confluence.probe_api,
            conn,
            keys,
            overlap=confluence.overlap,
            zone=confluence.zone(),
            budget_seconds=PROBE_BUDGET_SECONDS,
        )
    errors = {r.space_key: r.detail for r in results if r.status == "error"}
    for key, detail in errors.items():
        context.log.warning(f"space {key}: {detail}")
    if not_reached:
        context.log.info(f"{len(not_reached)} spaces left for the next tick: {_summary(not_reached)}")
    requests = [
        dg.RunRequest(
            run_key=r.run_key,
            partition_key=space_key_to_partition_key(r.space_key),
            tags={"confluence/reason": f"{r.status}: {r.detail}"[:200]},
        )
        for r in results
        if r.needs_sync
    ]
    new_cursor = json.dumps(
        {
            "checked_at": datetime.now(UTC).isoformat(),
            "not_reached": [space_key_to_partition_key(k) for k in not_reached],
            "errors": errors,
        }
    )
    if requests:
        context.log.info(f"changes in {_summary([r.partition_key for r in requests])}")
        return dg.SensorResult(run_requests=requests, cursor=new_cursor)
    checked = [r.space_key for r in results if r.status != "error"]
    reason = f"No changes in {len(checked)} spaces checked ({_summary(checked)})"
    if errors:
        reason += f"; {len(errors)} failed ({_summary([f'{k}: {v}' for k, v in errors.items()], 5)})"
    if busy:
        reason += f"; skipped with a run in flight: {_summary(sorted(busy))}"
    if not_reached:
        reason += f"; {len(not_reached)} left for the next tick"
    return dg.SensorResult(skip_reason=reason, cursor=new_cursor)


@dg.sensor(
    job=confluence_sync_job,
    minimum_interval_seconds=SPACE_SENSOR_INTERVAL,
    default_status=SENSOR_DEFAULT,
    description=(
        "Discovers new and removed spaces (per the space selection), adds/removes their partitions and "
        "requests the first full sync of each new space."
    ),
)
def confluence_space_sensor(
    context: dg.SensorEvaluationContext,
    confluence: ConfluenceResource,
    database: PostgresResource,
    space_selection: SpaceSelectionResource,
) -> dg.SensorResult:
    existing = [partition_key_to_space_key(k) for k in context.instance.get_dynamic_partitions(SPACES_PARTITIONS_NAME)]
    try:
        with database.connect() as conn:
            refresh = refresh_spaces(confluence.api(), conn, existing, **space_selection.choice())
    except ConfluenceError as exc:
        return dg.SensorResult(skip_reason=f"could not list spaces: {exc}")
    added = [space_key_to_partition_key(k) for k in refresh.added]
    removed = [space_key_to_partition_key(k) for k in refresh.removed]
    partition_requests = []
    if added:
        partition_requests.append(confluence_spaces_partitions_def.build_add_request(added))
    if removed:
        partition_requests.append(confluence_spaces_partitions_def.build_delete_request(removed))
    if not partition_requests:
        return dg.SensorResult(
            skip_reason=f"No new or removed spaces ({len(refresh.selection.selected)} selected of {refresh.visible})"
        )
    context.log.info(f"spaces added: {added}; removed: {removed}")
    # Recorded as a materialization of confluence_spaces, so the asset's page shows what the sensor did.
    event = dg.AssetMaterialization(
        asset_key="confluence_spaces",
        description="Space partitions updated by confluence_space_sensor",
        metadata={
            "spaces_visible": refresh.visible,
            "spaces_selected": len(refresh.selection.selected),
            "partitions_added": dg.MetadataValue.json(added),
            "partitions_removed": dg.MetadataValue.json(removed),
            "spaces": dg.MetadataValue.md(space_table(refresh.selection.selected)),
        },
    )
    today = datetime.now(UTC).date().isoformat()
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"{key}:initial:{today}", partition_key=key) for key in added],
        dynamic_partitions_requests=partition_requests,
        asset_events=[event],
    )


@dg.schedule(
    job=confluence_reconciliation_job,
    cron_schedule=RECONCILIATION_CRON,
    execution_timezone=RECONCILIATION_TIMEZONE,
    default_status=SCHEDULE_DEFAULT,
    description=(
        "Weekly reconciliation (Sunday 03:00 by default): one run per space whose deletion strategy is "
        "weekly_reconciliation. Spaces on every_sync reconcile with each sync; on_demand ones only by hand."
    ),
)
def confluence_reconciliation_schedule(context: dg.ScheduleEvaluationContext, database: PostgresResource):
    partitions = context.instance.get_dynamic_partitions(SPACES_PARTITIONS_NAME)
    with database.connect() as conn:
        strategies = dict(
            conn.execute(
                """SELECT source_id, COALESCE(metadata->>'deletion_check_strategy', 'weekly_reconciliation')
                   FROM archon_sources WHERE source_id = ANY(%s)""",
                ([source_id_for(partition_key_to_space_key(k)) for k in partitions],),
            ).fetchall()
        )
    due = [
        k
        for k in partitions
        if strategies.get(source_id_for(partition_key_to_space_key(k)), "weekly_reconciliation")
        == "weekly_reconciliation"
    ]
    if not due:
        return dg.SkipReason(f"no space uses weekly_reconciliation ({len(partitions)} spaces)")
    stamp = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "manual"
    return [dg.RunRequest(run_key=f"{k}:reconcile:{stamp}", partition_key=k) for k in due]
