"""Comments in the sandbox: footer and inline comments on pages and blog posts, replies, resolution,
their REST shapes (v1 ``child/comment`` and content, v2 ``footer-comments``/``inline-comments``) and the
writes clients make.

As on Confluence Cloud:

- a comment is content of its own (``type = comment`` in CQL, with its own version and ``lastModified``);
  adding, editing, resolving or deleting one never changes its container's version or ``lastModified``,
  so sync code must find changed comments through CQL (``type = comment and lastModified >= ...``, with
  ``expand=container``) or the v2 comment endpoints;
- an inline comment is anchored to text of the page: the storage body gets an
  ``<ac:inline-comment-marker ac:ref="...">`` around the selection (not a new page version), the comment
  keeps the selection (``properties.inline-original-selection`` in v2, ``extensions.inlineProperties.
  originalSelection`` in v1) and a resolution status (``open``, ``resolved``, ``reopened``); deleting the
  comment unwraps the marker;
- replies have a parent comment (v2 ``parentCommentId``, v1 ``ancestors``) and the parent's location;
  page-level lists (v1 ``child/comment``, v2 ``/pages/{id}/footer-comments``) return root comments only
  (Cloud documents v1 ``depth`` as unused), replies come from a comment's own children;
- v1 ``location`` filters: ``footer``, ``inline`` (every inline comment), ``resolved`` (resolved inline
  ones); several may be given;
- a comment is readable exactly when its container is (sandbox/permissions.py); deleting is permanent
  (v1 ``DELETE /rest/api/content/{id}`` and v2 ``DELETE``), and takes the replies with it.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from confluence_assets.sandbox.clock import epoch_ms, friendly, iso
from confluence_assets.sandbox.paging import int_param, offset_window

if TYPE_CHECKING:
    import threading

    from confluence_assets.sandbox.httpbase import Request
    from confluence_assets.sandbox.shapes import Renderer, Tree
    from confluence_assets.sandbox.site import Page, User

LOCATIONS = ("footer", "inline")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

RESOLUTIONS = ("open", "resolved", "reopened", "dangling")
CONTAINER_KINDS = ("page", "blogpost")


@dataclass(slots=True)
class Comment:
    id: str  # numeric, like page ids
    container_id: str  # the page or blog post
    space_key: str
    body: str  # storage XHTML
    location: str  # footer | inline
    created_at: datetime
    author_id: str
    modified_at: datetime
    modified_by: str
    parent_id: str | None = None  # the comment this one replies to
    version: int = 1
    status: str = "current"
    marker_ref: str = ""  # inline: the ac:ref of the marker in the container's body
    original_selection: str = ""  # inline: the text the comment is anchored to
    resolution: str = "open"  # inline: open | resolved | reopened | dangling
    resolution_by: str | None = None
    resolution_at: datetime | None = None
    kind: str = "comment"

    @property
    def numeric_id(self) -> int:
        return int(self.id)

    @property
    def page_id(self) -> str:  # what permission checks and CQL's ancestor/container read
        return self.container_id

    @property
    def labels(self) -> tuple:
        return ()

    @property
    def title(self) -> str:
        return self._title

    _title: str = ""  # "Re: <container title>", kept current by the site


class SiteComments:
    """The comment half of :class:`Site` (which inherits it): ground truth and mutations."""

    lock: threading.RLock
    pages: dict[str, Page]
    generation: int

    def _init_comments(self) -> None:
        self.comments: dict[str, Comment] = {}
        self._comment_ids: dict[str, list[str]] = {}  # container id -> its comments, in creation order

    def add_comment(
        self,
        page_id: str,
        body: str,
        *,
        inline_anchor: str | None = None,
        parent_comment_id: str | None = None,
        resolved: bool = False,
        author: User | str | None = None,
        when: datetime | str | None = None,
        comment_id: str | None = None,
    ) -> Comment:
        """A footer comment (default), an inline one anchored to the first occurrence of ``inline_anchor``
        in the container's text, or a reply to ``parent_comment_id`` (same container and location). The
        container's version and ``lastModified`` stay, as on Confluence."""
        with self.lock:
            self.generation += 1
            parent = self.comment(parent_comment_id) if parent_comment_id else None
            container = self._current(parent.container_id if parent else page_id)  # type: ignore[attr-defined]
            if container.kind not in CONTAINER_KINDS:
                raise self._error(f"Content {container.id} ({container.kind}) takes no comments")  # type: ignore[attr-defined]
            if parent is not None and page_id not in (None, "", parent.container_id):
                raise self._error(f"Comment {parent.id} is not on content {page_id}")  # type: ignore[attr-defined]
            location = parent.location if parent else ("inline" if inline_anchor else "footer")
            if resolved and (location != "inline" or parent is not None):
                raise self._error("Only a root inline comment can be resolved")  # type: ignore[attr-defined]
            when_ = self.now(when)  # type: ignore[attr-defined]
            author_id = _account(author) if author else self.default_user.account_id  # type: ignore[attr-defined]
            cid = comment_id or self.new_id()  # type: ignore[attr-defined]
            if cid in self.comments or cid in self.pages:
                raise self._error(f"Content id {cid} already exists")  # type: ignore[attr-defined]
            comment = Comment(
                id=cid,
                container_id=container.id,
                space_key=container.space_key,
                body=body,
                location=location,
                created_at=when_,
                author_id=author_id,
                modified_at=when_,
                modified_by=author_id,
                parent_id=parent.id if parent else None,
            )
            comment._title = f"Re: {container.title}"
            if parent is not None:
                comment.marker_ref, comment.original_selection = parent.marker_ref, parent.original_selection
            elif inline_anchor:
                comment.marker_ref = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox-comment:{cid}"))
                container.body = _mark(container.body, inline_anchor, comment.marker_ref, self._error)  # type: ignore[attr-defined]
                comment.original_selection = inline_anchor
            if resolved:
                comment.resolution, comment.resolution_by, comment.resolution_at = "resolved", author_id, when_
            self.comments[cid] = comment
            self._comment_ids.setdefault(container.id, []).append(cid)
            return comment

    def edit_comment(
        self, comment_id: str, body: str, *, author: User | str | None = None, when: datetime | str | None = None
    ) -> Comment:
        """A new version of the comment (its ``lastModified`` moves; its container's does not)."""
        with self.lock:
            self.generation += 1
            comment = self.comment(comment_id)
            comment.body = body
            comment.version += 1
            comment.modified_at = self.now(when)  # type: ignore[attr-defined]
            comment.modified_by = _account(author) if author else self.default_user.account_id  # type: ignore[attr-defined]
            return comment

    def resolve_comment(
        self,
        comment_id: str,
        resolved: bool = True,
        *,
        author: User | str | None = None,
        when: datetime | str | None = None,
    ) -> Comment:
        """Resolve (or reopen) a root inline comment. Not a new version of the comment."""
        with self.lock:
            self.generation += 1
            comment = self.comment(comment_id)
            if comment.location != "inline" or comment.parent_id is not None:
                raise self._error("Only a root inline comment can be resolved")  # type: ignore[attr-defined]
            comment.resolution = "resolved" if resolved else "reopened"
            comment.resolution_by = _account(author) if author else self.default_user.account_id  # type: ignore[attr-defined]
            comment.resolution_at = self.now(when)  # type: ignore[attr-defined]
            return comment

    def delete_comment(self, comment_id: str) -> None:
        """Delete for good, with every reply; an inline comment's marker leaves the container's body."""
        with self.lock:
            self.generation += 1
            comment = self.comment(comment_id)
            for reply in [c for c in self.comments.values() if c.parent_id == comment.id]:
                self.delete_comment(reply.id)
            container = self.pages.get(comment.container_id)
            if container is not None and comment.marker_ref and comment.parent_id is None:
                container.body = _unmark(container.body, comment.marker_ref)
            self._comment_ids.get(comment.container_id, []).remove(comment.id)
            del self.comments[comment.id]

    def comment(self, comment_id: str) -> Comment:
        try:
            return self.comments[str(comment_id)]
        except KeyError:
            raise self._error(f"No comment with id {comment_id}") from None  # type: ignore[attr-defined]

    def comments_of(
        self, container_id: str, *, location: str | None = None, roots_only: bool = True
    ) -> list[Comment]:
        """Ground truth: the container's comments (roots only by default), oldest first."""
        with self.lock:
            out = []
            container = self.pages.get(container_id)
            for cid in self._comment_ids.get(container_id, []):
                comment = self.comments[cid]
                if container is not None:
                    comment._title = f"Re: {container.title}"
                if (roots_only and comment.parent_id) or location not in (None, comment.location):
                    continue
                out.append(comment)
            return out

    def replies_to(self, comment_id: str) -> list[Comment]:
        with self.lock:
            comment = self.comment(comment_id)
            return [
                self.comments[c]
                for c in self._comment_ids.get(comment.container_id, [])
                if self.comments[c].parent_id == comment.id
            ]

    def _drop_comments(self, container_id: str) -> None:
        for cid in self._comment_ids.pop(container_id, []):
            self.comments.pop(cid, None)


