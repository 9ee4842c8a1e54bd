"""The embedded server is shared safely by several processes and stops on request."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import psycopg

from confluence_assets.db import embedded

ATTACH = textwrap.dedent(
    """
    import sys
    from confluence_assets.db.embedded import ensure_embedded_server
    import psycopg
    server = ensure_embedded_server()
    with psycopg.connect(server.app_url) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    print(server.pgdata, server.app_url, sep="\\n")
    """
)


def test_concurrent_processes_start_one_server_and_all_attach(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "CONFLUENCE_ASSETS_HOME": str(home)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ATTACH], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    try:
        assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outputs]
        urls = {out.splitlines()[1] for out, _ in outputs}
        assert len(urls) == 1  # every process got the same server
        pgdata = home / "pgdata"
        assert embedded.is_running(pgdata)
        # The server outlives the processes that started it (they have all exited).
        with psycopg.connect(urls.pop()) as conn:
            dbs = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        assert {"confluence", "dagster"} <= dbs
    finally:
        stopped = embedded.stop_embedded_server(home)
    assert stopped is True
    assert not embedded.is_running(home / "pgdata")
    assert embedded.stop_embedded_server(home) is False


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
