"""``References``: everything a page points at (links, Jira issues, mentions, attachments, code languages),
collected while its storage is rewritten, so Markdown and metadata agree."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .links import LinkContext, jira_key_in_url, page_id_in_url


@dataclass
class References:
    """Everything the page points at, de-duplicated. Filled in reverse document order (the preprocessor
    walks elements backwards); ``ordered`` gives document order."""

    internal_links: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    external_links: dict[str, dict[str, Any]] = field(default_factory=dict)
    jira_issue_links: dict[str, dict[str, Any]] = field(default_factory=dict)
    user_mentions: dict[str, dict[str, Any]] = field(default_factory=dict)
    attachments: dict[str, dict[str, Any]] = field(default_factory=dict)  # this page's files, by name
    code_languages: dict[str, None] = field(default_factory=dict)

    @staticmethod
    def ordered(found: dict[Any, dict[str, Any]]) -> list[dict[str, Any]]:
        return list(reversed(found.values()))

    @staticmethod
    def note(found: dict[Any, Any], key: Any, value: Any) -> None:
        """Record ``value`` under ``key``. The walk goes backwards, so a key met again is an earlier
        occurrence: it moves last (first in document order) and its value wins."""
        found.pop(key, None)
        found[key] = value

    def add_jira(self, key: str, url: str, *, from_link: bool) -> None:
        known = self.jira_issue_links.get(key)
        # A real /browse/ link names the Jira server; the macro's URL is our best guess (see links.py).
        keep = known is not None and known["_from_link"] and not from_link
        self.note(
            self.jira_issue_links, key, known if keep else {"issue_key": key, "issue_url": url, "_from_link": from_link}
        )

    def add_attachment(self, filename: str, url: str) -> None:
        self.note(self.attachments, filename, {"title": filename, "download_url": url})

    def add_href(self, ctx: LinkContext, href: str, title: str) -> None:
        """A link seen on the page: a Jira issue, a page of this site, or an external link."""
        if not href or href.startswith("#"):
            return
        key = jira_key_in_url(href)
        if key:
            self.add_jira(key, href.split("#", 1)[0], from_link=True)
            return
        if ctx.is_site_url(href):
            page_id = page_id_in_url(href)
            if page_id == ctx.page_id:
                return  # an anchor on this very page
            if page_id:
                url = href.split("#", 1)[0]
                self.note(
                    self.internal_links,
                    ("id", page_id),
                    {
                        "page_id": page_id,
                        "page_title": title if title != href else None,
                        "space_key": None,
                        "page_url": url,
                    },
                )
                return
        self.note(self.external_links, href, {"title": title or href, "url": href})