_TAG = re.compile(r"<[^>]*>")


def _mark(body: str, anchor: str, ref: str, error: Callable[[str], Exception]) -> str:
    """Wrap the first occurrence of ``anchor`` in the text (not inside a tag) with an inline marker."""
    needle = html.escape(anchor, quote=False)
    position = 0
    while (found := body.find(needle, position)) >= 0:
        before = body[:found]
        if before.rfind("<") <= before.rfind(">"):  # not inside a tag
            marker = f'<ac:inline-comment-marker ac:ref="{ref}">{needle}</ac:inline-comment-marker>'
            return body[:found] + marker + body[found + len(needle) :]
        position = found + 1
    raise error(f"The text {anchor!r} does not occur in the content's body")


def _unmark(body: str, ref: str) -> str:
    pattern = re.compile(
        r'<ac:inline-comment-marker ac:ref="' + re.escape(ref) + r'">(.*?)</ac:inline-comment-marker>', re.S
    )
    return pattern.sub(lambda m: m.group(1), body, count=1)


def _account(user: User | str) -> str:
    return str(getattr(user, "account_id", user))


# --------------------------------------------------------------------------------------------- shapes


def comment_webui(r: Renderer, comment: Comment) -> str:
    return f"{r.webui(r.site.pages[comment.container_id])}?focusedCommentId={comment.id}"


