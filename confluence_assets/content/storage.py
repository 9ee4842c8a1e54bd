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

import html
import html.entities
import mimetypes
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bs4 import BeautifulSoup, NavigableString, Tag

from .links import LinkContext, jira_key_in_url, page_id_in_url, safe_href

# Deeper than this, a subtree is flattened to paragraphs of text (code kept) before markdownify, whose
# conversion recurses ~3 Python frames per element level. Real pages nest ~30 deep.
MAX_DEPTH = 80

_PANELS = {
    "info": "Info",
    "note": "Note",
    "warning": "Warning",
    "tip": "Tip",
    "success": "Success",
    "error": "Error",
    "panel": "Panel",
}
# Macros that only lay out or generate content at view time: nothing of them belongs in the text.
_LAYOUT_ONLY = {
    "toc",
    "anchor",
    "style",
    "children",
    "pagetree",
    "pagetreesearch",
    "recently-updated",
    "contentbylabel",
    "content-by-label",
    "livesearch",
    "search",
    "blog-posts",
    "change-history",
    "contributors",
    "contributors-summary",
    "popular-labels",
    "related-labels",
    "listlabels",
    "create-from-template",
    "profile-picture",
    "space-details",
    "attachments",
    "gallery",
    "pagebreak",
    "index",
    "navmap",
    "spaces",
    "recently-updated-dashboard",
}
_CODE_MACROS = {"code", "noformat", "code-block", "codeblock", "sourcecode"}
_FILE_MACROS = {"view-file", "viewpdf", "viewdoc", "viewxls", "viewppt", "viewfile", "multimedia", "pdf-viewer"}
_INCLUDE_MACROS = {"include", "excerpt-include", "include-page"}
_LANGUAGE_ALIASES = {"js": "javascript", "py": "python", "sh": "bash", "shell": "bash", "none": "", "text": ""}
_EMOTICONS = {
    "smile": "🙂",
    "sad": "🙁",
    "cheeky": "😛",
    "laugh": "😀",
    "wink": "😉",
    "thumbs-up": "👍",
    "thumbs-down": "👎",
    "information": "ℹ️",
    "tick": "✅",
    "cross": "❌",
    "warning": "⚠️",
    "plus": "➕",
    "minus": "➖",
    "question": "❓",
    "light-on": "💡",
    "light-off": "💡",
    "yellow-star": "⭐",
    "red-star": "⭐",
    "green-star": "⭐",
    "blue-star": "⭐",
    "heart": "❤️",
    "broken-heart": "💔",
}
_BLOCK_TAGS = {
    "p",
    "div",
    "li",
    "tr",
    "table",
    "ul",
    "ol",
    "blockquote",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "br",
    "hr",
    "td",
    "th",
    "dt",
    "dd",
}
# Children a handler of the parent consumes; met anywhere else they are strays.
_CONSUMED_BY = {
    "ac:parameter": ("ac:structured-macro", "ac:macro"),
    "ac:plain-text-body": ("ac:structured-macro", "ac:macro"),
    "ac:rich-text-body": ("ac:structured-macro", "ac:macro"),
    "ac:link-body": ("ac:link",),
    "ac:plain-text-link-body": ("ac:link",),
    "ac:caption": ("ac:image",),
    "ac:task-body": ("ac:task",),
    "ac:task-status": ("ac:task",),
    "ac:task-id": ("ac:task",),
    "ac:task-uuid": ("ac:task",),
    "ac:adf-node": ("ac:adf-extension",),
    "ac:adf-fallback": ("ac:adf-extension",),
    "ac:adf-content": ("ac:adf-node",),
    "ac:adf-attribute": ("ac:adf-node",),
}
_RENAME_BLOCK = {"ac:layout", "ac:layout-section", "ac:layout-cell", "ac:rich-text-body", "ac:adf-content"}
_DROP = {"ac:placeholder", "ac:adf-mark", "ac:task-id", "ac:task-uuid", "ac:parameter", "ac:adf-attribute"}


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


