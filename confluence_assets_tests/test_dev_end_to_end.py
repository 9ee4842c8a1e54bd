"""End to end, as a user runs it: `confluence-assets dev --sandbox`, then Dagster's GraphQL API.

Starts the real command (embedded PostgreSQL, migrations, `dagster dev` with webserver + daemon, sandbox
servers), discovers the spaces, backfills two space partitions, checks the chunks in the database, edits
a page through atlassian-python-api, lets the daemon tick the change sensor and waits for the re-sync,
then stops everything and checks that no process is left behind.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
import pytest
from atlassian import Confluence
from dagster_graphql import DagsterGraphQLClient

from confluence_assets.sandbox.site import DEFAULT_API_TOKEN, DEFAULT_EMAIL

CLI = str(Path(sys.executable).parent / "confluence-assets")
LOCATION = {"repositoryLocationName": "confluence_assets", "repositoryName": "__repository__"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def _runs(client: DagsterGraphQLClient, **tags: str) -> list[dict]:
    query = """query($filter: RunsFilter) { runsOrError(filter: $filter, limit: 50) {
        ... on Runs { results { runId jobName status tags { key value } } } } }"""
    run_filter = {"tags": [{"key": k, "value": v} for k, v in tags.items()]} if tags else None
    return client._execute(query, {"filter": run_filter})["runsOrError"]["results"]


def _partition(run: dict) -> str | None:
    return next((t["value"] for t in run["tags"] if t["key"] == "dagster/partition"), None)


@pytest.fixture
def dev_server(tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "CONFLUENCE_ASSETS_HOME": str(tmp_path / "home"),
        "CONFLUENCE_AUTOMATION_DEFAULT": "stopped",  # the test starts the sensor itself
        "CONFLUENCE_CHANGE_SENSOR_INTERVAL_SECONDS": "5",
    }
    for name in ("DATABASE_URL", "DAGSTER_HOME", "CONFLUENCE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        env.pop(name, None)
    log = open(tmp_path / "dev.log", "w+")  # noqa: SIM115 - read back at the end
    proc = subprocess.Popen(
        [CLI, "dev", "--sandbox", "--port", str(port), "--sandbox-spaces", "2", "--sandbox-pages", "15"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait(lambda: "Dagster UI" in Path(log.name).read_text() or proc.poll() is not None, 180, "the UI")
        assert proc.poll() is None, Path(log.name).read_text()[-3000:]
        yield proc, port, Path(log.name), tmp_path / "home"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_dev_sandbox_backfill_sensor_and_clean_stop(dev_server):
    proc, port, log_path, home = dev_server
    output = log_path.read_text()
    conf_url = re.search(r"sandbox Confluence (\S+)", output).group(1)
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)

    # 1. Discover the spaces (the space partitions), as "Materialize" on confluence_spaces would.
    spaces_run = client.submit_job_execution("confluence_spaces_job")
    _wait(lambda: client.get_run_status(spaces_run).value == "SUCCESS", 120, "confluence_spaces_job")
    partitions = client._execute(
        """query { partitionSetsOrError(repositorySelector: {repositoryLocationName: "confluence_assets",
            repositoryName: "__repository__"}, pipelineName: "confluence_sync_job") {
            ... on PartitionSets { results { name partitionsOrError { ... on Partitions {
            results { name } } } } } } }"""
    )["partitionSetsOrError"]["results"][0]
    keys = sorted(p["name"] for p in partitions["partitionsOrError"]["results"])
    assert keys == ["ENG", "OPS", "QM"]

    # 2. Backfill two space partitions: one run per space.
    launched = client._execute(
        """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
            __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
        {
            "params": {
                "selector": {"partitionSetName": partitions["name"], "repositorySelector": LOCATION},
                "partitionNames": ["ENG", "QM"],
            }
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill = launched["backfillId"]

    def backfill_done():
        runs = _runs(client, **{"dagster/backfill": backfill})
        return runs if len(runs) == 2 and all(r["status"] in ("SUCCESS", "FAILURE") for r in runs) else None

    runs = _wait(backfill_done, 240, "the backfill runs", interval=2)
    assert sorted(_partition(r) for r in runs) == ["ENG", "QM"]
    assert {r["status"] for r in runs} == {"SUCCESS"}

    db_url = f"postgresql://postgres@/confluence?host={home / 'pgdata'}"
    with psycopg.connect(db_url) as conn:
        chunks = dict(conn.execute("SELECT source_id, count(*) FROM archon_crawled_pages GROUP BY 1").fetchall())
        unembedded = conn.execute("SELECT count(*) FROM archon_crawled_pages WHERE embedding_1536 IS NULL").fetchone()[
            0
        ]
    assert set(chunks) == {"confluence_ENG", "confluence_QM"} and min(chunks.values()) > 10
    assert unembedded == 0

    # 3. Edit a page in the sandbox Confluence through the real client; the daemon's sensor tick sees it.
    confluence = Confluence(conf_url, username=DEFAULT_EMAIL, password=DEFAULT_API_TOKEN)
    page = confluence.get("rest/api/content/search", params={"cql": 'space = "ENG" AND type = page', "limit": 3})
    target = page["results"][2]
    confluence.update_page(target["id"], target["title"], "<p>An edit the hourly sensor must notice.</p>")
    started = client._execute(
        """mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename } }""",
        {"s": {**LOCATION, "sensorName": "confluence_change_sensor"}},
    )["startSensor"]
    assert started["__typename"] == "Sensor", started

    def resync():
        found = [r for r in _runs(client) if r["jobName"] == "confluence_sync_job" and _partition(r) == "ENG"]
        sensor_runs = [r for r in found if any(t["key"] == "dagster/sensor_name" for t in r["tags"])]
        return sensor_runs if sensor_runs and sensor_runs[0]["status"] in ("SUCCESS", "FAILURE") else None

    sensor_runs = _wait(resync, 240, "the sensor's re-sync run", interval=2)
    assert sensor_runs[0]["status"] == "SUCCESS"
    with psycopg.connect(db_url) as conn:
        text = conn.execute(
            "SELECT string_agg(content, ' ') FROM archon_crawled_pages WHERE metadata->>'page_id' = %s",
            (target["id"],),
        ).fetchone()[0]
    assert "An edit the hourly sensor must notice." in text

    # 4. Stop as a user does (Ctrl-C): no orphan processes, embedded database stopped.
    children = psutil.Process(proc.pid).children(recursive=True)
    assert any("dagster" in " ".join(c.cmdline()) for c in children)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=90) == 0

    def alive():
        out = []
        for c in children:
            try:
                if c.is_running() and c.status() != psutil.STATUS_ZOMBIE:
                    out.append(" ".join(c.cmdline())[:120])
            except psutil.NoSuchProcess:
                pass
        return out

    deadline = time.monotonic() + 30
    while alive() and time.monotonic() < deadline:
        time.sleep(1)
    assert not alive(), alive()
    assert not (home / "pgdata" / "postmaster.pid").exists()
    assert log_path.read_text().rstrip().endswith("stopped")
