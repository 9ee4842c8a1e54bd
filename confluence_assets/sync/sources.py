"""archon_sources rows for spaces, and the sync state kept in their ``metadata`` JSONB (as designed):

``source_type``, ``confluence_space_key``, ``confluence_base_url``, ``deletion_check_strategy``,
``last_sync_timestamp`` (the watermark: Confluence's time of the newest change that is fully indexed),
``pending_sync_watermark`` (newest change staged, not yet indexed), ``last_sync_completed_at``,
``last_full_reconciliation``, ``total_pages`` and ``sync_metrics``.

A space's deletion strategy says when reconciliation looks for its deleted pages: with the weekly
schedule (WEEKLY_RECONCILIATION, the default), with every sync (EVERY_SYNC), or only when someone asks
(ON_DEMAND).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from confluence_assets.confluence.keys import source_id_for
from confluence_assets.confluence.responses import Space
from confluence_assets.settings import DEFAULT_DELETION_STRATEGY, DEFAULT_KNOWLEDGE_TYPE, DELETION_STRATEGIES
from confluence_assets.sync import staging

WEEKLY_RECONCILIATION = "weekly_reconciliation"
EVERY_SYNC = "every_sync"
ON_DEMAND = "on_demand"


@dataclass(frozen=True)
class SyncState:
    source_id: str
    watermark: datetime | None
    pending_watermark: datetime | None
    deletion_strategy: str
    last_completed_at: datetime | None
    metadata: dict[str, Any]


def _ts(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


class SourceDeletedError(RuntimeError):
    """The user deleted the space's archon_sources row (in Archon): the space stays out until restored."""


def _deleted_message(space_key: str) -> str:
    return (
        f"space {space_key}: its source was deleted in Archon (archon_sources row confluence_{space_key}), so it "
        f"is no longer synced; run `confluence-assets restore-space {space_key}` to sync it again"
    )


def deleted_by_user(conn: psycopg.Connection, space_keys: list[str]) -> set[str]:
    """The spaces among ``space_keys`` whose source the user deleted: created by the sync
    (confluence_sources_seen) and since gone from archon_sources. Found so now, they are tombstoned
    (sql/0.1.0/100_confluence_source_tombstones.sql) and stay so after a restore of the row by hand."""
    ids = {source_id_for(key): key for key in space_keys}
    if not ids:
        return set()
    rows = conn.execute(
        """UPDATE confluence_sources_seen s SET deleted_by_user_at = coalesce(s.deleted_by_user_at, now())
           WHERE s.source_id = ANY(%s)
             AND (s.deleted_by_user_at IS NOT NULL
                  OR NOT EXISTS (SELECT 1 FROM archon_sources a WHERE a.source_id = s.source_id))
           RETURNING s.source_id""",
        (sorted(ids),),
    ).fetchall()
    return {ids[sid] for (sid,) in rows}


def restore(conn: psycopg.Connection, space_key: str) -> str:
    """Forget the space's tombstone, so that the next space refresh creates its source again (a full sync);
    what was done, as one line for the user."""
    forgotten = conn.execute(
        "DELETE FROM confluence_sources_seen WHERE source_id = %s AND deleted_by_user_at IS NOT NULL",
        (source_id_for(space_key),),
    ).rowcount
    if forgotten:
        return f"space {space_key}: restored; the next space refresh (sensor or confluence_spaces) syncs it again"
    return f"space {space_key}: its source was not deleted in Archon, nothing to restore"


def _remember(conn: psycopg.Connection, space_key: str) -> None:
    conn.execute(
        "INSERT INTO confluence_sources_seen (source_id, space_key) VALUES (%s, %s) ON CONFLICT (source_id) DO NOTHING",
        (source_id_for(space_key), space_key),
    )


class InvalidStrategyError(ValueError):
    pass


def _check_strategy(strategy: str) -> str:
    if strategy not in DELETION_STRATEGIES:
        raise InvalidStrategyError(
            f"deletion strategy must be one of {', '.join(DELETION_STRATEGIES)}, got {strategy!r}"
        )
    return strategy


def upsert_space(
    conn: psycopg.Connection,
    space: Space,
    *,
    base_url: str,
    default_deletion_strategy: str = DEFAULT_DELETION_STRATEGY,
    deletion_strategy: str | None = None,
    knowledge_type: str = DEFAULT_KNOWLEDGE_TYPE,
) -> None:
    """Create or refresh the space's source row, keeping its sync state. A new space gets
    ``default_deletion_strategy``; ``deletion_strategy`` overrides an existing space's. ``knowledge_type``
    is Archon's (its Technical/Business filter reads the source's metadata). The caller leaves out the
    spaces ``deleted_by_user`` names."""
    fields: dict[str, Any] = {
        "source_type": "confluence",
        "knowledge_type": knowledge_type,
        "confluence_space_key": space.key,
        "confluence_space_id": space.id,
        "confluence_base_url": base_url,
        "space_type": space.type,
        "space_status": space.status,
        "sync_status": "active",
    }
    if deletion_strategy is not None:
        fields["deletion_check_strategy"] = _check_strategy(deletion_strategy)
    conn.execute(
        """INSERT INTO archon_sources (source_id, source_url, source_display_name, title, summary, metadata)
           VALUES (%(sid)s, %(url)s, %(display)s, %(title)s, %(summary)s,
                   %(defaults)s || %(fields)s)
           ON CONFLICT (source_id) DO UPDATE SET
             source_url = EXCLUDED.source_url,
             source_display_name = EXCLUDED.source_display_name,
             title = EXCLUDED.title,
             summary = COALESCE(EXCLUDED.summary, archon_sources.summary),
             metadata = COALESCE(archon_sources.metadata, '{}'::jsonb) || %(fields)s,
             updated_at = now()""",
        {
            "sid": source_id_for(space.key),
            "url": space.url or base_url,
            "display": f"Confluence: {space.name}",
            "title": space.name,
            "summary": space.description,
            "defaults": Jsonb({"deletion_check_strategy": _check_strategy(default_deletion_strategy)}),
            "fields": Jsonb(fields),
        },
    )
    _remember(conn, space.key)