def _version_v1(r: Renderer, comment: Comment) -> dict:
    return {
        "by": r.user(comment.modified_by),
        "when": iso(comment.modified_at),
        "friendlyWhen": friendly(comment.modified_at),
        "message": "",
        "number": comment.version,
        "minorEdit": False,
        "ncsStepVersion": str(comment.version),
        "ncsStepVersionSource": "ncs-ack",
        "confRev": f"confluence$content${comment.id}.{comment.version}",
        "contentTypeModified": False,
        "_expandable": {"collaborators": "", "content": f"/rest/api/content/{comment.id}"},
        "_links": {"self": f"{r.base}/rest/api/content/{comment.id}/version/{comment.version}"},
    }


def _body_v1(comment: Comment, tree: Tree) -> dict:
    out: dict[str, Any] = {}
    content = f"/rest/api/content/{comment.id}"
    if "storage" in tree:
        out["storage"] = {
            "value": comment.body,
            "representation": "storage",
            "embeddedContent": [],
            "_expandable": {"content": content},
        }
    for representation in ("view", "export_view"):
        if representation in tree:
            # Comment bodies hold no macros that make content at view time: view is the storage markup.
            out[representation] = {
                "value": comment.body,
                "representation": representation,
                "_expandable": {"webresource": "", "embeddedContent": "", "mediaToken": "", "content": content},
            }
    others = ("editor", "view", "atlas_doc_format", "export_view", "styled_view", "storage", "editor2")
    out["_expandable"] = {k: "" for k in (*others, "anonymous_export_view") if k not in tree}
    return out


