"""The macros whose text exists only when Confluence renders them, read from storage: what they are
called, what they point at and in which order they come.

Storage format holds a macro's parameters, not its output: a Jira issues table (``jira`` with a JQL
query or a filter), another page's content (``include``, ``excerpt-include``), a page's child list
(``children``, ``pagetree``), a page properties report (``detailssummary``, built from other pages'
``details`` macros), ``contentbylabel``, ``recently-updated``, ``tasks-report``. ``analyse`` reads them
from a parsed page before the rewrite changes it (the rewrite turns the ``ri:page`` a parameter names
into a plain link); ``scan_storage`` answers the sync's questions about a page it is staging (does it
need the rendered page, which pages does it show) without a full conversion.

A rendering (``body.export_view``) is Confluence's view as the service account, who reads everything:
``RenderedView`` finds each macro's part of it, and ``withhold`` takes out of a part what not every
reader of the page may see (see content/rendered.py): the entries (list items, table rows) linking to a
page the caller cannot prove readable, and other pages' content shown by nested includes.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bs4 import BeautifulSoup, NavigableString, Tag

from .xhtml import parse_storage, text_of

# Shown only as Confluence renders them: their output comes from Jira or from other pages.
VIEW_ONLY = ("jira", "detailssummary", "contentbylabel", "recently-updated", "tasks-report")
INCLUDES = ("include", "excerpt-include")
TREE = ("children", "pagetree")
ALIASES = {"content-by-label": "contentbylabel", "include-page": "include"}
HANDLED = frozenset((*VIEW_ONLY, *INCLUDES, *TREE, "excerpt"))
# The storage names the rewrite hands to the macro renderer (aliases included).
RENDERED_MACROS = HANDLED | frozenset(ALIASES)
MACRO_TAGS = ["ac:structured-macro", "ac:macro"]
# In place of an include not every reader of the page may see (the same whatever the reason, no title).
WITHHELD = "[included content not indexed: restricted]"
_PAGE_ID = re.compile(r"/(?:pages|download/attachments|blog/\d{4}/\d{2}/\d{2})/(?:[\w.-]+/)*?(\d+)(?=[/?#]|$)")
_PAGE_LINK = re.compile(r"/(?:pages|display|x|blog|download/attachments)/")  # a page, its id unknown
_NAMES = re.compile(
    r'<ac:(?:structured-)?macro\b[^>]*?\bac:name="(jira|include|include-page|excerpt-include|excerpt|children|'
    r'pagetree|detailssummary|details|contentbylabel|content-by-label|recently-updated|tasks-report)"'
)


def canonical(name: object) -> str:
    raw = str(name or "").strip().lower()
    return ALIASES.get(raw, raw)


@dataclass(frozen=True, slots=True)
class IncludeRef:
    """The page a macro names (an include's target, a child list's or page tree's page)."""

    macro: str
    space_key: str | None
    title: str | None
    page_id: str | None
    excerpt: str | None = None  # excerpt-include: the excerpt's name

    def as_json(self, space_key: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "macro": self.macro,
            "page_id": self.page_id,
            "space_key": self.space_key or space_key,
            "title": self.title,
        }
        if self.excerpt:
            out["excerpt"] = self.excerpt
        return out


@dataclass(frozen=True, slots=True)
class MacroInfo:
    name: str  # canonical
    ordinal: int  # among the page's macros of this name, in document order
    macro_id: str | None
    params: dict[str, str]
    target: IncludeRef | None

    @property
    def jira_key(self) -> str:
        return self.params.get("key", "")


@dataclass(frozen=True, slots=True)
class MacroScan:
    """What the sync needs to know of a page's macros."""

    view_only: frozenset[str] = frozenset()  # VIEW_ONLY macros present (jira: tables, not single issues)
    includes: tuple[IncludeRef, ...] = ()
    tree: bool = False  # a children or pagetree macro
    details: bool = False  # a page properties macro (reports on other pages show it)

    @property
    def empty(self) -> bool:
        return not (self.view_only or self.includes or self.tree or self.details)


EMPTY_SCAN = MacroScan()


def _target(param: Tag) -> tuple[str | None, str | None, str | None] | None:
    ri = param.find(["ri:page", "ri:blog-post", "ri:content-entity"])
    if ri is None:
        return None
    title = (ri.get("ri:content-title") or "").strip() or None
    return (ri.get("ri:space-key") or None, title, ri.get("ri:content-id") or None)


def _params(tag: Tag) -> tuple[dict[str, str], tuple[str | None, str | None, str | None] | None]:
    values: dict[str, str] = {}
    target = None
    for param in tag.find_all("ac:parameter", recursive=False):
        key = (param.get("ac:name") or "").strip().lower()
        found = _target(param)
        if found is not None and target is None:
            target = found
        values.setdefault(key, text_of(param, 1000))
    return values, target


def _ref(name: str, params: dict[str, str], target: tuple | None) -> IncludeRef | None:
    if target is None and name in INCLUDES:
        # Older storage names the page as text: "Title" or "SPACE:Title".
        text = params.get("") or params.get("page") or ""
        if text:
            space, _, title = text.rpartition(":")
            target = (space or None, title.strip() or None, None)
    if target is None:
        return None
    space, title, page_id = target
    excerpt = (params.get("name") or None) if name == "excerpt-include" else None
    return IncludeRef(name, space, title, page_id, excerpt)


def analyse(soup: BeautifulSoup) -> list[tuple[Tag, MacroInfo]]:
    """The handled macros of a parsed (not yet rewritten) page, in document order."""
    counters: dict[str, int] = {}
    out: list[tuple[Tag, MacroInfo]] = []
    for tag in soup.find_all(MACRO_TAGS):
        name = canonical(tag.get("ac:name"))
        if name not in HANDLED:
            continue
        ordinal = counters.get(name, 0)
        counters[name] = ordinal + 1
        params, target = _params(tag)
        info = MacroInfo(name, ordinal, tag.get("ac:macro-id") or None, params, _ref(name, params, target))
        out.append((tag, info))
    return out


def mentions_handled(storage: str) -> bool:
    """Whether the storage holds a macro handled here (one regex pass)."""
    return _NAMES.search(storage or "") is not None


def scan_storage(storage: str) -> MacroScan:
    """The page's macros that need rendering or show other pages; a page without any costs one regex pass."""
    names = {canonical(n) for n in _NAMES.findall(storage or "")}
    if not names - {"excerpt", "details"}:
        return MacroScan(details=True) if "details" in names else EMPTY_SCAN
    infos = [info for _, info in analyse(parse_storage(storage))]
    return MacroScan(
        view_only=frozenset(i.name for i in infos if i.name in VIEW_ONLY and not (i.name == "jira" and i.jira_key)),
        includes=tuple(i.target for i in infos if i.name in INCLUDES and i.target is not None),
        tree=any(i.name in TREE for i in infos),
        details="details" in names,
    )


class RenderedView:
    """The macros of a rendered page (``body.export_view``), by id and by name."""

    def __init__(self, value: str) -> None:
        soup = BeautifulSoup(value, "html.parser")
        self.by_id: dict[str, Tag] = {}
        self.by_name: dict[str, list[Tag]] = {}
        for el in soup.find_all(attrs={"data-macro-name": True}):
            if el.find_parent(attrs={"data-macro-name": list(INCLUDES)}) is not None:
                continue  # another page's macros, shown by an include
            if el.get("data-macro-id"):
                self.by_id.setdefault(str(el["data-macro-id"]), el)
            self.by_name.setdefault(canonical(el["data-macro-name"]), []).append(el)

    def find(self, info: MacroInfo) -> Tag | None:
        el = self.by_id.get(info.macro_id or "")
        if el is not None and canonical(el.get("data-macro-name")) == info.name:
            return el
        found = self.by_name.get(info.name) or []
        return found[info.ordinal] if info.ordinal < len(found) else None


def page_reference(el: Tag, host: str) -> str | None:
    """The Confluence page ``el`` links to on the site at ``host``: its id, "" for a page link whose id
    is not in it (``/display/SPACE/Title``, a tiny link), None when it links to no page (people, spaces,
    labels, Jira, other sites). From ``data-linked-resource-id`` (an attachment's container page) or the
    href: ``/pages/<id>``, ``pageId=<id>``, ``/download/attachments/<id>/``, a blog post's id."""
    kind = str(el.get("data-linked-resource-type") or "").lower()
    if el.get("data-linked-resource-id") and kind in ("", "page", "blogpost"):
        return str(el["data-linked-resource-id"])
    if kind == "attachment":
        return str(el.get("data-linked-resource-container-id") or "")
    href = el.get("href") if el.name == "a" else None
    if not isinstance(href, str) or not href.strip():
        return None
    parts = urlsplit(href.strip())
    if parts.scheme not in ("", "http", "https") or (parts.netloc and parts.netloc.lower() != host):
        return None
    page_id = parse_qs(parts.query).get("pageId")
    if page_id:
        return page_id[0] if page_id[0].isdigit() else ""
    if m := _PAGE_ID.search(parts.path):
        return m.group(1)
    return "" if _PAGE_LINK.search(parts.path) else None


def withhold(el: Tag, readable: Callable[[Iterable[str]], set[str]], host: str) -> tuple[Tag, int]:
    """A copy of a rendered macro's part without what ``readable`` does not let through, and how many
    references it withheld: nested includes (their target is not in the rendering) become
    :data:`WITHHELD`; each link to a page that is not readable or whose id is unknown takes its entry
    with it (the list item or table row holding it, else the link itself). Entries without page links stay."""
    part = copy.copy(el)
    withheld = 0
    for nested in part.find_all(attrs={"data-macro-name": True}):
        if canonical(nested.get("data-macro-name")) in INCLUDES and nested.parent is not None:
            nested.replace_with(NavigableString(f" {WITHHELD} "))
            withheld += 1
    refs = [(tag, ref) for tag in part.find_all(True) if (ref := page_reference(tag, host)) is not None]
    allowed = readable({ref for _, ref in refs if ref}) if refs else set()
    entries: dict[int, Tag] = {}
    for tag, ref in refs:
        if ref and ref in allowed:
            continue
        entry = tag if tag.name in ("li", "tr") else tag.find_parent(["li", "tr"])
        if entry is None or not any(p is part for p in entry.parents):
            entry = tag
        entries.setdefault(id(entry), entry)
    removing = {id(e) for e in entries.values()}
    for entry in entries.values():
        if not any(id(p) in removing for p in entry.parents):
            entry.extract()
            withheld += 1
    return part, withheld
