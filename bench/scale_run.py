"""The scale run: a site of N spaces synced through a deployed instance, then re-synced; prints the numbers.

    .venv/bin/python bench/scale_run.py [--spaces 200] [--pages 500] [--edit-share 0.01] [--queries 200]

A sandbox site of ``--spaces`` generated spaces of ``--pages`` pages each (the homepage included) is served
from a child process (its Confluence and its embeddings server, so that their request counts are read
there and their threads do not share anyone's interpreter). The real `confluence-assets dev` (no
--sandbox) runs against it: the embedded PostgreSQL, `dagster dev` with webserver and daemon, the queued
run coordinator of dagster.yaml (4 runs at once, one per space; the confluence_api pool) and Dagster's
default run launcher. Through Dagster's GraphQL API, as the UI does:

1. ``confluence_spaces_job`` lists the spaces (one partition each);
2. the initial load: one backfill of ``confluence_sync_job`` over every space partition, polled until
   every run has finished (progress every minute): wall time, runs, the most running at once;
3. the database: pages, chunks, the size of each table with its indexes;
4. a no-change round: ``confluence_change_sensor`` started (interval ``--sensor-interval``) until a tick
   has ended, then stopped: Confluence requests per space, runs requested (0 expected);
5. a ``--edit-share`` edit round: that share of the pages edited in the sandbox (a marker appended), the
   sensor started again until its runs have finished, then stopped: wall time from the edits to every
   edit live in the chunks, runs, Confluence and embedding requests;
6. search at that size: ``--queries`` page titles as questions, the SQL of hybrid search timed (the
   query embedded first), as the service account and as nobody named, unfiltered and with a space, a
   label and a subtree filter: p50 / p95.

Memory: every process of the instance (its tree and whatever carries its CONFLUENCE_ASSETS_HOME) is
sampled every second; printed as the peak RSS per run worker (the code server's child that runs a run:
the jobs use the in-process executor), per attachment extraction worker, and the webserver's, daemon's
and code servers' peaks. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import signal
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import psutil
import psycopg
from dagster_graphql import DagsterGraphQLClient
from dev_instance import dev_instance, wait_for
from psycopg import sql
from search import percentile  # the sibling benchmark's p95

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluence_assets import settings  # noqa: E402 - after the path, as the other benches

LOCATION = {"repositoryLocationName": "confluence_assets", "repositoryName": "__repository__"}
SENSOR = "confluence_change_sensor"
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")
MARKER = "scale-run-edit"


# --- the sandbox site, in a child process -------------------------------------------------------------


def _serve(spaces: int, pages: int, seed: int, conn) -> None:
    from confluence_assets.sandbox import ConfluenceServer, EmbeddingsServer, Site, generate_corpus

    site = Site(timezone="Asia/Seoul")
    info = generate_corpus(site, seed=seed, spaces=spaces, pages_per_space=pages)
    with ConfluenceServer(site) as conf, EmbeddingsServer() as emb:
        conn.send(
            {
                "conf": (conf.url, conf.email, conf.api_token),
                "emb": (emb.url, emb.api_key),
                "pages": sum(1 for _ in site.iter_pages()),
                "corpus_mb": info.total_bytes / 1e6,
                "corpus_seconds": info.seconds,
            }
        )
        while True:
            command, argument = conn.recv()
            if command == "stats":
                conn.send(
                    {
                        "confluence": conf.stats.total,
                        "by_endpoint": dict(conf.stats.by_endpoint),
                        "embedding_requests": emb.stats.requests,
                        "embedding_inputs": emb.stats.inputs,
                        "truncated": emb.stats.truncated,
                    }
                )
            elif command == "edit":
                conn.send(_edit(site, share=argument))
            else:
                return


def _edit(site, share: float) -> dict[str, str]:
    """Append a marker to ``share`` of the site's live pages (chosen by a fixed seed); page id -> space key."""
    live = sorted((p for p in site.iter_pages() if p.status == "current" and p.kind == "page"), key=lambda p: p.id)
    chosen = random.Random(11).sample(live, max(1, round(len(live) * share)))
    edited = {}
    for page in chosen:
        marker = f"{MARKER}-{page.id}"
        site.edit_page(page.id, body=page.body + f"<p>The scale run's edit {marker} is live.</p>")
        edited[page.id] = page.space_key
    return edited


