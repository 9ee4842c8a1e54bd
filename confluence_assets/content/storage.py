"""Confluence storage XHTML -> plain HTML that markdownify understands, collecting references on the way.

markdownify alone drops or mangles Confluence's ``ac:``/``ri:`` elements (macros lose their fences and
leak their parameters, page links lose their target, mentions vanish). So the storage document is parsed
once with BeautifulSoup (html.parser) and rewritten in place into ordinary HTML: code macros become
``<pre data-language>``, panels become labelled ``<blockquote>``, links become ``<a href>``, images
``<img>``, mentions ``@Name`` text. Every link, mention, Jira key, attachment and code language seen is
recorded in ``References`` for the page metadata, so Markdown and metadata agree.

Costs stay linear in page size: one parse, one pass over the elements in reverse document order
(descendants before their ancestors, so a macro sees its body already converted), and renaming tags
instead of unwrapping them (BeautifulSoup's unwrap shifts the parent's child list once per child).
"""

from __future__ import annotations

from collections.abc import Callable

from bs4 import BeautifulSoup, NavigableString, Tag

from .elements import (
    CODE_MACROS,
    CONSUMED_BY,
    DROP,
    FILE_MACROS,
    INCLUDE_MACROS,
    LAYOUT_ONLY,
    PANELS,
    RENAME_BLOCK,
)
from .links import LinkContext, safe_href
from .macro_scan import RENDERED_MACROS
from .references import References
from .tables import TableRewrites
from .widgets import WidgetRewrites
from .xhtml import MAX_DEPTH, code_language, direct_child, flatten_deep, reset, ri_child, text_of


