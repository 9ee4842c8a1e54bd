"""The embedded server is shared safely by several processes and stops on request."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import psycopg

from confluence_assets.db import embedded
from confluence_assets.db.migrations import discover

ATTACH = textwrap.dedent(
    """
    import sys, time
    from confluence_assets.db.embedded import ensure_embedded_server
    from confluence_assets.db.migrations import migrate
    import psycopg
    server = ensure_embedded_server()
    migrate(server.app_url)  # all four at once: the runner's advisory lock serialises them
    with psycopg.connect(server.app_url) as conn:
        conn.execute(
            "INSERT INTO archon_sources (source_id, source_url, source_display_name) VALUES (%s, 'x', 'x')",
            (f"proc_{sys.argv[1]}",),
        )
        time.sleep(0.5)  # hold the connection while the others work
        conn.commit()
        started = conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
    print(server.pgdata, server.app_url, started.isoformat(), sep="\\n")
    """
)


def test_concurrent_processes_start_one_server_and_all_attach(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "CONFLUENCE_ASSETS_HOME": str(home)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ATTACH, str(i)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for i in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    try:
        assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outputs]
        urls = {out.splitlines()[1] for out, _ in outputs}
        assert len(urls) == 1  # every process got the same server
        assert len({out.splitlines()[2] for out, _ in outputs}) == 1  # one postmaster, started once
        pgdata = home / "pgdata"
        assert embedded.is_running(pgdata)
        # The server outlives the processes that started it (they have all exited).
        url = urls.pop()
        with psycopg.connect(url) as conn:
            dbs = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
            rows = [r[0] for r in conn.execute("SELECT source_id FROM archon_sources ORDER BY 1")]
            applied = conn.execute(
                "SELECT count(*), count(DISTINCT (version, migration_name)) FROM archon_migrations"
            ).fetchone()
            vector = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
        assert {"confluence", "dagster"} <= dbs
        assert rows == [f"proc_{i}" for i in range(4)]  # every process wrote, nothing lost
        assert applied[0] == applied[1] == len(discover())  # each migration recorded once, not four times
        assert vector is not None
    finally:
        stopped = embedded.stop_embedded_server(home)
    assert stopped is True
    assert not embedded.is_running(home / "pgdata")
    assert embedded.stop_embedded_server(home) is False


def test_the_embedded_server_comes_with_pgvector_before_any_migration(tmp_path):
    home = tmp_path / "home"
    server = embedded.ensure_embedded_server(home)
    try:
        with psycopg.connect(server.app_url) as conn:
            version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
            assert version is not None and version[0] >= "0.8"
            assert conn.execute("SELECT '[1,2]'::vector(2) <=> '[2,4]'::vector(2)").fetchone()[0] < 1e-9
    finally:
        embedded.stop_embedded_server(home)


def test_a_stopped_server_restarts_with_its_data(tmp_path):
    home = tmp_path / "home"
    server = embedded.ensure_embedded_server(home)
    try:
        with psycopg.connect(server.app_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
        embedded.stop_embedded_server(home)
        again = embedded.ensure_embedded_server(home)
        with psycopg.connect(again.app_url) as conn:
            assert conn.execute("SELECT v FROM kept").fetchone()[0] == "still here"
    finally:
        embedded.stop_embedded_server(home)
