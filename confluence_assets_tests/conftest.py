"""Shared fixtures: one real embedded PostgreSQL per test session, a fresh database per test.

The session points ``CONFLUENCE_ASSETS_HOME`` at a temporary directory before anything starts, so tests
never touch a developer's ``~/.confluence-assets``, and unsets ``DATABASE_URL`` so the embedded default is
what runs. ``migrated_db_url`` clones a template database that already has every migration applied
(CREATE DATABASE ... TEMPLATE is a file copy: ~50 ms), so each test starts from the real schema.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql


def _scratch_dir() -> str | None:
    """Where the session's temporary files go: CONFLUENCE_ASSETS_TEST_TMPDIR, else /dev/shm when it is a
    writable memory file system with room to spare, else the system default. The tests' PostgreSQL data
    directory and Dagster's SQLite instances commit hundreds of times a test; on a disk each commit waits
    for fsync (about half of a small sync's time on the 2-core CI machine), in memory it does not. Nothing
    a test checks depends on data surviving a reboot of the machine."""
    chosen = os.environ.get("CONFLUENCE_ASSETS_TEST_TMPDIR")
    if chosen:
        return chosen
    shm = Path("/dev/shm")
    try:
        free = shutil.disk_usage(shm).free
    except OSError:
        return None
    return str(shm) if free > 4 * 1024**3 and os.access(shm, os.W_OK | os.X_OK) else None


# Before anything creates a temporary file: pytest's tmp_path, Dagster's test instances and every child
# process (dagster dev, run workers, crash workers) inherit TMPDIR.
if (_scratch := _scratch_dir()) is not None:
    os.environ["TMPDIR"] = _scratch
    tempfile.tempdir = None  # recomputed from TMPDIR on next use
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="ca-test-"))
os.environ["CONFLUENCE_ASSETS_HOME"] = str(_SESSION_HOME)
for _name in ("DATABASE_URL", "DAGSTER_DATABASE_URL", "CONFLUENCE_ASSETS_SQL_DIR"):
    os.environ.pop(_name, None)
# Step retries wait ~30 s in production; tests that fail a step on purpose need not wait (read at import).
os.environ.setdefault("CONFLUENCE_STEP_RETRY_DELAY_SECONDS", "0.1")

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_DB = "ca_template_migrated"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow") or os.environ.get("CONFLUENCE_ASSETS_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (or CONFLUENCE_ASSETS_SLOW=1)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _dagster_state_storage_reset(request: pytest.FixtureRequest) -> Iterator[None]:
    """Dagster keeps the current instance's state storage in a context variable, and some of its
    contexts enter an instance they exit only when garbage collected: collected in a later test, that
    exit puts an earlier, dead instance's storage back as current, and the next materialize fails with
    "Attempted to resolve undefined DagsterInstance weakref" (seen once in a full run, never alone). So
    each Dagster test's garbage is collected at its own teardown and the variable starts clean."""
    yield
    if not hasattr(request.module, "dg"):
        return
    import gc

    from dagster._core.storage.defs_state.base import _current_storage

    gc.collect()
    _current_storage.set(None)


@pytest.fixture(scope="session")
def embedded_server():
    from confluence_assets.db import embedded

    server = embedded.ensure_embedded_server()
    yield server
    embedded.stop_embedded_server()
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def server_url(embedded_server) -> str:
    """The maintenance database URL of the session's embedded server."""
    return embedded_server.server_url


def _create_database(server_url: str, name: str, template: str | None = None) -> str:
    from confluence_assets.db.urls import with_database

    with psycopg.connect(server_url, autocommit=True) as conn:
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            stmt = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        conn.execute(stmt)
    return with_database(server_url, name)


def _drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def fresh_db_url(server_url) -> Iterator[str]:
    """An empty database (no extensions, no tables) dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield _create_database(server_url, name)
    _drop_database(server_url, name)


@pytest.fixture(scope="session")
def _migrated_template(server_url) -> str:
    from confluence_assets.db import migrations

    _drop_database(server_url, TEMPLATE_DB)
    url = _create_database(server_url, TEMPLATE_DB)
    migrations.migrate(url)
    return TEMPLATE_DB


@pytest.fixture
def migrated_db_url(server_url, _migrated_template) -> Iterator[str]:
    """A database with every migration applied, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield _create_database(server_url, name, template=_migrated_template)
    _drop_database(server_url, name)


@pytest.fixture
def second_migrated_db_url(server_url, _migrated_template) -> Iterator[str]:
    """Another migrated database, for comparing two syncs of equal sites side by side."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield _create_database(server_url, name, template=_migrated_template)
    _drop_database(server_url, name)


@pytest.fixture
def instance():
    """An in-memory Dagster instance (tests that need sensors or run storage use instance_for_test)."""
    import dagster as dg

    with dg.DagsterInstance.ephemeral() as instance:
        yield instance