class Sandbox:
    """The child process serving the site: its request counts, and edits made there (not counted as the
    pipeline's requests)."""

    def __init__(self, spaces: int, pages: int, seed: int, serve: Callable = _serve) -> None:
        """``serve(spaces, pages, seed, conn)`` runs in the child (bench/soak.py passes its own)."""
        self._pipe, child = mp.get_context("fork").Pipe()
        self._process = mp.get_context("fork").Process(target=serve, args=(spaces, pages, seed, child), daemon=True)
        self._process.start()
        self.site: dict = self._pipe.recv()

    def ask(self, command: str, argument: object = None):
        """The child's answer to ``command``."""
        self._pipe.send((command, argument))
        return self._pipe.recv()

    def stats(self) -> dict:
        return self.ask("stats")

    def edit(self, share: float) -> dict[str, str]:
        return self.ask("edit", share)

    def stop(self) -> None:
        self._pipe.send(("stop", None))
        self._process.join(timeout=10)


# --- the instance's processes -------------------------------------------------------------------------


def _kind(proc: psutil.Process) -> str:
    text = " ".join(proc.cmdline())
    for needle, kind in (
        ("extract.worker", "extraction worker"),
        ("api grpc", "code server"),
        ("code-server start", "code server proxy"),
        ("dagster_webserver", "webserver"),
        ("dagster._daemon", "daemon"),
        ("dagster-daemon", "daemon"),
        ("postgres", "postgres (the postmaster)"),
        ("confluence-assets dev", "confluence-assets dev"),
        ("dg dev", "dg dev"),
    ):
        if needle in text:
            return kind
    parent = proc.parent()
    if parent is not None and "api grpc" in " ".join(parent.cmdline()):
        return "run worker"  # the code server starts each run in a process of its own (in-process executor)
    return "other (" + " ".join(Path(part).name for part in proc.cmdline()[:2]) + ")"