def inline_cdata(xhtml: str) -> str:
    """Replace CDATA sections with escaped text.

    html.parser's CDATA handling differs between Python releases (recent ones read ``<![CDATA[`` outside
    SVG/MathML as a bogus comment ending at the first ``>``), so code bodies are turned into ordinary
    escaped text first; parsing then yields them verbatim. One linear scan with str.find.
    """
    if "<![CDATA[" not in xhtml:
        return xhtml
    out: list[str] = []
    pos = 0
    while (start := xhtml.find("<![CDATA[", pos)) >= 0:
        end = xhtml.find("]]>", start + 9)
        out.append(xhtml[pos:start])
        if end < 0:  # unclosed: the rest is its text
            out.append(html.escape(xhtml[start + 9 :], quote=False))
            pos = len(xhtml)
            break
        out.append(html.escape(xhtml[start + 9 : end], quote=False))
        pos = end + 3
    out.append(xhtml[pos:])
    return "".join(out)


_INCOMPLETE_TAG = re.compile(r"<[A-Za-z/!?]")
_TAG_AS_TEXT = re.compile(r"</?(?:ac|ri):[^>]*>?")
_NAMED_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")


def _keep_unknown_entity(m: re.Match) -> str:
    # html.parser hands "&bogus;" to BeautifulSoup, which gives it back as "&bogus": keep it as written.
    return m.group(0) if m.group(1) + ";" in html.entities.html5 else "&amp;" + m.group(0)[1:]


def parse_storage(xhtml: str) -> BeautifulSoup:
    text = _NAMED_ENTITY.sub(_keep_unknown_entity, inline_cdata(xhtml.replace("\r\n", "\n")))
    # html.parser hands an unterminated tag at the very end back as text ("<ri:page ri:content-title=...").
    lt = text.rfind("<")
    if lt > text.rfind(">") and _INCOMPLETE_TAG.match(text, lt):
        text = text[:lt]
    soup = BeautifulSoup(text, "html.parser")
    # Markup html.parser could not read as a tag also comes back as text; outside code it is debris.
    for string in soup.find_all(string=_TAG_AS_TEXT):
        if string.parent is not None and string.parent.name != "ac:plain-text-body":
            string.replace_with(_TAG_AS_TEXT.sub("", string))
    return soup


def _text(tag: Tag | None, limit: int = 2000) -> str:
    """The start of an element's text, reading no further than ``limit`` characters.

    Bounded because malformed storage (an unclosed element) can make one element swallow the rest of
    the page, and reading all of it once per element would be quadratic.
    """
    if tag is None:
        return ""
    parts: list[str] = []
    size = 0
    for string in tag.strings:
        parts.append(string)
        size += len(string)
        if size >= limit:
            break
    return "".join(parts).strip()


def _child(tag: Tag, name: str) -> Tag | None:
    """A direct child by name. Only direct: a descendant search per element is quadratic on nesting;
    bodies that are not where they belong are renamed to plain elements by the generic pass instead."""
    return tag.find(name, recursive=False)


def _ri_child(tag: Tag) -> Tag | None:
    for child in tag.children:
        if isinstance(child, Tag) and child.name.startswith("ri:"):
            return child
    return None


def _reset(tag: Tag, name: str, **attrs: str) -> Tag:
    """Turn ``tag`` into another element in place (O(1), unlike unwrap/replace of its children)."""
    tag.name = name
    tag.prefix = None
    tag.attrs = dict(attrs)
    return tag


