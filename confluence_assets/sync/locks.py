"""One writer per space at a time, across processes: a PostgreSQL advisory lock held by each step."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


def space_lock_key(source_id: str) -> int:
    # A stable signed 64-bit key per source (hashtext() is not guaranteed stable across versions).
    return int.from_bytes(hashlib.sha256(b"confluence-sync:" + source_id.encode()).digest()[:8], "big", signed=True)


@contextmanager
def space_lock(url: str, source_id: str) -> Iterator[None]:
    """Block until no other step works on this space, then hold the lock for the block's duration.

    The lock lives on its own connection, so the step's transactions commit independently of it and a
    process that dies releases it with its connection.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (space_lock_key(source_id),))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (space_lock_key(source_id),))
