"""End to end, as a user runs it: `confluence-assets dev --sandbox`, then Dagster's GraphQL API.

Starts the real command (embedded PostgreSQL, migrations, `dagster dev` with webserver + daemon, sandbox
servers), discovers the spaces, backfills two space partitions while two runs of the third space wait
their turn in the run queue, checks the chunks in the database, edits a page through
atlassian-python-api, lets the daemon tick the change sensor and sees exactly one re-sync run however
many ticks follow, then stops everything and checks that no process carrying the test's home is left.
"""

from __future__ import annotations

import json
import os
import re
import shlex
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
        ... on Runs { results { runId jobName status startTime endTime tags { key value } } } } }"""
    run_filter = {"tags": [{"key": k, "value": v} for k, v in tags.items()]} if tags else None
    return client._execute(query, {"filter": run_filter})["runsOrError"]["results"]


def _partition(run: dict) -> str | None:
    return next((t["value"] for t in run["tags"] if t["key"] == "dagster/partition"), None)


RUNNING = ("STARTING", "STARTED")
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


def _overlap(a: dict, b: dict) -> bool:
    return max(a["startTime"], b["startTime"]) < min(a["endTime"], b["endTime"])


def _sensor_ticks(client: DagsterGraphQLClient, sensor: str) -> list[dict]:
    query = """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { __typename
        ... on Sensor { sensorState { ticks(limit: 50) { status timestamp runIds } } } } }"""
    data = client._execute(query, {"s": {**LOCATION, "sensorName": sensor}})["sensorOrError"]
    return data["sensorState"]["ticks"]


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _processes_of(home: Path) -> dict[int, str]:
    """Every live process on the machine with ``home`` as its CONFLUENCE_ASSETS_HOME or in its command
    line (run workers, code servers, PostgreSQL backends, whoever started them)."""
    found = {}
    for proc in psutil.process_iter(["pid", "cmdline", "environ"]):
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            env = proc.info["environ"] or {}
            command = " ".join(proc.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if env.get("CONFLUENCE_ASSETS_HOME") == str(home) or str(home) in command:
            found[proc.pid] = command[:120]
    return found


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

    # 2. Backfill two space partitions (one run per space) and submit two runs of the third space: the
    #    queue lets different spaces run together, never two runs of one space.
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
    ops_ids = [client.submit_job_execution("confluence_sync_job", tags={"dagster/partition": "OPS"}) for _ in "ab"]
    seen: list[tuple[str, str]] = []  # the two OPS runs' statuses at each look

    def ops_runs() -> list[dict]:
        by_id = {r["runId"]: r for r in _runs(client, **{"dagster/partition": "OPS"})}
        ops = [by_id[i] for i in ops_ids if i in by_id]
        if len(ops) == 2:
            seen.append((ops[0]["status"], ops[1]["status"]))
        return ops

    def backfill_done():
        runs = _runs(client, **{"dagster/backfill": backfill})
        ops = ops_runs()
        done = len(runs) == 2 and all(r["status"] in FINISHED for r in runs)
        return runs if done and any(r["status"] in FINISHED for r in ops) else None

    # The second OPS run is still queued or running here; it is checked once the sensor part is done.
    runs = _wait(backfill_done, 300, "the backfill runs and the first OPS run", interval=1)
    assert sorted(_partition(r) for r in runs) == ["ENG", "QM"]
    assert {r["status"] for r in runs} == {"SUCCESS"}

    db_url = f"postgresql://postgres@/confluence?host={home / 'pgdata'}"
    with psycopg.connect(db_url) as conn:
        chunks = dict(conn.execute("SELECT source_id, count(*) FROM archon_crawled_pages GROUP BY 1").fetchall())
        unembedded = conn.execute("SELECT count(*) FROM archon_crawled_pages WHERE embedding_1536 IS NULL").fetchone()[
            0
        ]
    assert set(chunks) == {"confluence_ENG", "confluence_OPS", "confluence_QM"} and min(chunks.values()) > 10
    assert unembedded == 0

    # The search command dev prints for the sandbox works as printed, from another shell.
    hint = re.search(r"search from another shell: (.+)", output).group(1)
    command = hint.replace("confluence-assets", shlex.quote(CLI)).replace('"your query"', "QueryPie --space QM --json")
    found = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60)  # noqa: S602
    assert found.returncode == 0, found.stderr
    assert {r["space_key"] for r in json.loads(found.stdout)["results"]} == {"QM"}

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
    # Dedupe, observed: ticks that probe ENG again after its re-sync launch nothing more for it.
    resynced_at = sensor_runs[0]["endTime"]

    def later_ticks():
        ticks = [t for t in _sensor_ticks(client, "confluence_change_sensor") if t["timestamp"] > resynced_at]
        return ticks if len([t for t in ticks if t["status"] in ("SKIPPED", "SUCCESS")]) >= 2 else None

    ticks = _wait(later_ticks, 90, "two more ticks of the change sensor", interval=2)
    assert not [t for t in ticks if t["runIds"]], ticks
    sensor_runs = [
        r for r in _runs(client) if _partition(r) == "ENG" and any(t["key"] == "dagster/sensor_name" for t in r["tags"])
    ]
    assert len(sensor_runs) == 1, sensor_runs
    with psycopg.connect(db_url) as conn:
        text = conn.execute(
            "SELECT string_agg(content, ' ') FROM archon_crawled_pages WHERE metadata->>'page_id' = %s",
            (target["id"],),
        ).fetchone()[0]
    assert "An edit the hourly sensor must notice." in text

    # The two runs of one space: one waited in the queue until the other had finished.
    def ops_done():
        ops = ops_runs()
        return ops if len(ops) == 2 and all(r["status"] in FINISHED for r in ops) else None

    ops = _wait(ops_done, 120, "the second OPS run")
    assert {r["status"] for r in ops} == {"SUCCESS"}
    first, second = sorted(ops, key=lambda r: r["startTime"])
    assert second["startTime"] >= first["endTime"], ops
    assert not [s for s in seen if s[0] in RUNNING and s[1] in RUNNING], seen
    assert [s for s in seen if "QUEUED" in s and set(RUNNING) & set(s)], seen
    # Runs of different spaces ran at the same time.
    everything = runs + ops
    assert any(_overlap(a, b) for a in everything for b in everything if _partition(a) != _partition(b)), everything

    # 4. Stop as a user does (Ctrl-C): no orphan processes anywhere on the machine, database stopped.
    children = psutil.Process(proc.pid).children(recursive=True)
    assert any("dagster" in " ".join(c.cmdline()) for c in children)
    ours = _processes_of(home)
    # The scan sees every process of the tree (they inherit the environment) and PostgreSQL's too.
    assert {c.pid for c in children if _alive(c)} <= set(ours), ours
    assert any("postgres" in command for command in ours.values()), ours
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=90) == 0

    deadline = time.monotonic() + 30
    while _processes_of(home) and time.monotonic() < deadline:
        time.sleep(1)
    assert not _processes_of(home), _processes_of(home)
    assert not (home / "pgdata" / "postmaster.pid").exists()
    assert log_path.read_text().rstrip().endswith("stopped")