def knowledge_type(conn: psycopg.Connection, source_id: str) -> str:
    """Archon's knowledge_type of the space, as the space's refresh stored it (CONFLUENCE_KNOWLEDGE_TYPES)."""
    row = conn.execute("SELECT metadata->>'knowledge_type' FROM archon_sources WHERE source_id = %s", (source_id,))
    found = row.fetchone()
    return (found and found[0]) or DEFAULT_KNOWLEDGE_TYPE


SUMMARY_CHARS = 400


def summary_from_first_page(conn: psycopg.Connection, source_id: str) -> None:
    """A space without a description gets the start of its first page with text as the source's summary
    (what Archon's source list shows): the shallowest such page, its first chunk, cut at a word."""
    missing = conn.execute("SELECT summary IS NULL FROM archon_sources WHERE source_id = %s", (source_id,)).fetchone()
    if not (missing and missing[0]):
        return  # described (or gone): nothing to read
    row = conn.execute(
        """SELECT c.content FROM archon_crawled_pages c
           JOIN confluence_pages p ON p.page_id = confluence_chunk_page_id(c.metadata) AND p.source_id = c.source_id
           WHERE c.source_id = %s AND p.is_deleted = FALSE AND c.chunk_number = 0 AND btrim(c.content) <> ''
           ORDER BY length(p.path) - length(replace(p.path, '/', '')), p.page_id LIMIT 1""",
        (source_id,),
    ).fetchone()
    if row is None:
        return
    text = " ".join(row[0].split())
    if len(text) > SUMMARY_CHARS:
        text = text[:SUMMARY_CHARS].rsplit(" ", 1)[0] + " ..."
    conn.execute("UPDATE archon_sources SET summary = %s WHERE source_id = %s AND summary IS NULL", (text, source_id))


def ensure_source(conn: psycopg.Connection, space_key: str, *, base_url: str) -> None:
    """A minimal source row when a space partition is materialised before confluence_spaces ran; refused
    (SourceDeletedError) for a space whose source the user deleted."""
    if deleted_by_user(conn, [space_key]):
        raise SourceDeletedError(_deleted_message(space_key))
    conn.execute(
        """INSERT INTO archon_sources (source_id, source_url, source_display_name, title, metadata)
           VALUES (%s, %s, %s, %s, %s) ON CONFLICT (source_id) DO NOTHING""",
        (
            source_id_for(space_key),
            base_url,
            f"Confluence: {space_key}",
            space_key,
            Jsonb(
                {
                    "source_type": "confluence",
                    "confluence_space_key": space_key,
                    "confluence_base_url": base_url,
                    "deletion_check_strategy": DEFAULT_DELETION_STRATEGY,
                    "sync_status": "active",
                }
            ),
        ),
    )
    _remember(conn, space_key)


def mark_removed(conn: psycopg.Connection, space_key: str) -> None:
    """The space is no longer selected or visible. Its data stays; deleting it is a user's decision."""
    conn.execute(
        """UPDATE archon_sources SET metadata = metadata || %s, updated_at = now() WHERE source_id = %s""",
        (Jsonb({"sync_status": "removed", "removed_at": _iso(datetime.now(UTC))}), source_id_for(space_key)),
    )


def get_sync_state(conn: psycopg.Connection, source_id: str) -> SyncState:
    row = conn.execute("SELECT metadata FROM archon_sources WHERE source_id = %s", (source_id,)).fetchone()
    if row is None:
        raise LookupError(f"no archon_sources row for {source_id}")
    meta = row[0] or {}
    return SyncState(
        source_id=source_id,
        watermark=_ts(meta.get("last_sync_timestamp")),
        pending_watermark=_ts(meta.get("pending_sync_watermark")),
        deletion_strategy=meta.get("deletion_check_strategy") or DEFAULT_DELETION_STRATEGY,
        last_completed_at=_ts(meta.get("last_sync_completed_at")),
        metadata=meta,
    )


def base_url(conn: psycopg.Connection, source_id: str) -> str:
    """The site's wiki base the space was synced from (``confluence_base_url``), "" when not known."""
    return get_sync_state(conn, source_id).metadata.get("confluence_base_url") or ""


