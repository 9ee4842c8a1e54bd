"""The asset partitions view at 1,000 space partitions, timed through the webserver's GraphQL.

    .venv/bin/python bench/ui_scale.py [--partitions 1000] [--materialized 0.9] [--requests 10]

Starts the real `dev` command (`confluence-assets dev --sandbox`: the embedded PostgreSQL holding Dagster's
storage, `dagster dev` with webserver and daemon; the sensors stopped, so the space sensor does not remove
the partitions below), adds ``--partitions`` dynamic partitions to ``confluence_spaces`` on the same
instance, records a materialization of every partitioned asset for a ``--materialized`` share of them and
an evaluation of each asset check for those partitions (runless events, as "Report materialization" in
the UI writes them), then sends the queries the UI's asset pages send, ``--requests`` times each, and
prints the first (cold) request and p50/p95 of the rest: PartitionHealthQuery (the partitions view: every
key and its status), AssetCheckPartitionHealthQuery (a check's status per partition),
AssetPartitionDetailQuery (one partition's events) and the asset's check list. The query texts are the UI's
own (dagster-webserver's bundle), trimmed to the fields of dynamic partitions. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time

import requests
from dev_instance import dev_instance

PARTITIONS_DEF = "confluence_spaces"

ASSET_NODES = """{ assetNodes { assetKey { path } isPartitioned
  assetChecksOrError { ... on AssetChecks { checks { name } } } } }"""

PARTITION_HEALTH = """query PartitionHealthQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) { ... on AssetNode { id
    partitionKeysByDimension { name type partitionKeys }
    assetPartitionStatuses { ... on DefaultPartitionStatuses {
      materializedPartitions materializingPartitions failedPartitions } } } } }"""

CHECK_PARTITION_HEALTH = """query AssetCheckPartitionHealthQuery($assetKey: AssetKeyInput!, $checkName: String!) {
  assetNodeOrError(assetKey: $assetKey) { ... on AssetNode { id
    assetCheckOrError(checkName: $checkName) { ... on AssetCheck { name
      partitionKeysByDimension { name type partitionKeys }
      partitionStatuses { ... on AssetCheckDefaultPartitionStatuses {
        succeededPartitions failedPartitions inProgressPartitions skippedPartitions
        executionFailedPartitions } } } } } } }"""

PARTITION_DETAIL = """query AssetPartitionDetailQuery($assetKey: AssetKeyInput!, $partitionKey: String!) {
  assetOrError(assetKey: $assetKey) { ... on Asset { id
    definition { id opNames latestRunForPartition(partition: $partitionKey) { id status endTime } }
    assetEventHistory(partitions: [$partitionKey], limit: 1000,
        eventTypeSelectors: [MATERIALIZATION, OBSERVATION, FAILED_TO_MATERIALIZE]) {
      results { ... on MaterializationEvent { runId timestamp partition } } } } } }"""

ASSET_CHECKS = """query AssetChecksQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) { ... on AssetNode { id
    assetChecksOrError { ... on AssetChecks { checks { name description blocking canExecuteIndividually
      executionForLatestMaterialization { id runId status timestamp } } } } } } }"""


class GraphQL:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/graphql"
        self.session = requests.Session()

    def __call__(self, query: str, **variables) -> tuple[dict, float]:
        began = time.perf_counter()
        response = self.session.post(self.url, json={"query": query, "variables": variables}, timeout=300)
        seconds = time.perf_counter() - began
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise SystemExit(f"GraphQL errors: {body['errors'][:2]}")
        return body["data"], seconds


def _populate(instance, keys: list[str], assets: dict[str, list[str]], share: float) -> int:
    """A materialization per asset and partition; an evaluation of each check aimed at it (so it is current)."""
    import dagster as dg
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData as Target,  # no public name; a run's checks carry it
    )

    done = keys[: int(len(keys) * share)]
    events = 0
    for asset, checks in assets.items():
        asset_key = dg.AssetKey(asset)
        for key in done:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset_key, partition=key))
            events += 1
            if not checks:
                continue
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[key]), limit=1
            ).records
            target = Target(storage_id=records[0].storage_id, run_id=records[0].run_id, timestamp=records[0].timestamp)
            for check in checks:
                evaluation = dg.AssetCheckEvaluation(
                    asset_key=asset_key,
                    check_name=check,
                    passed=key[-1] != "7",  # one in ten fails, so both lists have members
                    partition=key,
                    target_materialization_data=target,
                )
                instance.report_runless_asset_event(evaluation)
                events += 1
    return events


def _timed(graphql: GraphQL, label: str, count: int, query: str, check, **variables) -> None:
    seconds = []
    for _ in range(count + 1):
        data, took = graphql(query, **variables)
        seconds.append(took)
    detail = check(data)
    warm = sorted(seconds[1:])
    p95 = warm[min(len(warm) - 1, round(0.95 * (len(warm) - 1)))]
    print(
        f"  {label:<52} first {seconds[0] * 1000:7.0f} ms, p50 {statistics.median(warm) * 1000:6.0f} ms, "
        f"p95 {p95 * 1000:6.0f} ms  ({detail})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--materialized", type=float, default=0.9, help="share of partitions with events")
    parser.add_argument("--requests", type=int, default=10, help="warm requests per query (after a cold one)")
    args = parser.parse_args()

    with dev_instance(["--sandbox-spaces", "1", "--sandbox-pages", "5"], prefix="ca-ui-scale-") as dev:
        home, port = dev.home, dev.port
        dagster_home = re.search(r"DAGSTER_HOME=(\S+)\)", dev.log).group(1)

        # The same instance as the webserver's: its dagster.yaml, its storage in the embedded PostgreSQL.
        os.environ["CONFLUENCE_ASSETS_HOME"] = str(home)
        os.environ["DAGSTER_HOME"] = dagster_home
        os.environ.pop("DATABASE_URL", None)
        import dagster as dg

        from confluence_assets import settings
        from confluence_assets.db.connection import resolve_dagster_storage_url

        os.environ[settings.CONFLUENCE_ASSETS_DAGSTER_STORAGE_URL] = resolve_dagster_storage_url()

        graphql = GraphQL(port)
        nodes, _ = graphql(ASSET_NODES)
        assets = {
            "/".join(n["assetKey"]["path"]): [c["name"] for c in (n["assetChecksOrError"].get("checks") or [])]
            for n in nodes["assetNodes"]
            if n["isPartitioned"]
        }
        keys = [f"S{i:04d}" for i in range(args.partitions)]
        with dg.DagsterInstance.get() as instance:
            began = time.perf_counter()
            instance.add_dynamic_partitions(PARTITIONS_DEF, keys)
            added = time.perf_counter() - began
            began = time.perf_counter()
            events = _populate(instance, keys, assets, args.materialized)
            populated = time.perf_counter() - began
        checks = sum(len(c) for c in assets.values())
        print(
            f"{args.partitions} partitions added in {added:.1f} s; {events} runless events "
            f"({len(assets)} partitioned assets, {checks} partitioned checks, {args.materialized:.0%} of the "
            f"partitions) in {populated:.0f} s"
        )
        print(f"GraphQL at {args.partitions} partitions, {args.requests} warm requests each:")
        for asset, asset_checks in assets.items():
            key = {"path": asset.split("/")}

            def health(data, asset=asset):
                node = data["assetNodeOrError"]
                listed = len(node["partitionKeysByDimension"][0]["partitionKeys"])
                done = len(node["assetPartitionStatuses"]["materializedPartitions"])
                return f"{listed} keys, {done} materialized"

            _timed(graphql, f"PartitionHealthQuery {asset}", args.requests, PARTITION_HEALTH, health, assetKey=key)
            if asset_checks:
                check = asset_checks[0]

                def check_health(data):
                    statuses = data["assetNodeOrError"]["assetCheckOrError"]["partitionStatuses"] or {}
                    return f"{len(statuses.get('succeededPartitions', []))} succeeded, " + (
                        f"{len(statuses.get('failedPartitions', []))} failed"
                    )

                _timed(
                    graphql,
                    f"AssetCheckPartitionHealthQuery {check}",
                    args.requests,
                    CHECK_PARTITION_HEALTH,
                    check_health,
                    assetKey=key,
                    checkName=check,
                )
                _timed(
                    graphql,
                    f"AssetChecksQuery {asset}",
                    args.requests,
                    ASSET_CHECKS,
                    lambda data: f"{len(data['assetNodeOrError']['assetChecksOrError']['checks'])} checks",
                    assetKey=key,
                )
        last = list(assets)[-1]
        _timed(
            graphql,
            f"AssetPartitionDetailQuery {last} {keys[len(keys) // 2]}",
            args.requests,
            PARTITION_DETAIL,
            lambda data: f"{len(data['assetOrError']['assetEventHistory']['results'])} events",
            assetKey={"path": last.split("/")},
            partitionKey=keys[len(keys) // 2],
        )


if __name__ == "__main__":
    main()