class MemorySampler(threading.Thread):
    """Peak RSS of every process of the instance, sampled every ``interval`` seconds."""

    def __init__(self, root_pid: int, home: Path, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.root_pid, self.home, self.interval = root_pid, str(home), interval
        # (pid, start time) -> (kind, peak RSS bytes): a pid is reused within minutes when runs come and go
        self.peak: dict[tuple[int, float], tuple[str, int]] = {}
        self.stop = threading.Event()

    def _processes(self) -> list[psutil.Process]:
        found: dict[int, psutil.Process] = {}
        try:
            root = psutil.Process(self.root_pid)
            found.update({p.pid: p for p in root.children(recursive=True)})
        except psutil.NoSuchProcess:
            pass
        for proc in psutil.process_iter(["environ"]):
            if (proc.info["environ"] or {}).get(settings.CONFLUENCE_ASSETS_HOME) == self.home:
                found[proc.pid] = proc
        return list(found.values())

    def kind_of(self, proc: psutil.Process) -> str:
        """What ``proc`` is (looked at once per process: a run worker's children come and go)."""
        known = self.peak.get((proc.pid, proc.create_time()))
        return known[0] if known else _kind(proc)

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            for proc in self._processes():
                try:
                    key, rss, kind = (proc.pid, proc.create_time()), proc.memory_info().rss, self.kind_of(proc)
                except psutil.Error:
                    continue
                self.peak[key] = (kind, max(rss, self.peak.get(key, (kind, 0))[1]))

    def peaks_mb(self) -> dict[str, float]:
        """The highest peak RSS of each kind of process, in MB."""
        peaks: dict[str, float] = {}
        for kind, rss in self.peak.values():
            peaks[kind] = max(peaks.get(kind, 0.0), round(rss / 2**20, 1))
        return peaks

    def summary(self) -> list[str]:
        by_kind: dict[str, list[int]] = defaultdict(list)
        for kind, rss in self.peak.values():
            by_kind[kind].append(rss)
        lines = []
        for kind, values in sorted(by_kind.items()):
            mb = sorted(v / 2**20 for v in values)
            lines.append(
                f"  {kind}: {len(mb)} processes, peak RSS max {mb[-1]:.0f} MB, median {statistics.median(mb):.0f} MB"
            )
        return lines


# --- Dagster through GraphQL --------------------------------------------------------------------------


class Dagster:
    def __init__(self, port: int) -> None:
        self.client = DagsterGraphQLClient("127.0.0.1", port_number=port)

    def query(self, text: str, **variables) -> dict:
        return self.client._execute(text, variables)  # noqa: SLF001 - no public API for these queries

    def runs(self, **tags: str) -> list[dict]:
        found, cursor = [], None
        while True:
            page = self.query(
                """query($filter: RunsFilter, $cursor: String) { runsOrError(filter: $filter, cursor: $cursor,
                    limit: 500) { ... on Runs { results { runId jobName status startTime endTime
                    tags { key value } } } } }""",
                filter={"tags": [{"key": k, "value": v} for k, v in tags.items()]} if tags else None,
                cursor=cursor,
            )["runsOrError"]["results"]
            found += page
            if len(page) < 500:
                return found
            cursor = page[-1]["runId"]

    def finished(self, run_id: str) -> bool:
        status = self.client.get_run_status(run_id).value
        if status in ("FAILURE", "CANCELED"):
            raise SystemExit(f"run {run_id} ended {status}")
        return status == "SUCCESS"

    def partition_set(self) -> tuple[str, list[str]]:
        result = self.query(
            """query($repo: RepositorySelector!) { partitionSetsOrError(repositorySelector: $repo,
                pipelineName: "confluence_sync_job") { ... on PartitionSets { results { name
                partitionsOrError { ... on Partitions { results { name } } } } } } }""",
            repo=LOCATION,
        )["partitionSetsOrError"]["results"][0]
        return result["name"], [p["name"] for p in result["partitionsOrError"]["results"]]

    def backfill(self, partition_set: str, keys: list[str]) -> str:
        launched = self.query(
            """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
                __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
            params={
                "selector": {"partitionSetName": partition_set, "repositorySelector": LOCATION},
                "partitionNames": keys,
            },
        )["launchPartitionBackfill"]
        if launched["__typename"] != "LaunchBackfillSuccess":
            raise SystemExit(f"the backfill was not launched: {launched}")
        return launched["backfillId"]

    def start_sensor(self) -> None:
        started = self.query(
            """mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename } }""",
            s={**LOCATION, "sensorName": SENSOR},
        )["startSensor"]
        if started["__typename"] != "Sensor":
            raise SystemExit(f"the sensor did not start: {started}")

    def stop_sensor(self) -> None:
        sensor = self.query(
            """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor { id } } }""",
            s={**LOCATION, "sensorName": SENSOR},
        )["sensorOrError"]
        self.query("""mutation($id: String) { stopSensor(id: $id) { __typename } }""", id=sensor["id"])

    def ticks(self) -> list[dict]:
        return self.query(
            """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor {
                sensorState { ticks(limit: 20) { status timestamp endTimestamp runIds } } } } }""",
            s={**LOCATION, "sensorName": SENSOR},
        )["sensorOrError"]["sensorState"]["ticks"]


def space_partitions(dagster: Dagster) -> tuple[str, list[str]]:
    """Run ``confluence_spaces_job`` (it adds a partition per space); the sync job's partition set and keys."""
    spaces_run = dagster.client.submit_job_execution("confluence_spaces_job")
    wait_for(lambda: dagster.finished(spaces_run), 300, "confluence_spaces_job")
    return dagster.partition_set()


def backfill_every_space(
    dagster: Dagster, partition_set: str, keys: list[str], timeout: float
) -> tuple[list[dict], int, float]:
    """One backfill of ``keys``, waited for: (its runs, the most running at once, when it was launched)."""
    began = time.time()
    backfill = dagster.backfill(partition_set, keys)

    def in_backfill(run: dict) -> bool:
        return ("dagster/backfill", backfill) in {(t["key"], t["value"]) for t in run["tags"]}

    runs, most_running = _wait_for_runs(dagster, "initial load", in_backfill, len(keys), timeout)
    return runs, most_running, began


def _wait_for_runs(dagster: Dagster, what: str, select, expected: int, timeout: float) -> tuple[list[dict], int]:
    """Poll every 5 s until ``expected`` runs ``select``ed from every run have finished; (runs, most running)."""
    began, last_print, most_running = time.monotonic(), time.monotonic(), 0

    def done() -> list[dict] | None:
        nonlocal last_print, most_running
        runs = [r for r in dagster.runs() if select(r)]
        states = Counter(r["status"] for r in runs)
        most_running = max(most_running, states["STARTED"] + states["STARTING"])
        if time.monotonic() - last_print >= 60:
            last_print = time.monotonic()
            print(f"  {what}: {time.monotonic() - began:.0f} s, {dict(sorted(states.items()))}", flush=True)
        return runs if len(runs) >= expected and all(r["status"] in FINISHED for r in runs) else None

    return wait_for(done, timeout, what, interval=5), most_running


