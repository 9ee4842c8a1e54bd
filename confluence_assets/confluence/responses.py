"""What Confluence's answers mean, read in one place: timestamps, a page's version, where a page or space
is on the site, where a listing's ``next`` link points, and a space as the sync keeps it. Plain functions
over the parsed JSON; no requests are made here.

Links: ``_links.webui`` is relative to the site's wiki base (``_links.base``, e.g.
``https://x.atlassian.net/wiki``) and starts with ``/``; :func:`web_url` joins it on, and every page URL
the product stores (page metadata, chunk metadata, the sync's change list) comes from :func:`page_url`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit


def parse_when(value: str) -> datetime:
    """Confluence timestamps: ISO 8601 with milliseconds, 'Z' or an offset."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def page_version(page: dict) -> tuple[int, datetime]:
    """(version number, when) of a search result; ValueError naming the page when it has none usable."""
    version = page.get("version") if isinstance(page.get("version"), dict) else {}
    history = page.get("history") if isinstance(page.get("history"), dict) else {}
    last_updated = history.get("lastUpdated") if isinstance(history.get("lastUpdated"), dict) else {}
    number = version.get("number")
    when = version.get("when") or last_updated.get("when")
    if not page.get("id"):
        raise ValueError("a result came without an id")
    if number is None or when is None:
        raise ValueError(f"page {page.get('id')} came without version information (expand=version missing?)")
    try:
        return int(number), parse_when(str(when))
    except (TypeError, ValueError):
        raise ValueError(
            f"page {page.get('id')} came with unreadable version information: {number!r}, {when!r}"
        ) from None


def join_url(base: str, path: str) -> str:
    """``path`` under ``base``, with exactly one ``/`` between them."""
    return base.rstrip("/") + "/" + path.lstrip("/")


def resolve_next(links: dict, fallback_base: str) -> str | None:
    """Absolute URL of ``_links.next``: joined onto ``_links.base``, or onto the origin when the link
    already carries the context path (``/wiki/rest/...``)."""
    nxt = links.get("next")
    if not nxt:
        return None
    if nxt.startswith(("http://", "https://")):
        return nxt
    base = links.get("base") or fallback_base
    parts = urlsplit(base)
    # v1 links are relative to the base; v2 links (and some v1 ones) already carry the context path.
    for prefix in ((links.get("context") or "").rstrip("/"), parts.path.rstrip("/")):
        if prefix and nxt.startswith(prefix + "/"):
            return f"{parts.scheme}://{parts.netloc}{nxt}"
    return join_url(base, nxt)


def web_url(site_base: str, link: str) -> str:
    """A ``_links.webui`` link as an absolute URL: a site-relative one (``/spaces/...``) joined onto
    ``site_base``; anything else is taken to be a URL already and kept as it is."""
    return site_base.rstrip("/") + link if link.startswith("/") else link


def _webui(obj: Mapping[str, Any]) -> str | None:
    links = obj.get("_links")
    webui = links.get("webui") if isinstance(links, Mapping) else None
    return webui if isinstance(webui, str) and webui else None


def page_url(site_base: str, page: Mapping[str, Any], space_key: str | None = None) -> str:
    """Where ``page`` (a REST v1 content object) is on the site: its ``_links.webui`` joined onto
    ``site_base``; without one ``/spaces/<key>/pages/<id>``, the key being ``space_key`` or else the page's
    ``space.key``; with no space known either, ``/pages/viewpage.action?pageId=<id>``."""
    webui = _webui(page)
    if webui:
        return web_url(site_base, webui)
    base = site_base.rstrip("/")
    page_id = str(page.get("id") or "")
    space = page.get("space")
    space_key = space_key or (space.get("key") if isinstance(space, Mapping) else None)
    if isinstance(space_key, str) and space_key:
        return f"{base}/spaces/{quote(space_key, safe='')}/pages/{page_id}"
    return f"{base}/pages/viewpage.action?pageId={page_id}"


def section_url(page_link: str, section_title: str | None, page_title: str | None = None) -> str:
    """The link to a section of a page: Confluence Cloud's heading anchor, the heading's text with each run
    of whitespace as one "-" (e.g. ``#Rollback-steps``); the page's link when the section is the page
    itself (no heading above the text, or the title)."""
    heading = (section_title or "").strip()
    if not heading or heading == (page_title or "").strip() or "#" in page_link:
        return page_link
    anchor = quote(_WHITESPACE.sub("-", heading), safe="-._~")
    return f"{page_link}#{anchor}"


_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Space:
    key: str
    name: str
    type: str  # "global" | "personal"
    status: str  # "current" | "archived"
    id: str | None = None
    url: str | None = None
    description: str | None = None

    @classmethod
    def from_api(cls, data: dict, site_base: str) -> Space:
        """A space of ``/rest/api/space`` (``expand=description.plain``)."""
        webui = (data.get("_links") or {}).get("webui")
        description = ((data.get("description") or {}).get("plain") or {}).get("value")
        return cls(
            key=data["key"],
            name=data.get("name") or data["key"],
            type=data.get("type") or "global",
            status=data.get("status") or "current",
            id=str(data["id"]) if data.get("id") is not None else None,
            url=web_url(site_base, webui) if webui else None,
            description=description or None,
        )


# Content types. Pages live in a tree whose other nodes (Cloud, 2024+) are folders, whiteboards, databases
# and embeds (smart links); blog posts live beside it, with no parent and a date.
PAGE, BLOGPOST = "page", "blogpost"
TREE_NODE_TYPES = ("folder", "whiteboard", "database", "embed")
_BLOG_DATE = re.compile(r"/blog/(\d{4})/(\d{2})/(\d{2})/")


def listed_types(content_types: Iterable[str]) -> tuple[str, ...]:
    """The CQL types a sync lists for the selected content types: ``page`` brings the tree's other nodes
    with it (a page's path runs through them), ``blogpost`` itself."""
    selected = set(content_types)
    return (*((PAGE, *TREE_NODE_TYPES) if PAGE in selected else ()), *((BLOGPOST,) if BLOGPOST in selected else ()))


def content_type(content: Mapping[str, Any]) -> str:
    """A v1 content object's type (``page`` when it says none, as Data Center's older answers may)."""
    kind = content.get("type")
    return kind if isinstance(kind, str) and kind else PAGE


def blog_date(content: Mapping[str, Any]) -> str | None:
    """The day a blog post is filed under, ``YYYY-MM-DD``: the date of its web UI link
    (``/spaces/KEY/blog/2026/03/01/<id>/...``, Confluence's own), else the date it was created."""
    webui = _webui(content)
    match = _BLOG_DATE.search(webui or "")
    if match:
        return "-".join(match.groups())
    history = content.get("history")
    created = history.get("createdDate") if isinstance(history, Mapping) else None
    return created[:10] if isinstance(created, str) and len(created) >= 10 else None
