"""The macros whose text exists only when Confluence renders them, read from storage: what they are
called, what they point at and in which order they come.

Storage format holds a macro's parameters, not its output: a Jira issues table (``jira`` with a JQL
query or a filter), another page's content (``include``, ``excerpt-include``), a page's child list
(``children``, ``pagetree``), a page properties report (``detailssummary``, built from other pages'
``details`` macros), ``contentbylabel``, ``recently-updated``, ``tasks-report``. ``analyse`` reads them
from a parsed page before the rewrite changes it (the rewrite turns the ``ri:page`` a parameter names
into a plain link); ``scan_storage`` answers the sync's questions about a page it is staging (does it
need the rendered page, which pages does it show) without a full conversion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bs4 import BeautifulSoup, Tag

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