def comment_v1(r: Renderer, comment: Comment, expand: Tree | None = None, *, top: bool = False) -> dict:
    """The v1 content shape of a comment (``child/comment``, ``content/{id}``, search results)."""
    expand = expand or {}
    container = r.site.pages[comment.container_id]
    comment._title = f"Re: {container.title}"
    out: dict[str, Any] = {"id": comment.id, "type": "comment", **r._ari("comment", comment.id)}
    out["status"] = comment.status
    out["title"] = comment.title
    if "space" in expand:
        out["space"] = r.space(r.site.spaces[comment.space_key], expand["space"])
    if "history" in expand:
        out["history"] = comment_history(r, comment, full="lastUpdated" in expand["history"])
    if "version" in expand:
        out["version"] = _version_v1(r, comment)
    if "ancestors" in expand:
        chain, parent = [], comment.parent_id
        while parent is not None:
            chain.append(r.site.comments[parent])
            parent = r.site.comments[parent].parent_id
        out["ancestors"] = [comment_v1(r, c) for c in reversed(chain)]
    if "container" in expand:
        out["container"] = r.content(container, expand["container"])
    out["macroRenderedOutput"] = {}
    if "body" in expand:
        out["body"] = _body_v1(comment, expand["body"])
    # As a real Cloud response has them: footer comments carry a resolution too, and one never resolved
    # was last modified by "Anonymous" at the epoch.
    extensions: dict[str, Any] = {"location": comment.location}
    wanted = expand.get("extensions", {})
    if comment.location == "inline" and "inlineProperties" in wanted:
        extensions["inlineProperties"] = {
            "originalSelection": comment.original_selection,
            "markerRef": comment.marker_ref,
        }
    if "resolution" in wanted:
        extensions["resolution"] = {
            "status": comment.resolution,
            "lastModifier": r.user(comment.resolution_by) if comment.resolution_by else _anonymous(r),
            "lastModifiedDate": iso(comment.resolution_at or _EPOCH),
        }
    out["extensions"] = extensions
    expandable = {
        "childTypes": "",
        "container": f"/rest/api/content/{container.id}",
        "metadata": "",
        "operations": "",
        "children": f"/rest/api/content/{comment.id}/child",
        "restrictions": f"/rest/api/content/{comment.id}/restriction/byOperation",
        "history": f"/rest/api/content/{comment.id}/history",
        "ancestors": "",
        "body": "",
        "version": "",
        "descendants": f"/rest/api/content/{comment.id}/descendant",
        "space": f"/rest/api/space/{comment.space_key}",
    }
    out["_expandable"] = {k: v for k, v in expandable.items() if k not in expand}
    webui = f"/spaces/{comment.space_key}/pages/{container.id}?focusedCommentId={comment.id}#comment-{comment.id}"
    if container.kind != "page":
        webui = f"{r.webui(container)}?focusedCommentId={comment.id}#comment-{comment.id}"
    links = {"webui": webui, "self": f"{r.base}/rest/api/content/{comment.id}"}
    if top:
        links.update({"base": r.base, "context": r.context})
    out["_links"] = links
    return out


def _anonymous(r: Renderer) -> dict:
    picture = {"path": f"{r.context}/images/icons/profilepics/anonymous.png", "width": 48, "height": 48}
    return {
        "type": "anonymous",
        "profilePicture": {**picture, "isDefault": True},
        "displayName": "Anonymous",
        "_expandable": {"operations": ""},
    }


def comment_history(r: Renderer, comment: Comment, *, full: bool = True) -> dict:
    out: dict[str, Any] = {"latest": True, "createdBy": r.user(comment.author_id)}
    out["createdDate"] = iso(comment.created_at)
    if full:
        out["lastUpdated"] = _version_v1(r, comment)
    remaining = ("lastUpdated", "previousVersion", "contributors", "nextVersion")
    out["_expandable"] = {k: "" for k in remaining if k not in out}
    out["_links"] = {"self": f"{r.base}/rest/api/content/{comment.id}/history"}
    return out


