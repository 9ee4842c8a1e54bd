"""Data-quality checks of a synced space (plain SQL; the Dagster asset checks call these)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from confluence_assets.confluence.keys import source_id_for
from confluence_assets.sync import sources


@dataclass
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict = field(default_factory=dict)


def pages_without_chunks(conn: psycopg.Connection, space_key: str) -> CheckOutcome:
    rows = conn.execute(
        """SELECT p.page_id, p.title FROM confluence_pages p
           WHERE p.source_id = %s AND p.is_deleted = FALSE
             AND NOT EXISTS (SELECT 1 FROM archon_crawled_pages c
                             WHERE c.metadata ? 'page_id' AND c.metadata->>'page_id' = p.page_id)
           ORDER BY p.page_id""",
        (source_id_for(space_key),),
    ).fetchall()
    return CheckOutcome(
        not rows,
        f"{len(rows)} live pages have no chunk",
        {"pages_without_chunks": len(rows), "examples": [f"{pid} {title}" for pid, title in rows[:10]]},
    )


def chunks_without_embedding(conn: psycopg.Connection, space_key: str, dimensions: int) -> CheckOutcome:
    count = conn.execute(
        f"""SELECT count(*) FROM archon_crawled_pages
            WHERE source_id = %s AND embedding_{int(dimensions)} IS NULL""",  # noqa: S608 - int, whitelisted
        (source_id_for(space_key),),
    ).fetchone()[0]
    return CheckOutcome(count == 0, f"{count} chunks have no {dimensions}-d embedding", {"chunks": count})


def orphan_chunks(conn: psycopg.Connection, space_key: str) -> CheckOutcome:
    count = conn.execute(
        """SELECT count(*) FROM archon_crawled_pages c
           WHERE c.source_id = %s AND c.metadata ? 'page_id'
             AND NOT EXISTS (SELECT 1 FROM confluence_pages p
                             WHERE p.page_id = c.metadata->>'page_id' AND p.is_deleted = FALSE)""",
        (source_id_for(space_key),),
    ).fetchone()[0]
    return CheckOutcome(count == 0, f"{count} chunks belong to no live page", {"orphan_chunks": count})


def embedding_dimension_matches(conn: psycopg.Connection, space_key: str, model: str, dimensions: int) -> CheckOutcome:
    rows = conn.execute(
        """SELECT embedding_model, embedding_dimension, count(*) FROM archon_crawled_pages
           WHERE source_id = %s GROUP BY 1, 2 ORDER BY 3 DESC""",
        (source_id_for(space_key),),
    ).fetchall()
    other = [(m, d, n) for m, d, n in rows if (m, d) != (model, dimensions)]
    return CheckOutcome(
        not other,
        f"{sum(n for *_, n in other)} chunks embedded with another model/dimension than {model}/{dimensions}",
        {"by_model": {f"{m}/{d}": n for m, d, n in rows}},
    )


def watermark_current(state_before: sources.SyncState, watermark: datetime | None) -> CheckOutcome:
    """After a sync: did the watermark reach the newest change staged (nothing left unfinished)?"""
    expected = state_before.pending_watermark
    ok = expected is None or (watermark is not None and watermark >= expected)
    return CheckOutcome(
        ok,
        f"watermark {watermark.isoformat() if watermark else 'none'}, newest change staged "
        f"{expected.isoformat() if expected else 'none'}",
        {"watermark": watermark.isoformat() if watermark else "none"},
    )


def watermark_fresh(conn: psycopg.Connection, space_key: str, max_age: timedelta) -> CheckOutcome:
    state = sources.get_sync_state(conn, source_id_for(space_key))
    completed = state.last_completed_at
    age = datetime.now(UTC) - completed if completed else None
    ok = age is not None and age <= max_age
    return CheckOutcome(
        ok,
        f"last completed sync {completed.isoformat() if completed else 'never'} (max age {max_age})",
        {
            "last_sync_completed_at": completed.isoformat() if completed else "never",
            "watermark": state.watermark.isoformat() if state.watermark else "none",
        },
    )