# --- the database -------------------------------------------------------------------------------------

TABLES = (
    "archon_crawled_pages",
    "confluence_pages",
    "archon_page_metadata",
    "archon_sources",
    "confluence_page_restrictions",
    "confluence_sync_staged_chunks",
    "confluence_sync_staged_pages",
)


def _sizes(conn: psycopg.Connection) -> list[str]:
    lines = []
    database = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    lines.append(f"  database {database / 2**20:,.0f} MB")
    for table in TABLES:
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
            continue
        heap, indexes, total = conn.execute(
            "SELECT pg_relation_size(%(t)s), pg_indexes_size(%(t)s), pg_total_relation_size(%(t)s)", {"t": table}
        ).fetchone()
        rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
        lines.append(
            f"  {table}: {rows:,} rows, {total / 2**20:,.0f} MB in all "
            f"(heap {heap / 2**20:,.0f} MB, indexes {indexes / 2**20:,.0f} MB)"
        )
    for name, size in conn.execute(
        """SELECT c.relname, pg_relation_size(c.oid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           WHERE i.indrelid = 'archon_crawled_pages'::regclass ORDER BY 2 DESC LIMIT 4"""
    ):
        lines.append(f"    index {name}: {size / 2**20:,.0f} MB")
    return lines


def _live_markers(conn: psycopg.Connection) -> int:
    """Edited pages whose edit is in the live chunks."""
    return conn.execute(
        "SELECT count(DISTINCT substring(content from %s)) FROM archon_crawled_pages WHERE content LIKE %s",
        (f"({MARKER}-[0-9]+)", f"%{MARKER}-%"),
    ).fetchone()[0]


# --- search -------------------------------------------------------------------------------------------


def _search_latency(db_url: str, queries: int) -> list[dict]:
    from confluence_assets.search.filters import SearchFilters
    from confluence_assets.search.hybrid import search as hybrid_search
    from confluence_assets.search.service import embedder_from_env

    rng = random.Random(5)
    with psycopg.connect(db_url, autocommit=True) as conn:
        titles = [r[0] for r in conn.execute("SELECT title FROM confluence_pages WHERE NOT is_deleted")]
        spaces = [r[0] for r in conn.execute("SELECT DISTINCT space_key FROM confluence_pages")]
        labels = [
            r[0]
            for r in conn.execute(
                """SELECT l, count(*) FROM confluence_pages, jsonb_array_elements_text(metadata->'labels') l
                   WHERE NOT is_deleted GROUP BY 1 ORDER BY 2 DESC LIMIT 10"""
            )
        ]
        subtrees = [
            r[0]
            for r in conn.execute(
                """SELECT split_part(path, '/', 3), count(*) FROM confluence_pages
                   WHERE NOT is_deleted AND split_part(path, '/', 4) <> '' GROUP BY 1 ORDER BY 2 DESC LIMIT 20"""
            )
        ]
        asked = rng.sample(titles, min(queries, len(titles)))
        embedder = embedder_from_env()
        vectors = [v for start in range(0, len(asked), 64) for v in embedder.embed(asked[start : start + 64]).vectors]
        cases = {
            "unfiltered": lambda: SearchFilters(),
            "one space": lambda: SearchFilters(spaces=(rng.choice(spaces),)),
            "a label": lambda: SearchFilters(labels=(rng.choice(labels),)) if labels else None,
            "under a page": lambda: SearchFilters(under_page_id=rng.choice(subtrees)) if subtrees else None,
        }
        lines = []
        for viewer, as_service in (("service account", True), ("nobody named", False)):
            for case, make in cases.items():
                timings, found = [], 0
                for text, vector in zip(asked, vectors, strict=True):
                    filters = make()
                    if filters is None:
                        break
                    began = time.perf_counter()
                    results = hybrid_search(conn, text, vector, filters, limit=10, as_service_account=as_service)
                    timings.append((time.perf_counter() - began) * 1000)
                    found += bool(results)
                if timings:
                    lines.append(
                        {
                            "viewer": viewer,
                            "filter": case,
                            "queries": len(timings),
                            "with_results": found,
                            "p50_ms": round(statistics.median(timings), 1),
                            "p95_ms": round(percentile(timings, 95), 1),
                        }
                    )
    return lines


# --- the run ------------------------------------------------------------------------------------------


