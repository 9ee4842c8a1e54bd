"""URLs for pages, attachments, people and Jira issues, built the way Confluence itself links them.

Everything that needs to know "where does this point" during conversion goes through ``LinkContext``, so
the Markdown and the metadata always agree on a URL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

TitleResolver = Callable[[str, str], "str | None"]

_JIRA_BROWSE = re.compile(r"/browse/([A-Z][A-Z0-9_]*-[0-9]+)(?![A-Za-z0-9_-])")
_PAGE_ID_IN_URL = re.compile(r"/pages/(?:viewpage\.action\?pageId=)?([0-9]+)|[?&]pageId=([0-9]+)")
_SPACE_IN_PATH = re.compile(r"/spaces/([^/?#]+)|/display/([^/?#]+)|/space/([^/?#]+)")


def space_key_from(obj: Mapping[str, Any]) -> str | None:
    """The space key of a v1 content object: ``space.key``, else parsed from its links."""
    space = obj.get("space")
    if isinstance(space, Mapping) and isinstance(space.get("key"), str):
        return space["key"]
    candidates = []
    links = obj.get("_links")
    if isinstance(links, Mapping):
        candidates.append(links.get("webui"))
    expandable = obj.get("_expandable")
    if isinstance(expandable, Mapping):
        candidates += [expandable.get("space"), expandable.get("container")]
    for value in candidates:
        if isinstance(value, str) and (m := _SPACE_IN_PATH.search(value)):
            return next(g for g in m.groups() if g)
    return None


@dataclass
class LinkContext:
    """What conversion knows about the page being converted and its surroundings."""

    base_url: str  # e.g. https://x.atlassian.net/wiki (no trailing slash)
    page_id: str
    space_key: str | None
    resolve_title: TitleResolver | None = None
    users: Mapping[str, str] = field(default_factory=dict)
    # (space_key, title) -> page id, from the page's own ancestors and children: resolves most
    # title-only links without a lookup.
    known_titles: dict[tuple[str | None, str], str] = field(default_factory=dict)
    # The page's macros whose text exists only when rendered (content/rendered.py's MacroRenderer).
    macros: Any = None
    _resolved: dict[tuple[str | None, str], str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.host = urlsplit(self.base_url).netloc.lower()

    @property
    def site_root(self) -> str:
        """The site without Confluence's context path: Cloud serves Jira at <site>/browse/KEY."""
        root = self.base_url
        return root[: -len("/wiki")] if root.endswith("/wiki") else root

    # pages ---------------------------------------------------------------------------------------------

    def page_url_by_id(self, page_id: str, space_key: str | None = None) -> str:
        space = space_key or self.space_key
        if space:
            return f"{self.base_url}/spaces/{quote(space, safe='')}/pages/{page_id}"
        return f"{self.base_url}/pages/viewpage.action?pageId={page_id}"

    def page_url_by_title(self, space_key: str | None, title: str) -> str:
        # /display/KEY/Title works on Data Center and redirects on Cloud.
        space = space_key or self.space_key or ""
        return f"{self.base_url}/display/{quote(space, safe='')}/{quote_plus(title)}"

    def resolve(self, space_key: str | None, title: str) -> str | None:
        """The id of the page titled ``title`` in the space, if known here or via ``resolve_title``."""
        space = space_key or self.space_key
        key = (space, title)
        if key in self.known_titles:
            return self.known_titles[key]
        if self.resolve_title is None or not space:
            return None
        if key not in self._resolved:  # one lookup per title and page
            try:
                found = self.resolve_title(space, title)
            except Exception:  # a failing lookup must not fail the page: the title URL still works
                found = None
            self._resolved[key] = str(found) if found else None
        return self._resolved[key]

    # attachments, people, Jira -------------------------------------------------------------------------

    def attachment_url(self, filename: str, page_id: str | None = None) -> str:
        # One path segment whatever the name holds ("../../x", "a/b"): a link never leaves the page's files.
        return f"{self.base_url}/download/attachments/{page_id or self.page_id}/{quote(filename, safe='')}"

    def profile_url(self, kind: str, ident: str) -> str | None:
        if kind == "account-id":
            return f"{self.base_url}/people/{quote(ident, safe='')}"
        if kind == "username":
            return f"{self.base_url}/display/~{quote(ident, safe='')}"
        return None  # a Data Center user key alone names no public URL

    def jira_issue_url(self, key: str) -> str:
        # The macro's server/serverId cannot be resolved to a URL from the page alone. Cloud serves the
        # site's Jira at <site>/browse/KEY, which is also where most Data Center pairs live; a plain
        # /browse/ link on the page, when there is one, wins (see storage.References).
        return f"{self.site_root}/browse/{quote(key)}"

    def is_site_url(self, url: str) -> bool:
        try:
            return urlsplit(url).netloc.lower() == self.host
        except ValueError:
            return False


def jira_key_in_url(url: str) -> str | None:
    m = _JIRA_BROWSE.search(url)
    return m.group(1) if m else None


def page_id_in_url(url: str) -> str | None:
    m = _PAGE_ID_IN_URL.search(url)
    return (m.group(1) or m.group(2)) if m else None


def file_name_in_url(url: str) -> str:
    """The last path segment of a URL, decoded: what an image or file at that URL is called."""
    try:
        return unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    except ValueError:  # a malformed URL ("http://[") names no file
        return ""


def safe_href(url: str) -> str:
    """Percent-encode what would end a Markdown link destination early (spaces, parentheses, <, >)."""
    url = url.strip()
    if any(c in url for c in " ()<>\n\t"):
        url = quote(url, safe="/:?#[]@!$&'*+,;=%~")
    return url
