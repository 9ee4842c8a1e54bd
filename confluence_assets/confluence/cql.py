"""CQL the sync code sends: built from validated, quoted values only.

Confluence evaluates CQL dates at minute precision in a time zone that is not UTC in general (the site's
or the user's). We format the watermark in the configured site time zone; without one we subtract the
largest westward UTC offset (12 h) so that whatever zone Confluence applies, the query reaches back at
least to the watermark. Either way an overlap window is subtracted and the caller compares versions, so
re-reading a page is harmless while missing one is not possible.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from confluence_assets.confluence.keys import validate_space_key

UNKNOWN_ZONE_MARGIN = timedelta(hours=12)


class InvalidTimeZoneError(ValueError):
    pass


def site_zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidTimeZoneError(f"unknown time zone {name!r}: use an IANA name such as 'Asia/Seoul'") from None


def quote(value: str) -> str:
    """A CQL string literal. Escapes backslashes and double quotes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_cql_datetime(moment: datetime, zone: ZoneInfo | None) -> str:
    """``moment`` as a CQL date literal (minute precision, floored) in the site's zone."""
    if moment.tzinfo is None:
        raise ValueError("CQL dates need an aware datetime")
    if zone is None:
        local = moment.astimezone(UTC) - UNKNOWN_ZONE_MARGIN
    else:
        local = moment.astimezone(zone)
    return quote(local.strftime("%Y-%m-%d %H:%M"))


# Content types CQL knows that the sync may list: pages, blog posts and the tree's other nodes.
CONTENT_TYPES = frozenset({"page", "blogpost", "folder", "whiteboard", "database", "embed"})
# Content that lives in a page rather than in the tree: listed with the pages to see changes to it.
CHILD_TYPES = ("comment", "attachment")


def type_clause(types: Sequence[str]) -> str:
    """``type = page`` or ``type in (page, blogpost, ...)``; the names are checked, never quoted through."""
    wanted = list(dict.fromkeys(types))
    if not wanted or set(wanted) - CONTENT_TYPES - set(CHILD_TYPES):
        known = sorted(CONTENT_TYPES | set(CHILD_TYPES))
        raise ValueError(f"content types must be some of {known}, got {list(types)!r}")
    return f"type = {wanted[0]}" if len(wanted) == 1 else f"type in ({', '.join(wanted)})"


def space_pages_cql(
    space_key: str,
    since: datetime | None = None,
    *,
    zone: ZoneInfo | None = None,
    newest_first: bool = False,
    types: Sequence[str] = ("page",),
) -> str:
    """Content of one space (``types``: pages by default), optionally modified at or after ``since``, oldest
    change first (or newest)."""
    clauses = [f"space = {quote(validate_space_key(space_key))}", type_clause(types)]
    if since is not None:
        clauses.append(f"lastModified >= {format_cql_datetime(since, zone)}")
    return " AND ".join(clauses) + f" ORDER BY lastModified {'DESC' if newest_first else 'ASC'}"


def page_ids_cql(page_ids: list[str], types: Sequence[str] = ("page",)) -> str:
    """Content of ``types`` (pages by default) by id (ids are digits; anything else is rejected)."""
    if not page_ids or not all(isinstance(p, str) and p.isdigit() for p in page_ids):
        raise ValueError(f"page ids must be non-empty digit strings, got {page_ids[:5]!r}")
    return f"{type_clause(types)} AND id in ({', '.join(page_ids)})"


# -- attachments and comments (sync/attachment_step.py, sync/changes.py) -------------------------------
def comments_cql(page_ids: list[str]) -> str:
    """Every comment (footer, inline, replies) of the pages or blog posts ``page_ids``."""
    if not page_ids or not all(isinstance(p, str) and p.isdigit() for p in page_ids):
        raise ValueError(f"page ids must be non-empty digit strings, got {page_ids[:5]!r}")
    return f"type = comment AND container in ({', '.join(page_ids)}) ORDER BY created ASC"
