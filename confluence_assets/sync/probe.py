"""The change sensor's cheap probe: has a space changed since its watermark?

One CQL request per space (limit 1, version only, newest change first) and one database query for all
spaces. A space needs a sync when it was never synced, when its newest change is not indexed yet, or
when staged pages wait to be finished (a run that failed part-way, pages re-queued by reconciliation).
Each result carries a ``run_key`` naming the change, so the same change never launches two runs.

The time budget is a hard one: whatever has not answered when it runs out is left for the next tick
(``not_reached``), and the tick returns without waiting for those requests. When the newest matches are
pages these credentials cannot read (Confluence cuts a result page before applying restrictions, so it
comes back empty with a ``next`` link), the probe follows ``next`` a few times; still nothing readable,
the space counts as changed, with a run key on its watermark: one run per watermark, not one per tick.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg

from confluence_assets.confluence.client import ConfluenceAPI, FirstMatch
from confluence_assets.confluence.cql import space_pages_cql
from confluence_assets.confluence.errors import ConfluenceError
from confluence_assets.confluence.keys import SOURCE_ID_PREFIX, source_id_for
from confluence_assets.confluence.responses import BLOGPOST, PAGE, listed_types, page_version, parse_when
from confluence_assets.sync import staging


@dataclass(frozen=True)
class ProbeResult:
    space_key: str
    status: str  # initial | changed | staged | unchanged | error
    run_key: str | None = None
    detail: str = ""

    @property
    def needs_sync(self) -> bool:
        return self.status in ("initial", "changed", "staged")


@dataclass(frozen=True)
class _SpaceState:
    watermark: str | None
    staged: int
    staged_at: str | None


def _states(conn: psycopg.Connection, space_keys: list[str]) -> dict[str, _SpaceState]:
    rows = staging.unfinished_by_source(conn, [source_id_for(k) for k in space_keys])
    return {
        sid.removeprefix(SOURCE_ID_PREFIX): _SpaceState(wm, staged, at.isoformat() if at else None)
        for sid, wm, staged, at in rows
    }


def _newest_change(
    api: ConfluenceAPI, space_key: str, since, overlap: timedelta, zone: ZoneInfo | None, types: tuple[str, ...]
) -> FirstMatch:
    return api.first_match(space_pages_cql(space_key, since - overlap, zone=zone, newest_first=True, types=types))


def probe_spaces(
    make_api: Callable[[], ConfluenceAPI],
    conn: psycopg.Connection,
    space_keys: list[str],
    *,
    overlap: timedelta,
    zone: ZoneInfo | None,
    workers: int = 8,
    budget_seconds: float = 40.0,
    content_types: Iterable[str] = (PAGE, BLOGPOST),
    child_types: Sequence[str] = (),
) -> tuple[list[ProbeResult], list[str]]:
    """Probe spaces concurrently within a time budget. Returns the results and the keys not reached.
    ``child_types`` (comment, attachment) count as changes too: changed_pages lists them (no page version)."""
    states = _states(conn, space_keys)
    types = listed_types(content_types)  # what changed_pages lists: a new blog post or folder is a change
    types = types + tuple(child_types)
    today = datetime.now(UTC).date().isoformat()
    results: dict[str, ProbeResult] = {}
    to_probe: list[str] = []
    for key in space_keys:
        state = states.get(key)
        if state is not None and state.staged:
            results[key] = ProbeResult(
                key, "staged", f"{key}:staged:{state.staged_at}", f"{state.staged} staged pages waiting"
            )
        elif state is None or state.watermark is None:
            # One first-sync request per day: a first sync that failed before staging anything is retried.
            results[key] = ProbeResult(key, "initial", f"{key}:initial:{today}", "never synced")
        else:
            to_probe.append(key)

    deadline = time.monotonic() + budget_seconds
    newest: dict[str, FirstMatch] = {}
    local = threading.local()  # one client per worker thread: requests sessions are not thread-safe

    def probe(key: str) -> FirstMatch:
        if not hasattr(local, "api"):
            local.api = make_api()
        return _newest_change(local.api, key, parse_when(states[key].watermark), overlap, zone, types)

    # Not a `with` block: its exit waits for every request still running, the budget's whole point.
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="confluence-probe")
    futures = {pool.submit(probe, key): key for key in to_probe}
    try:
        for future in as_completed(futures, timeout=max(0.0, deadline - time.monotonic())):
            key = futures[future]
            try:
                newest[key] = future.result()
            except ConfluenceError as exc:
                results[key] = ProbeResult(key, "error", None, str(exc))
    except TimeoutError:
        pass  # the budget ran out: the spaces without an answer wait for the next tick
    finally:
        # Queued probes are cancelled; running ones finish in the background, their answers unused.
        pool.shutdown(wait=False, cancel_futures=True)
    not_reached = [k for k in to_probe if k not in newest and k not in results]

    ids = [match.page["id"] for match in newest.values() if match.page]
    indexed = dict(
        conn.execute(
            "SELECT page_id, indexed_version FROM confluence_pages WHERE page_id = ANY(%s) AND is_deleted = FALSE",
            (ids,),
        ).fetchall()
    )
    for key, match in newest.items():
        page = match.page
        if match.hidden:
            watermark = states[key].watermark
            results[key] = ProbeResult(
                key,
                "changed",
                f"{key}:hidden:{watermark}",
                f"the newest changes since {watermark} are pages these credentials cannot read "
                f"({match.requests} empty result pages); syncing to be safe",
            )
            continue
        if page is None:
            results[key] = ProbeResult(key, "unchanged", None, "no change since the watermark")
            continue
        version, when = page_version(page)
        known = indexed.get(page["id"])
        if known is None or version > known:
            results[key] = ProbeResult(
                key, "changed", f"{key}:{page['id']}:v{version}", f"page {page['id']} v{version} at {when.isoformat()}"
            )
        else:
            results[key] = ProbeResult(key, "unchanged", None, f"newest change (page {page['id']} v{version}) indexed")
    ordered = [results[k] for k in space_keys if k in results]
    return ordered, not_reached