def comment_v2(
    r: Renderer, comment: Comment, body_format: str | None, *, child: bool = False, top: bool = False
) -> dict:
    """The v2 footer/inline comment (list items, children and single gets differ as Cloud's do)."""
    container = r.site.pages[comment.container_id]
    out: dict[str, Any] = {"id": comment.id, "status": comment.status, "title": f"Re: {container.title}"}
    if child:
        out["parentCommentId"] = comment.parent_id
    else:
        out["blogPostId" if container.kind == "blogpost" else "pageId"] = container.id
        if top and comment.parent_id:
            out["parentCommentId"] = comment.parent_id
    out["version"] = {
        "number": comment.version,
        "message": "",
        "minorEdit": False,
        "authorId": comment.modified_by,
        "createdAt": iso(comment.modified_at),
    }
    out["body"] = {}
    if body_format in ("storage", "view", "export_view"):
        out["body"] = {body_format: {"representation": body_format, "value": comment.body}}
    elif body_format not in (None, "", "atlas_doc_format"):
        raise _http_error(400, f"Invalid body-format: {body_format}")
    if comment.location == "inline":
        out["resolutionStatus"] = comment.resolution
        if comment.resolution_at is not None:
            out["resolutionLastModifierId"] = comment.resolution_by
            out["resolutionLastModifiedAt"] = iso(comment.resolution_at)
        out["properties"] = {
            "inlineMarkerRef": comment.marker_ref,
            "inlineOriginalSelection": comment.original_selection,
            "inline-marker-ref": comment.marker_ref,
            "inline-original-selection": comment.original_selection,
        }
    links = {"webui": comment_webui(r, comment)}
    if top:
        links["base"] = r.base
    out["_links"] = links
    return out


# --------------------------------------------------------------------------------------------- routes


