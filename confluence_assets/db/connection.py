"""Which database we use, and connections to it.

``DATABASE_URL`` wins when set (any PostgreSQL >= 14 with pgvector). Otherwise the embedded server is
started (or reused) under ``$CONFLUENCE_ASSETS_HOME``. Dagster's own storage lives on the same server in
database ``dagster`` unless ``DAGSTER_DATABASE_URL`` names another one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from pgvector.psycopg import register_vector

from confluence_assets import settings
from confluence_assets.db.embedded import DAGSTER_DATABASE, ensure_database, ensure_embedded_server
from confluence_assets.db.urls import mask_url, sqlalchemy_psycopg2_url, with_database

# Aliases of the names in settings (read per call: tests and `dev` change them in this process).
DATABASE_URL_ENV = settings.DATABASE_URL
DAGSTER_DATABASE_URL_ENV = settings.DAGSTER_DATABASE_URL


@dataclass(frozen=True)
class DatabaseTarget:
    url: str
    embedded: bool

    @property
    def masked(self) -> str:
        return mask_url(self.url)


def resolve_database(database_url: str | None = None) -> DatabaseTarget:
    """The application database: an explicit URL, ``$DATABASE_URL``, or the embedded server."""
    url = database_url or settings.env(settings.DATABASE_URL)
    if url:
        return DatabaseTarget(url=url, embedded=False)
    return DatabaseTarget(url=ensure_embedded_server().app_url, embedded=True)


def resolve_dagster_storage_url(database_url: str | None = None) -> str:
    """The SQLAlchemy URL dagster-postgres should use (``postgresql+psycopg2://``)."""
    explicit = settings.env(settings.DAGSTER_DATABASE_URL)
    if explicit:
        return sqlalchemy_psycopg2_url(explicit)
    target = resolve_database(database_url)
    if target.embedded:
        return sqlalchemy_psycopg2_url(ensure_embedded_server().dagster_url)
    # A user's own server: a sibling database named "dagster", created if the role may.
    ensure_database(target.url, DAGSTER_DATABASE)
    return sqlalchemy_psycopg2_url(with_database(target.url, DAGSTER_DATABASE))


def connect(url: str, *, autocommit: bool = False, vector: bool = True, **kwargs) -> psycopg.Connection:
    """A psycopg 3 connection with the pgvector type registered (when the extension exists)."""
    conn = psycopg.connect(url, autocommit=autocommit, **kwargs)
    if vector:
        try:
            register_vector(conn)
        except psycopg.ProgrammingError:
            # The extension is not created yet (fresh database, before migrations).
            if not autocommit:
                conn.rollback()
    return conn


@contextmanager
def connection(url: str | None = None, **kwargs) -> Iterator[psycopg.Connection]:
    conn = connect(url or resolve_database().url, **kwargs)
    try:
        yield conn
    finally:
        conn.close()
