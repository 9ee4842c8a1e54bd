"""Blog posts and the content tree's other node types: folders, whiteboards, databases and embeds (smart
links), as Confluence Cloud keeps and serves them.

- A blog post (``type: "blogpost"``) lives beside the page tree: no parent, ever; its web UI link carries
  its date, ``/spaces/KEY/blog/YYYY/MM/DD/<id>/<slug>`` (the day it was created, in the site's time
  zone); titles are unique per space and day; trash, restore and purge as for pages.
- Folders, whiteboards, databases and embeds are tree nodes: id, title, type, parent, position, a version;
  pages (and nodes) can live under them. They have no storage body (their content, where they have one,
  is not in storage format). In v1 they are content objects of their own ``type`` and show as such in a
  page's ``ancestors``; in v2 they have their own endpoints (``/folders/{id}``, ...), a page names them
  as its ``parentId`` with ``parentType``, and ``/{type}s/{id}/direct-children`` lists every kind of
  child. v2 answers a folder's ``createdAt`` as epoch milliseconds (an integer), where every other
  ``createdAt`` is an ISO string; md2conf measured this on Cloud (hunyadi/md2conf#290), so the sandbox
  does it too.

``SiteNodes`` is mixed into ``Site`` (the mutations); ``NodeRoutes`` into the server's app (the routes).
References: https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-blog-post/,
.../api-group-folder/, .../api-group-whiteboard/, .../api-group-database/, .../api-group-smart-link/,
.../api-group-children/ (``direct-children``, ``childPosition``, ``type``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from confluence_assets.sandbox.clock import epoch_ms, iso

if TYPE_CHECKING:
    from confluence_assets.sandbox.httpbase import Request
    from confluence_assets.sandbox.site import Page, PageSnapshot, User

NODE_KINDS = ("folder", "whiteboard", "database", "embed")
TREE_KINDS = ("page", *NODE_KINDS)  # what can be in the page tree
V2_COLLECTIONS = {"page": "pages", "folder": "folders", "whiteboard": "whiteboards", "database": "databases",
                  "embed": "embeds"}  # fmt: skip
_SLUG_WORDS = re.compile(r"[A-Za-z0-9._-]+")


class SiteNodes:
    """The mutations of blog posts and tree nodes (mixed into ``Site``, whose lock and pages they use)."""

    def create_blogpost(self, space_key: str, title: str, body: str = "", **kwargs: Any) -> Page:
        """A blog post: no parent; its date is the day it is created (``when`` / ``created_at``)."""
        return self.create_page(space_key, title, body, kind="blogpost", **kwargs)  # type: ignore[attr-defined]

    def create_folder(self, space_key: str, title: str, parent_id: str | None = None, **kwargs: Any) -> Page:
        """A folder under ``parent_id`` (a page or another folder; by default the space's homepage)."""
        return self.create_page(space_key, title, "", parent_id=parent_id, kind="folder", **kwargs)  # type: ignore[attr-defined]

    def create_whiteboard(self, space_key: str, title: str, parent_id: str | None = None, **kwargs: Any) -> Page:
        return self.create_page(space_key, title, "", parent_id=parent_id, kind="whiteboard", **kwargs)  # type: ignore[attr-defined]

    def create_database(self, space_key: str, title: str, parent_id: str | None = None, **kwargs: Any) -> Page:
        return self.create_page(space_key, title, "", parent_id=parent_id, kind="database", **kwargs)  # type: ignore[attr-defined]

    def create_embed(
        self, space_key: str, title: str, url: str, parent_id: str | None = None, **kwargs: Any
    ) -> Page:
        """An embed (a smart link in the content tree) pointing at ``url``."""
        with self.lock:  # type: ignore[attr-defined]
            node = self.create_page(space_key, title, "", parent_id=parent_id, kind="embed", **kwargs)  # type: ignore[attr-defined]
            node.embed_url = url
            return node

    def live_of_kind(self, space_key: str | None, *kinds: str) -> list[PageSnapshot]:
        """Ground truth for the current content of the given kinds (all when none given), ordered by id."""
        return [s for s in self.live_pages(space_key) if not kinds or s.kind in kinds]  # type: ignore[attr-defined]

    def blog_date(self, page: Page) -> datetime:
        """The day a blog post is filed under: its creation, in the site's time zone."""
        return page.created_at.astimezone(self.timezone)  # type: ignore[attr-defined]

    def _claim_kind_title(self, space_key: str, title: str, kind: str, created_at: datetime) -> None:
        """Pages: unique titles per space. Blog posts: unique per space and day. Tree nodes: any title."""
        if kind == "page":
            self._claim_title(space_key, title)  # type: ignore[attr-defined]
            return
        if not title.strip():
            from confluence_assets.sandbox.site import SiteError

            raise SiteError(f"A {kind} needs a title")
        if kind != "blogpost":
            return
        day = created_at.astimezone(self.timezone).date()  # type: ignore[attr-defined]
        for other in self.pages.values():  # type: ignore[attr-defined]
            if (
                other.kind == "blogpost"
                and other.status == "current"
                and other.space_key == space_key
                and other.title == title
                and self.blog_date(other).date() == day
            ):
                from confluence_assets.sandbox.site import SiteError

                raise SiteError(f"A blog post with this title already exists for {day} in space {space_key}")


def webui(site: Any, page: Page) -> str | None:
    """The web UI link of a blog post or tree node (None for a page: shapes.py has that form)."""
    key = page.space_key
    if page.kind == "blogpost":
        day = site.blog_date(page)
        words = _SLUG_WORDS.findall(page.title)
        slug = "/" + "+".join(words) if words else ""
        return f"/spaces/{key}/blog/{day:%Y/%m/%d}/{page.id}{slug}"
    if page.kind in NODE_KINDS:
        return f"/spaces/{key}/{page.kind}/{page.id}"
    return None


class NodeRoutes:
    """v2 routes of blog posts and tree nodes, mixed into ``ConfluenceApp`` (its ``site``, ``_page``,
    ``_v2_list``, ``_v2_pages``, ``_renderer``...)."""

    def node_routes(self, v1: str, v2: str) -> list[tuple[str, Callable]]:
        routes: list[tuple[str, Callable]] = [
            (f"{v2}/folders", self.v2_folders_get),
            (f"{v2}/blogposts", self.v2_blogposts),
            (f"{v2}/blogposts/{{id}}", self.v2_blogpost),
            (f"{v2}/spaces/{{id}}/blogposts", self.v2_space_blogposts),
        ]
        for kind, collection in V2_COLLECTIONS.items():
            if kind != "page":
                routes.append((f"{v2}/{collection}/{{id}}", self._node_getter(kind)))
            routes.append((f"{v2}/{collection}/{{id}}/direct-children", self._children_getter(kind)))
        return routes

    def node_writes(self, v1: str, v2: str) -> dict[tuple[str, str], Callable]:
        # POST /folders creates a folder (atlassian-python-api 4.x has no helper: clients POST it themselves).
        return {("POST", f"{v2}/folders"): self.v2_create_folder}

    # ------------------------------------------------------------------ blog posts

    def v2_blogposts(self, request: Request, user: User):
        ids = set(request.params("id"))
        space_ids = set(request.params("space-id"))
        posts = [
            p
            for p in self.site.pages.values()  # type: ignore[attr-defined]
            if p.kind == "blogpost"
            and (not ids or p.id in ids)
            and self.site.can_read_space(user, p.space_key)  # type: ignore[attr-defined]
            and (not space_ids or str(self.site.spaces[p.space_key].id) in space_ids)  # type: ignore[attr-defined]
        ]
        return self._v2_blog_list(request, user, posts, "/api/v2/blogposts")

    def v2_space_blogposts(self, request: Request, user: User, id: str):  # noqa: A002 - the route's name
        space = self._v2_space_by_id(user, id)  # type: ignore[attr-defined]
        posts = [p for p in self.site.iter_pages(space.key) if p.kind == "blogpost"]  # type: ignore[attr-defined]
        return self._v2_blog_list(request, user, posts, f"/api/v2/spaces/{id}/blogposts")

    def v2_blogpost(self, request: Request, user: User, id: str):  # noqa: A002
        post = self._of_kind(id, user, "blogpost", self._statuses(request))  # type: ignore[attr-defined]
        return self._ok(blogpost_v2(self._renderer(), post, request.param("body-format"), top=True))  # type: ignore[attr-defined]

    def _v2_blog_list(self, request: Request, user: User, posts: list[Page], path: str):
        statuses = self._statuses(request)  # type: ignore[attr-defined]
        if title := request.param("title"):
            posts = [p for p in posts if p.title == title]
        key = self._v2_sort(request)  # type: ignore[attr-defined]
        posts = sorted((p for p in posts if p.status in statuses), key=key)
        body_format = request.param("body-format")
        r = self._renderer()  # type: ignore[attr-defined]
        return self._v2_list(  # type: ignore[attr-defined]
            request,
            path,
            posts,
            [key(p) for p in posts],
            lambda p: blogpost_v2(r, p, body_format),
            lambda p: self.site.can_read(user, p),  # type: ignore[attr-defined]
        )

    # ------------------------------------------------------------------ tree nodes

    def v2_folders_get(self, request: Request, user: User):
        from confluence_assets.sandbox.confluence_server import HttpError

        raise HttpError(405, "GET /folders is not an endpoint: list a folder's direct-children instead")

    def v2_create_folder(self, request: Request, user: User):
        """``{"spaceId", "title", "parentId"?}`` -> the new folder (under the homepage without a parent)."""
        from confluence_assets.sandbox.confluence_server import HttpError, _json_body
        from confluence_assets.sandbox.site import SiteError

        data = _json_body(request)
        space = self._v2_space_by_id(user, str(data.get("spaceId") or ""))  # type: ignore[attr-defined]
        parent = str(data["parentId"]) if data.get("parentId") else None
        if parent is not None:
            self._page(parent, user)  # type: ignore[attr-defined]  # 404 for what the caller cannot see
        try:
            folder = self.site.create_folder(space.key, data.get("title") or "", parent_id=parent, author=user)  # type: ignore[attr-defined]
        except SiteError as exc:
            raise HttpError(400, str(exc)) from None
        return self._ok(node_v2(self._renderer(), folder, top=True))  # type: ignore[attr-defined]

    def _of_kind(self, cid: str, user: User, kind: str, statuses: tuple[str, ...] = ("current",)) -> Page:
        page = self._page(cid, user, statuses)  # type: ignore[attr-defined]
        if page.kind != kind:  # a page's id under /folders/ is not found, as on Cloud
            from confluence_assets.sandbox.confluence_server import HttpError

            raise HttpError(404, "Not Found")
        return page

    def _node_getter(self, kind: str) -> Callable:
        def get(request: Request, user: User, id: str):  # noqa: A002
            node = self._of_kind(id, user, kind, self._statuses(request))  # type: ignore[attr-defined]
            return self._ok(node_v2(self._renderer(), node, top=True))  # type: ignore[attr-defined]

        return get

    def _children_getter(self, kind: str) -> Callable:
        def children(request: Request, user: User, id: str):  # noqa: A002
            parent = self._of_kind(id, user, kind)
            kids = [self.site.pages[c] for c in self.site.child_ids(parent.id)]  # type: ignore[attr-defined]
            kids = [c for c in kids if self.site.can_read(user, c)]  # type: ignore[attr-defined]
            if (sort := request.param("sort")) not in (None, "", "child-position", "id", "-id"):
                from confluence_assets.sandbox.confluence_server import HttpError

                raise HttpError(400, f"Invalid sort: {sort}")
            if sort in ("id", "-id"):
                keys = [((-1 if sort == "-id" else 1) * c.numeric_id,) for c in kids]
            else:
                keys = [(c.position, c.numeric_id) for c in kids]
            order = sorted(range(len(kids)), key=lambda i: keys[i])
            path = f"/api/v2/{V2_COLLECTIONS[kind]}/{id}/direct-children"
            r = self._renderer()  # type: ignore[attr-defined]
            render = lambda c: direct_child(r, c)  # noqa: E731
            return self._v2_list(request, path, [kids[i] for i in order], [keys[i] for i in order], render)  # type: ignore[attr-defined]

        return children


# ---------------------------------------------------------------------- shapes


def direct_child(r: Any, page: Page) -> dict:
    """One result of ``direct-children``: every kind of child, with its ``type``."""
    return {
        "id": page.id,
        "status": page.status,
        "title": page.title,
        "type": page.kind,
        "spaceId": str(r.site.spaces[page.space_key].id),
        "childPosition": page.position,
    }


def _version_v2(page: Page) -> dict:
    return {
        "createdAt": iso(page.modified_at),
        "message": page.version_message,
        "number": page.version,
        "minorEdit": page.minor_edit,
        "authorId": page.modified_by,
    }


def node_v2(r: Any, node: Page, *, top: bool = False) -> dict:
    """``GET /api/v2/folders/{id}`` (and whiteboards, databases, embeds): the tree node's own shape."""
    site = r.site
    parent = site.pages.get(node.parent_id) if node.parent_id else None
    out: dict[str, Any] = {
        "id": node.id,
        "type": node.kind,
        "status": node.status,
        "title": node.title,
        "parentId": parent.id if parent else None,
        "parentType": parent.kind if parent else None,
        "position": node.position,
        "authorId": node.author_id,
        "ownerId": node.owner_id,
        # Cloud answers a folder's createdAt as epoch milliseconds; the other node types as ISO strings.
        "createdAt": epoch_ms(node.created_at) if node.kind == "folder" else iso(node.created_at),
        "spaceId": str(site.spaces[node.space_key].id),
        "version": _version_v2(node),
    }
    if node.kind == "embed":
        out["embedUrl"] = node.embed_url
    links = {"webui": webui(site, node) or ""}
    if top:
        links["base"] = r.base
    out["_links"] = links
    return out


def blogpost_v2(r: Any, post: Page, body_format: str | None, *, top: bool = False) -> dict:
    """A v2 blog post: a page's shape without the tree (no parentId, parentType or position)."""
    out = r.page_v2(post, body_format, top=top)
    for key in ("parentId", "parentType", "position", "lastOwnerId"):
        out.pop(key, None)
    return out


def add_content_types(site: Any, space_key: str, *, seed: int = 7, blog_posts: int = 3) -> dict[str, Any]:
    """Give a generated space what Cloud trees have beyond pages: nested folders with some of the space's
    pages moved into them (with their subtrees), a whiteboard, a database with a page below it, an embed,
    and ``blog_posts`` blog posts on successive days, each with a distinctive phrase. Deterministic by
    ``seed``. Returns the ids by kind, and ``phrases``: {blog post id: its phrase}."""
    rng = random.Random(f"{seed}:content-types:{space_key}")
    with site.lock:
        home = site.spaces[space_key].homepage_id
        top = [c for c in site.child_ids(home) if site.pages[c].kind == "page"]
        outer = site.create_folder(space_key, "Team folders", parent_id=home)
        inner = site.create_folder(space_key, "Archive folder", parent_id=outer.id)
        for i, pid in enumerate(rng.sample(top, min(2, len(top)))):
            site.move_page(pid, inner.id if i % 2 else outer.id)
        board = site.create_whiteboard(space_key, "Planning whiteboard", parent_id=outer.id)
        database = site.create_database(space_key, "Tracker database", parent_id=home)
        below = site.create_page(space_key, "Notes below the tracker", "<p>Tracker notes.</p>", parent_id=database.id)
        embed = site.create_embed(space_key, "Design mock", "https://www.figma.com/file/sandbox", parent_id=inner.id)
        words = ("aurora", "basalt", "cobalt", "delta", "ember", "fjord", "garnet", "harbor")
        posts: list[str] = []
        phrases: dict[str, str] = {}
        for i in range(blog_posts):
            phrase = " ".join(rng.sample(words, 3)) + f" bulletin {i}"
            when = site.now().replace(microsecond=0) - timedelta(days=blog_posts - i)
            post = site.create_blogpost(space_key, f"Bulletin {i + 1}", f"<p>This week: {phrase}.</p>", when=when)
            posts.append(post.id)
            phrases[post.id] = phrase
    return {
        "folder": [outer.id, inner.id],
        "whiteboard": [board.id],
        "database": [database.id],
        "embed": [embed.id],
        "page": [below.id],
        "blogpost": posts,
        "phrases": phrases,
    }

