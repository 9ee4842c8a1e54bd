"""Search filters: validated values, and the SQL arguments that pass them to the page filter.

What each filter means is defined once, in SQL: ``confluence_filtered_pages(...)`` (sql/0.1.0/030). This
module only checks the values and names the arguments; every value travels as a query parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from typing import Any

from psycopg import sql

from confluence_assets.confluence.keys import validate_space_key

JIRA_KEY_PATTERN = re.compile(r"[A-Z][A-Z0-9_]*-[1-9][0-9]*")
PAGE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")  # path segments: never '/'


class InvalidFilterError(ValueError):
    """A filter value that cannot be right; nothing was queried."""


@dataclass(frozen=True)
class SearchFilters:
    """Narrow a search to pages. Lists: ``spaces`` and ``authors`` match any of their values; ``labels``,
    ``jira_keys`` and ``mentions`` require every value. ``under_page_id`` keeps the page and its
    descendants; ``modified_since`` a date (midnight UTC) or an aware datetime. Deleted pages never match.
    """

    spaces: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    jira_keys: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()  # account ids (user keys / usernames on Data Center)
    authors: tuple[str, ...] = ()  # account ids of page creators
    under_page_id: str | None = None
    modified_since: date | datetime | None = None

    def __post_init__(self) -> None:
        for name in ("spaces", "labels", "jira_keys", "mentions", "authors"):
            value = getattr(self, name)
            if isinstance(value, str):  # a lone string would become a tuple of characters
                value = (value,)
            object.__setattr__(self, name, tuple(value or ()))

    @property
    def is_empty(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))

    def validated(self) -> SearchFilters:
        """A copy with normalised values (upper-case Jira keys, lower-case labels), or InvalidFilterError."""
        try:
            spaces = tuple(validate_space_key(s) for s in self.spaces)
        except ValueError as exc:
            raise InvalidFilterError(str(exc)) from None
        jira = tuple(_jira_key(k) for k in self.jira_keys)
        labels = tuple(_text("label", v).lower() for v in self.labels)
        mentions = tuple(_text("account id", v) for v in self.mentions)
        authors = tuple(_text("account id", v) for v in self.authors)
        under = self.under_page_id
        if under is not None:
            under = str(under).strip()
            if not PAGE_ID_PATTERN.fullmatch(under):
                raise InvalidFilterError(f"invalid page id {self.under_page_id!r}: expected the page's numeric id")
        return SearchFilters(
            spaces=_unique(spaces),
            labels=_unique(labels),
            jira_keys=_unique(jira),
            mentions=_unique(mentions),
            authors=_unique(authors),
            under_page_id=under,
            modified_since=self.modified_since,
        )

    def arguments(self) -> dict[str, Any]:
        """Named arguments of confluence_filtered_pages() / confluence_hybrid_search(); None = no condition."""
        f = self.validated()
        return {
            "space_keys": list(f.spaces) or None,
            "labels": list(f.labels) or None,
            "jira_keys": list(f.jira_keys) or None,
            "mentioned_account_ids": list(f.mentions) or None,
            "author_account_ids": list(f.authors) or None,
            "under_page_id": f.under_page_id,
            "modified_since": _timestamp(f.modified_since),
        }

    def sql_arguments(self, prefix: str = "f_") -> tuple[sql.Composed, dict[str, Any]]:
        """``space_keys => %(f_space_keys)s::text[], ...`` and its parameters, for a function call."""
        params = {prefix + name: value for name, value in self.arguments().items()}
        parts = [
            sql.SQL("{} => {}::{}").format(sql.Identifier(name), sql.Placeholder(prefix + name), sql.SQL(_TYPES[name]))
            for name in self.arguments()
        ]
        return sql.SQL(", ").join(parts), params


_TYPES = {
    "space_keys": "text[]",
    "labels": "text[]",
    "jira_keys": "text[]",
    "mentioned_account_ids": "text[]",
    "author_account_ids": "text[]",
    "under_page_id": "text",
    "modified_since": "timestamptz",
}


def parse_since(value: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 timestamp (UTC when it names no offset)."""
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidFilterError(f"invalid date {value!r}: use YYYY-MM-DD") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _timestamp(value: date | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value
    return datetime.combine(value, datetime.min.time(), UTC)


def _jira_key(value: object) -> str:
    key = _text("Jira key", value).upper()
    if not JIRA_KEY_PATTERN.fullmatch(key):
        raise InvalidFilterError(f"invalid Jira issue key {value!r}: expected PROJECT-123")
    return key


def _text(what: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise InvalidFilterError(f"invalid {what} {value!r}")
    return value.strip()


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))