class CommentRoutes:
    """The comment endpoints of :class:`ConfluenceApp` (which inherits them)."""

    def comment_routes(self, v1: str, v2: str) -> list[tuple[str, Callable]]:
        routes: list[tuple[str, Callable]] = [(f"{v1}/content/{{id}}/child/comment", self.child_comments)]
        for location in LOCATIONS:
            for kind in CONTAINER_KINDS:
                routes.append((f"{v2}/{kind}s/{{id}}/{location}-comments", self._v2_container_lister(kind, location)))
            routes.append((f"{v2}/{location}-comments", self._v2_all_lister(location)))
            routes.append((f"{v2}/{location}-comments/{{id}}", self._v2_getter(location)))
            routes.append((f"{v2}/{location}-comments/{{id}}/children", self._v2_children_lister(location)))
        return routes

    def comment_writes(self, v1: str, v2: str) -> dict[tuple[str, str], Callable]:
        writes: dict[tuple[str, str], Callable] = {}
        for location in LOCATIONS:
            writes[("POST", f"{v2}/{location}-comments")] = self._v2_creator(location)
            writes[("PUT", f"{v2}/{location}-comments/{{id}}")] = self._v2_updater(location)
            writes[("DELETE", f"{v2}/{location}-comments/{{id}}")] = self._v2_deleter(location)
        return writes

    # ------------------------------------------------------------------ v1

    def _visible_comment(self, cid: str, user: User) -> Comment:
        comment = self.site.comments.get(cid)
        container = self.site.pages.get(comment.container_id) if comment else None
        visible = container is not None and container.status == "current"
        if comment is None or not visible or not self.site.can_read(user, comment):
            raise _http_error(404, f"No content found with id : ContentId{{id={cid}}}")
        return comment

    def child_comments(self, request: Request, user: User, id: str) -> Any:  # noqa: A002 - the route's name
        """A page's or blog post's root comments, or a comment's replies (``depth`` is not used)."""
        from confluence_assets.sandbox.shapes import parse_expand

        if id in self.site.comments:
            comments = self.site.replies_to(self._visible_comment(id, user).id)
        else:
            container = self._page(id, user)
            comments = self.site.comments_of(container.id) if container.kind in CONTAINER_KINDS else []
        locations = set(request.params("location"))
        unknown = locations - {"footer", "inline", "resolved"}
        if unknown:
            raise _http_error(400, f"Invalid location: {sorted(unknown)[0]}")
        if locations:
            comments = [
                c
                for c in comments
                if c.location in locations or ("resolved" in locations and c.resolution == "resolved")
            ]
        start = int_param(request.param("start"), "start", 0)
        limit = self._limit(request, self.limits.default, self.limits.v1_max)
        window, next_start = offset_window(comments, start, limit)
        expand = parse_expand(request.param("expand"))
        r = self._renderer()
        path = f"/rest/api/content/{id}/child/comment"
        results = [] if request.empty_page else [comment_v1(r, c, expand) for c in window]
        nxt = self._next_offset(request, path, limit, start if request.empty_page else next_start)
        return self._ok(r.envelope(results, start=start, limit=limit, self_path=path, next_path=nxt))

    def comment_get(self, request: Request, user: User, id: str) -> Any:  # noqa: A002
        from confluence_assets.sandbox.shapes import parse_expand

        comment = self._visible_comment(id, user)
        version = request.param("version")
        if version not in (None, "", str(comment.version)):
            raise _http_error(404, f"No content found with id : ContentId{{id={id}}} and version {version}")
        return self._ok(comment_v1(self._renderer(), comment, parse_expand(request.param("expand")), top=True))

    def comment_history_get(self, request: Request, user: User, id: str) -> Any:  # noqa: A002
        out = comment_history(self._renderer(), self._visible_comment(id, user))
        out["_links"].update({"base": self.base_url, "context": self.context})
        return self._ok(out)

    def comment_create(self, request: Request, user: User, data: dict) -> Any:
        """``POST /rest/api/content`` with ``type: comment`` (atlassian-python-api's ``add_comment``): a
        footer comment on ``container``, or a reply when ``ancestors`` names a comment."""
        from confluence_assets.sandbox.shapes import parse_expand

        container_id = str((data.get("container") or {}).get("id") or "")
        ancestors = data.get("ancestors") or []
        parent_id = str(ancestors[-1].get("id")) if ancestors else None
        if parent_id is not None:
            parent = self._visible_comment(parent_id, user)
            container_id = container_id or parent.container_id
        container = self._page(container_id, user)
        body = ((data.get("body") or {}).get("storage") or {}).get("value")
        if not body:
            raise _http_error(400, "A comment needs a body (body.storage.value)")
        try:
            comment = self.site.add_comment(container.id, body, parent_comment_id=parent_id, author=user)
        except ValueError as exc:
            raise _http_error(400, str(exc)) from None
        expand = parse_expand("body.storage,version,container,space,ancestors,extensions.inlineProperties")
        return self._ok(comment_v1(self._renderer(), comment, expand, top=True))

    def comment_update(self, request: Request, user: User, id: str, data: dict) -> Any:  # noqa: A002
        """``PUT /rest/api/content/{id}`` of a comment: the version number must be the current one + 1."""
        from confluence_assets.sandbox.shapes import parse_expand

        comment = self._visible_comment(id, user)
        wanted = (data.get("version") or {}).get("number")
        if wanted != comment.version + 1:
            raise _http_error(409, f"Version must be incremented on update. Current version is: {comment.version}")
        body = ((data.get("body") or {}).get("storage") or {}).get("value")
        if body:
            self.site.edit_comment(comment.id, body, author=user)
        expand = parse_expand("body.storage,version,container,space,ancestors")
        return self._ok(comment_v1(self._renderer(), comment, expand, top=True))

    def comment_delete(self, request: Request, user: User, id: str) -> Any:  # noqa: A002
        from confluence_assets.sandbox.httpbase import Response

        self.site.delete_comment(self._visible_comment(id, user).id)
        return Response(204)

    # ------------------------------------------------------------------ v2

    def _v2_comment_list(self, request: Request, user: User, comments: list[Comment], path: str, child: bool):
        sort = request.param("sort") or "created-date"
        getters: dict[str, Callable[[Comment], Any]] = {
            "created-date": lambda c: epoch_ms(c.created_at),
            "modified-date": lambda c: epoch_ms(c.modified_at),
            "id": lambda c: c.numeric_id,
        }
        getter = getters.get(sort.lstrip("-"))
        if getter is None:
            raise _http_error(400, f"Invalid sort: {sort}")
        sign = -1 if sort.startswith("-") else 1
        if statuses := request.params("resolution-status"):
            comments = [c for c in comments if c.resolution in statuses]
        comments = sorted(comments, key=lambda c: (sign * getter(c), c.numeric_id))
        keys = [(sign * getter(c), c.numeric_id) for c in comments]
        body_format = request.param("body-format")
        r = self._renderer()
        render = lambda c: comment_v2(r, c, body_format, child=child)  # noqa: E731
        return self._v2_list(request, path, comments, keys, render, lambda c: self.site.can_read(user, c))

    def _v2_container_lister(self, kind: str, location: str) -> Callable:
        def lister(request: Request, user: User, id: str) -> Any:  # noqa: A002
            container = self._page(id, user)
            if container.kind != kind:
                raise _http_error(404, "Not Found")
            comments = self.site.comments_of(container.id, location=location)
            return self._v2_comment_list(request, user, comments, f"/api/v2/{kind}s/{id}/{location}-comments", False)

        return lister

    def _v2_all_lister(self, location: str) -> Callable:
        def lister(request: Request, user: User) -> Any:
            comments = [
                c
                for c in self.site.comments.values()
                if c.location == location and self.site.pages[c.container_id].status == "current"
            ]
            return self._v2_comment_list(request, user, comments, f"/api/v2/{location}-comments", False)

        return lister

    def _v2_located(self, cid: str, user: User, location: str) -> Comment:
        comment = self._visible_comment(cid, user)
        if comment.location != location:
            raise _http_error(404, "Not Found")
        return comment

    def _v2_getter(self, location: str) -> Callable:
        def getter(request: Request, user: User, id: str) -> Any:  # noqa: A002
            comment = self._v2_located(id, user, location)
            return self._ok(comment_v2(self._renderer(), comment, request.param("body-format"), top=True))

        return getter

    def _v2_children_lister(self, location: str) -> Callable:
        def lister(request: Request, user: User, id: str) -> Any:  # noqa: A002
            comment = self._v2_located(id, user, location)
            replies = self.site.replies_to(comment.id)
            return self._v2_comment_list(request, user, replies, f"/api/v2/{location}-comments/{id}/children", True)

        return lister

    def _v2_creator(self, location: str) -> Callable:
        def create(request: Request, user: User) -> Any:
            data = self._comment_json(request)
            parent_id = str(data["parentCommentId"]) if data.get("parentCommentId") else None
            container_id = str(data.get("pageId") or data.get("blogPostId") or "")
            if parent_id:
                parent = self._v2_located(parent_id, user, location)
                container_id = parent.container_id
            elif not container_id:
                raise _http_error(400, "One of pageId, blogPostId or parentCommentId is required")
            container = self._page(container_id, user)
            if data.get("blogPostId") and container.kind != "blogpost":
                raise _http_error(404, "Not Found")
            anchor = None
            if location == "inline" and not parent_id:
                props = data.get("inlineCommentProperties") or {}
                anchor = props.get("textSelection")
                if not anchor:
                    raise _http_error(400, "inlineCommentProperties.textSelection is required")
            try:
                comment = self.site.add_comment(
                    container.id, _v2_body(data), inline_anchor=anchor, parent_comment_id=parent_id, author=user
                )
            except ValueError as exc:
                raise _http_error(400, str(exc)) from None
            return self._ok(comment_v2(self._renderer(), comment, "storage", top=True))

        return create

    def _v2_updater(self, location: str) -> Callable:
        def update(request: Request, user: User, id: str) -> Any:  # noqa: A002
            comment = self._v2_located(id, user, location)
            data = self._comment_json(request)
            wanted = (data.get("version") or {}).get("number")
            if wanted != comment.version + 1:
                raise _http_error(409, f"Version must be incremented on update. Current version is: {comment.version}")
            if data.get("body"):
                self.site.edit_comment(comment.id, _v2_body(data), author=user)
            if location == "inline" and "resolved" in data:
                self.site.resolve_comment(comment.id, bool(data["resolved"]), author=user)
            return self._ok(comment_v2(self._renderer(), comment, "storage", top=True))

        return update

    def _v2_deleter(self, location: str) -> Callable:
        def delete(request: Request, user: User, id: str) -> Any:  # noqa: A002
            from confluence_assets.sandbox.httpbase import Response

            self.site.delete_comment(self._v2_located(id, user, location).id)
            return Response(204)

        return delete

    def _comment_json(self, request: Request) -> dict:
        try:
            data = request.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise _http_error(400, "Could not parse the request body as JSON")
        return data


def _v2_body(data: dict) -> str:
    body = data.get("body") or {}
    if body.get("representation", "storage") != "storage" or not body.get("value"):
        raise _http_error(400, "The sandbox accepts storage-format comment bodies (body.representation=storage)")
    return str(body["value"])


def _http_error(status: int, message: str) -> Exception:
    from confluence_assets.sandbox.confluence_server import HttpError  # the server imports this module

    return HttpError(status, message)
