"""A backfill of many spaces from the UI (the initial load of a site), through Dagster's own machinery: the
asset backfill daemon's iteration plans the runs, the queued run coordinator's daemon launches them under
dagster.yaml's limits. The run launcher is Dagster's test launcher that records launches and never
finishes a run, so what is bounded is what the queue lets start.

The space assets have no BackfillPolicy, on purpose. Without one Dagster makes one run per partition
tagged ``dagster/partition``, the tag dagster.yaml's queue limits to one run per space. With
``BackfillPolicy.multi_run(max_partitions_per_run=1)`` (Dagster 1.13.27) the same runs are tagged
``dagster/asset_partition_range_start``/``_end`` instead, so a backfill run and a sensor's run of one
space would both be let out of the queue (the second then waits on the space's lock in a pod of its own);
with more partitions per run, a failing space would fail the others of its run."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter
from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget, create_test_daemon_workspace_context
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.utils import make_new_backfill_id
from dagster._daemon.backfill import execute_backfill_iteration
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster._time import get_current_timestamp

from confluence_assets.defs.partitions import SPACES_PARTITIONS_NAME

ROOT = Path(__file__).resolve().parents[1]
SYNC = ["changed_pages", "page_metadata", "page_attachments", "page_chunks", "chunk_embeddings"]
log = logging.getLogger("test_backfill")


@pytest.fixture
def queued_instance(monkeypatch):
    """An instance with the repository's run queue (dagster.yaml's concurrency) and a launcher that only records."""
    # The settings the runs' resources name (nothing here calls them: the launcher never executes a run).
    monkeypatch.setenv("CONFLUENCE_URL", "https://example.atlassian.net/wiki")
    monkeypatch.setenv("CONFLUENCE_EMAIL", "bot@example.com")
    monkeypatch.setenv("CONFLUENCE_API_TOKEN", "ATATT-unused")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unused")
    monkeypatch.delenv("CONFLUENCE_PAT", raising=False)
    local = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    overrides = {
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"},
        "concurrency": local["concurrency"],
        "run_launcher": {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"},
    }
    with dg.instance_for_test(overrides=overrides) as instance:
        yield instance


@pytest.fixture
def workspace(queued_instance):
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            executable_path=sys.executable, module_name="confluence_assets.definitions", working_directory=str(ROOT)
        ),
        location_name="confluence_assets",
    )
    target = InProcessTestWorkspaceLoadTarget(origin)
    with create_test_daemon_workspace_context(workspace_load_target=target, instance=queued_instance) as context:
        yield context


def _runs(instance: dg.DagsterInstance, *statuses: DagsterRunStatus) -> list:
    return list(instance.get_runs(filters=RunsFilter(statuses=list(statuses)) if statuses else None))


# The daemon plans 1-2 runs a second on this shared machine (20 spaces: 11-19 s), so CI backfills 8, --run-slow 20.
@pytest.mark.parametrize("spaces", [8, pytest.param(20, marks=pytest.mark.slow)])
def test_a_backfill_is_one_run_per_space_and_the_queue_starts_4(queued_instance, workspace, spaces):
    instance = queued_instance
    keys = [f"S{i:02d}" for i in range(spaces)]
    instance.add_dynamic_partitions(SPACES_PARTITIONS_NAME, keys)
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(),
        asset_graph=workspace.create_request_context().asset_graph,
        partition_names=keys,
        asset_selection=[dg.AssetKey(key) for key in SYNC],
        backfill_timestamp=get_current_timestamp(),
        tags={},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title="initial load",
        description=None,
        run_config=None,
    )
    instance.add_backfill(backfill)
    list(execute_backfill_iteration(workspace, log))

    runs = _runs(instance)
    assert len(runs) == len(keys)  # not one giant run, and not more runs than spaces
    assert sorted(r.tags["dagster/partition"] for r in runs) == keys  # one run per space, tagged with it
    for run in runs:
        assert run.tags["dagster/backfill"] == backfill.backfill_id
        assert "dagster/asset_partition_range_start" not in run.tags
        assert {k.to_user_string() for k in run.asset_selection} == set(SYNC)  # the whole graph in one run
        assert run.status == DagsterRunStatus.QUEUED  # submitted to the queue, not started

    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    for _ in range(3):  # the run workers never finish: later iterations must not start more
        list(daemon.run_iteration(workspace))
        started = _runs(instance, DagsterRunStatus.STARTING)
        limit = yaml.safe_load((ROOT / "dagster.yaml").read_text())["concurrency"]["runs"]["max_concurrent_runs"]
        assert len(started) == limit == 4
        assert len({r.tags["dagster/partition"] for r in started}) == 4
        assert len(_runs(instance, DagsterRunStatus.QUEUED)) == len(keys) - 4


def test_the_space_assets_keep_dagsters_one_run_per_partition(workspace):
    graph = workspace.create_request_context().asset_graph
    for key in [*SYNC, "page_reconciliation", "page_permissions"]:
        assert graph.get(dg.AssetKey(key)).backfill_policy is None, key  # see the module's docstring
