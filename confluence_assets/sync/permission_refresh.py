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
from dataclasses import dataclass, field
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
from confluence_assets.sync import access, sources

log = logging.getLogger(__name__)

SUMMARY_KEY = "permissions"  # archon_sources.metadata: the space's permission summary (what the UI shows)
# The listing's expansions: the restriction, and the ancestors (a page below a folder stays unknown, as
# page_restriction decides from them). No body: Confluence allows 200 results a request.
LISTING_EXPAND = f"ancestors,{RESTRICTION_EXPAND}"


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


def refresh_space_permissions(api: ConfluenceAPI, conn: psycopg.Connection, space_key: str) -> PermissionSummary:
    """Refresh the space's read principals and the restriction of every stored page of it; ``conn`` in
    autocommit mode. Raises (after writing what opens nothing) when the page listing fails part-way."""
    started, calls_before = time.monotonic(), api.stats.attempts
    completions_before = api.stats.restriction_requests
    source_id = source_id_for(space_key)
    sources.ensure_source(conn, space_key, base_url=api.site_base)
    summary = PermissionSummary(space_key)

    readers, summary.space_error = _readers(api, space_key)
    access.store_space_permissions(conn, source_id, space_key, readers, summary.space_error)
    summary.space_status = "ok" if readers else UNKNOWN
    if summary.space_error:
        log.warning("%s: %s", space_key, summary.space_error)

    listed: list[PageRestriction] = []
    failure: errors.ConfluenceError | None = None
    try:
        for page in api.search_pages(
            space_pages_cql(space_key), expand=f"{RESTRICTION_EXPAND},ancestors", limit=PERMISSIONS_PAGE
        ):
            listed.append(page_restriction(page))
    except FATAL:
        raise
    except errors.ConfluenceError as exc:
        failure, summary.listing_error = exc, str(exc)[:500]
    summary.pages_listed = len(listed)
    summary.failed_pages = [(r.page_id, r.error or "") for r in listed if r.status == UNKNOWN]
    summary.pages_written = access.store_page_restrictions(conn, source_id, listed, narrow_only=failure is not None)
    summary.completion_requests = api.stats.restriction_requests - completions_before
    if failure is not None:
        log.warning(
            "%s: the page listing failed after %d pages; only what opens nothing was written, the other pages "
            "keep their last known restriction",
            space_key,
            len(listed),
        )
        raise failure

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


def refresh_groups(
    api: ConfluenceAPI, conn: psycopg.Connection, *, unlisted_only: bool = False, drop: bool = True
) -> GroupSummary:
    """List the members of every group a stored permission names (``unlisted_only``: only those whose
    members are not known); ``drop``: forget groups nothing names any more. ``conn`` in autocommit mode."""
    started, calls_before = time.monotonic(), api.stats.attempts
    summary = GroupSummary()
    for group in access.named_groups(conn, unlisted_only=unlisted_only):
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