def _requests_line(delta: dict, spaces: int) -> str:
    """``_delta``'s counts as one line."""
    confluence = delta["confluence_requests"]
    return (
        f"Confluence requests {confluence:,} ({confluence / spaces:.2f} per space), "
        f"embedding requests {delta['embedding_requests']:,} ({delta['embedding_inputs']:,} inputs)"
    )


def _by_endpoint(before: dict, after: dict, top: int = 8) -> str:
    delta = Counter(after["by_endpoint"]) - Counter(before["by_endpoint"])
    return ", ".join(f"{endpoint} {n:,}" for endpoint, n in delta.most_common(top))


def _sensor_round(dagster: Dagster, after: float, timeout: float) -> dict:
    """Start the change sensor, wait for its first tick that ends after ``after``, stop it; that tick."""
    dagster.start_sensor()
    try:

        def ended_tick():
            return next(
                (
                    t
                    for t in dagster.ticks()
                    if t["timestamp"] > after and t["status"] in ("SUCCESS", "SKIPPED", "FAILURE")
                ),
                None,
            )

        tick = wait_for(ended_tick, timeout, "a tick of the change sensor", interval=1)
    finally:
        dagster.stop_sensor()
    if tick["status"] == "FAILURE":
        raise SystemExit(f"the change sensor's tick failed: {tick}")
    return tick


