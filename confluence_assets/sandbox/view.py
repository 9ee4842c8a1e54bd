"""``body.view`` and ``body.export_view``: a page's storage with the macros that produce content at view
time rendered, marked the way Confluence Cloud marks every macro's output.

Cloud wraps a macro's output in an element carrying ``class="... conf-macro output-block"`` (or
``output-inline``), ``data-hasbody``, ``data-macro-id`` (the storage's ``ac:macro-id``) and
``data-macro-name``, as the real ``body.view`` of the shipped samples shows (e.g. 544112828's ``toc`` and
``info`` macros). Rendered here, following Atlassian's macro documentation (see README, Sandbox):

- ``jira``: one issue (``key``) as the issue link with its summary and status (``view`` shows Cloud's
  "Getting issue details..." placeholder, filled in asynchronously by the browser; ``export_view`` the
  summary), a JQL query or saved filter as the table of the issues the sandbox's Jira returns
  (:mod:`confluence_assets.sandbox.jira`), or just their count (``count=true``);
- ``include`` / ``excerpt-include``: the other page's rendered body / excerpt (in a panel with its title
  unless ``nopanel``), two levels deep, an error message when the page does not exist;
- ``excerpt``: its body, nothing when ``hidden``;
- ``children``: the child pages as a nested list (``depth``, ``all``, ``first``, ``page``);
  ``pagetree`` is rendered by the browser: the view has its placeholder only;
- ``details`` (page properties): its body; ``detailssummary`` (page properties report): a table of the
  ``details`` of the pages its ``cql`` (or ``label``) finds, a row per page, a column per property;
- ``contentbylabel`` and ``recently-updated``: lists of the pages found, newest first.

Everything else stays storage markup (the sandbox's rendering is no full renderer). ``export_view`` has
absolute URLs, ``view`` relative ones. Reading the storage: a small tokenizer (the sandbox is standard
library only) that keeps untouched markup byte for byte.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from confluence_assets.sandbox.clock import friendly
from confluence_assets.sandbox.jira import JQLError

if TYPE_CHECKING:
    from confluence_assets.sandbox.site import Page, Site, User

RENDERED = {
    "jira",
    "include",
    "include-page",
    "excerpt-include",
    "excerpt",
    "children",
    "pagetree",
    "details",
    "detailssummary",
    "contentbylabel",
    "content-by-label",
    "recently-updated",
}
_NAMES = "|".join(map(re.escape, sorted(RENDERED)))
_QUICK = re.compile(r'<ac:(?:structured-)?macro\b[^>]*?\bac:name="(' + _NAMES + ')"')
_TOKEN = re.compile(
    r"(?P<cdata><!\[CDATA\[.*?\]\]>)|(?P<comment><!--.*?-->)"
    r"|(?P<tag><(?P<close>/)?(?P<name>[A-Za-z][\w:.-]*)(?P<attrs>(?:\s+[^\s=/>]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?)*)\s*(?P<self>/)?>)"
    r"|(?P<text>[^<]+|<)",
    re.S,
)
_ATTR = re.compile(r"""([^\s=/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?""")
_VOID = {"br", "hr", "img", "col", "input", "meta", "link", "area", "base", "source", "wbr"}
MAX_DEPTH = 2


@dataclass(eq=False)
class El:
    name: str
    start: str  # the start tag as written
    attrs: dict[str, str]
    children: list[El | str] = field(default_factory=list)
    void: bool = False

    def child(self, name: str) -> El | None:
        return next((c for c in self.children if isinstance(c, El) and c.name == name), None)

    def find_all(self, names: tuple[str, ...]) -> list[El]:
        out, stack = [], list(reversed(self.children))
        while stack:
            node = stack.pop()
            if isinstance(node, El):
                if node.name in names:
                    out.append(node)
                stack.extend(reversed(node.children))
        return out

    def text(self) -> str:
        parts, stack = [], list(reversed(self.children))
        while stack:
            node = stack.pop()
            if isinstance(node, El):
                stack.extend(reversed(node.children))
            elif not node.startswith("<"):
                parts.append(html.unescape(node))
        return "".join(parts)

    def inner(self) -> str:
        return "".join(serialize(c) for c in self.children)


def parse(markup: str) -> El:
    root = El("#root", "", {})
    stack = [root]
    for m in _TOKEN.finditer(markup):
        if m.group("tag") is None:
            stack[-1].children.append(m.group(0))
            continue
        name = m.group("name").lower()
        if m.group("close"):
            if any(el.name == name for el in stack[1:]):
                while stack[-1].name != name:
                    stack.pop()
                stack.pop()
            continue
        attrs = {
            a.group(1).lower(): html.unescape(a.group(2) or a.group(3) or a.group(4) or "")
            for a in _ATTR.finditer(m.group("attrs"))
        }
        el = El(name, m.group(0), attrs, void=bool(m.group("self")) or name in _VOID)
        stack[-1].children.append(el)
        if not el.void:
            stack.append(el)
    return root


def serialize(node: El | str) -> str:
    if isinstance(node, str):
        return node
    if node.void:
        return node.start
    return f"{node.start}{node.inner()}</{node.name}>"


def _e(value: object) -> str:
    return html.escape(str(value))


class ViewRenderer:
    """Renders one page's body for one request; ``export`` selects export_view (absolute URLs)."""

    def __init__(
        self,
        site: Site,
        base: str,
        context: str,
        webui: Callable[[Page], str],
        *,
        export: bool,
        viewer: User | None = None,
    ) -> None:
        self.site = site
        self.base = base
        self.context = context
        self.webui = webui
        self.export = export
        self.viewer = viewer  # Confluence renders a page as its viewer: pages they cannot read stay out

    def visible(self, page: Page | None) -> Page | None:
        return page if page is not None and (self.viewer is None or self.site.can_read(self.viewer, page)) else None

    # -- entry points ----------------------------------------------------------------------------------
    def render(self, page: Page, *, depth: int = 0, seen: frozenset[str] = frozenset()) -> str:
        if not _QUICK.search(page.body):
            return page.body
        return self._render_children(parse(page.body), page, depth, seen | {page.id})

    def _render_children(self, el: El, page: Page, depth: int, seen: frozenset[str]) -> str:
        out = []
        for child in el.children:
            if isinstance(child, El) and child.name in ("ac:structured-macro", "ac:macro"):
                name = child.attrs.get("ac:name", "").lower()
                if name in RENDERED:
                    out.append(self._macro(child, name, page, depth, seen))
                    continue
            if isinstance(child, El) and not child.void:
                out.append(f"{child.start}{self._render_children(child, page, depth, seen)}</{child.name}>")
            else:
                out.append(serialize(child))
        return "".join(out)

    # -- helpers ---------------------------------------------------------------------------------------
    def url(self, page: Page) -> str:
        return (self.base if self.export else self.context) + self.webui(page)

    def site_root(self) -> str:
        """Where Cloud serves the site's Jira (absolute in both views: Jira is another application)."""
        return self.base[: -len(self.context)] if self.context and self.base.endswith(self.context) else self.base

    def link(self, page: Page) -> str:
        return f'<a href="{_e(self.url(page))}">{_e(page.title)}</a>'

    @staticmethod
    def params(macro: El) -> dict[str, El]:
        out: dict[str, El] = {}
        for child in macro.children:
            if isinstance(child, El) and child.name == "ac:parameter":
                out.setdefault(child.attrs.get("ac:name", "").lower(), child)
        return out

    def target(self, params: dict[str, El], page: Page, *keys: str) -> tuple[Page | None, str]:
        """The page a parameter names (an ri:page link, or "SPACE:Title" text), and how it was named."""
        for key in keys:
            param = params.get(key)
            if param is None:
                continue
            ri = next(iter(param.find_all(("ri:page", "ri:content-entity"))), None)
            if ri is not None:
                if ri.attrs.get("ri:content-id"):
                    found = self.site.pages.get(ri.attrs["ri:content-id"])
                    found = found if found and found.status == "current" else None
                    return self.visible(found), ri.attrs["ri:content-id"]
                space = ri.attrs.get("ri:space-key") or page.space_key
                title = ri.attrs.get("ri:content-title", "")
                return self.visible(self.site.page_by_title(space, title)), title
            text = param.text().strip()
            if text:
                space, _, title = text.rpartition(":")
                return self.visible(self.site.page_by_title(space or page.space_key, title)), title
        return None, ""

    def included(self, macro: El, name: str, params: dict[str, El], page: Page) -> tuple[Page | None, str]:
        """The page an include names, or None and the error Confluence shows in its place."""
        target, named = self.target(params, page, "", "page")
        if target is None:
            return None, self.wrap(macro, name, self.error(name, f"The included page could not be found: {named}"))
        return target, ""

    @staticmethod
    def wrap(macro: El, name: str, inner: str, *, classes: str = "", tag: str = "div", body: bool = False) -> str:
        mid = macro.attrs.get("ac:macro-id") or str(uuid.uuid5(uuid.NAMESPACE_OID, macro.start))
        local = macro.attrs.get("ac:local-id")
        cls = f"{classes} conf-macro output-{'inline' if tag == 'span' else 'block'}".strip()
        attrs = f'class="{_e(cls)}" data-hasbody="{str(body).lower()}" data-layout="default"'
        if local:
            attrs += f' data-local-id="{_e(local)}"'
        attrs += f' data-macro-id="{_e(mid)}" data-macro-name="{_e(name)}"'
        return f"<{tag} {attrs}>{inner}</{tag}>"

    @staticmethod
    def error(name: str, message: str) -> str:
        return f'<div class="error"><span class="error">Unable to render {{{_e(name)}}}</span> {_e(message)}</div>'

    def cql_pages(self, cql: str, page: Page) -> list[Page]:
        from confluence_assets.sandbox.cql import CQLError

        cql = re.sub(r"currentSpace\(\s*\)", f'"{page.space_key}"', cql, flags=re.I)
        cql = re.sub(r"currentContent\(\s*\)", page.id, cql, flags=re.I)
        try:
            ids = self.site.search(f"type = page AND ({cql})", user=self.viewer)
        except CQLError:
            return []
        return [self.site.pages[i] for i in ids if i in self.site.pages]

    def label_cql(self, params: dict[str, El], page: Page) -> str:
        if params.get("cql") is not None and params["cql"].text().strip():
            return params["cql"].text().strip()
        raw = next((params[k].text() for k in ("labels", "label", "") if k in params), "")
        labels = [x.strip() for x in re.split(r"[,\s]+", raw) if x.strip()]
        spaces = (params["spaces"].text().strip() if "spaces" in params else "") or "@self"
        where = " OR ".join(f'label = "{x}"' for x in labels) or 'label = ""'
        return f"({where})" + (f' AND space = "{page.space_key}"' if spaces == "@self" else "")

    # -- macros ----------------------------------------------------------------------------------------
    def _macro(self, macro: El, name: str, page: Page, depth: int, seen: frozenset[str]) -> str:
        params = self.params(macro)
        name = {"content-by-label": "contentbylabel", "include-page": "include"}.get(name, name)
        handler = getattr(self, "_include" if name == "excerpt-include" else "_" + name.replace("-", "_"))
        return handler(macro, name, params, page, depth, seen)

    def _jira(self, macro: El, name: str, params: dict[str, El], page: Page, depth: int, seen: frozenset[str]) -> str:
        jira = self.site.jira
        key = params["key"].text().strip() if "key" in params else ""
        if key:
            issue = jira.issues.get(key)
            summary = issue.summary if issue and self.export else "Getting issue details..."
            status = issue.status.upper() if issue and self.export else "STATUS"
            inner = (
                f'<a href="{_e(self.site_root())}/browse/{_e(key)}" class="jira-issue-key">{_e(key)}</a>'
                f' - <span class="summary">{_e(summary)}</span> '
                f'<span class="aui-lozenge aui-lozenge-subtle aui-lozenge-default">{_e(status)}</span>'
            )
            return self.wrap(macro, name, inner, classes="confluence-jim-macro jira-issue", tag="span")
        jql = (params["jqlquery"].text() if "jqlquery" in params else "").strip()
        if not jql and "filter" in params:
            jql = f"filter = {params['filter'].text().strip()}"
        try:
            issues = jira.search(jql) if jql else []
        except JQLError as exc:
            return self.wrap(macro, name, self.jql_error(exc), classes="jira-table")
        total = len(issues)
        if "count" in params and params["count"].text().strip().lower() == "true":
            href = f"{self.site_root()}/issues/?jql={jql}"
            inner = f'<span class="static-jira-issues_count"><a href="{_e(href)}">{total} issues</a></span>'
            return self.wrap(macro, name, inner, classes="confluence-jim-macro jira-issues-count", tag="span")
        limit_raw = params["maximumissues"].text().strip() if "maximumissues" in params else "20"
        issues = issues[: int(limit_raw) if limit_raw.isdigit() else 20]
        raw_columns = params["columns"].text() if "columns" in params else "type,key,summary,assignee,status,priority"
        columns = [c.strip().lower() for c in raw_columns.split(",") if c.strip()]
        header = "".join(
            f'<th class="jira-macro-table-underline-pdfexport"><span class="jim-table-header-content">'
            f"{_e(c.capitalize())}</span></th>"
            for c in columns
        )
        rows = []
        for issue in issues:
            values = {
                "key": f'<a href="{_e(self.site_root())}/browse/{_e(issue.key)}">{_e(issue.key)}</a>',
                "summary": _e(issue.summary),
                "status": f'<span class="aui-lozenge">{_e(issue.status.upper())}</span>',
                "type": _e(issue.issue_type),
                "priority": _e(issue.priority),
                "assignee": _e(issue.assignee or "Unassigned"),
            }
            cells = "".join(
                f'<td class="jira-macro-table-underline-pdfexport">{values.get(c, "")}</td>' for c in columns
            )
            rows.append(f'<tr class="rowNormal">{cells}</tr>')
        inner = (
            f'<div class="jira-issues"><table class="aui"><tbody><tr>{header}</tr>{"".join(rows)}</tbody></table>'
            f'<span class="total-issues-count">{total} issue{"" if total == 1 else "s"}</span></div>'
        )
        return self.wrap(macro, name, inner, classes="refresh-module-id jira-table")

    def _include(
        self, macro: El, name: str, params: dict[str, El], page: Page, depth: int, seen: frozenset[str]
    ) -> str:
        """include and excerpt-include: the other page's body, or its excerpt."""
        target, failed = self.included(macro, name, params, page)
        if target is None:
            return failed
        if name == "excerpt-include":
            return self._excerpt_of(macro, name, params, target, depth, seen)
        if target.id in seen or depth >= MAX_DEPTH:
            return self.wrap(macro, name, self.error(name, "The page is already included or included too deeply."))
        return self.wrap(macro, name, self.render(target, depth=depth + 1, seen=seen))

    def _excerpt_of(
        self, macro: El, name: str, params: dict[str, El], target: Page, depth: int, seen: frozenset[str]
    ) -> str:
        wanted = params["name"].text().strip() if "name" in params else ""
        excerpt = None
        for candidate in parse(target.body).find_all(("ac:structured-macro", "ac:macro")):
            if candidate.attrs.get("ac:name") == "excerpt":
                own = self.params(candidate)
                if not wanted or (own["name"].text().strip() if "name" in own else "") == wanted:
                    excerpt = candidate
                    break
        if excerpt is None or target.id in seen or depth >= MAX_DEPTH:
            return self.wrap(macro, name, self.error(name, f"{target.title} has no excerpt {wanted!r}".strip()))
        body = self.body_of(excerpt, target, depth + 1, seen | {target.id})
        if "nopanel" in params and params["nopanel"].text().strip().lower() == "true":
            return self.wrap(macro, name, body)
        panel = (
            '<div class="panel" style="border-width: 1px;"><div class="panelHeader" style="border-bottom-width: 1px;">'
            f'<b>{_e(target.title)}</b></div><div class="panelContent">{body}</div></div>'
        )
        return self.wrap(macro, name, panel)

    def _excerpt(
        self, macro: El, name: str, params: dict[str, El], page: Page, depth: int, seen: frozenset[str]
    ) -> str:
        if "hidden" in params and params["hidden"].text().strip().lower() == "true":
            return ""
        inline = (
            "atlassian-macro-output-type" in params
            and params["atlassian-macro-output-type"].text().strip().upper() == "INLINE"
        )
        return self.wrap(
            macro, name, self.body_of(macro, page, depth, seen), tag="span" if inline else "div", body=True
        )

    def _children(
        self, macro: El, name: str, params: dict[str, El], page: Page, depth: int, seen: frozenset[str]
    ) -> str:
        parent = page
        if "page" in params:
            parent, _ = self.target(params, page, "page")
            if parent is None:
                return self.wrap(macro, name, self.error(name, "The page does not exist."))
        raw_depth = params["depth"].text().strip() if "depth" in params else ""
        levels = int(raw_depth) if raw_depth.isdigit() else 1
        if "all" in params and params["all"].text().strip().lower() == "true":
            levels = 99
        first = params["first"].text().strip() if "first" in params else ""

        def items(of: Page, level: int) -> str:
            kids = [k for k in (self.visible(self.site.pages[k]) for k in self.site.child_ids(of.id)) if k]
            if level == 0 and first.isdigit():
                kids = kids[: int(first)]
            out = []
            for kid in kids:
                sub = items(kid, level + 1) if level + 1 < levels else ""
                out.append(f"<li>{self.link(kid)}{f'<ul>{sub}</ul>' if sub else ''}</li>")
            return "".join(out)

        listed = items(parent, 0)
        if not listed:
            return self.wrap(macro, name, "", classes="childpages-macro", tag="ul")
        return self.wrap(macro, name, listed, classes="childpages-macro", tag="ul")

    def _pagetree(
        self, macro: El, name: str, params: dict[str, El], page: Page, depth: int, seen: frozenset[str]
    ) -> str:
        # Confluence sends the tree's placeholder; the browser asks for the pages.
        home = self.site.spaces[page.space_key].homepage_id or page.id
        inner = (
            '<div class="plugin_pagetree_children"></div><fieldset class="hidden">'
            f'<input type="hidden" name="rootPageId" value="{_e(home)}"/></fieldset>'
        )
        return self.wrap(macro, name, inner, classes="plugin_pagetree")

    def _details(
        self, macro: El, name: str, params: dict[str, El], page: Page, depth: int, seen: frozenset[str]
    ) -> str:
        if "hidden" in params and params["hidden"].text().strip().lower() == "true":
            return ""
        return self.wrap(
            macro, name, self.body_of(macro, page, depth, seen), classes="plugin-tabmeta-details", body=True
        )

    def _detailssummary(
        self, macro: El, name: str, params: dict[str, El], page: Page, depth: int, seen: frozenset[str]
    ) -> str:
        rows: list[tuple[Page, dict[str, str]]] = []
        headings: list[str] = []
        for found in sorted(self.cql_pages(self.label_cql(params, page), page), key=lambda p: p.title.lower()):
            props = self._properties(found)
            if props is None:
                continue
            rows.append((found, props))
            headings.extend(h for h in props if h not in headings)
        if "headings" in params and params["headings"].text().strip():
            headings = [h.strip() for h in params["headings"].text().split(",") if h.strip()]
        first = (params["firstcolumn"].text().strip() if "firstcolumn" in params else "") or "Title"
        head = "".join(f"<th>{_e(h)}</th>" for h in [first, *headings])
        body = "".join(
            f'<tr><td class="title">{self.link(p)}</td>'
            + "".join(f"<td>{props.get(h, '')}</td>" for h in headings)
            + "</tr>"
            for p, props in rows
        )
        inner = (
            f'<div class="table-wrap"><table class="aui metadata-summary-macro"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>"
        )
        return self.wrap(macro, name, inner, classes="metadata-summary-macro-view")

    def _properties(self, page: Page) -> dict[str, str] | None:
        """The first page properties table of ``page``: first cell -> second cell (rendered)."""
        for candidate in parse(page.body).find_all(("ac:structured-macro", "ac:macro")):
            if candidate.attrs.get("ac:name") != "details":
                continue
            props: dict[str, str] = {}
            body = candidate.child("ac:rich-text-body")
            for row in body.find_all(("tr",)) if body is not None else []:
                cells = [c for c in row.children if isinstance(c, El) and c.name in ("th", "td")]
                if len(cells) >= 2:
                    key = " ".join(cells[0].text().split())
                    if key:
                        props.setdefault(key, self._render_children(cells[1], page, MAX_DEPTH, frozenset({page.id})))
            return props
        return None

    def _contentbylabel(
        self, macro: El, name: str, params: dict[str, El], page: Page, depth: int, seen: frozenset[str]
    ) -> str:
        raw_max = params["max"].text().strip() if "max" in params else ""
        found = sorted(self.cql_pages(self.label_cql(params, page), page), key=lambda p: p.modified_at, reverse=True)
        items = "".join(
            '<li><div><span class="icon aui-icon content-type-page" title="Page">Page:</span></div>'
            f'<div class="details">{self.link(p)}</div></li>'
            for p in found[: int(raw_max) if raw_max.isdigit() else 15]
        )
        title = params["title"].text().strip() if "title" in params else ""
        head = f"<h2>{_e(title)}</h2>" if title else ""
        return self.wrap(
            macro, name, f'{head}<ul class="content-by-label">{items}</ul>', classes="content-by-label-macro"
        )

    def _recently_updated(
        self, macro: El, name: str, params: dict[str, El], page: Page, depth: int, seen: frozenset[str]
    ) -> str:
        raw_max = params["max"].text().strip() if "max" in params else ""
        pages = [p for p in self.site.iter_pages(page.space_key) if p.status == "current"]
        pages.sort(key=lambda p: p.modified_at, reverse=True)
        items = "".join(
            f'<li class="update-item">{self.link(p)} '
            f'<span class="update-item-date">{_e(friendly(p.modified_at))}</span></li>'
            for p in pages[: int(raw_max) if raw_max.isdigit() else 15]
        )
        return self.wrap(macro, name, f'<ul class="update-items">{items}</ul>', classes="recently-updated")

    def body_of(self, macro: El, page: Page, depth: int, seen: frozenset[str]) -> str:
        body = macro.child("ac:rich-text-body")
        return self._render_children(body, page, depth, seen) if body is not None else ""

    def jql_error(self, exc: JQLError) -> str:
        return f'<div class="aui-message aui-message-error"><p>{_e(exc)}</p></div>'