class StoragePreprocessor:
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
            "ac:task-list": lambda t: _reset(t, "ul"),
            "ac:task": self._task,
            "ac:inline-comment-marker": lambda t: _reset(t, "span"),
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
        consumers = _CONSUMED_BY.get(name)
        if consumers is not None and tag.parent is not None and tag.parent.name in consumers:
            return  # the parent's handler reads it
        if name.startswith("ri:"):
            if not (tag.parent is not None and tag.parent.name in ("ac:link", "ac:image", "ac:parameter")):
                _reset(tag, "span")  # a stray reference renders nothing but keeps what it swallowed
            return
        if name in _DROP:
            tag.decompose()
        elif name in _RENAME_BLOCK or name == "ac:adf-fallback":
            _reset(tag, "div")
        elif name == "ac:plain-text-body":
            _reset(tag, "pre")
        else:
            _reset(tag, "span")

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
            return _text(params.get(key))

        rich = _child(tag, "ac:rich-text-body")
        plain = _child(tag, "ac:plain-text-body")

        if name in _CODE_MACROS:
            language = "" if name == "noformat" else _language(param("language") or param("lang"))
            body = plain if plain is not None else rich
            self._code(tag, body.get_text() if body is not None else "", language)
            return
        if name in _LAYOUT_ONLY:
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
        if name == "status":
            title = param("title")
            tag.replace_with(NavigableString(f"[{title}]") if title else NavigableString(""))
            return
        if name in _FILE_MACROS:
            self._file_macro(tag, params)
            return
        if name in _INCLUDE_MACROS:
            links = [a for p in params.values() for a in p.find_all("a", recursive=False)]
            for a in links:
                tag.insert_before(a.extract())
            tag.decompose()
            return

        title = param("title")
        for child in params.values():
            child.decompose()
        if name in _PANELS or name == "expand":
            if name == "expand":
                label = title or "Expand"
                head = self._new("p")
                head.append(self._new("strong", label))
                _reset(tag, "div")
            else:
                head = self._panel_label(_PANELS[name], title)
                _reset(tag, "blockquote")
            tag.insert(0, head)
            if rich is not None:
                _reset(rich, "div")
            if plain is not None:
                _reset(plain, "p")
            return
        # Unknown macro: its body, never its parameters.
        if rich is not None:
            _reset(tag, "div")
            _reset(rich, "div")
            if plain is not None:
                plain.decompose()
        elif plain is not None and _text(plain, 1):
            self._code(tag, plain.get_text(), "")
        else:
            tag.decompose()

    def _panel_label(self, label: str, title: str) -> Tag:
        head = self._new("p")
        if label == "Panel" and title:
            head.append(self._new("strong", title))
        else:
            head.append(self._new("strong", f"{label}:"))
            if title:
                head.append(NavigableString(" " + title))
        return head

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
        node = _child(tag, "ac:adf-node")
        fallback = _child(tag, "ac:adf-fallback")
        content = _child(node, "ac:adf-content") if node is not None else None
        if node is not None and content is not None:
            attrs = {a.get("key"): _text(a) for a in node.find_all("ac:adf-attribute", recursive=False)}
            if fallback is not None:
                fallback.decompose()
            if node.get("type") == "panel":
                label = _PANELS.get((attrs.get("panel-type") or "info").lower(), "Panel")
                _reset(tag, "blockquote")
                tag.insert(0, self._panel_label(label, ""))
            else:
                _reset(tag, "div")
            for a in node.find_all("ac:adf-attribute", recursive=False):
                a.decompose()
            _reset(node, "div")
            _reset(content, "div")
        else:  # no structured content: the fallback rendition is the best there is
            if node is not None:
                node.decompose()
            _reset(tag, "div")
            if fallback is not None:
                _reset(fallback, "div")

    # links, images, mentions ---------------------------------------------------------------------------

    def _link(self, tag: Tag) -> None:
        ri = _ri_child(tag)
        body = _child(tag, "ac:link-body")
        if body is None:
            body = _child(tag, "ac:plain-text-link-body")
        anchor = tag.get("ac:anchor") or ""
        kind = ri.name if ri is not None else ""
        if kind == "ri:user":
            tag.replace_with(NavigableString(self._mention(ri)))
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
            self._record_href(href, _text(body) or text)
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
            _reset(tag, "a", href=safe_href(href))
        else:
            _reset(tag, "span")
        if body is not None and _text(body, 1):
            _reset(body, "span")
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

    def _mention(self, ri: Tag) -> str:
        found = [(kind, ri.get(f"ri:{kind}")) for kind in ("account-id", "userkey", "username") if ri.get(f"ri:{kind}")]
        if not found:
            return "@user"
        kind, ident = found[0]
        name = self.ctx.users.get(ident)
        self.refs.note(
            self.refs.user_mentions,
            ident,
            {"account_id": ident, "display_name": name, "profile_url": self.ctx.profile_url(kind, ident)},
        )
        return f"@{name}" if name else f"@user:{ident}"

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
            self._record_attachment(filename, url)
        return url

    def _record_attachment(self, filename: str, url: str) -> None:
        self.refs.note(self.refs.attachments, filename, {"title": filename, "download_url": url})

    def _image(self, tag: Tag) -> None:
        ri = _ri_child(tag)
        alt = (tag.get("ac:alt") or tag.get("ac:title") or "").strip()
        src = ""
        if ri is not None and ri.name == "ri:attachment":
            filename = ri.get("ri:filename") or ""
            src = self._attachment_url(ri)
            if filename and filename not in alt:
                alt = f"{alt} ({filename})" if alt else filename
        elif ri is not None and ri.name == "ri:url":
            src = ri.get("ri:value") or ""
            self._record_href(src, alt or src)
        caption = _child(tag, "ac:caption")
        if ri is not None:
            ri.decompose()
        for child in tag.find_all("ac:adf-mark", recursive=False):
            child.decompose()
        _reset(tag, "span")
        tag.insert(0, self._new("img", None, src=safe_href(src), alt=alt))
        if caption is not None:
            _reset(caption, "div")

    def _span(self, tag: Tag) -> None:
        # The editor's older strike-through: <span style="text-decoration: line-through;">.
        if "line-through" in str(tag.get("style") or ""):
            _reset(tag, "s")

    def _plain_img(self, tag: Tag) -> None:
        src = tag.get("src") or ""
        if src:
            tag["src"] = safe_href(src)

    def _emoticon(self, tag: Tag) -> None:
        fallback = tag.get("ac:emoji-fallback") or ""
        if not fallback or (fallback.startswith(":") and fallback.endswith(":")):
            name = (tag.get("ac:name") or "").lower()
            fallback = _EMOTICONS.get(name) or fallback or (f":{name}:" if name else "")
        tag.replace_with(NavigableString(fallback))

    def _task(self, tag: Tag) -> None:
        status = _child(tag, "ac:task-status")
        done = _text(status).lower() == "complete"
        for name in ("ac:task-status", "ac:task-id", "ac:task-uuid"):
            child = _child(tag, name)
            if child is not None:
                child.decompose()
        body = _child(tag, "ac:task-body")
        if body is not None:
            _reset(body, "span")
        _reset(tag, "li")
        tag.insert(0, NavigableString("[x] " if done else "[ ] "))

    def _time(self, tag: Tag) -> None:
        if not _text(tag, 1) and tag.get("datetime"):
            tag.string = tag["datetime"]

    def _anchor(self, tag: Tag) -> None:
        href = (tag.get("href") or "").strip()
        if href:
            tag["href"] = safe_href(href)
            self._record_href(href, _text(tag, 300))

    def _record_href(self, href: str, title: str) -> None:
        if not href or href.startswith("#"):
            return
        key = jira_key_in_url(href)
        if key:
            self.refs.add_jira(key, href.split("#", 1)[0], from_link=True)
            return
        if self.ctx.is_site_url(href):
            page_id = page_id_in_url(href)
            if page_id == self.ctx.page_id:
                return  # an anchor on this very page
            if page_id:
                url = href.split("#", 1)[0]
                self.refs.note(
                    self.refs.internal_links,
                    ("id", page_id),
                    {
                        "page_id": page_id,
                        "page_title": title if title != href else None,
                        "space_key": None,
                        "page_url": url,
                    },
                )
                return
        self.refs.note(self.refs.external_links, href, {"title": title or href, "url": href})

    # tables --------------------------------------------------------------------------------------------

    def _tables(self) -> None:
        # Innermost first, so an outer table sees its inner tables already flattened.
        for table in reversed(self.soup.find_all("table")):
            if table.parent is None:
                continue
            if any(p.name in ("td", "th") for p in table.parents):
                self._flatten_inner_table(table)
            else:
                self._normalise_table(table)

    def _rows(self, table: Tag) -> list[Tag]:
        rows: list[Tag] = []
        for child in table.children:
            if not isinstance(child, Tag):
                continue
            if child.name == "tr":
                rows.append(child)
            elif child.name in ("thead", "tbody", "tfoot"):
                rows.extend(c for c in child.children if isinstance(c, Tag) and c.name == "tr")
        return rows

    def _flatten_inner_table(self, table: Tag) -> None:
        """A table inside a cell becomes one line per row ("a; b; c"): Markdown has no nested tables."""
        block = self._new("div")
        for row in self._rows(table):
            cells = [c for c in row.children if isinstance(c, Tag) and c.name in ("td", "th")]
            codes = [pre.extract() for c in cells for pre in c.find_all("pre")]  # code stays code
            line = "; ".join(t for t in (_text(c) for c in cells) if t)
            if line:
                block.append(self._new("p", line))
            for pre in codes:
                block.append(pre)
        table.replace_with(block)

    def _normalise_table(self, table: Tag) -> None:
        """Give every row the same columns: rowspan/colspan cells are repeated as empty cells.

        markdownify handles colspan but not rowspan, which shifts every later cell of the spanned rows.
        Code blocks cannot live in a Markdown table cell, so they move below the table, with a pointer.
        """
        rows = self._rows(table)
        pending: dict[int, int] = {}  # column -> rows still covered by a rowspan from above
        widths: list[int] = []
        for row in rows:
            cells = [c for c in row.children if isinstance(c, Tag) and c.name in ("td", "th")]
            col = 0
            out: list[Tag] = []
            for cell in cells:
                while pending.get(col, 0) > 0:
                    out.append(self._new("td"))
                    pending[col] -= 1
                    col += 1
                span = _int_attr(cell, "colspan")
                down = _int_attr(cell, "rowspan")
                if "colspan" in cell.attrs:
                    del cell["colspan"]
                if "rowspan" in cell.attrs:
                    del cell["rowspan"]
                out.append(cell)
                for extra in range(span):
                    if down > 1:
                        pending[col + extra] = down - 1
                    if extra:
                        out.append(self._new(cell.name))
                col += span
            while any(v > 0 for c, v in pending.items() if c >= col):
                if pending.get(col, 0) > 0:
                    pending[col] -= 1
                out.append(self._new("td"))
                col += 1
            if len(out) != len(cells):
                for cell in cells:
                    cell.extract()
                for cell in out:
                    row.append(cell)
            widths.append(len(out))
        if rows:
            rows[0]["data-first-row"] = "1"  # the Markdown header row (see markdown.convert_tr)
        width = max(widths, default=0)
        for row, w in zip(rows, widths, strict=True):
            for _ in range(width - w):
                row.append(self._new("td"))
        codes = table.find_all("pre")
        for n, pre in enumerate(codes, 1):
            pre.replace_with(NavigableString(f"(code block {n} below the table)"))
        anchor: Tag = table
        for pre in codes:
            anchor.insert_after(pre)
            anchor = pre


