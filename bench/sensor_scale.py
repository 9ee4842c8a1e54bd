"""The change sensor at 200 and 1,000 spaces: tick seconds, probes per tick, ticks until every space is probed.

    .venv/bin/python bench/sensor_scale.py [--spaces 200 1000] [--pages 3] [--delay 0.05] [--budget 40]

A sandbox site with ``--spaces`` spaces of ``--pages`` pages each (served from a child process, so the
sandbox's threads do not share the sensor's interpreter), every space already synced (its watermark in
``archon_sources`` of the embedded PostgreSQL, as a finished sync leaves it) and a partition on a real
DagsterInstance (SQLite storage). Every CQL probe waits ``--delay`` seconds in the sandbox (a site's
latency). The change sensor, built as the code location builds it, is ticked with
``dg.build_sensor_context``, its cursor carried from tick to tick, until every space was probed at least
once. Per tick: seconds (the budget is PROBE_BUDGET_SECONDS in confluence_assets/defs/sensors.py, or
``--budget``), probes sent, spaces answered, spaces left for the next tick. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SEARCH = "GET /wiki/rest/api/content/search"  # the probe's endpoint, as the sandbox counts and delays it
SITE_NOW = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
ZONE = "Asia/Seoul"


def space_keys(count: int) -> list[str]:
    return [f"S{i:04d}" for i in range(count)]


def _serve(spaces: int, pages: int, delay: float, conn) -> None:
    from confluence_assets.sandbox import ConfluenceServer, Site

    site = Site(timezone=ZONE)
    site.clock.set(SITE_NOW - timedelta(days=1))
    for key in space_keys(spaces):
        home = site.add_space(key, homepage_body="<p>home</p>").homepage_id
        for n in range(pages - 1):
            site.create_page(key, f"{key} page {n}", f"<p>page {n} of {key}</p>", parent_id=home)
    site.clock.set(SITE_NOW)
    with ConfluenceServer(site) as conf:
        if delay:
            conf.faults.add(SEARCH, delay=delay, times=None)
        conn.send((conf.url, conf.email, conf.api_token))
        while conn.recv() == "probes":
            conn.send(conf.stats.count(SEARCH))


def _mark_synced(db_url: str, keys: list[str]) -> None:
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM archon_sources WHERE source_id LIKE 'confluence_%'")
        conn.execute(
            """INSERT INTO archon_sources (source_id, metadata)
               SELECT 'confluence_' || k, jsonb_build_object('last_sync_timestamp', %s::text)
               FROM unnest(%s::text[]) k""",
            (SITE_NOW.isoformat(), keys),
        )


def measure(spaces: int, pages: int, delay: float, db_url: str, max_ticks: int) -> None:
    import dagster as dg

    from confluence_assets import settings
    from confluence_assets.defs import sensors
    from confluence_assets.defs.resources import ConfluenceResource, PostgresResource

    keys = space_keys(spaces)
    parent, child = mp.get_context("fork").Pipe()
    server = mp.get_context("fork").Process(target=_serve, args=(spaces, pages, delay, child), daemon=True)
    started = time.perf_counter()
    server.start()
    url, email, token = parent.recv()
    budget = sensors.PROBE_BUDGET_SECONDS
    print(f"\n{spaces} spaces x {pages} pages, {delay * 1000:.0f} ms per probe, budget {budget:.0f} s")
    print(f"  sandbox ready in {time.perf_counter() - started:.1f} s")
    _mark_synced(db_url, keys)
    change_sensor = sensors.build_sensors(settings.load().automation)[0]
    resources = {
        "confluence": ConfluenceResource(url=url, email=email, api_token=token, site_timezone=ZONE),
        "database": PostgresResource(database_url=db_url),
    }
    try:
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("confluence_spaces", keys)
            probed: set[str] = set()
            cursor = None
            for tick in range(1, max_ticks + 1):
                parent.send("probes")
                before = parent.recv()
                began = time.perf_counter()
                context = dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor)
                result = change_sensor(context)
                seconds = time.perf_counter() - began
                parent.send("probes")
                sent = parent.recv() - before
                cursor = result.cursor
                state = json.loads(cursor)
                left = set(state["not_reached"]) | set(state["errors"])
                answered = set(keys) - left
                new = len(answered - probed)
                probed |= answered
                # The budget bounds the probes; the tick adds the partition and run listing and one query.
                over = seconds - sensors.PROBE_BUDGET_SECONDS
                within = "inside the probe budget" if over <= 0 else f"probe budget + {over:.2f} s"
                print(
                    f"  tick {tick}: {seconds:6.2f} s ({within}), {sent} probes sent, {len(answered)} answered "
                    f"({new} new), {len(state['not_reached'])} left for the next tick, {len(state['errors'])} errors; "
                    f"{len(probed)}/{spaces} probed so far"
                )
                if result.run_requests:
                    print(f"    unexpected run requests: {[r.partition_key for r in result.run_requests][:5]}")
                if len(probed) == spaces:
                    print(f"  every space probed after {tick} tick(s)")
                    break
                time.sleep(1.0)  # the abandoned probes finish in the background, as between real ticks
            else:
                print(f"  {spaces - len(probed)} spaces never probed in {max_ticks} ticks")
    finally:
        parent.send("stop")
        server.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spaces", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--pages", type=int, default=3, help="pages per space (the homepage included)")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds each probe waits in the sandbox")
    parser.add_argument("--budget", type=float, default=None, help="override PROBE_BUDGET_SECONDS (seconds)")
    parser.add_argument("--max-ticks", type=int, default=10)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="ca-sensor-"))
    os.environ["CONFLUENCE_ASSETS_HOME"] = str(home)
    os.environ.pop("DATABASE_URL", None)

    from confluence_assets.db import migrations
    from confluence_assets.db.embedded import ensure_embedded_server, stop_embedded_server
    from confluence_assets.defs import sensors

    if args.budget is not None:
        sensors.PROBE_BUDGET_SECONDS = args.budget  # change_sensor_tick reads the module's value each tick
    try:
        db_url = ensure_embedded_server().app_url
        migrations.migrate(db_url)
        for spaces in args.spaces:
            measure(spaces, args.pages, args.delay, db_url, args.max_ticks)
    finally:
        stop_embedded_server()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