def instance_environment(site: dict, sensor_interval: int) -> dict[str, str]:
    """The dev instance's settings for the sandbox child's servers (``Sandbox.site``)."""
    (conf_url, email, token), (emb_url, emb_key) = site["conf"], site["emb"]
    return {
        settings.CONFLUENCE_URL: conf_url,
        settings.CONFLUENCE_EMAIL: email,
        settings.CONFLUENCE_API_TOKEN: token or "",
        settings.CONFLUENCE_SITE_TIMEZONE: "Asia/Seoul",
        settings.OPENAI_API_KEY: emb_key or "",
        settings.OPENAI_BASE_URL: emb_url,
        settings.CONFLUENCE_CHANGE_SENSOR_INTERVAL_SECONDS: str(sensor_interval),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spaces", type=int, default=200)
    parser.add_argument("--pages", type=int, default=500, help="pages per space, the homepage included")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--edit-share", type=float, default=0.01, help="share of the pages edited (default 1 %%)")
    parser.add_argument("--queries", type=int, default=200, help="timed searches per case (default 200)")
    parser.add_argument("--sensor-interval", type=int, default=20, help="the change sensor's interval (s)")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="the initial load's limit (s)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    # Run in the background for an hour, it must still stop cleanly: a background job of a non-interactive
    # shell ignores SIGINT, and SIGTERM would skip the cleanup of the instance and its home.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    sandbox = Sandbox(args.spaces, args.pages, args.seed)
    site = sandbox.site
    print(
        f"sandbox: {args.spaces} spaces x {args.pages} pages = {site['pages']:,} pages, "
        f"{site['corpus_mb']:.0f} MB of storage XHTML, generated in {site['corpus_seconds']:.0f} s",
        flush=True,
    )
    environment = instance_environment(site, args.sensor_interval)
    os.environ.update(environment)  # the search below embeds its queries as the code location does
    try:
        with dev_instance([], prefix="ca-scale-run-", sandbox=False, environment=environment) as dev:
            memory = MemorySampler(dev.pid, dev.home)
            memory.start()
            figures = _run(args, Dagster(dev.port), dev.database_url, sandbox)
            memory.stop.set()
            print("memory (peak RSS, sampled every second):")
            print("\n".join(memory.summary()))
            figures["peak_rss_mb"] = memory.peaks_mb()
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
    finally:
        sandbox.stop()


def _delta(before: dict, after: dict) -> dict:
    return {
        "confluence_requests": after["confluence"] - before["confluence"],
        "embedding_requests": after["embedding_requests"] - before["embedding_requests"],
        "embedding_inputs": after["embedding_inputs"] - before["embedding_inputs"],
    }


def _run(args: argparse.Namespace, dagster: Dagster, db_url: str, sandbox: Sandbox) -> dict:
    """The rounds; their figures (printed as they come, and returned for ``--json``)."""
    stats = sandbox.stats
    figures: dict = {"spaces": args.spaces, "pages_per_space": args.pages}
    partition_set, keys = space_partitions(dagster)
    print(f"confluence_spaces_job: {len(keys)} space partitions", flush=True)
    figures["partitions"] = len(keys)

    # 2. The initial load.
    before = stats()
    runs, most_running, began = backfill_every_space(dagster, partition_set, keys, args.timeout)
    wall = max(r["endTime"] for r in runs) - began
    after = stats()
    delta = _delta(before, after)
    with psycopg.connect(db_url, autocommit=True) as conn:
        pages, chunks = conn.execute(
            """SELECT (SELECT count(*) FROM confluence_pages WHERE NOT is_deleted),
                      (SELECT count(*) FROM archon_crawled_pages)"""
        ).fetchone()
        sizes = _sizes(conn)
    statuses = Counter(r["status"] for r in runs)
    durations = sorted(r["endTime"] - r["startTime"] for r in runs)
    print(
        f"initial load (one backfill of {len(keys)} partitions): {wall:,.0f} s wall, {pages / wall:.1f} pages/s; "
        f"runs {dict(statuses)}, at most {most_running} running at once; "
        f"run duration median {statistics.median(durations):.0f} s, max {durations[-1]:.0f} s"
    )
    print(f"  {pages:,} live pages, {chunks:,} chunks ({chunks / max(pages, 1):.2f} per page)")
    print(f"  {_requests_line(delta, len(keys))}; embedded inputs truncated: {after['truncated']}")
    print(f"  by endpoint: {_by_endpoint(before, after)}")
    print("database after the initial load:")
    print("\n".join(sizes), flush=True)
    figures["initial_load"] = {
        "wall_seconds": round(wall, 1),
        "runs": dict(statuses),
        "most_running": most_running,
        "pages": pages,
        "chunks": chunks,
        "truncated_inputs": after["truncated"],
        **delta,
    }

    # 4. A no-change round of the change sensor.
    before, began = stats(), time.time()
    tick = _sensor_round(dagster, began, 600)
    delta = _delta(before, stats())
    print(
        f"no-change sensor round: tick {tick['status']}, {tick['endTimestamp'] - tick['timestamp']:.1f} s, "
        f"{len(tick['runIds'])} runs requested; {_requests_line(delta, len(keys))}",
        flush=True,
    )
    figures["no_change_round"] = {"tick": tick["status"], "runs_requested": len(tick["runIds"]), **delta}

    # 5. The edit round.
    before = stats()
    edits = sandbox.edit(args.edit_share)
    began = time.time()
    tick = _sensor_round(dagster, began, 600)
    sensor_runs = set(tick["runIds"])
    runs, most_running = _wait_for_runs(
        dagster, "edit round", lambda r: r["runId"] in sensor_runs, len(sensor_runs), 3600
    )
    with psycopg.connect(db_url, autocommit=True) as conn:

        def every_edit_live() -> int | None:
            live = _live_markers(conn)
            return live if live >= len(edits) else None

        live = wait_for(every_edit_live, 600, "every edit in the live chunks")
        live_at = time.time()
    after = stats()
    delta, statuses = _delta(before, after), dict(Counter(r["status"] for r in runs))
    print(
        f"edit round: {len(edits):,} pages edited ({args.edit_share:.1%}); every edit live "
        f"{live_at - began:,.0f} s after the sensor started; {len(runs)} runs ({statuses}), at most "
        f"{most_running} at once; {_requests_line(delta, len(keys))}",
        flush=True,
    )
    print(f"  by endpoint: {_by_endpoint(before, after)}")
    figures["edit_round"] = {
        "pages_edited": len(edits),
        "spaces_edited": len(set(edits.values())),
        "edits_live": live,
        "seconds_to_live": round(live_at - began, 1),
        "runs": statuses,
        "run_partitions": sorted({_partition(r) for r in runs}),
        "edited_spaces": sorted(set(edits.values())),
        **delta,
    }

    # 6. Search at this size.
    print("search (SQL of confluence_hybrid_search, limit 10, the query embedded first):")
    figures["search"] = _search_latency(db_url, args.queries)
    for row in figures["search"]:
        print(
            f"  hybrid, {row['viewer']}, {row['filter']}: p50 {row['p50_ms']:6.1f} ms, p95 {row['p95_ms']:6.1f} ms "
            f"({row['queries']} queries, {row['with_results']} with results)",
            flush=True,
        )
    return figures


def _partition(run: dict) -> str | None:
    return next((t["value"] for t in run["tags"] if t["key"] == "dagster/partition"), None)


if __name__ == "__main__":
    main()
