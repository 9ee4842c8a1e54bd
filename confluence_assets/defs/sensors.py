"""What keeps the index fresh unattended: the change sensor and the space sensor.

Their work is plain code (confluence_assets.sync.probe, confluence_assets.sync.spaces); here it is turned
into run requests, partition requests, cursors and skip reasons. :func:`build_sensors` makes them with the
intervals and default status of the loaded settings.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg

from confluence_assets import settings
from confluence_assets.confluence.errors import ConfluenceError
from confluence_assets.confluence.keys import partition_key_to_space_key, space_key_to_partition_key
from confluence_assets.defs.jobs import confluence_sync_job
from confluence_assets.defs.partitions import SPACES_PARTITIONS_NAME, partition_requests, space_keys
from confluence_assets.defs.reporting import space_refresh_metadata
from confluence_assets.defs.resources import ConfluenceResource, PostgresResource, SpaceSelectionResource
from confluence_assets.sync.permission_refresh import space_summaries
from confluence_assets.sync.probe import probe_spaces
from confluence_assets.sync.spaces import refresh_spaces

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


def change_sensor_tick(
    context: dg.SensorEvaluationContext,
    confluence: ConfluenceResource,
    database: PostgresResource,
    *,
    child_types: tuple[str, ...] = (),
) -> dg.SensorResult:
    """One tick of the change sensor: probe every space partition without a run in flight (a changed
    comment or attachment, of the ``child_types`` followed, counts as a change of its space too)."""
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
            content_types=confluence.content_types,
            child_types=child_types,
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


def space_sensor_tick(
    context: dg.SensorEvaluationContext,
    confluence: ConfluenceResource,
    database: PostgresResource,
    space_selection: SpaceSelectionResource,
) -> dg.SensorResult:
    """One tick of the space sensor: new and removed spaces become partition requests, new ones a first sync."""
    try:
        with database.connect() as conn:
            refresh = refresh_spaces(confluence.api(), conn, space_keys(context.instance), **space_selection.choice())
            permissions = space_summaries(conn, [s.key for s in refresh.selection.selected])
    except ConfluenceError as exc:
        return dg.SensorResult(skip_reason=f"could not list spaces: {exc}")
    requests = partition_requests(refresh.added, refresh.removed)
    if not requests:
        return dg.SensorResult(
            skip_reason=f"No new or removed spaces ({len(refresh.selection.selected)} selected of {refresh.visible})"
        )
    added = [space_key_to_partition_key(k) for k in refresh.added]
    context.log.info(f"spaces added: {added}; removed: {[space_key_to_partition_key(k) for k in refresh.removed]}")
    # Recorded as a materialization of confluence_spaces, so the asset's page shows what the sensor did.
    event = dg.AssetMaterialization(
        asset_key="confluence_spaces",
        description="Space partitions updated by confluence_space_sensor",
        metadata=space_refresh_metadata(refresh, permissions),
    )
    today = datetime.now(UTC).date().isoformat()
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"{key}:initial:{today}", partition_key=key) for key in added],
        dynamic_partitions_requests=requests,
        asset_events=[event],
    )


def default_status(automation: settings.AutomationSettings) -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if automation.running_by_default else dg.DefaultSensorStatus.STOPPED


def build_sensors(
    automation: settings.AutomationSettings, attachments: settings.AttachmentSettings | None = None
) -> list[dg.SensorDefinition]:
    child_types = attachments.child_types if attachments is not None else ()

    def change_tick(
        context: dg.SensorEvaluationContext, confluence: ConfluenceResource, database: PostgresResource
    ) -> dg.SensorResult:
        return change_sensor_tick(context, confluence, database, child_types=child_types)

    sensors = (
        (
            "confluence_change_sensor",
            automation.change_sensor_interval_seconds,
            change_tick,
            "One cheap CQL probe per space (lastModified since the watermark, limit 1, no body); requests a "
            "sync run for exactly the spaces that changed, never twice for the same change.",
        ),
        (
            "confluence_space_sensor",
            automation.space_sensor_interval_seconds,
            space_sensor_tick,
            "Discovers new and removed spaces (per the space selection), adds/removes their partitions and "
            "requests the first full sync of each new space.",
        ),
    )
    return [
        dg.sensor(
            name=name,
            job=confluence_sync_job,
            minimum_interval_seconds=interval,
            default_status=default_status(automation),
            description=description,
        )(tick)
        for name, interval, tick, description in sensors
    ]


@dg.definitions
def defs() -> dg.Definitions:
    loaded = settings.load()
    return dg.Definitions(sensors=build_sensors(loaded.automation, loaded.attachments))