def _int_attr(tag: Tag, name: str) -> int:
    value = str(tag.get(name) or "").strip()
    return max(1, min(1000, int(value))) if value.isdigit() else 1


def _language(raw: str) -> str:
    lang = re.sub(r"[^A-Za-z0-9_+#.-]", "", raw.strip().lower())
    return _LANGUAGE_ALIASES.get(lang, lang)


def flatten_deep(soup: BeautifulSoup, max_depth: int) -> None:
    """Flatten every subtree that reaches deeper than ``max_depth`` into paragraphs of its text.

    Iterative (an explicit stack), so 10,000 nested elements cost no recursion here, and markdownify,
    which recurses per level, only ever sees ``max_depth`` levels. Code (``pre``) survives as code.
    """
    stack: list[tuple[Tag, int]] = [(soup, 0)]
    too_deep: list[Tag] = []
    while stack:
        node, depth = stack.pop()
        for child in node.children:
            if isinstance(child, Tag):
                if depth + 1 >= max_depth and any(isinstance(c, Tag) for c in child.children):
                    too_deep.append(child)
                else:
                    stack.append((child, depth + 1))
    for node in too_deep:
        _flatten(soup, node)


_FLATTEN_WRAPPERS = {
    "table": ("tr", "td"),
    "thead": ("tr", "td"),
    "tbody": ("tr", "td"),
    "tfoot": ("tr", "td"),
    "tr": ("td",),
    "ul": ("li",),
    "ol": ("li",),
}


