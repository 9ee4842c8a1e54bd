"""Questions answered from page metadata alone, each by an index (sql/0.1.0/010 and 030):

- pages mentioning a user: metadata->'user_mentions' @> [{"account_id": ...}]  (idx_confluence_pages_mentions)
- pages with a Jira key: metadata->'jira_issue_links' @> [{"issue_key": ...}]  (idx_confluence_pages_jira)
- pages with a label: metadata->'labels' @> ["..."]  (idx_confluence_pages_labels)
- pages by author: metadata->'created_by'->>'account_id' = ...  (idx_confluence_pages_created_by)
- pages with attachments: (metadata->'asset_links'->0) IS NOT NULL  (idx_confluence_pages_with_attachments)
- pages linking to a page: metadata->'internal_links' @> [{"page_id": ...}]  (idx_confluence_pages_internal_links)
- children / descendants: a range of paths under the page's path  (idx_confluence_pages_path)
- breadcrumbs: the ids of the page's path, by primary key  (confluence_pages_pkey)

Every query leaves deleted pages out and returns only the pages its principal may read (see
``principal``: nobody named by default, i.e. pages without read restrictions). The viewer is resolved once
per query, before it (``principal.VIEWER_ARGUMENTS`` says why); a query run without it (its ``access``
parameter None) resolves it itself, with the same answer.
Each ``*_query`` function returns the SQL and its parameters (for EXPLAIN) for a resolved ``principal``;
the function of the same name without the suffix resolves ``as_user`` / ``as_service_account`` and runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from confluence_assets.search.filters import InvalidFilterError, SearchFilters
from confluence_assets.search.principal import NOBODY, VIEWER_ARGUMENTS, Principal, resolve_principal, with_access

DEFAULT_LIMIT = 1000


@dataclass(frozen=True)
class PageRef:
    page_id: str
    title: str
    space_key: str
    url: str | None
    path: str | None
    last_modified: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "page_id": self.page_id,
            "title": self.title,
            "space_key": self.space_key,
            "url": self.url,
            "path": self.path,
            "last_modified": self.last_modified.isoformat() if self.last_modified else None,
        }


@dataclass(frozen=True)
class Query:
    text: sql.Composable
    params: dict[str, Any]


_COLUMNS = sql.SQL("p.page_id, p.title, p.space_key, p.metadata->>'page_url', p.path, p.last_modified")


def pages_query(
    filters: SearchFilters,
    *,
    where: sql.Composable | None = None,
    extra: dict[str, Any] | None = None,
    limit=None,
    principal: Principal = NOBODY,
) -> Query:
    """Live pages matching ``filters`` (and ``where`` on ``p``) that ``principal`` may read, by space and title."""
    arguments, params = filters.sql_arguments()
    text = sql.SQL(
        "SELECT {cols} FROM confluence_filtered_pages({args}, {viewer}) p {where} "
        "ORDER BY p.space_key, p.title, p.page_id LIMIT %(limit)s"
    ).format(
        cols=_COLUMNS,
        args=arguments,
        viewer=VIEWER_ARGUMENTS,
        where=sql.SQL("WHERE ") + where if where is not None else sql.SQL(""),
    )
    params.update(extra or {})
    params.update(principal.sql_params())
    params["limit"] = limit or DEFAULT_LIMIT
    return Query(text, params)


def run(conn: psycopg.Connection, query: Query) -> list[PageRef]:
    rows = conn.execute(query.text, with_access(conn, query.params), prepare=False).fetchall()
    return [PageRef(*row) for row in rows]


def explain(conn: psycopg.Connection, query: Query, *, analyze: bool = False) -> str:
    """The plan PostgreSQL chooses for ``query`` (with these parameter values, the viewer's access resolved
    as ``run`` resolves it)."""
    prefix = sql.SQL("EXPLAIN (ANALYZE, BUFFERS) ") if analyze else sql.SQL("EXPLAIN ")
    rows = conn.execute(prefix + query.text, with_access(conn, query.params), prepare=False).fetchall()
    return "\n".join(row[0] for row in rows)


# -- the questions ----------------------------------------------------------------------------------


def pages_mentioning_user_query(account_id: str, *, spaces=(), limit=None, principal: Principal = NOBODY) -> Query:
    return pages_query(SearchFilters(mentions=(account_id,), spaces=spaces), limit=limit, principal=principal)


def pages_with_jira_key_query(issue_key: str, *, spaces=(), limit=None, principal: Principal = NOBODY) -> Query:
    return pages_query(SearchFilters(jira_keys=(issue_key,), spaces=spaces), limit=limit, principal=principal)


def pages_with_label_query(label: str, *, spaces=(), limit=None, principal: Principal = NOBODY) -> Query:
    return pages_query(SearchFilters(labels=(label,), spaces=spaces), limit=limit, principal=principal)


def pages_by_author_query(account_id: str, *, spaces=(), limit=None, principal: Principal = NOBODY) -> Query:
    return pages_query(SearchFilters(authors=(account_id,), spaces=spaces), limit=limit, principal=principal)


def pages_with_attachments_query(*, spaces=(), limit=None, principal: Principal = NOBODY) -> Query:
    # The very predicate of idx_confluence_pages_with_attachments (with is_deleted = FALSE from the filter).
    return pages_query(
        SearchFilters(spaces=spaces),
        where=sql.SQL("(p.metadata->'asset_links'->0) IS NOT NULL"),
        limit=limit,
        principal=principal,
    )


def pages_linking_to_query(page_id: str, *, spaces=(), limit=None, principal: Principal = NOBODY) -> Query:
    target = _page_id(page_id)
    return pages_query(
        SearchFilters(spaces=spaces),
        where=sql.SQL("p.metadata->'internal_links' @> %(link_probe)s"),
        extra={"link_probe": Jsonb([{"page_id": target}])},
        limit=limit,
        principal=principal,
    )


# The page itself must be readable too: a page the principal may not read has no children for them.
_ROOT_READABLE = sql.SQL("EXISTS (SELECT 1 FROM confluence_filtered_pages({}) r WHERE r.page_id = %(root)s)").format(
    VIEWER_ARGUMENTS
)


def descendants_query(page_id: str, *, limit=None, principal: Principal = NOBODY) -> Query:
    """The pages below ``page_id`` that ``principal`` may read; none unless they may read ``page_id``."""
    target = _page_id(page_id)
    return pages_query(
        SearchFilters(under_page_id=target),
        where=sql.SQL("p.page_id <> %(root)s AND ") + _ROOT_READABLE,
        extra={"root": target},
        limit=limit,
        principal=principal,
    )


def children_query(page_id: str, *, limit=None, principal: Principal = NOBODY) -> Query:
    """The children of ``page_id`` that ``principal`` may read; none unless they may read ``page_id``."""
    target = _page_id(page_id)
    return pages_query(
        SearchFilters(under_page_id=target),
        where=sql.SQL("p.path = confluence_page_path(%(root)s) || '/' || p.page_id AND ") + _ROOT_READABLE,
        extra={"root": target},
        limit=limit,
        principal=principal,
    )


def pages_mentioning_user(
    conn, account_id: str, *, spaces=(), limit=None, as_user: str | None = None, as_service_account: bool = False
) -> list[PageRef]:
    """As ``as_user`` (account id or e-mail) or ``as_service_account``; neither: nobody named."""
    principal = resolve_principal(conn, as_user, as_service_account)
    return run(conn, pages_mentioning_user_query(account_id, spaces=spaces, limit=limit, principal=principal))


def pages_with_jira_key(
    conn, issue_key: str, *, spaces=(), limit=None, as_user: str | None = None, as_service_account: bool = False
) -> list[PageRef]:
    principal = resolve_principal(conn, as_user, as_service_account)
    return run(conn, pages_with_jira_key_query(issue_key, spaces=spaces, limit=limit, principal=principal))


def pages_with_label(
    conn, label: str, *, spaces=(), limit=None, as_user: str | None = None, as_service_account: bool = False
) -> list[PageRef]:
    principal = resolve_principal(conn, as_user, as_service_account)
    return run(conn, pages_with_label_query(label, spaces=spaces, limit=limit, principal=principal))


def pages_by_author(
    conn, account_id: str, *, spaces=(), limit=None, as_user: str | None = None, as_service_account: bool = False
) -> list[PageRef]:
    principal = resolve_principal(conn, as_user, as_service_account)
    return run(conn, pages_by_author_query(account_id, spaces=spaces, limit=limit, principal=principal))


def pages_with_attachments(
    conn, *, spaces=(), limit=None, as_user: str | None = None, as_service_account: bool = False
) -> list[PageRef]:
    principal = resolve_principal(conn, as_user, as_service_account)
    return run(conn, pages_with_attachments_query(spaces=spaces, limit=limit, principal=principal))


def pages_linking_to(
    conn, page_id: str, *, spaces=(), limit=None, as_user: str | None = None, as_service_account: bool = False
) -> list[PageRef]:
    principal = resolve_principal(conn, as_user, as_service_account)
    return run(conn, pages_linking_to_query(page_id, spaces=spaces, limit=limit, principal=principal))


def descendants(
    conn, page_id: str, *, limit=None, as_user: str | None = None, as_service_account: bool = False
) -> list[PageRef]:
    principal = resolve_principal(conn, as_user, as_service_account)
    return run(conn, descendants_query(page_id, limit=limit, principal=principal))


def children(
    conn, page_id: str, *, limit=None, as_user: str | None = None, as_service_account: bool = False
) -> list[PageRef]:
    principal = resolve_principal(conn, as_user, as_service_account)
    return run(conn, children_query(page_id, limit=limit, principal=principal))


@dataclass(frozen=True)
class Crumb:
    page_id: str
    title: str
    url: str | None


def breadcrumbs_query(page_id: str, *, principal: Principal = NOBODY) -> Query:
    """Root first, the page last; nothing when ``principal`` may not read the page. Titles of ancestors
    that are not stored (not synced, deleted, folders) come from the page's own ``metadata.ancestors``; a
    stored ancestor the principal may not read shows its id only, never its title."""
    target = _page_id(page_id)
    text = sql.SQL(
        """WITH viewer AS MATERIALIZED (
             SELECT confluence_viewer_access(%(viewer)s::text, %(admin)s::boolean) AS access)
           SELECT seg.id,
                  CASE WHEN a.page_id IS NULL THEN coalesce(anc.elem->>'title', seg.id)
                       WHEN confluence_can_view(v.access, a.path, a.page_id, a.space_key) THEN a.title
                       ELSE seg.id END,
                  CASE WHEN a.page_id IS NULL THEN nullif(anc.elem->>'url', '')
                       WHEN confluence_can_view(v.access, a.path, a.page_id, a.space_key)
                       THEN a.metadata->>'page_url' END
           FROM viewer v
           JOIN confluence_pages me ON confluence_can_view(v.access, me.path, me.page_id, me.space_key)
           CROSS JOIN LATERAL unnest(string_to_array(ltrim(me.path, '/'), '/')) WITH ORDINALITY AS seg (id, n)
           LEFT JOIN confluence_pages a ON a.page_id = seg.id AND a.is_deleted = FALSE
           LEFT JOIN LATERAL (
             SELECT e AS elem FROM jsonb_array_elements(
               CASE jsonb_typeof(me.metadata->'ancestors') WHEN 'array' THEN me.metadata->'ancestors'
               ELSE '[]'::jsonb END) AS e
             WHERE e->>'id' = seg.id LIMIT 1) anc ON TRUE
           WHERE me.page_id = %(page)s AND me.is_deleted = FALSE
           ORDER BY seg.n"""
    )
    return Query(text, {"page": target, **principal.sql_params()})


def breadcrumbs(conn, page_id: str, as_user: str | None = None, as_service_account: bool = False) -> list[Crumb]:
    """As ``as_user`` (account id or e-mail) or ``as_service_account``; neither: nobody named."""
    query = breadcrumbs_query(page_id, principal=resolve_principal(conn, as_user, as_service_account))
    return [Crumb(*row) for row in conn.execute(query.text, query.params, prepare=False).fetchall()]


def _page_id(value: object) -> str:
    checked = SearchFilters(under_page_id=str(value)).validated().under_page_id
    if checked is None:  # pragma: no cover - validated() raises first
        raise InvalidFilterError(f"invalid page id {value!r}")
    return checked
