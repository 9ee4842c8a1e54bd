"""What a reader sees of Confluence's widgets: task lists, panels, images, mentions, emoticons and dates,
rewritten into plain HTML. A part of ``StoragePreprocessor`` (like ``tables.TableRewrites``).

Each element says what the page shows, not how it is stored: a legacy ``note`` macro is the yellow
"Warning" panel Cloud draws, a mention keeps the name its link shows, an image is its label (the URL goes
to the metadata only: in the embedded text it costs tokens and carries no meaning).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bs4 import BeautifulSoup, NavigableString, Tag

from .elements import EMOTICONS, PANEL_TYPES, PANELS
from .links import LinkContext, file_name_in_url, safe_href
from .references import References
from .xhtml import direct_child, reset, ri_child, text_of

_WORD_LABELS = set(PANELS.values()) | set(PANEL_TYPES.values())
_CODEPOINTS = re.compile(r"[0-9a-f]{4,6}(?:-[0-9a-f]{4,6})*")  # an emoji id that spells its Unicode
_CAPTION_LABEL_CHARS = 300  # a longer caption stays a paragraph of its own


def _drop_blank_strings(tag: Tag, *, edges_only: bool = False) -> None:
    # Cloud writes a newline between a task's parts; inside a list item it would cut the checkbox from
    # the text ("- [ ] \n\n  text"). Inside a body only its edges go: a space between two elements is text.
    children = list(tag.children)
    if edges_only and len(children) > 2:
        children = [children[0], children[-1]]
    for child in children:
        if isinstance(child, NavigableString) and not child.strip():
            child.extract()


class WidgetRewrites:
    """The widget handlers of the storage rewrite; the class using it provides what is declared here."""

    soup: BeautifulSoup
    ctx: LinkContext
    refs: References
    _new: Callable[..., Tag]  # a new element (name, text, attributes) of ``soup``
    _attachment_url: Callable[[Tag], str]  # the URL of an ri:attachment, recorded in ``refs``

    # tasks ---------------------------------------------------------------------------------------------

    def _task_list(self, tag: Tag) -> None:
        _drop_blank_strings(tag)
        reset(tag, "ul")
        # Cloud nests a task list as a sibling of the task it belongs under: move it into that task, so
        # it stays a nested list (a list directly inside a list would be flattened).
        parent = tag.parent
        if parent is not None and parent.name == "ac:task-list":
            before = tag.previous_sibling
            while isinstance(before, NavigableString) and not before.strip():
                before = before.previous_sibling
            if isinstance(before, Tag) and before.name == "ac:task":
                before.append(tag.extract())

    def _task(self, tag: Tag) -> None:
        status = direct_child(tag, "ac:task-status")
        done = text_of(status).lower() == "complete"
        for name in ("ac:task-status", "ac:task-id", "ac:task-uuid"):
            child = direct_child(tag, name)
            if child is not None:
                child.decompose()
        _drop_blank_strings(tag)
        box = NavigableString("[x] " if done else "[ ] ")
        body = direct_child(tag, "ac:task-body")
        if body is not None:
            _drop_blank_strings(body, edges_only=True)
            reset(body, "span")
            first = next(iter(body.children), None)
            if isinstance(first, Tag) and first.name == "p":  # a body of paragraphs: the box opens the first
                first.insert(0, box)
        reset(tag, "li")
        if box.parent is None:
            tag.insert(0, box)

    # panels --------------------------------------------------------------------------------------------

    def _panel_kind(self, name: str, param: Callable[[str], str]) -> str:
        """The label of a panel macro (``name`` in PANELS), from its parameters."""
        if name != "panel":
            return PANELS[name]
        # The new editor's panels: a panelType, or a custom panel with an emoji icon and a colour.
        return self._panel_type_label(param("paneltype") or "custom", param("panelicontext") or param("panelicon"))

    def _panel_type_label(self, kind: str, icon: str) -> str:
        kind = kind.strip().lower()
        if kind != "custom" and kind in PANEL_TYPES:
            return PANEL_TYPES[kind]
        return icon.strip() or "Panel"

    def _panel_label(self, label: str, title: str) -> Tag:
        head = self._new("p")
        if label not in _WORD_LABELS:  # an icon: shown as the reader sees it, before the title
            head.append(NavigableString(label))
            if title:
                head.append(NavigableString(" "))
                head.append(self._new("strong", title))
        elif label == "Panel" and title:
            head.append(self._new("strong", title))
        else:
            head.append(self._new("strong", f"{label}:"))
            if title:
                head.append(NavigableString(" " + title))
        return head

    # people --------------------------------------------------------------------------------------------

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

    def _shown_mention(self, ri: Tag, body: Tag | None) -> str:
        """A mention link: the name its link text shows (an author may rename a mention), else the user's."""
        mention = self._mention(ri)
        shown = " ".join(text_of(body, 300).split()) if body is not None else ""
        return "@" + shown.lstrip("@") if shown else mention

    def _profile(self, tag: Tag, params: dict[str, Tag]) -> None:
        # The profile macro shows the person's card: their name, as a mention of them would.
        user = params.get("user")
        ri = user.find("ri:user", recursive=False) if user is not None else None
        tag.replace_with(NavigableString(self._mention(ri) if ri is not None else ""))

    # images, emoticons, dates --------------------------------------------------------------------------

    def _image(self, tag: Tag) -> None:
        """An image becomes ``<img alt=label>``: its alt (unless that is only the file name, Cloud's
        default), title or short caption, else the file name. The URL is kept on the element but the
        Markdown shows the label only (markdown.convert_img); References records the file or URL."""
        ri = ri_child(tag)
        src = filename = ""
        if ri is not None and ri.name == "ri:attachment":
            filename = ri.get("ri:filename") or ""
            src = self._attachment_url(ri)
        elif ri is not None and ri.name == "ri:url":
            src = ri.get("ri:value") or ""
            filename = file_name_in_url(src)
        alt = (tag.get("ac:alt") or "").strip()
        label = (alt if alt != filename else "") or (tag.get("ac:title") or "").strip()
        caption = direct_child(tag, "ac:caption")
        if not label and caption is not None and caption.find("a") is None:
            text = " ".join(text_of(caption, _CAPTION_LABEL_CHARS).split())
            if len(text) < _CAPTION_LABEL_CHARS:  # the caption is the label: not repeated below the image
                label = text
                caption.decompose()
                caption = None
        if ri is not None and ri.name == "ri:url":
            self.refs.add_href(self.ctx, src, label or src)
        if ri is not None:
            ri.decompose()
        for child in tag.find_all("ac:adf-mark", recursive=False):
            child.decompose()
        reset(tag, "span")
        tag.insert(0, self._new("img", None, src=safe_href(src), alt=label or filename))
        if caption is not None:
            reset(caption, "div")

    def _emoticon(self, tag: Tag) -> None:
        tag.replace_with(NavigableString(self._emoji(tag)))

    def _emoji(self, tag: Tag) -> str:
        """The Unicode of an emoticon if known, else its shortname (``:name:``)."""
        fallback = tag.get("ac:emoji-fallback") or ""
        shortname = tag.get("ac:emoji-shortname") or ""
        if fallback and not (fallback.startswith(":") and fallback.endswith(":")):
            return fallback
        emoji_id = (tag.get("ac:emoji-id") or "").lower()
        if _CODEPOINTS.fullmatch(emoji_id):  # Cloud's id of a standard emoji is its code points
            points = [int(p, 16) for p in emoji_id.split("-")]
            if all(p <= 0x10FFFF and not 0xD800 <= p <= 0xDFFF for p in points):
                return "".join(map(chr, points))
        name = (tag.get("ac:name") or "").lower()
        # Cloud names every emoji without a legacy twin "blue-star": then the shortname says what it is.
        if name in EMOTICONS and not (name == "blue-star" and (shortname or fallback)):
            return EMOTICONS[name]
        return shortname or fallback or (f":{name}:" if name else "")

    def _time(self, tag: Tag) -> None:
        if not text_of(tag, 1) and tag.get("datetime"):
            tag.string = tag["datetime"]