def _flatten(soup: BeautifulSoup, node: Tag) -> None:
    parts: list[Tag] = []
    buffer: list[str] = []
    skip: set[int] = set()  # ids of the strings inside a kept <pre>

    def flush() -> None:
        text = " ".join("".join(buffer).split())
        buffer.clear()
        if text:
            p = soup.new_tag("p")
            p.string = text
            parts.append(p)

    for item in node.descendants:
        if isinstance(item, Tag):
            if item.name == "pre":
                flush()
                pre = soup.new_tag("pre", attrs={"data-language": item.get("data-language") or ""})
                pre.string = item.get_text()
                parts.append(pre)
                skip.update(id(s) for s in item.descendants if isinstance(s, NavigableString))
            elif item.name in _BLOCK_TAGS:
                flush()
        elif type(item) is NavigableString:
            if id(item) not in skip:
                buffer.append(str(item))
    flush()
    node.clear()
    # The node keeps its name (a flattened cell stays a cell); structural elements get the wrappers
    # that make their new content valid where it is (rows and cells for tables, items for lists).
    container = node
    for name in _FLATTEN_WRAPPERS.get(node.name, ()):
        inner = soup.new_tag(name)
        container.append(inner)
        container = inner
    for part in parts:
        container.append(part)


def attachment_media_type(filename: str) -> str | None:
    return mimetypes.guess_type(filename)[0]
