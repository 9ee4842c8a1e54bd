"""What the reader sees where a macro's text exists only when rendered, converted in place of the macro.

Resolved without a request where we can:

- ``include`` / ``excerpt-include``: the target page's storage when it is staged in this run (converted
  here, its own macros too, two levels deep), else, for an excerpt, the target's stored excerpts
  (``confluence_pages.metadata.excerpts``, recorded when the target was converted);
- ``children`` / ``pagetree``: the page's ``children.page`` expansion when it is complete, else the
  stored tree (``MacroSources.children``).

The rest (Jira issue tables, page properties reports, content by label, recently updated, task
reports, and includes nothing stored can answer) come from the page's rendered ``body.export_view``
when the sync fetched it (``confluence_assets.sync.rendering``): Confluence marks each macro's output
with ``data-macro-name`` and ``data-macro-id`` (the storage's ``ac:macro-id``), so the part a macro
rendered is found by its id, else by its place among the macros of its name.

Permissions (fail closed): conversion runs once, as the service account; Confluence renders a page as
its viewer. So another page's content or a reference to it is shown only when ``MacroSources.readable``
proves every reader of the page may read that page (sync/rendering.py has the rule). Else an include
becomes ``macro_scan.WITHHELD`` (no title), a child list loses the child, a part of the rendering the
entry linking to it (``macro_scan.withhold``); ``withheld_references`` counts them. No sources: none.

Each macro's Markdown is converted on its own and put where the macro was through a placeholder the
Markdown converter leaves alone (``fill``), so tables and lists come out whole and a macro inside a
table cell stays in its cell. A macro nothing can resolve keeps the behaviour it had before (a link to
an included page, nothing for a report).
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bs4 import BeautifulSoup, NavigableString, Tag

from confluence_assets.confluence.responses import page_url

from . import macro_scan
from .links import LinkContext
from .macro_scan import INCLUDES, TREE, IncludeRef, MacroInfo, analyse, mentions_handled
from .xhtml import direct_child, parse_storage

log = logging.getLogger(__name__)

MAX_DEPTH = 2  # includes inside included pages, as far as this
MAX_EXCERPT_CHARS = 20_000  # of an excerpt kept in the metadata
MAX_TREE_ITEMS = 500
_INLINE_PARENTS = ("td", "th", "p", "li", "span", "a", "strong", "em", "h1", "h2", "h3", "h4", "h5", "h6")
_TOKEN = re.compile(r"zqxmacro(\d+)x(\d+)zqx")


@dataclass(frozen=True, slots=True)
class IncludedPage:
    """A page another page shows, as far as the sync knows it without a request."""

    page_id: str
    title: str
    space_key: str | None
    url: str | None = None
    storage: str | None = None  # its staged storage (this run's version), when it is staged
    excerpts: Mapping[str, str] | None = None  # its stored excerpts (name -> Markdown; "" the first)


class MacroSources(Protocol):
    """Where conversion finds other pages (confluence_assets.sync.rendering.StoredSources)."""

    def page(self, space_key: str | None, title: str | None, page_id: str | None) -> IncludedPage | None: ...

    def children(self, page_id: str) -> list[dict[str, Any]]: ...  # [{id, title, url}], in sibling order

    # Of ``page_ids``, the pages every reader of ``reader`` (a content object: id, space, ancestors) may read.
    def readable(self, reader: Mapping[str, Any], page_ids: Iterable[str]) -> set[str]: ...


def _to_markdown(fragment: str, ctx: LinkContext) -> tuple[str, Any]:
    from .markdown import storage_to_markdown  # markdown imports storage, which dispatches to us

    markdown, refs = storage_to_markdown(fragment, ctx)
    if ctx.macros is not None:
        markdown = ctx.macros.fill(markdown)
    return markdown.strip(), refs


def _excerpt_of(storage: str, name: str | None) -> str | None:
    """The inner storage of the page's excerpt called ``name`` (None: the first)."""
    for tag, info in analyse(parse_storage(storage)):
        if info.name == "excerpt" and (not name or info.params.get("name") == name):
            body = direct_child(tag, "ac:rich-text-body")
            return body.decode_contents() if body is not None else ""
    return None


