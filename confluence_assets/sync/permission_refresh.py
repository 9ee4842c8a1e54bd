"""Permission refreshes (page_permissions per space, confluence_groups site-wide): what changed in
Confluence's permissions without any page changing (permission changes make no new version, so CQL on
``lastModified`` cannot see them).

A space's refresh reads who may view the space (v1 ``space/{key}?expand=permissions`` for its id and
anonymous access, then v2 ``spaces/{id}/permissions``; Data Center, whose v2 is 404: v1 alone), then lists
every page of the space with nothing but its read restriction expanded (no body: 200 pages a request)
plus the completion of subject lists longer than the expansion shows, and writes the restriction of each
stored page listed (sync/access.py). Stored live pages the listing does not show are left alone
(reconciliation deletes them). Fail closed throughout:

- the space's permissions cannot be read: ``unknown`` with the error (nobody but the service account sees
  the space) and the refresh goes on with its pages;
- a page's restriction cannot be completed (403, 429 after retries, 5xx, timeout): that page is
  ``unknown`` with the reason, named in the summary;
- the listing fails part-way: what was listed is written only where it opens nothing
  (``narrow_only``), and the step fails (its retry policy runs it again).

Groups the space or its restrictions name whose members are not known yet are listed in the same run;
:func:`refresh_groups` lists every named group (the site-wide refresh). A group that cannot be listed is
``unknown`` and loses its stored members.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import psycopg

from confluence_assets.confluence import errors
from confluence_assets.confluence.client import PERMISSIONS_PAGE, ConfluenceAPI
from confluence_assets.confluence.cql import space_pages_cql
from confluence_assets.confluence.keys import source_id_for
from confluence_assets.confluence.permissions import (
    FATAL,
    RESTRICTION_EXPAND,
    UNKNOWN,
    GroupRef,
    PageRestriction,
    member,
    page_restriction,
    space_readers,
)
from confluence_assets.confluence.responses import listed_types
from confluence_assets.sync import access, dependents, page_tree, rendering, sources, staging

log = logging.getLogger(__name__)

SUMMARY_KEY = "permissions"  # archon_sources.metadata: the space's permission summary (what the UI shows)
# The listing's expansions: the restriction, and the ancestors (a moved page shows in them). No body:
# Confluence allows 200 results a request.
LISTING_EXPAND = f"ancestors,{RESTRICTION_EXPAND}"
# A page listed under another parent is hidden, with its subtree, until page_metadata stores its new place
# (the search follows the stored path); it is staged again in the same run.
MOVED = "it moved; hidden until its new place is synced"


@dataclass
class GroupSummary:
    listed: int = 0
    members: int = 0
    unknown: list[tuple[str, str]] = field(default_factory=list)  # (group name, error)
    dropped: int = 0
    requests: int = 0
    duration_seconds: float = 0.0

    def metrics(self) -> dict[str, int | float]:
        return {
            "groups_listed": self.listed,
            "group_members": self.members,
            "groups_unknown": len(self.unknown),
            "groups_dropped": self.dropped,
            "group_requests": self.requests,
        }


@dataclass
class PermissionSummary:
    space_key: str
    pages_listed: int = 0
    pages_written: int = 0
    space_status: str = UNKNOWN
    space_error: str | None = None
    listing_error: str | None = None
    completion_requests: int = 0
    failed_pages: list[tuple[str, str]] = field(default_factory=list)  # (page id, reason): this listing's unknowns
    moved: list[str] = field(default_factory=list)  # listed under another parent: hidden, staged again
    withdrawn: list[str] = field(default_factory=list)  # showed a page whose permissions narrowed
    chunks_withdrawn: int = 0
    restaged: list[str] = field(default_factory=list)  # staged for page_metadata by this refresh
    access: access.SpaceAccess | None = None
    groups: GroupSummary = field(default_factory=GroupSummary)
    requests: int = 0
    duration_seconds: float = 0.0
    refreshed_at: datetime | None = None

    def metrics(self) -> dict[str, int | float]:
        """The refresh's figures (what it did; the space's state now is :attr:`access`)."""
        return {
            "permission_pages_listed": self.pages_listed,
            "restrictions_written": self.pages_written,
            "restriction_reads_failed": len(self.failed_pages),
            "restriction_completion_requests": self.completion_requests,
            "permission_requests": self.requests,
            "pages_moved": len(self.moved),
            "pages_withdrawn": len(self.withdrawn),
            "chunks_withdrawn": self.chunks_withdrawn,
            "pages_staged_again": len(self.restaged),
            **self.groups.metrics(),
        }


def _readers(api: ConfluenceAPI, space_key: str):
    """(SpaceReaders, None) or (None, error)."""
    try:
        v1 = api.space_with_permissions(space_key)
        try:
            v2 = list(api.space_permissions(str(v1["id"])))
        except errors.ConfluenceNotFoundError:
            v2 = None  # Data Center: no v2 API; v1 lists the subjects itself
        return space_readers(v1, v2), None
    except FATAL:
        raise
    except (errors.ConfluenceError, KeyError) as exc:
        return None, f"could not read the space's permissions: {str(exc)[:300]}"


def refresh_space_permissions(
    api: ConfluenceAPI,
    conn: psycopg.Connection,
    space_key: str,
    *,
    run_id: str | None = None,
    rendered_macros: Iterable[str] = (),
    content_types: Iterable[str] = ("page", "blogpost"),
) -> PermissionSummary:
    """Refresh the space's read principals and the restriction of every stored page of it; ``conn`` in
    autocommit mode. Pages showing a page whose permissions narrowed are withdrawn in the same transaction
    and, with the moved pages, staged again for page_metadata (sync/dependents.py). Raises (after writing
    what opens nothing) when the page listing fails part-way."""
    started, calls_before = time.monotonic(), api.stats.attempts
    completions_before = api.stats.restriction_requests
    source_id = source_id_for(space_key)
    sources.ensure_source(conn, space_key, base_url=api.site_base)
    summary = PermissionSummary(space_key)

    readers, summary.space_error = _readers(api, space_key)
    summary.space_status = "ok" if readers else UNKNOWN
    if summary.space_error:
        log.warning("%s: %s", space_key, summary.space_error)

    listed: list[PageRestriction] = []
    parents: dict[str, str | None] = {}
    failure: errors.ConfluenceError | None = None
    try:
        listing = space_pages_cql(space_key, types=listed_types(content_types))  # what the sync stores
        for page in api.search_pages(listing, expand=LISTING_EXPAND, limit=PERMISSIONS_PAGE):
            restriction = page_restriction(page)
            listed.append(restriction)
            parents[restriction.page_id] = _listed_parent(page)
    except FATAL:
        raise
    except errors.ConfluenceError as exc:
        failure, summary.listing_error = exc, str(exc)[:500]
    summary.moved = _moved(conn, source_id, parents)
    listed = [replace(r, status=UNKNOWN, error=MOVED) if r.page_id in summary.moved else r for r in listed]
    summary.pages_listed = len(listed)
    summary.failed_pages = [(r.page_id, r.error or "") for r in listed if r.status == UNKNOWN and r.error != MOVED]

    with conn.transaction():  # the narrowed permissions and the withdrawal of what showed them, at once
        open_before = access.open_pages(conn, source_id)
        space_before = access.space_readers_state(conn, source_id)
        access.store_space_permissions(conn, source_id, space_key, readers, summary.space_error)
        summary.pages_written = access.store_page_restrictions(
            conn, source_id, listed, narrow_only=failure is not None
        )
        narrowed = open_before - access.open_pages(conn, source_id)
        space_after = access.space_readers_state(conn, source_id)
        space_narrowed = space_before is not None and (
            space_after is None or not space_after.lets_in_all_of(space_before)
        )
        summary.withdrawn = dependents.showing_narrowed(conn, source_id, narrowed, space_narrowed=space_narrowed)
        summary.chunks_withdrawn = dependents.withdraw(conn, summary.withdrawn)
    summary.completion_requests = api.stats.restriction_requests - completions_before
    if summary.withdrawn:
        log.info(
            "%s: %d pages showed a page whose permissions narrowed; withdrawn (%d chunks) until converted again",
            space_key,
            len(summary.withdrawn),
            summary.chunks_withdrawn,
        )
    if failure is not None:
        log.warning(
            "%s: the page listing failed after %d pages; only what opens nothing was written, the other pages "
            "keep their last known restriction",
            space_key,
            len(listed),
        )
        raise failure

    # Stage again, for page_metadata in this run: this space's withdrawn pages (now or left by an earlier
    # run, or by another space's refresh) and its moved pages (hidden until their new place is stored).
    busy = set(staging.unfinished_versions(conn, source_id))
    again_ids = sorted((set(dependents.withdrawn(conn, source_id)) | set(summary.moved)) - busy)
    again = dependents.stage_again(api, conn, source_id, again_ids, "requeued", run_id)
    extra = rendering.follow_up(api, conn, space_key, again.pages, rendered_macros=rendered_macros, run_id=run_id)
    summary.restaged = [pid for pid, *_ in again.listed] + [pid for pid, *_ in extra.dependents]
    summary.failed_pages.extend(again.skipped + extra.skipped)

    summary.groups = refresh_groups(api, conn, unlisted_only=True, drop=False)
    summary.access = access.space_access(conn, source_id)
    summary.refreshed_at = datetime.now(UTC)
    summary.requests = api.stats.attempts - calls_before
    summary.duration_seconds = time.monotonic() - started
    sources.merge_metadata(
        conn,
        source_id,
        {
            SUMMARY_KEY: {
                "refreshed_at": summary.refreshed_at.isoformat(),
                "space_permissions": summary.space_status,
                "restricted_pages": summary.access.restricted_pages,
                "inherited_restriction_pages": summary.access.inherited_pages,
                "unknown_restriction_pages": summary.access.unknown_pages,
                "requests": summary.requests,
            }
        },
    )
    return summary


def _listed_parent(page: dict) -> str | None:
    ancestors = page.get("ancestors")
    if not isinstance(ancestors, list) or not ancestors or not isinstance(ancestors[-1], dict):
        return None
    return str(ancestors[-1].get("id") or "") or None


def _moved(conn: psycopg.Connection, source_id: str, parents: dict[str, str | None]) -> list[str]:
    """Stored live pages the listing shows under another parent (a move makes no new version)."""
    if not parents:
        return []
    rows = conn.execute(
        "SELECT page_id, path FROM confluence_pages WHERE source_id = %s AND is_deleted = FALSE AND page_id = ANY(%s)",
        (source_id, list(parents)),
    )
    return sorted(pid for pid, path in rows if page_tree.parent_of(path, pid) != parents[pid])


def read_space_permissions_once(api: ConfluenceAPI, conn: psycopg.Connection, space_key: str) -> int:
    """A space whose permissions were never read (its first sync) gets them now, with the members of the
    groups they name, so that the people who may read it find its pages after that first sync rather
    than after the first scheduled refresh. Returns the requests made (0 when they were read before)."""
    source_id = source_id_for(space_key)
    if access.space_status(conn, source_id)[1] != access.NEVER_READ:
        return 0
    before = api.stats.attempts
    readers, error = _readers(api, space_key)
    access.store_space_permissions(conn, source_id, space_key, readers, error)
    if error:
        log.warning("%s: %s", space_key, error)
    # The groups this sync's pages name too (page_metadata stores their restrictions after this step).
    staged = {g for page in staging.staged_restrictions(conn, source_id) for g in page_restriction(page).groups}
    access.remember_groups(conn, staged)
    refresh_groups(api, conn, unlisted_only=True, drop=False, also=access.unlisted(conn, staged))
    return api.stats.attempts - before


def refresh_groups(
    api: ConfluenceAPI,
    conn: psycopg.Connection,
    *,
    unlisted_only: bool = False,
    drop: bool = True,
    also: Iterable[GroupRef] = (),
) -> GroupSummary:
    """List the members of every group a stored permission names (``unlisted_only``: only those whose
    members are not known) and of the groups ``also`` names; ``drop``: forget groups nothing names any
    more. ``conn`` in autocommit mode."""
    started, calls_before = time.monotonic(), api.stats.attempts
    summary = GroupSummary()
    named = access.named_groups(conn, unlisted_only=unlisted_only)
    for group in [*named, *(g for g in also if g.id not in {n.id for n in named})]:
        members, error = _list_group(api, conn, group)
        if error is None:
            summary.listed += 1
            summary.members += members
        else:
            log.warning("group %s: %s", group.name, error)
            summary.unknown.append((group.name, error))
    if drop:
        summary.dropped = access.drop_unnamed_groups(conn)
    summary.requests = api.stats.attempts - calls_before
    summary.duration_seconds = time.monotonic() - started
    return summary


def _list_group(api: ConfluenceAPI, conn: psycopg.Connection, group: GroupRef) -> tuple[int, str | None]:
    """Store the group's members (how many); on failure mark it unknown and say why."""
    try:
        members = [m for m in (member(u) for u in api.group_members(group.id) if isinstance(u, dict)) if m]
    except FATAL:
        raise
    except errors.ConfluenceError as exc:
        error = f"could not list its members: {str(exc)[:300]}"
        access.mark_group_unknown(conn, group, error)
        return 0, error
    access.store_group_members(conn, group, members)
    return len(members), None


@dataclass(frozen=True)
class SpacePermissionsSummary:
    """What the UI shows of a space's permissions: its restricted pages now, and the last full refresh."""

    restricted_pages: int
    unknown_pages: int
    refreshed_at: str | None


def space_summaries(conn: psycopg.Connection, space_keys: list[str]) -> dict[str, SpacePermissionsSummary]:
    ids = {key: source_id_for(key) for key in space_keys}
    counts = access.restricted_counts(conn, list(ids.values()))
    out = {}
    for key, sid in ids.items():
        try:
            meta = sources.get_sync_state(conn, sid).metadata.get(SUMMARY_KEY) or {}
        except LookupError:
            meta = {}
        restricted, unknown = counts.get(sid, (0, 0))
        out[key] = SpacePermissionsSummary(restricted, unknown, meta.get("refreshed_at"))
    return out