def deletion_strategy(conn: psycopg.Connection, source_id: str) -> str:
    """The space's deletion strategy (DEFAULT_DELETION_STRATEGY when it has none)."""
    return get_sync_state(conn, source_id).deletion_strategy


def spaces_with_strategy(conn: psycopg.Connection, space_keys: list[str], strategy: str) -> list[str]:
    """The keys of ``space_keys``, in that order, whose deletion strategy is ``strategy``; a space with no
    archon_sources row or no strategy in it counts as having DEFAULT_DELETION_STRATEGY."""
    source_ids = {key: source_id_for(key) for key in space_keys}
    strategies = dict(
        conn.execute(
            """SELECT source_id, COALESCE(metadata->>'deletion_check_strategy', %s)
               FROM archon_sources WHERE source_id = ANY(%s)""",
            (DEFAULT_DELETION_STRATEGY, list(source_ids.values())),
        ).fetchall()
    )
    return [key for key in space_keys if strategies.get(source_ids[key], DEFAULT_DELETION_STRATEGY) == strategy]


def merge_metadata(conn: psycopg.Connection, source_id: str, fields: dict[str, Any]) -> None:
    conn.execute(
        "UPDATE archon_sources SET metadata = COALESCE(metadata, '{}'::jsonb) || %s, updated_at = now() "
        "WHERE source_id = %s",
        (Jsonb(fields), source_id),
    )


def raise_pending_watermark(conn: psycopg.Connection, source_id: str, newest_change: datetime) -> None:
    """Remember the newest change staged so far (never moves backwards)."""
    conn.execute(
        """UPDATE archon_sources SET metadata = metadata || jsonb_build_object('pending_sync_watermark',
               CASE WHEN metadata->>'pending_sync_watermark' IS NULL
                      OR (metadata->>'pending_sync_watermark')::timestamptz < %(t)s::timestamptz
                    THEN %(t)s::text ELSE metadata->>'pending_sync_watermark' END),
               updated_at = now()
           WHERE source_id = %(sid)s""",
        {"t": _iso(newest_change), "sid": source_id},
    )


def complete_sync(conn: psycopg.Connection, source_id: str, run_totals: dict[str, Any]) -> datetime | None:
    """Advance the watermark to the pending one if nothing staged is left unfinished, and keep the run's
    totals (:func:`record_run_metrics`) as the space's ``sync_metrics`` with the run's duration.

    Returns the watermark now in force. Called in the same transaction that checks staging, so a
    concurrent run staging new pages keeps the watermark where it is until those pages are indexed.
    """
    with conn.transaction():
        conn.execute(
            "SELECT 1 FROM archon_sources WHERE source_id = %s FOR UPDATE", (source_id,)
        )  # serialise with raise_pending_watermark of another run
        state = get_sync_state(conn, source_id)
        now = datetime.now(UTC)
        fields: dict[str, Any] = {"sync_metrics": _sync_metrics(run_totals, now), "last_sync_completed_at": _iso(now)}
        watermark = state.watermark
        if staging.unfinished_pages(conn, source_id) == 0 and state.pending_watermark is not None:
            if watermark is None or state.pending_watermark > watermark:
                watermark = state.pending_watermark
        if watermark is not None:
            fields["last_sync_timestamp"] = _iso(watermark)
        totals = conn.execute(
            """SELECT count(*), COALESCE(sum((metadata->>'word_count')::int), 0)
               FROM confluence_pages WHERE source_id = %s AND is_deleted = FALSE""",
            (source_id,),
        ).fetchone()
        fields["total_pages"] = totals[0]
        merge_metadata(conn, source_id, fields)
        conn.execute("UPDATE archon_sources SET total_word_count = %s WHERE source_id = %s", (totals[1], source_id))
    return watermark


def _sync_metrics(run_totals: dict[str, Any], now: datetime) -> dict[str, Any]:
    metrics = {k: v for k, v in run_totals.items() if k != "started_at"}
    started = _ts(run_totals.get("started_at"))
    if started is not None:
        metrics["last_sync_duration_seconds"] = round((now - started).total_seconds(), 1)
    return metrics


def record_run_metrics(conn: psycopg.Connection, source_id: str, run_id: str, counts: dict[str, Any]) -> dict[str, Any]:
    """Add this step's counts to the run's totals in ``metadata.current_run_metrics`` (reset per run)."""
    with conn.transaction():
        row = conn.execute(
            "SELECT metadata->'current_run_metrics' FROM archon_sources WHERE source_id = %s FOR UPDATE",
            (source_id,),
        ).fetchone()
        current = dict(row[0] or {}) if row else {}
        if current.get("run_id") != run_id:
            current = {"run_id": run_id, "started_at": _iso(datetime.now(UTC))}
        for key, value in counts.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                current[key] = current.get(key, 0) + value
            else:
                current[key] = value
        merge_metadata(conn, source_id, {"current_run_metrics": current})
    return current


def set_deletion_strategy(conn: psycopg.Connection, source_id: str, strategy: str) -> None:
    merge_metadata(conn, source_id, {"deletion_check_strategy": _check_strategy(strategy)})
