"""The ``confluence_pages.metadata`` JSONB of one page: who, where, what it links to, what it contains.

Built from the REST v1 content object (whatever expansions it has: a missing one leaves its fields
empty) and from the references the storage preprocessor collected, so Markdown and metadata agree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from confluence_assets.confluence.responses import BLOGPOST, blog_date, content_type
from confluence_assets.confluence.responses import page_url as confluence_page_url

from .blocks import outline
from .links import LinkContext, space_key_from
from .references import References
from .xhtml import attachment_media_type

_LINK_TARGET = re.compile(r"\]\([^)\n]*\)")
_WORD = re.compile(r"\w+")


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _results(obj: Any, *path: str) -> list[Mapping[str, Any]]:
    found = _get(obj, *path)
    if isinstance(found, Mapping):
        found = found.get("results")
    return [r for r in found if isinstance(r, Mapping)] if isinstance(found, list) else []


def page_url(page: Mapping[str, Any], ctx: LinkContext) -> str:
    return confluence_page_url(ctx.base_url, page, space_key_from(page) or ctx.space_key)


def page_ref(page: Mapping[str, Any], ctx: LinkContext) -> dict[str, Any]:
    return {"id": str(page.get("id") or ""), "title": page.get("title") or "", "url": page_url(page, ctx)}


def materialised_path(page: Mapping[str, Any]) -> str:
    """``/<root_id>/.../<page_id>``: v1 lists ancestors root first."""
    ids = [str(a.get("id")) for a in page.get("ancestors") or [] if isinstance(a, Mapping) and a.get("id")]
    return "/" + "/".join([*ids, str(page.get("id") or "")])


def sibling_position(page: Mapping[str, Any]) -> int | None:
    """The page's place among its siblings (``extensions.position``; Confluence orders children by it)."""
    position = _get(page, "extensions", "position")
    if isinstance(position, bool) or not isinstance(position, int | float):
        return None
    return int(position)


def known_titles(page: Mapping[str, Any], space_key: str | None) -> dict[tuple[str | None, str], str]:
    """Titles this page already knows the ids of (itself, ancestors, children): no lookup needed."""
    pages = [page, *(a for a in page.get("ancestors") or [] if isinstance(a, Mapping))]
    pages += _results(page, "children", "page")
    return {(space_key, p["title"]): str(p["id"]) for p in pages if p.get("title") and p.get("id")}


def _person(user: Any, ctx: LinkContext) -> dict[str, Any] | None:
    if not isinstance(user, Mapping):
        return None
    account_id = user.get("accountId") or user.get("userKey") or user.get("username")
    if not account_id:
        return None
    if user.get("accountId"):
        profile = ctx.profile_url("account-id", account_id)
    elif user.get("username"):
        profile = ctx.profile_url("username", user["username"])
    else:
        profile = None
    name = user.get("displayName") or user.get("publicName") or ctx.users.get(account_id)
    return {"account_id": account_id, "display_name": name, "email": user.get("email") or None, "profile_url": profile}


def _download_url(download: object, title: str, ctx: LinkContext) -> str:
    """The server's download link, unless it has none or its path climbs out of the page's files (an
    attachment name like '../../etc/passwd' left unencoded): then one built with the name encoded."""
    if not isinstance(download, str) or not download:
        return ctx.attachment_url(title)
    path = unquote(download.split("?", 1)[0]).replace("\\", "/")
    if ".." in path.split("/"):
        return ctx.attachment_url(title)
    return ctx.base_url + download if download.startswith("/") else download


def _assets(page: Mapping[str, Any], refs: References, ctx: LinkContext) -> list[dict[str, Any]]:
    assets: list[dict[str, Any]] = []
    listed: set[str] = set()
    for att in _results(page, "children", "attachment"):
        title = att.get("title") or ""
        listed.add(title)
        download = _get(att, "_links", "download")
        assets.append(
            {
                "id": str(att.get("id") or "") or None,
                "title": title,
                "media_type": _get(att, "metadata", "mediaType") or _get(att, "extensions", "mediaType"),
                "size": _get(att, "extensions", "fileSize"),
                "download_url": _download_url(download, title, ctx),
            }
        )
    for ref in refs.ordered(refs.attachments):  # used on the page but not in the expansion we got
        filename = ref["title"]
        if filename not in listed:
            assets.append(
                {
                    "id": None,
                    "title": filename,
                    "media_type": attachment_media_type(filename),
                    "size": None,
                    "download_url": ref["download_url"],
                }
            )
    return assets


def word_count(markdown: str) -> int:
    """Words of the text: runs of letters/digits, link targets excluded (CJK runs count as one)."""
    return len(_WORD.findall(_LINK_TARGET.sub("]", markdown)))


def breadcrumb_prefix(metadata: Mapping[str, Any]) -> list[str]:
    """What a chunk's breadcrumb starts with before the page's title, beyond the stored ancestors: a blog
    post, which has none, is filed under its space's blog and its day (``ENG > Blog > 2026-03-01``)."""
    if metadata.get("content_type") != BLOGPOST:
        return []
    day = metadata.get("posted_on")
    return [str(metadata.get("space_key") or ""), "Blog", *([str(day)] if day else [])]


def build_metadata(
    page: Mapping[str, Any], ctx: LinkContext, markdown: str, refs: References, path: str
) -> dict[str, Any]:
    history = page.get("history") if isinstance(page.get("history"), Mapping) else {}
    modified_by = _get(page, "version", "by") or _get(history, "lastUpdated", "by")
    kind = content_type(page)
    return {
        "page_id": str(page.get("id") or ""),
        "title": page.get("title") or "",
        # page | blogpost | folder | whiteboard | database | embed (the last four: tree nodes, no body)
        "content_type": kind,
        **({"posted_on": blog_date(page)} if kind == BLOGPOST else {}),
        "space_key": ctx.space_key,
        "page_url": page_url(page, ctx),
        "version": _get(page, "version", "number"),
        "status": page.get("status"),
        "created_at": _get(history, "createdDate"),
        "updated_at": _get(page, "version", "when") or _get(history, "lastUpdated", "when"),
        "path": path,
        "position": sibling_position(page),
        "ancestors": [page_ref(a, ctx) for a in page.get("ancestors") or [] if isinstance(a, Mapping)],
        # The expansion lists the first children only (25 on Cloud); the sync recomputes this list from
        # the stored tree, keeping this order (see confluence_assets.sync.page_tree.refresh_children).
        "children": [page_ref(c, ctx) for c in _results(page, "children", "page")],
        "created_by": _person(_get(history, "createdBy"), ctx),
        "last_modified_by": _person(modified_by, ctx),
        "labels": [lab["name"] for lab in _results(page, "metadata", "labels") if lab.get("name")],
        "jira_issue_links": [
            {"issue_key": j["issue_key"], "issue_url": j["issue_url"]} for j in refs.ordered(refs.jira_issue_links)
        ],
        "user_mentions": refs.ordered(refs.user_mentions),
        "internal_links": refs.ordered(refs.internal_links),
        "external_links": refs.ordered(refs.external_links),
        "asset_links": _assets(page, refs, ctx),
        "word_count": word_count(markdown),
        "content_length": len(markdown),
        "headings": outline(markdown),
        "code_languages": list(reversed(refs.code_languages)),
    }
