"""Data-quality checks of a synced space (plain SQL; the Dagster asset checks call these).

Each check returns whether it passed and a description a user can act on: how many rows are wrong and
which pages or chunks they are (a few examples), so the UI says what to look at, not only that
something is off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from confluence_assets.confluence.keys import source_id_for
from confluence_assets.sync import sources, staging

EXAMPLES = 10  # rows named in a description / metadata


@dataclass
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict = field(default_factory=dict)


def _iso(moment: datetime | None) -> str:
    return moment.astimezone(UTC).isoformat() if moment else "none"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _named(examples: list[str], total: int) -> str:
    shown = ", ".join(examples[:3])
    return shown + (f" and {total - 3} more" if total > 3 else "")


def pages_without_chunks(conn: psycopg.Connection, space_key: str) -> CheckOutcome:
    source_id = source_id_for(space_key)
    rows = conn.execute(
        """SELECT p.page_id, p.title FROM confluence_pages p
           WHERE p.source_id = %s AND p.is_deleted = FALSE
             AND NOT EXISTS (SELECT 1 FROM archon_crawled_pages c
                             WHERE confluence_chunk_page_id(c.metadata) = p.page_id
                               AND c.source_id = p.source_id)
           ORDER BY p.page_id""",
        (source_id,),
    ).fetchall()
    live = conn.execute(
        "SELECT count(*) FROM confluence_pages WHERE source_id = %s AND is_deleted = FALSE", (source_id,)
    ).fetchone()[0]
    examples = [f"{pid} {title!r}" for pid, title in rows[:EXAMPLES]]
    if rows:
        description = f"{len(rows)} of {live} live pages without chunks (not searchable): {_named(examples, len(rows))}"
    else:
        description = f"all {live} live pages have chunks"
    return CheckOutcome(
        not rows,
        description,
        {"live_pages": live, "pages_without_chunks": len(rows), "examples": examples},
    )


def chunks_without_embedding(conn: psycopg.Connection, space_key: str, dimensions: int) -> CheckOutcome:
    column = f"embedding_{int(dimensions)}"
    rows = conn.execute(
        f"""SELECT confluence_chunk_page_id(metadata), count(*) FROM archon_crawled_pages
            WHERE source_id = %s AND {column} IS NULL
            GROUP BY 1 ORDER BY 2 DESC, 1""",  # noqa: S608 - an int, one of the schema's columns
        (source_id_for(space_key),),
    ).fetchall()
    count = sum(n for _, n in rows)
    examples = [f"page {pid}: {n}" for pid, n in rows[:EXAMPLES]]
    if count:
        description = (
            f"{_n(count, 'chunk')} without a {dimensions}-d embedding (vector search misses them), "
            f"on {_n(len(rows), 'page')}: {_named(examples, len(rows))}"
        )
    else:
        description = f"every chunk has its {dimensions}-d embedding"
    return CheckOutcome(count == 0, description, {"chunks": count, "pages": len(rows), "examples": examples})


def orphan_chunks(conn: psycopg.Connection, space_key: str) -> CheckOutcome:
    """Chunks whose page is deleted, unknown, of another space, or that name no page at all."""
    rows = conn.execute(
        """SELECT CASE WHEN confluence_chunk_page_id(c.metadata) IS NULL THEN 'no page id'
                       WHEN p.page_id IS NULL THEN 'unknown page'
                       WHEN p.source_id <> c.source_id THEN 'page of another space'
                       ELSE 'deleted page' END AS reason,
                  confluence_chunk_page_id(c.metadata), count(*)
           FROM archon_crawled_pages c
           LEFT JOIN confluence_pages p ON p.page_id = confluence_chunk_page_id(c.metadata)
           WHERE c.source_id = %s
             AND (p.page_id IS NULL OR p.is_deleted OR p.source_id <> c.source_id)
           GROUP BY 1, 2 ORDER BY 1, 2""",
        (source_id_for(space_key),),
    ).fetchall()
    count = sum(n for *_, n in rows)
    by_reason: dict[str, int] = {}
    for reason, _, n in rows:
        by_reason[reason] = by_reason.get(reason, 0) + n
    examples = [f"{pid or '-'} ({reason}): {n}" for reason, pid, n in rows[:EXAMPLES]]
    if count:
        reasons = ", ".join(
            f"{n} of a {r}" if r != "no page id" else f"{n} with no page id" for r, n in by_reason.items()
        )
        description = f"{_n(count, 'chunk')} belonging to no live page ({reasons}): {_named(examples, len(rows))}"
    else:
        description = "every chunk belongs to a live page of the space"
    return CheckOutcome(count == 0, description, {"orphan_chunks": count, "by_reason": by_reason, "examples": examples})


def embedding_dimension_matches(conn: psycopg.Connection, space_key: str, model: str, dimensions: int) -> CheckOutcome:
    rows = conn.execute(
        """SELECT embedding_model, embedding_dimension, count(*) FROM archon_crawled_pages
           WHERE source_id = %s GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2""",
        (source_id_for(space_key),),
    ).fetchall()
    other = [(m, d, n) for m, d, n in rows if (m, d) != (model, dimensions)]
    wrong = sum(n for *_, n in other)
    if wrong:
        found = ", ".join(f"{m or 'no model'}/{d or 'no dimension'}: {n}" for m, d, n in other)
        description = (
            f"{_n(wrong, 'chunk')} embedded with another model/dimension than {model}/{dimensions} ({found}); "
            "their vectors are not comparable with the query's"
        )
    else:
        description = f"every chunk is embedded with {model}/{dimensions}"
    return CheckOutcome(
        not other,
        description,
        {"chunks_other_model": wrong, "by_model": {f"{m}/{d}": n for m, d, n in rows}},
    )


def watermark_current(
    state_before: sources.SyncState, watermark: datetime | None, conn: psycopg.Connection | None = None
) -> CheckOutcome:
    """After a sync: did the watermark reach the newest change (nothing left unfinished)?

    Without ``conn``: against the newest change the sync staged (``pending_sync_watermark``), which is
    what the watermark advances to, so this finds a watermark held back by unfinished pages and nothing
    else; before anything was ever staged it passes. With ``conn`` it also reads the database: staged
    pages not indexed yet, and live pages indexed while there is no watermark at all (every sync would
    then be a full load). A watermark behind the newest indexed change is reported, not failed: pages
    that reconciliation requeued are indexed without moving it, and the next sync catches up.
    """
    expected = state_before.pending_watermark
    problems: list[str] = []
    metadata: dict = {"watermark": _iso(watermark), "newest_change_staged": _iso(expected)}
    if expected is not None and (watermark is None or watermark < expected):
        problems.append(f"the newest change staged is {_iso(expected)}")
    if conn is not None:
        source_id = state_before.source_id
        unfinished, newest_unfinished = staging.unfinished(conn, source_id)
        indexed, newest_indexed = conn.execute(
            """SELECT count(*), max(last_modified) FROM confluence_pages
               WHERE source_id = %s AND is_deleted = FALSE AND indexed_version IS NOT NULL""",
            (source_id,),
        ).fetchone()
        metadata.update(pages_unfinished=unfinished, pages_indexed=indexed, newest_change_indexed=_iso(newest_indexed))
        if unfinished:
            problems.append(
                f"{_n(unfinished, 'staged page')} not indexed yet (newest change {_iso(newest_unfinished)})"
            )
        if watermark is None and indexed:
            problems.append(
                f"{_n(indexed, 'live page')} indexed (newest change {_iso(newest_indexed)}) but no watermark: "
                "every sync is a full load"
            )
    if problems:
        description = f"watermark {_iso(watermark)} did not reach the newest change: " + "; ".join(problems)
    else:
        description = f"watermark {_iso(watermark)} reached the newest change staged ({_iso(expected)})"
    return CheckOutcome(not problems, description, metadata)


def watermark_fresh(conn: psycopg.Connection, space_key: str, max_age: timedelta) -> CheckOutcome:
    """Not wired as an asset check: a completed-sync age limit needs a schedule to measure against."""
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
