"""The whole crash matrix of issue 8, with figures: sync runs of a generated space in separate processes,
each killed with SIGKILL at a crash point inside the sync steps (or after a seeded random delay), re-run
until a run succeeds, then compared row for row with an undisturbed sync, while a reader thread checks
that no live page ever lacks chunks.

    .venv/bin/python bench/reliability.py [--pages 1000] [--random-kills 6] [--seed 8]
    .venv/bin/python bench/reliability.py --points initial/swap_inside:1 update/complete:1

The embedded PostgreSQL runs under a throwaway CONFLUENCE_ASSETS_HOME; the sandbox servers run in this
process (threads); each sync run is `python -m confluence_assets_tests.crash_worker`. Exit status 1 when
any scenario lost or changed a row, or the reader saw a violation.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--random-kills", type=int, default=6)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--points", nargs="*", help="only these phase/point scenarios, e.g. update/swap_inside:50")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="ca-reliability-"))
    os.environ["CONFLUENCE_ASSETS_HOME"] = str(home)
    os.environ.pop("DATABASE_URL", None)

    from confluence_assets.db import migrations
    from confluence_assets.db.embedded import ensure_embedded_server, stop_embedded_server
    from confluence_assets.db.urls import with_database
    from confluence_assets_tests.crash_matrix import Matrix, Scenario, build_site, full_matrix

    started = time.monotonic()
    try:
        server = ensure_embedded_server()
        import psycopg

        with psycopg.connect(server.server_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE crash_template")
        migrations.migrate(with_database(server.server_url, "crash_template"))

        site, space = build_site(args.pages)
        with Matrix(site, space, server.server_url, "crash_template") as matrix:
            if args.points:
                scenarios = [Scenario(*p.split("/", 1)) for p in args.points]
            else:
                scenarios = full_matrix(args.random_kills, args.seed)
            outcomes = matrix.run_all(scenarios)
    finally:
        stop_embedded_server()
        shutil.rmtree(home, ignore_errors=True)

    failed = [o for o in outcomes if not o.ok]
    kills = sum(o.kills for o in outcomes)
    rows = sum(o.pages_compared + o.chunks_compared for o in outcomes)
    checks = sum(o.reader_checks for o in outcomes)
    print()
    print(f"pages: {args.pages}; scenarios: {len(outcomes)} ({len(failed)} failed)")
    print(f"SIGKILLs survived: {kills}; runs: {sum(o.runs for o in outcomes)}")
    print(f"rows compared with the undisturbed sync: {rows} (pages + chunks with embeddings, all scenarios)")
    print(f"concurrent reader checks: {checks}; violations: {sum(len(o.reader_violations) for o in outcomes)}")
    print(f"wall time: {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
