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
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit


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


# PostgreSQL text cannot hold NUL, nor UTF-8 hold a lone surrogate (what JSON escapes of invalid UTF-8
# decode to); one such character in one page must not fail the staging of a whole batch.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def clean_text(value: Any) -> Any:
    """``value`` (parsed JSON) with NUL characters and lone surrogates replaced by U+FFFD."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value) if _UNSTORABLE.search(value) else value
    if isinstance(value, dict):
        return {clean_text(k): clean_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_text(v) for v in value]
    return value


def json_body(response: Any) -> Any:
    """A ``requests.Response``'s body as the library's ``get`` reads it: JSON, else the text (None when empty)."""
    if not response.text:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def join_url(base: str, path: str) -> str:
    """``path`` under ``base``, with exactly one ``/`` between them."""
    return base.rstrip("/") + "/" + path.lstrip("/")


def resolve_next(links: dict, api_base: str, site_base: str | None = None) -> str | None:
    """Absolute URL of ``_links.next``, on ``api_base`` (where requests go: the site's wiki base, or the API
    gateway's ``https://api.atlassian.com/ex/confluence/<cloudId>/wiki``). Links are written for the site
    (``_links.base``, else ``site_base``): a relative one is joined onto ``api_base``, without the context
    path when it carries it (v2's ``/wiki/api/v2/...``, some v1 ones); an absolute one on the site is moved
    onto ``api_base``, so that following it keeps the gateway and its credentials."""
    nxt = links.get("next")
    if not nxt:
        return None
    site = (links.get("base") or site_base or api_base).rstrip("/")
    if nxt.startswith(("http://", "https://")):
        return rebase(nxt, site, api_base)
    for prefix in ((links.get("context") or "").rstrip("/"), urlsplit(site).path.rstrip("/")):
        if prefix and nxt.startswith(prefix + "/"):
            return join_url(api_base, nxt[len(prefix) :])
    return join_url(api_base, nxt)


def rebase(url: str, site_base: str, api_base: str) -> str:
    """``url`` on ``api_base`` when it is under ``site_base`` (a gateway client reading site links)."""
    site = site_base.rstrip("/")
    if url == site or url.startswith(site + "/") or url.startswith(site + "?"):
        return api_base.rstrip("/") + url[len(site) :]
    return url


def with_link_header(data: dict, header_links: Mapping[str, Mapping[str, str]]) -> dict:
    """``data`` with the ``Link: <...>; rel="next"`` header's URL as ``_links.next`` when the body has none
    (v2 lists say ``next`` in both places; the header is the documented one)."""
    nxt = (header_links.get("next") or {}).get("url")
    links = data.get("_links") if isinstance(data.get("_links"), dict) else None
    if nxt and not (links or {}).get("next"):
        data["_links"] = {**(links or {}), "next": nxt}
    return data


def with_limit(url: str, limit: int) -> str:
    """``url`` asking for ``limit`` results per page (an expansion's next link asks for its 25)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "limit"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("limit", str(limit))])))


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
        """A space of v1 ``/rest/api/space`` (``expand=description.plain``) or of v2 ``/api/v2/spaces``
        (``description-format=plain``): both put the description at ``description.plain.value``. v2's
        newer space types (``collaboration``, ``knowledge_base``, ...) are what v1 calls ``global``."""
        webui = (data.get("_links") or {}).get("webui")
        description = ((data.get("description") or {}).get("plain") or {}).get("value")
        kind = data.get("type") or "global"
        return cls(
            key=data["key"],
            name=data.get("name") or data["key"],
            type=kind if kind == "personal" else "global",
            status=data.get("status") or "current",
            id=str(data["id"]) if data.get("id") is not None else None,
            url=web_url(site_base, webui) if webui else None,
            description=description or None,
        )


def page_from_v2(data: dict) -> dict:
    """A v2 page (``/api/v2/pages/{id}?body-format=storage&include-labels=true``) in the v1 content shape
    the rest of the code reads: ``type``, ``version.number``/``when``/``by``, ``body.storage``,
    ``history.createdDate``, ``metadata.labels``, ``space.id``, ``_links``. What v1 would expand that one v2
    request does not give (ancestors, children, restrictions, the space's key) is left out."""
    version = data.get("version") if isinstance(data.get("version"), dict) else {}
    storage = ((data.get("body") or {}).get("storage") or {}) if isinstance(data.get("body"), dict) else {}
    labels = (data.get("labels") or {}).get("results") if isinstance(data.get("labels"), dict) else None
    page: dict[str, Any] = {
        "id": str(data.get("id") or ""),
        "type": PAGE,
        "status": data.get("status") or "current",
        "title": data.get("title") or "",
        "version": {
            "number": version.get("number"),
            "when": version.get("createdAt"),
            "message": version.get("message") or "",
            "minorEdit": bool(version.get("minorEdit")),
            "by": {"accountId": version.get("authorId")},
        },
        "history": {"createdDate": data.get("createdAt"), "createdBy": {"accountId": data.get("authorId")}},
        "space": {"id": data.get("spaceId")},
        "_links": dict(data.get("_links") or {}),
    }
    if storage:
        page["body"] = {"storage": {"value": storage.get("value") or "", "representation": "storage"}}
    if labels is not None:
        page["metadata"] = {"labels": {"results": [dict(lb) for lb in labels if isinstance(lb, dict)]}}
    if data.get("parentId"):
        page["parentId"], page["parentType"] = str(data["parentId"]), data.get("parentType") or PAGE
    return page


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