class StoragePreprocessor(TableRewrites, WidgetRewrites):
    """Rewrites one parsed storage document in place; ``refs`` collects what it points at."""

    def __init__(self, soup: BeautifulSoup, ctx: LinkContext) -> None:
        self.soup = soup
        self.ctx = ctx
        self.refs = References()
        self._handlers: dict[str, Callable[[Tag], None]] = {
            "ac:structured-macro": self._macro,
            "ac:macro": self._macro,
            "ac:link": self._link,
            "ac:image": self._image,
            "ac:emoticon": self._emoticon,
            "ac:task-list": self._task_list,
            "ac:task": self._task,
            "ac:inline-comment-marker": lambda t: reset(t, "span"),
            "ac:adf-extension": self._adf_extension,
            "a": self._anchor,
            "time": self._time,
            "img": self._plain_img,
            "span": self._span,
        }

    def run(self) -> References:
        for tag in reversed(self.soup.find_all(True)):
            name = tag.name
            handler = self._handlers.get(name)
            if handler is not None:
                handler(tag)
            elif name.startswith(("ac:", "ri:")):
                self._other_confluence_element(tag)
        flatten_deep(self.soup, MAX_DEPTH)
        self._tables()  # after flattening: walking a table's ancestors is then bounded
        return self.refs

    # generic -------------------------------------------------------------------------------------------

    def _other_confluence_element(self, tag: Tag) -> None:
        name = tag.name
        consumers = CONSUMED_BY.get(name)
        if consumers is not None and tag.parent is not None and tag.parent.name in consumers:
            return  # the parent's handler reads it
        if name.startswith("ri:"):
            if not (tag.parent is not None and tag.parent.name in ("ac:link", "ac:image", "ac:parameter")):
                reset(tag, "span")  # a stray reference renders nothing but keeps what it swallowed
            return
        if name in DROP:
            tag.decompose()
        elif name in RENAME_BLOCK or name == "ac:adf-fallback":
            reset(tag, "div")
        elif name == "ac:plain-text-body":
            reset(tag, "pre")
        else:
            reset(tag, "span")

    def _new(self, name: str, text: str | None = None, **attrs: str) -> Tag:
        tag = self.soup.new_tag(name, attrs=attrs)
        if text is not None:
            tag.string = text
        return tag

    # macros --------------------------------------------------------------------------------------------

    def _macro(self, tag: Tag) -> None:
        name = (tag.get("ac:name") or "").strip().lower()
        params: dict[str, Tag] = {}
        for child in tag.find_all("ac:parameter", recursive=False):
            params.setdefault((child.get("ac:name") or "").strip().lower(), child)

        def param(key: str) -> str:
            return text_of(params.get(key))

        if name in RENDERED_MACROS and self.ctx.macros is not None and self.ctx.macros.handle(self, tag, name):
            return  # rendered in place (content/rendered.py)
        rich = direct_child(tag, "ac:rich-text-body")
        plain = direct_child(tag, "ac:plain-text-body")

        if name in CODE_MACROS:
            language = "" if name == "noformat" else code_language(param("language") or param("lang"))
            body = plain if plain is not None else rich
            self._code(tag, body.get_text() if body is not None else "", language)
            return
        if name in LAYOUT_ONLY:
            tag.decompose()
            return
        if name == "jira":
            key = param("key")
            if key:
                url = self.ctx.jira_issue_url(key)
                self.refs.add_jira(key, url, from_link=False)
                tag.replace_with(self._new("a", key, href=url))
            else:  # a JQL/filter table is rendered at view time: nothing to keep
                tag.decompose()
            return
        if name == "profile":
            self._profile(tag, params)
            return
        if name == "status":
            title = param("title")
            tag.replace_with(NavigableString(f"[{title}]") if title else NavigableString(""))
            return
        if name in FILE_MACROS:
            self._file_macro(tag, params)
            return
        if name in INCLUDE_MACROS:
            links = [a for p in params.values() for a in p.find_all("a", recursive=False)]
            for a in links:
                tag.insert_before(a.extract())
            tag.decompose()
            return

        title = param("title")
        label = self._panel_kind(name, param) if name in PANELS else ""  # read before the parameters go
        for child in params.values():
            child.decompose()
        if name in PANELS or name == "expand":
            if name == "expand":
                label = title or "Expand"
                head = self._new("p")
                head.append(self._new("strong", label))
                reset(tag, "div")
            else:
                head = self._panel_label(label, title)
                reset(tag, "blockquote")
            tag.insert(0, head)
            if rich is not None:
                reset(rich, "div")
            if plain is not None:
                reset(plain, "p")
            return
        # Unknown macro: its body, never its parameters.
        if rich is not None:
            reset(tag, "div")
            reset(rich, "div")
            if plain is not None:
                plain.decompose()
        elif plain is not None and text_of(plain, 1):
            self._code(tag, plain.get_text(), "")
        else:
            tag.decompose()

    def _code(self, tag: Tag, code: str, language: str) -> None:
        if language:
            self.refs.note(self.refs.code_languages, language, None)
        pre = self._new("pre", code)
        pre["data-language"] = language
        tag.replace_with(pre)

    def _file_macro(self, tag: Tag, params: dict[str, Tag]) -> None:
        replacement: Tag | NavigableString = NavigableString("")
        for p in params.values():
            ri = p.find("ri:attachment", recursive=False)
            if ri is not None and ri.get("ri:filename"):
                url = self._attachment_url(ri)
                replacement = self._new("a", ri["ri:filename"], href=safe_href(url))
                break
            if p.find("a", recursive=False) is not None:
                replacement = p.find("a", recursive=False).extract()
                break
        tag.replace_with(replacement, NavigableString(" "))  # file macros often sit side by side

    def _adf_extension(self, tag: Tag) -> None:
        node = direct_child(tag, "ac:adf-node")
        fallback = direct_child(tag, "ac:adf-fallback")
        content = direct_child(node, "ac:adf-content") if node is not None else None
        if node is not None and content is not None:
            attrs = {a.get("key"): text_of(a) for a in node.find_all("ac:adf-attribute", recursive=False)}
            if fallback is not None:
                fallback.decompose()
            if node.get("type") == "panel":
                icon = attrs.get("panel-icon-text") or attrs.get("panel-icon") or ""
                label = self._panel_type_label(attrs.get("panel-type") or "info", icon)
                reset(tag, "blockquote")
                tag.insert(0, self._panel_label(label, ""))
            else:
                reset(tag, "div")
            for a in node.find_all("ac:adf-attribute", recursive=False):
                a.decompose()
            reset(node, "div")
            reset(content, "div")
        else:  # no structured content: the fallback rendition is the best there is
            if node is not None:
                node.decompose()
            reset(tag, "div")
            if fallback is not None:
                reset(fallback, "div")

    # links, images, mentions ---------------------------------------------------------------------------

    def _link(self, tag: Tag) -> None:
        ri = ri_child(tag)
        body = direct_child(tag, "ac:link-body")
        if body is None:
            body = direct_child(tag, "ac:plain-text-link-body")
        anchor = tag.get("ac:anchor") or ""
        kind = ri.name if ri is not None else ""
        if kind == "ri:user":
            tag.replace_with(NavigableString(self._shown_mention(ri, body)))
            return
        if kind == "ri:attachment":
            href, text = self._attachment_url(ri), ri.get("ri:filename") or ""
        elif kind == "ri:page" or kind == "ri:blog-post":
            href, text = self._page_target(ri)
        elif kind == "ri:space":
            space = ri.get("ri:space-key") or ""
            href, text = f"{self.ctx.base_url}/spaces/{space}", space
        elif kind == "ri:url":
            href = ri.get("ri:value") or ""
            text = href
            self.refs.add_href(self.ctx, href, text_of(body) or text)
        elif kind in ("ri:content-entity", "ri:shortcut"):
            cid = ri.get("ri:content-id") or ""
            href = self.ctx.page_url_by_id(cid) if cid else ""
            text = cid
        else:
            href, text = "", ""
        if anchor:
            href = f"{href}#{anchor}" if href else f"#{anchor}"
            text = text or anchor
        if ri is not None:
            ri.decompose()
        if href:
            reset(tag, "a", href=safe_href(href))
        else:
            reset(tag, "span")
        if body is not None and text_of(body, 1):
            reset(body, "span")
        else:
            if body is not None:
                body.decompose()
            tag.append(NavigableString(text))

    def _page_target(self, ri: Tag) -> tuple[str, str]:
        title = (ri.get("ri:content-title") or "").strip()
        space = ri.get("ri:space-key") or self.ctx.space_key
        page_id = ri.get("ri:content-id") or (self.ctx.resolve(space, title) if title else None)
        if page_id:
            url = self.ctx.page_url_by_id(page_id, space)
        elif title:
            url = self.ctx.page_url_by_title(space, title)
        else:  # a link to this very page
            page_id, url = self.ctx.page_id, self.ctx.page_url_by_id(self.ctx.page_id)
        key = ("id", page_id) if page_id else ("title", space, title)
        self.refs.note(
            self.refs.internal_links,
            key,
            {"page_id": page_id, "page_title": title or None, "space_key": space, "page_url": url},
        )
        return url, title or url

    def _attachment_url(self, ri: Tag) -> str:
        filename = ri.get("ri:filename") or ""
        container = ri.find(["ri:page", "ri:blog-post", "ri:content-entity"], recursive=False)
        if container is not None:
            other_id = container.get("ri:content-id")
            if not other_id and container.get("ri:content-title"):
                other_id = self.ctx.resolve(container.get("ri:space-key"), container.get("ri:content-title"))
            url = self.ctx.attachment_url(filename, other_id) if other_id else ""
            if not url:
                url, _ = self._page_target(container)
        else:
            url = self.ctx.attachment_url(filename)
            self.refs.add_attachment(filename, url)
        return url

    def _span(self, tag: Tag) -> None:
        # The editor's older strike-through: <span style="text-decoration: line-through;">.
        if "line-through" in str(tag.get("style") or ""):
            reset(tag, "s")

    def _plain_img(self, tag: Tag) -> None:
        src = tag.get("src") or ""
        if src:
            tag["src"] = safe_href(src)

    def _anchor(self, tag: Tag) -> None:
        href = (tag.get("href") or "").strip()
        if href:
            tag["href"] = safe_href(href)
            self.refs.add_href(self.ctx, href, text_of(tag, 300))