class MacroRenderer:
    """One page's rendered macros: ``prepare`` reads them before the rewrite, ``handle`` replaces one
    (True when it did), ``fill`` puts their Markdown in place, ``metadata`` says what was found."""

    def __init__(
        self,
        page: Mapping[str, Any],
        sources: MacroSources | None = None,
        *,
        space_key: str | None = None,
        depth: int = 0,
        seen: frozenset[str] = frozenset(),
        parent: MacroRenderer | None = None,
    ) -> None:
        self.page = page
        self.parent = parent  # the page including this one
        self.root: MacroRenderer = parent.root if parent else self  # the page being converted: its readers decide
        self.withheld = self._withheld_here = 0  # references not shown (the root's: its included pages' too)
        self.page_id = str(page.get("id") or "")
        self.space_key = space_key
        self.sources = sources
        self._source = "unresolved"
        self.depth = depth
        self.seen = seen | {self.page_id}
        self._info: dict[int, MacroInfo] = {}
        self._filled: dict[str, str] = {}
        self._view: macro_scan.RenderedView | None = None
        self.includes: list[IncludeRef] = []
        self.excerpts: dict[str, str] = {}
        self.resolved: list[dict[str, Any]] = []

    # -- the rewrite's side ------------------------------------------------------------------------------
    def prepare(self, soup: BeautifulSoup) -> None:
        for tag, info in analyse(soup):
            self._info[id(tag)] = info
            if info.name in INCLUDES and info.target is not None:
                self.includes.append(info.target)

    def handle(self, pre: Any, tag: Tag, name: str) -> bool:
        info = self._info.get(id(tag))
        if info is None:
            return False
        try:
            markdown = self._render(pre, tag, info)
        except Exception:  # a macro must never cost the page: the old behaviour stays
            log.exception("page %s: could not render the %s macro", self.page_id, info.name)
            markdown, source = None, "error"
        else:
            source = self._source
        if info.name != "excerpt" and not (info.name == "jira" and info.jira_key):
            entry: dict[str, Any] = {"macro": info.name, "source": source if markdown is not None else "unresolved"}
            if self._withheld_here:
                entry["withheld"] = self._withheld_here
            self.resolved.append(entry)
        if markdown is None:
            return False
        token = f"zqxmacro{self.depth}x{len(self._filled)}zqx"
        self._filled[token] = markdown
        if tag.find_parent(list(_INLINE_PARENTS)) is not None:
            tag.replace_with(NavigableString(token))
        else:
            div = pre.soup.new_tag("div")
            div.string = token
            tag.replace_with(div)
        return True

    def fill(self, markdown: str) -> str:
        """The Markdown with each macro's Markdown in place of its placeholder: as blocks (indented like
        the line, e.g. in a list or quote), joined with ``<br>`` in a table cell, inline elsewhere."""
        if not self._filled or "zqxmacro" not in markdown:
            return markdown
        out: list[str] = []
        for line in markdown.split("\n"):
            out.extend(self._fill_line(line))
        return "\n".join(out)

    def _fill_line(self, line: str) -> list[str]:
        while (m := _TOKEN.search(line)) and m.group(0) in self._filled:
            text = self._filled[m.group(0)]
            prefix, suffix = line[: m.start()], line[m.end() :]
            if not (prefix + suffix).strip(" >\t"):
                lead = prefix if prefix.strip(" >\t") == "" else ""
                return [(lead + part).rstrip() if part else lead.rstrip() for part in text.split("\n")]
            parts = [p.strip() for p in text.split("\n") if p.strip()]
            joined = "<br>".join(parts).replace("|", "\\|") if prefix.lstrip().startswith("|") else " ".join(parts)
            line = prefix + joined + suffix
        return [line]

    def metadata(self) -> dict[str, Any]:
        """``includes`` (the pages shown), ``excerpts`` (this page's, for pages including them),
        ``rendered_macros`` (each macro, where its text came from, how many references it withheld) and
        ``withheld_references`` (their total), each only when there is one."""
        out: dict[str, Any] = {}
        if self.withheld:
            out["withheld_references"] = self.withheld
        if self.includes:
            out["includes"] = [ref.as_json(self.space_key) for ref in self.includes]
        if self.excerpts:
            out["excerpts"] = dict(self.excerpts)
        if self.resolved:
            out["rendered_macros"] = list(reversed(self.resolved))  # the rewrite walks backwards
        return out

    # -- permissions -------------------------------------------------------------------------------------
    def _readable(self, page_ids: Iterable[str]) -> set[str]:
        """Of ``page_ids``, those every reader of the page being converted may read (none without sources)."""
        wanted = {str(p) for p in page_ids if p}
        check = getattr(self.sources, "readable", None)
        return set(check(self.root.page, wanted)) & wanted if wanted and check is not None else set()

    def _withhold(self, count: int) -> None:
        node: MacroRenderer | None = self
        while node is not None:  # the macro here, and the includes showing this page
            node._withheld_here += count
            node = node.parent
        self.root.withheld += count

    def _shown(self, kids: list[dict[str, Any]]) -> list[dict[str, Any]]:
        allowed = self._readable(str(k.get("id") or "") for k in kids)
        shown = [k for k in kids if str(k.get("id") or "") in allowed]
        self._withhold(len(kids) - len(shown))
        return shown

    # -- rendering ---------------------------------------------------------------------------------------
    def _render(self, pre: Any, tag: Tag, info: MacroInfo) -> str | None:
        self._source = "unresolved"
        self._withheld_here = 0
        if info.name == "excerpt":
            self._record_excerpt(tag, info)
            return None
        if info.name in TREE:
            return self._tree(pre.ctx, info)
        if info.name in INCLUDES:
            return self._include(pre, info)
        if info.name == "jira" and info.jira_key:
            return None  # one issue: a link, from storage
        return self._from_view(pre, info)

    def _record_excerpt(self, tag: Tag, info: MacroInfo) -> None:
        from .markdown import soup_to_markdown

        body = direct_child(tag, "ac:rich-text-body")
        if body is None:
            return
        text = soup_to_markdown(BeautifulSoup(body.decode_contents(), "html.parser")).strip()[:MAX_EXCERPT_CHARS]
        self.excerpts.setdefault(info.params.get("name") or "", text)

    def _include(self, pre: Any, info: MacroInfo) -> str | None:
        """The included page's content when every reader may read it, from its staged storage, its
        stored excerpt or the rendering; the marker when they may not (or it is not known)."""
        ctx, ref = pre.ctx, info.target
        if self.sources is None or ref is None:
            if self._view_part(info) is None:
                return None  # nothing would be shown: the link from storage, as before
            return self._withheld_include()
        if self.depth >= MAX_DEPTH or ref.page_id in self.seen:
            return None
        found = self.sources.page(ref.space_key or ctx.space_key, ref.title, ref.page_id)
        if found is not None and found.page_id in self.seen:
            return None
        if found is None or found.page_id not in self._readable([found.page_id]):
            return self._withheld_include()
        if found.storage is not None:
            storage = found.storage if info.name == "include" else _excerpt_of(found.storage, ref.excerpt)
            if storage is None:
                return None
            child = LinkContext(
                base_url=ctx.base_url,
                page_id=found.page_id,
                space_key=found.space_key or ctx.space_key,
                resolve_title=ctx.resolve_title,
                users=ctx.users,
                macros=MacroRenderer(
                    {"id": found.page_id, "title": found.title},
                    self.sources,
                    space_key=found.space_key or ctx.space_key,
                    depth=self.depth + 1,
                    seen=self.seen,
                    parent=self,
                ),
            )
            self._source = "staged"
            return _to_markdown(storage, child)[0]
        excerpts = found.excerpts or {}
        if info.name == "excerpt-include" and excerpts:
            text = excerpts.get(ref.excerpt) if ref.excerpt else excerpts.get("", next(iter(excerpts.values())))
            if text is not None:
                self._source = "stored"
                return text
        return self._from_view(pre, info)

    def _withheld_include(self) -> str:
        self._withhold(1)
        self._source = "withheld"
        return macro_scan.WITHHELD

    def _tree(self, ctx: LinkContext, info: MacroInfo) -> str | None:
        root = self._tree_root(ctx, info)
        if root is None:
            return None
        kids = self._children_of(root, ctx)
        if kids is None:
            return None
        kids = self._shown(kids)
        first = info.params.get("first", "")
        if info.name == "children" and first.isdigit() and int(first) > 0:
            kids = kids[: int(first)]
        depth_param = info.params.get("depth", "")
        depth = 1 if info.name == "pagetree" else int(depth_param) if depth_param.isdigit() else 1
        if info.name == "children" and info.params.get("all", "").lower() == "true":
            depth = 3
        budget = [MAX_TREE_ITEMS]
        items = self._tree_html(kids, max(1, min(depth, 3)) - 1, budget)
        if not items:
            return ""
        return _to_markdown(f"<ul>{items}</ul>", LinkContext(ctx.base_url, ctx.page_id, ctx.space_key))[0]

    def _tree_root(self, ctx: LinkContext, info: MacroInfo) -> str | None:
        ref = info.target
        if ref is not None:
            return ref.page_id or (ctx.resolve(ref.space_key, ref.title) if ref.title else None)
        if info.name == "pagetree":
            root = (info.params.get("root") or "@home").lower()
            ancestors = [a for a in self.page.get("ancestors") or [] if isinstance(a, Mapping)]
            if root == "@parent":
                return str(ancestors[-1]["id"]) if ancestors else self.page_id
            if root != "@self":
                return str(ancestors[0]["id"]) if ancestors else self.page_id
        return self.page_id

    def _children_of(self, page_id: str, ctx: LinkContext) -> list[dict[str, Any]] | None:
        """The page's children: its own expansion when that is complete, else the expansion's first
        ones and the rest from the stored tree; None when nothing is known."""
        listed: list[dict[str, Any]] | None = None
        complete = False
        if page_id == self.page_id:
            children = self.page.get("children")
            expansion = children.get("page") if isinstance(children, Mapping) else None
            if isinstance(expansion, Mapping) and isinstance(expansion.get("results"), list):
                listed = [
                    {"id": str(c["id"]), "title": c.get("title") or "", "url": page_url(ctx.base_url, c, ctx.space_key)}
                    for c in expansion["results"]
                    if isinstance(c, Mapping) and c.get("id")
                ]
                complete = "next" not in (expansion.get("_links") or {})
        if complete:
            self._source = "expansion"
            return listed
        if self.sources is None:
            if listed is not None:
                self._source = "expansion"
            return listed
        stored = self.sources.children(page_id)
        self._source = "tree"
        seen = {c["id"] for c in listed or []}
        return [*(listed or []), *(c for c in stored if c.get("id") not in seen)]

    def _tree_html(self, kids: list[dict[str, Any]], deeper: int, budget: list[int]) -> str:
        parts = []
        for kid in kids:
            if budget[0] <= 0:
                break
            budget[0] -= 1
            title = html.escape(str(kid.get("title") or ""))
            url = kid.get("url")
            item = f'<a href="{html.escape(str(url))}">{title}</a>' if url else title
            if deeper > 0 and self.sources is not None:
                sub = self._tree_html(self._shown(self.sources.children(str(kid["id"]))), deeper - 1, budget)
                if sub:
                    item += f"<ul>{sub}</ul>"
            parts.append(f"<li>{item}</li>")
        return "".join(parts)

    def _view_part(self, info: MacroInfo) -> Tag | None:
        if self._view is None:
            body = self.page.get("body") if isinstance(self.page.get("body"), Mapping) else {}
            view = body.get("export_view") if isinstance(body, Mapping) else None
            value = view.get("value") if isinstance(view, Mapping) else None
            if not isinstance(value, str) or "data-macro-name" not in value:
                return None
            self._view = macro_scan.RenderedView(value)
        return self._view.find(info)

    def _from_view(self, pre: Any, info: MacroInfo) -> str | None:
        """The macro's part of the rendering, without what not every reader may see (macro_scan.withhold)."""
        el = self._view_part(info)
        if el is None:
            return None
        ctx = pre.ctx
        el, withheld = macro_scan.withhold(el, self._readable, ctx.host)
        self._withhold(withheld)
        markdown, refs = _to_markdown(el.decode_contents(), LinkContext(ctx.base_url, ctx.page_id, ctx.space_key))
        for key, link in refs.jira_issue_links.items():
            pre.refs.add_jira(key, link["issue_url"], from_link=link["_from_link"])
        self._source = "export_view"
        return markdown


def prepare_macros(soup: BeautifulSoup, ctx: LinkContext, xhtml: str) -> None:
    """Read the page's rendered macros before the rewrite changes them (a no-op without a renderer or
    without such macros)."""
    if ctx.macros is not None and mentions_handled(xhtml):
        ctx.macros.prepare(soup)
