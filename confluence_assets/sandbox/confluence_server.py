"""A Confluence-compatible REST server over a :class:`Site`, for atlassian-python-api and plain HTTP.

v1 (``/rest/api/...``) and v2 (``/api/v2/...``) under the context path (``/wiki`` as on Cloud; ``""`` for
a Data Center-style root). Basic (e-mail + API token) and Bearer (personal access token) both work.
Where Confluence is awkward the server is too: ``limit`` is capped (on search 50 when ``body`` is
expanded, 200 with other expansions, 1000 with none; 250 on v2), search and v2 page by opaque cursors
and may end on an empty page, permissions are applied after the page is cut (short pages before the
end), v1 ``next`` links are relative to ``_links.base`` while v2 ones include the context path, CQL never
returns trashed content, and content you may not read is 404, like content that does not exist.
The same API is served under ``/ex/confluence/<cloudId>`` as the API gateway does (scoped tokens there,
classic ones on the site); a ``flavour`` makes it stricter: Cloud's (no personal access tokens) or Data
Center's (no v2, no deprecations, token-bucket headers).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

from confluence_assets.sandbox.attachments import AttachmentRoutes
from confluence_assets.sandbox.comments import CommentRoutes, comment_v1
from confluence_assets.sandbox.cql import CQLError, Query, parse
from confluence_assets.sandbox.faults import Decision
from confluence_assets.sandbox.httpbase import App, Request, Response, ServerBase
from confluence_assets.sandbox.nodes import NodeRoutes
from confluence_assets.sandbox.paging import BadParameter, int_param, keyset_window, link, offset_window
from confluence_assets.sandbox.permissions import PermissionRoutes
from confluence_assets.sandbox.ratelimits import BURST_REASON, RateLimit, Verdict, too_many_requests_body
from confluence_assets.sandbox.ratelimits import DATA_CENTER as DC_RATE_STYLE
from confluence_assets.sandbox.shapes import Renderer, Tree, parse_expand
from confluence_assets.sandbox.site import Attachment, Page, Site, SiteError, User

BASIC_AUTH_FAILURE = (
    "Basic authentication with passwords is deprecated.  For more information, see: "
    "https://developer.atlassian.com/cloud/confluence/deprecation-notice-basic-auth/"
)


# v1 endpoints Atlassian deprecated for their v2 equivalents (CHANGE-864) that the sync calls; GET only.
DEPRECATED_V1 = {"/rest/api/space": "/api/v2/spaces", "/rest/api/content/{id}": "/api/v2/pages/{id}"}
DEPRECATION_LINK = "https://developer.atlassian.com/cloud/confluence/changelog/#CHANGE-864"
DEPRECATED_SINCE = "@1677628800"  # RFC 9745 form: 2023-03-01, when CHANGE-864's deprecation period began
GONE_MESSAGE = "This deprecated endpoint has been removed"
# The API gateway: https://api.atlassian.com/ex/confluence/{cloudId}/wiki/... (scoped tokens, service accounts).
GATEWAY_PREFIX = "/ex/confluence/"
CLOUD, DATA_CENTER = "cloud", "datacenter"  # a server's flavour (None: lenient, both kinds of credentials)


@dataclass(frozen=True)
class Limits:
    """Page sizes: defaults and the caps Confluence applies silently (the response says the real limit)."""

    default: int = 25
    attachments_default: int = 50
    labels_default: int = 200
    v1_max: int = 1000
    search_max: int = 1000  # content/search without any expansion
    search_expand_max: int = 200  # ... with expansions other than body (restrictions, version, ...)
    search_body_max: int = 50  # ... with body expanded
    v2_max: int = 250
    # Cloud's GET /rest/api/content refuses a start beyond this with 400 (Atlassian, October 2022: "Limit
    # placed on start parameter in Get Content API endpoint"); Data Center has no such limit.
    content_max_start: int = 15_000


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _not_found(cid: str) -> HttpError:
    return HttpError(404, f"No content found with id : ContentId{{id={cid}}}")


@dataclass(frozen=True)
class _Ok:
    """A handler's answer: rendered under the site lock, encoded after it is released."""

    payload: object
    headers: dict[str, str]


Handler = Callable[..., _Ok]


def _json_body(request: Request) -> dict:
    try:
        data = request.json()
    except ValueError:
        raise HttpError(400, "Could not parse the request body as JSON") from None
    if not isinstance(data, dict):
        raise HttpError(400, "Could not parse the request body as JSON")
    return data


def _storage_value(data: dict) -> str:
    storage = (data.get("body") or {}).get("storage") or {}
    if storage.get("representation", "storage") != "storage":
        raise HttpError(400, "The sandbox accepts storage-format bodies only")
    return storage.get("value") or ""


class ConfluenceApp(AttachmentRoutes, CommentRoutes, NodeRoutes, PermissionRoutes, App):
    def __init__(
        self, site: Site, context_path: str, limits: Limits, *, v1_removed: bool = False, flavour: str | None = None
    ) -> None:
        self.site = site
        self.context = context_path
        self.limits = limits
        self.v1_removed = v1_removed  # the deprecated v1 endpoints answer 410 Gone (OAuth/gateway in 2026)
        # CLOUD: Bearer personal access tokens refused (Cloud has none); DATA_CENTER: no v2 API (404).
        self.flavour = flavour
        self.base_url = ""  # set when the server has its port
        self._cache: dict[tuple, tuple[list, list]] = {}
        v1, v2 = "/rest/api", "/api/v2"
        routes: list[tuple[str, Handler]] = [
            (f"{v1}/space", self.space_list),
            (f"{v1}/space/{{key}}", self.space_get),
            (f"{v1}/content", self.content_list),
            (f"{v1}/content/search", self.content_search),
            (f"{v1}/search", self.search),
            (f"{v1}/content/{{id}}", self.content_get),
            (f"{v1}/content/{{id}}/child/page", self.child_pages),
            (f"{v1}/content/{{id}}/label", self.labels),
            (f"{v1}/content/{{id}}/history", self.history),
            (f"{v1}/user/current", self.current_user),
            (f"{v2}/spaces", self.v2_spaces),
            (f"{v2}/spaces/{{id}}", self.v2_space),
            (f"{v2}/spaces/{{id}}/pages", self.v2_space_pages),
            (f"{v2}/pages", self.v2_pages),
            (f"{v2}/pages/{{id}}", self.v2_page),
            (f"{v2}/pages/{{id}}/children", self.v2_children),
            (f"{v2}/pages/{{id}}/labels", self.v2_labels),
            *self.permission_routes(v1, v2),  # groups, space permissions, restrictions (sandbox/permissions.py)
            *self.node_routes(v1, v2),  # blog posts, folders, whiteboards, databases, embeds (sandbox/nodes.py)
            *self.attachment_routes(v1, v2),  # listings, downloads, the media store, v2 (sandbox/attachments.py)
            *self.comment_routes(v1, v2),  # v1 child/comment, v2 footer/inline comments (sandbox/comments.py)
        ]
        self._routes = [
            (template, re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "/?"), handler)
            for template, handler in routes
        ]
        # Writes, as atlassian-python-api's create_page/update_page call them (demos and tests edit pages
        # through the same client a user's scripts would).
        self._writes: dict[tuple[str, str], Handler] = {
            ("POST", f"{v1}/content"): self.content_create,
            ("PUT", f"{v1}/content/{{id}}"): self.content_update,
            **self.attachment_writes(v1, v2),  # uploads, new versions, DELETE content (sandbox/attachments.py)
            **self.comment_writes(v1, v2),  # v2 comment writes; v1 ones below (sandbox/comments.py)
            **self.node_writes(v1, v2),  # POST /api/v2/folders (sandbox/nodes.py)
        }

    # ------------------------------------------------------------------ plumbing

    def _through_gateway(self, request: Request) -> tuple[str, bool]:
        """The request's path on the site, and whether it came through ``/ex/confluence/<cloudId>``."""
        prefix = GATEWAY_PREFIX + self.site.cloud_id
        if request.path.startswith(prefix + "/"):
            return request.path[len(prefix) :], True
        return request.path, False

    def _match(self, request: Request):
        path, _ = self._through_gateway(request)
        if self.flavour == DATA_CENTER and path.startswith(self.context + "/api/v2/"):
            return None, None, None  # Data Center has no v2 API
        if self.context:
            if not path.startswith(self.context + "/"):
                return None, None, None
            path = path[len(self.context) :]
        for template, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match:
                return template, match, handler
        return None, None, None

    def endpoint(self, request: Request) -> str:
        if media := self.media_endpoint(request):  # the media store, outside the context path
            return media
        template, _, _ = self._match(request)
        gateway = GATEWAY_PREFIX + "{cloudId}" if self._through_gateway(request)[1] else ""
        return f"{request.method} {gateway}{self.context}{template}" if template else f"{request.method} {request.path}"

    def response_headers(self, request: Request, endpoint: str) -> dict[str, str]:
        # Atlassian support asks for the atl-traceid of a failing request; every response carries one.
        headers = {"atl-traceid": uuid.uuid4().hex[:16]}
        if self._deprecated(request):
            headers["Deprecation"] = DEPRECATED_SINCE
            headers["Link"] = f'<{DEPRECATION_LINK}>; rel="deprecation"; type="text/html"'
        return headers

    def _deprecated(self, request: Request) -> bool:
        template, _, _ = self._match(request)
        return request.method == "GET" and template in DEPRECATED_V1 and self.flavour != DATA_CENTER

    def rate_limited_response(self, request: Request, verdict: Verdict) -> Response:
        return Response.json(429, too_many_requests_body(verdict.reason or BURST_REASON))

    def handle(self, request: Request) -> Response:
        if (media := self.media_response(request)) is not None:  # attachment bytes (sandbox/attachments.py)
            return media
        template, match, handler = self._match(request)
        is_v2 = "/api/v2/" in request.path
        if template is None:
            if "/rest/api/" in request.path or is_v2:
                return self._error(request, 404, "null for uri: " + request.path)
            return Response(404, b"<html><body>Page not found</body></html>", "text/html;charset=UTF-8")
        if self.v1_removed and self._deprecated(request):
            return self._error(request, 410, GONE_MESSAGE)
        gateway = self._through_gateway(request)[1]
        user = self._authenticate(request, gateway=gateway)
        if user is None:
            if gateway:  # the gateway's own answer, not Confluence's
                return Response.json(401, {"code": 401, "message": "Unauthorized"})
            if request.headers.get("Authorization", "").lower().startswith("basic "):
                return Response(
                    401,
                    BASIC_AUTH_FAILURE.encode(),
                    "text/plain;charset=UTF-8",
                    {"WWW-Authenticate": 'Basic realm="protected"'},
                )
            return self._error(request, 401, "Client must be authenticated to access this resource.")
        if request.method != "GET":
            handler = self._writes.get((request.method, template))
            if handler is None:
                return self._error(request, 405, f"Method {request.method} is not supported by the sandbox")
        try:
            with self.site.lock:  # render under the lock, encode (1 MB+ bodies) outside it
                # Bodies render as their viewer sees them (an include of a restricted page shows nothing
                # of it); handlers run one at a time under the lock, so the viewer is this request's.
                self._viewer = user
                result = handler(request, user, **match.groupdict())
            if isinstance(result, Response):  # redirects, bytes, 204s
                return result
            return Response.json(200, result.payload, result.headers)
        except HttpError as exc:
            return self._error(request, exc.status, exc.message)
        except CQLError as exc:
            return self._error(request, 400, exc.message, detail=exc.detail)
        except BadParameter as exc:
            return self._error(request, 400, str(exc))

    def _authenticate(self, request: Request, *, gateway: bool = False) -> User | None:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                email, _, token = base64.b64decode(credentials.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return self.site.user_for_basic(email, token, gateway=gateway)
        # Bearer: Data Center's personal access tokens; Cloud has none (its Bearer tokens are OAuth 2.0's,
        # which the sandbox does not issue), so a Cloud-flavoured site or the gateway refuses them.
        if scheme.lower() == "bearer" and credentials.strip() and not gateway and self.flavour != CLOUD:
            return self.site.user_for_bearer(credentials.strip())
        return None

    def _error(self, request: Request, status: int, message: str, *, detail: str | None = None) -> Response:
        reason = HTTPStatus(status).phrase
        if "/api/v2/" in request.path:
            code = reason.upper().replace(" ", "_")
            return Response.json(
                status, {"errors": [{"status": status, "code": code, "title": message, "detail": detail}]}
            )
        errors = [{"message": {"translation": detail, "args": []}}] if detail else []
        data = {
            "authorized": status != 401,
            "valid": True,
            "allowedInReadOnlyMode": True,
            "errors": errors,
            "successful": False,
        }
        return Response.json(status, {"statusCode": status, "data": data, "message": message, "reason": reason})

    def fault_response(self, request: Request, decision: Decision) -> Response:
        status = decision.status or 500
        headers: dict[str, str] = {}
        if decision.retry_after is not None:
            headers["Retry-After"] = str(math.ceil(decision.retry_after))  # the atlassian client int()s it
        if status == 429:
            headers.update(
                {
                    "X-RateLimit-Limit": "100",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-NearLimit": "true",
                    "RateLimit-Reason": decision.reason or BURST_REASON,
                }
            )
            if decision.body is None:
                return Response.json(429, too_many_requests_body(decision.reason or BURST_REASON), headers)
        if decision.body is not None:
            return Response(status, decision.body.encode(), "text/plain;charset=UTF-8", headers)
        if status in (502, 503, 504):  # these come from the proxy in front of Confluence: HTML, not JSON
            phrase = f"{status} {HTTPStatus(status).phrase}"
            page = f"<html><head><title>{phrase}</title></head><body><h1>{phrase}</h1></body></html>"
            return Response(status, page.encode(), "text/html;charset=UTF-8", headers)
        response = self._error(request, status, HTTPStatus(status).phrase)
        response.headers.update(headers)
        return response

    def _renderer(self) -> Renderer:
        return Renderer(self.site, self.base_url, self.context, viewer=getattr(self, "_viewer", None))

    def _ok(self, payload: object, headers: dict[str, str] | None = None) -> _Ok:
        return _Ok(payload, headers or {})

    def _limit(self, request: Request, default: int, cap: int) -> int:
        return min(int_param(request.param("limit"), "limit", default), cap)

    def _page(self, cid: str, user: User, statuses: tuple[str, ...] = ("current",)) -> Page:
        page = self.site.pages.get(cid)
        if page is None or page.status not in statuses or not self.site.can_read(user, page):
            raise _not_found(cid)
        return page

    def _statuses(self, request: Request, default: tuple[str, ...] = ("current",)) -> tuple[str, ...]:
        wanted = tuple(request.params("status")) or default
        if "any" in wanted:
            return ("current", "trashed")
        return wanted

    # ------------------------------------------------------------------ v1: spaces

    def space_list(self, request: Request, user: User) -> _Ok:
        keys = set(request.params("spaceKey"))
        spaces = [
            s
            for k, s in sorted(self.site.spaces.items())
            if self.site.can_read_space(user, k) and (not keys or k in keys)
        ]
        if request.param("type") not in (None, "", "global"):
            spaces = []
        start = int_param(request.param("start"), "start", 0)
        limit = self._limit(request, self.limits.default, self.limits.v1_max)
        window, next_start = offset_window(spaces, start, limit)
        expand = parse_expand(request.param("expand"))
        r = self._renderer()
        results = [] if request.empty_page else [r.space(s, expand) for s in window]
        nxt = self._next_offset(request, "/rest/api/space", limit, start if request.empty_page else next_start)
        return self._ok(r.envelope(results, start=start, limit=limit, self_path="/rest/api/space", next_path=nxt))

    def space_get(self, request: Request, user: User, key: str) -> _Ok:
        space = self.site.spaces.get(key)
        if space is None or not self.site.can_read_space(user, key):
            raise HttpError(404, f"No space with key : {key}")
        return self._ok(self._renderer().space(space, parse_expand(request.param("expand")), top=True))

    def _next_offset(self, request: Request, path: str, limit: int, next_start: int | None) -> str | None:
        if next_start is None:
            return None
        return link(path, request.query, {"limit": limit, "start": next_start})

    # ------------------------------------------------------------------ v1: content

    def content_list(self, request: Request, user: User) -> _Ok:
        space_key = request.param("spaceKey")
        kind = request.param("type") or "page"
        statuses = self._statuses(request)
        title = request.param("title")
        pages: list[Page] = []
        if kind in ("page", "blogpost"):
            if title is not None and space_key and kind == "page":
                found = self.site.page_by_title(space_key, title)
                pages = [found] if found else []
            else:
                pages = [p for p in self.site.pages.values() if space_key in (None, p.space_key)]
            pages = sorted(
                (
                    p
                    for p in pages
                    if p.kind == kind
                    and p.status in statuses
                    and self.site.can_read_space(user, p.space_key)
                    and (title is None or p.title == title)
                ),
                key=lambda p: p.numeric_id,
            )
        start = int_param(request.param("start"), "start", 0)
        if start > self.limits.content_max_start and self.flavour != DATA_CENTER:
            raise HttpError(400, f"start must not be greater than {self.limits.content_max_start}")
        limit = self._limit(request, self.limits.default, self.limits.v1_max)
        window, next_start = offset_window(pages, start, limit)
        expand = parse_expand(request.param("expand"))
        r = self._renderer()
        results = [] if request.empty_page else [r.content(p, expand) for p in window if self.site.can_read(user, p)]
        nxt = self._next_offset(request, "/rest/api/content", limit, start if request.empty_page else next_start)
        return self._ok(r.envelope(results, start=start, limit=limit, self_path="/rest/api/content", next_path=nxt))

    def content_get(self, request: Request, user: User, id: str) -> _Ok:  # noqa: A002 - the route's name
        statuses = self._statuses(request)
        expand = parse_expand(request.param("expand"))
        if id.startswith("att"):
            att = self._attachment(id, user, statuses)  # its container current and readable (attachments.py)
            return self._ok(self._renderer().attachment(att, expand, top=True))
        if id in self.site.comments:  # sandbox/comments.py
            return self.comment_get(request, user, id)
        version = request.param("version")
        page = self._page(id, user, statuses)
        if version not in (None, "", str(page.version)):
            raise HttpError(404, f"No content found with id : ContentId{{id={id}}} and version {version}")
        return self._ok(self._renderer().content(page, expand, top=True))

    def content_create(self, request: Request, user: User) -> _Ok:
        data = _json_body(request)
        if data.get("type") == "comment":  # atlassian-python-api's add_comment (sandbox/comments.py)
            return self.comment_create(request, user, data)
        kind = data.get("type", "page")
        if kind not in ("page", "blogpost"):
            raise HttpError(400, "The sandbox creates pages and blog posts only")
        space = (data.get("space") or {}).get("key")
        if space not in self.site.spaces or not self.site.can_read_space(user, space):
            raise HttpError(400, f"No space with key : {space}")
        ancestors = data.get("ancestors") or []
        parent = str(ancestors[-1]["id"]) if ancestors else self.site.spaces[space].homepage_id
        try:
            page = self.site.create_page(
                space, data.get("title") or "", _storage_value(data), parent_id=parent, author=user, kind=kind
            )
        except SiteError as exc:
            raise HttpError(400, str(exc)) from None
        return self._ok(self._renderer().content(page, parse_expand("body.storage,version,space,ancestors"), top=True))

    def content_update(self, request: Request, user: User, id: str) -> _Ok:  # noqa: A002
        data = _json_body(request)
        if id in self.site.comments:  # sandbox/comments.py
            return self.comment_update(request, user, id, data)
        page = self._page(id, user)
        wanted = (data.get("version") or {}).get("number")
        if wanted != page.version + 1:
            raise HttpError(409, f"Version must be incremented on update. Current version is: {page.version}")
        ancestors = data.get("ancestors") or []
        if ancestors and str(ancestors[-1]["id"]) != page.parent_id:
            self.site.move_page(page.id, str(ancestors[-1]["id"]))
        try:
            page = self.site.edit_page(
                page.id,
                body=_storage_value(data) if data.get("body") else None,
                title=data.get("title") or None,
                author=user,
                message=(data.get("version") or {}).get("message") or "",
                minor_edit=bool((data.get("version") or {}).get("minorEdit")),
            )
        except SiteError as exc:
            raise HttpError(400, str(exc)) from None
        return self._ok(self._renderer().content(page, parse_expand("body.storage,version,space,ancestors"), top=True))

    def child_pages(self, request: Request, user: User, id: str) -> _Ok:  # noqa: A002
        parent = self._page(id, user)
        children = [self.site.pages[c] for c in self.site.child_ids(parent.id)]
        children = [c for c in children if c.kind == "page"]  # folders & co. are child/folder, ... (nodes.py)
        start = int_param(request.param("start"), "start", 0)
        limit = self._limit(request, self.limits.default, self.limits.v1_max)
        window, next_start = offset_window(children, start, limit)
        expand = parse_expand(request.param("expand"))
        r = self._renderer()
        path = f"/rest/api/content/{id}/child/page"
        results = [] if request.empty_page else [r.content(p, expand) for p in window if self.site.can_read(user, p)]
        nxt = self._next_offset(request, path, limit, start if request.empty_page else next_start)
        return self._ok(r.envelope(results, start=start, limit=limit, self_path=path, next_path=nxt))

    def labels(self, request: Request, user: User, id: str) -> _Ok:  # noqa: A002
        page = self._page(id, user)
        labels = [lb for lb in page.labels if request.param("prefix") in (None, "", lb.prefix)]
        start = int_param(request.param("start"), "start", 0)
        limit = self._limit(request, self.limits.labels_default, self.limits.v1_max)
        window, next_start = offset_window(labels, start, limit)
        r = self._renderer()
        path = f"/rest/api/content/{id}/label"
        nxt = self._next_offset(request, path, limit, next_start)
        results = [r.label(lb) for lb in window]
        return self._ok(r.envelope(results, start=start, limit=limit, self_path=path, next_path=nxt))

    def history(self, request: Request, user: User, id: str) -> _Ok:  # noqa: A002
        if id in self.site.comments:  # sandbox/comments.py
            return self.comment_history_get(request, user, id)
        page = self._page(id, user, self._statuses(request))
        out = self._renderer().history(page, full=True)
        out["_links"].update({"base": self.base_url, "context": self.context})
        return self._ok(out)

    def current_user(self, request: Request, user: User) -> _Ok:
        return self._ok(self._renderer().user(user.account_id))

    # ------------------------------------------------------------------ v1: search

    def _matches(self, query: Query, user: User) -> tuple[list[Page | Attachment], list[tuple]]:
        """All documents the query finds in spaces the user may read (space permissions are part of the
        query on Confluence), sorted, with their sort keys. Cached per site generation."""
        spaces = frozenset(k for k in self.site.spaces if self.site.can_read_space(user, k))
        key = (query.cql, self.site.generation, str(self.site.timezone), spaces)
        cached = None if query.uses_clock else self._cache.get(key)
        if cached is None:
            docs = [d for d in query.run(self.site, self.site.search_documents()) if d.space_key in spaces]
            cached = (docs, [query.sort_key(d) for d in docs])
            if not query.uses_clock:
                if len(self._cache) >= 32:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[key] = cached
        return cached

    def _search_window(self, request: Request, user: User, expand: Tree, path: str):
        """Matches, the visible results of this page, its limit and start, and the ``next`` link."""
        cql = request.param("cql")
        if not cql:
            raise HttpError(400, "CQL query parameter is required")
        query = parse(cql)
        docs, keys = self._matches(query, user)
        # Confluence's fixed caps, chosen by the expansions asked for (KB 1032258424): body 50, other 200.
        cap = self.limits.search_body_max if "body" in expand else self.limits.search_max
        if expand and "body" not in expand:
            cap = self.limits.search_expand_max
        limit = self._limit(request, self.limits.default, cap)
        start = int_param(request.param("start"), "start", 0)
        cursor = request.param("cursor")
        if request.empty_page:  # a fault: nothing here, but go on (the same request again)
            return docs, [], limit, start, link(path, request.query, {"next": "true"})
        # Search pages by the cursor it carries, not by offset: a start past the matches (Cloud measured
        # start=100001 with 9 matches answering a row, brekkylab/backlot#323) does not empty the page.
        offset = 0 if cursor or (start >= len(docs) and self.flavour != DATA_CENTER) else start
        window, next_cursor = keyset_window(docs, keys, cursor, limit, offset)
        visible = [d for d in window if self.site.can_read(user, d)]
        nxt = None
        if next_cursor is not None:
            changes = {"next": "true", "cursor": next_cursor, "limit": limit, "start": start + limit}
            nxt = link(path, request.query, changes)
        return docs, visible, limit, start, nxt

    def _render_doc(self, r: Renderer, doc: Page | Attachment, expand: Tree) -> dict:
        if doc.kind == "comment":  # sandbox/comments.py
            return comment_v1(r, doc, expand)
        return r.content(doc, expand) if isinstance(doc, Page) else r.attachment(doc, expand)

    def content_search(self, request: Request, user: User) -> _Ok:
        path = "/rest/api/content/search"
        expand = parse_expand(request.param("expand"))
        _, results, limit, start, nxt = self._search_window(request, user, expand, path)
        r = self._renderer()
        rendered = [self._render_doc(r, d, expand) for d in results]
        self_path = link(path, request.query, {})
        return self._ok(r.envelope(rendered, start=start, limit=limit, self_path=self_path, next_path=nxt))

    def search(self, request: Request, user: User) -> _Ok:
        began = time.monotonic()
        path = "/rest/api/search"
        expand = parse_expand(request.param("expand"), prefix="content")
        docs, results, limit, start, nxt = self._search_window(request, user, expand, path)
        r = self._renderer()
        rendered = [r.search_result(d, expand) for d in results]
        extra = {
            "totalSize": len(docs),
            "cqlQuery": request.param("cql"),
            "searchDuration": int((time.monotonic() - began) * 1000),
        }
        self_path = link(path, request.query, {})
        return self._ok(r.envelope(rendered, start=start, limit=limit, self_path=self_path, next_path=nxt, **extra))

    # ------------------------------------------------------------------ v2

    def _v2_list(
        self,
        request: Request,
        path: str,
        items: list,
        keys: list,
        render: Callable,
        visible: Callable[[object], bool] = lambda _: True,
    ) -> _Ok:
        """A v2 list: keyset cursor; ``next`` includes the context path and is also a ``Link`` header."""
        limit = self._limit(request, self.limits.default, self.limits.v2_max)
        cursor = request.param("cursor")
        links: dict[str, str] = {}
        if request.empty_page:  # a fault: nothing here, but go on (the same request again)
            window, links["next"] = [], link(f"{self.context}{path}", request.query, {})
        else:
            window, next_cursor = keyset_window(items, keys, cursor, limit)
            if next_cursor is not None:
                links["next"] = link(f"{self.context}{path}", request.query, {"cursor": next_cursor})
        links["base"] = self.base_url
        headers = {"Link": f'<{links["next"]}>; rel="next", <{self.base_url}>; rel="base"'} if "next" in links else {}
        return self._ok({"results": [render(i) for i in window if visible(i)], "_links": links}, headers)

    def _v2_sort(self, request: Request) -> Callable[[Page], tuple]:
        sort = request.param("sort") or "id"
        descending = sort.startswith("-")
        fields: dict[str, Callable[[Page], object]] = {
            "id": lambda p: p.numeric_id,
            "created-date": lambda p: p.created_at.timestamp(),
            "modified-date": lambda p: p.modified_at.timestamp(),
            "title": lambda p: p.title.lower(),
            "child-position": lambda p: p.position,
        }
        getter = fields.get(sort.lstrip("-"))
        if getter is None:
            raise HttpError(400, f"Invalid sort: {sort}")
        if not descending:
            return lambda p: (getter(p), p.numeric_id)

        def key(p: Page) -> tuple:
            value = getter(p)
            flipped = -value if isinstance(value, int | float) else "".join(chr(0x10FFFF - ord(c)) for c in value)
            return (flipped, p.numeric_id)

        return key

    def _v2_pages(self, request: Request, user: User, pages: list[Page], path: str) -> _Ok:
        pages = [p for p in pages if p.kind == "page"]  # v2 pages are pages: no blog posts, folders, ...
        statuses = self._statuses(request)
        if title := request.param("title"):
            pages = [p for p in pages if p.title == title]
        key = self._v2_sort(request)
        pages = sorted((p for p in pages if p.status in statuses), key=key)
        body_format = request.param("body-format")
        r = self._renderer()
        return self._v2_list(
            request,
            path,
            pages,
            [key(p) for p in pages],
            lambda p: r.page_v2(p, body_format),
            lambda p: self.site.can_read(user, p),
        )

    def v2_spaces(self, request: Request, user: User) -> _Ok:
        keys = set(request.params("keys"))
        ids = set(request.params("ids"))
        spaces = sorted(
            (
                s
                for k, s in self.site.spaces.items()
                if self.site.can_read_space(user, k) and (not keys or k in keys) and (not ids or str(s.id) in ids)
            ),
            key=lambda s: s.id,
        )
        r = self._renderer()
        render = lambda s: r.space_v2(s, request.param("description-format"))  # noqa: E731
        return self._v2_list(request, "/api/v2/spaces", spaces, [(s.id,) for s in spaces], render)

    def _v2_space_by_id(self, user: User, sid: str):
        for key, space in self.site.spaces.items():
            if str(space.id) == sid and self.site.can_read_space(user, key):
                return space
        raise HttpError(404, "Not Found")

    def v2_space(self, request: Request, user: User, id: str) -> _Ok:  # noqa: A002
        out = self._renderer().space_v2(self._v2_space_by_id(user, id), request.param("description-format"))
        out["_links"]["base"] = self.base_url
        return self._ok(out)

    def v2_space_pages(self, request: Request, user: User, id: str) -> _Ok:  # noqa: A002
        space = self._v2_space_by_id(user, id)
        pages = list(self.site.iter_pages(space.key))
        if request.param("depth") == "root":
            pages = [p for p in pages if p.parent_id is None]
        return self._v2_pages(request, user, pages, f"/api/v2/spaces/{id}/pages")

    def v2_pages(self, request: Request, user: User) -> _Ok:
        ids = request.params("id")
        if any(not i.isdigit() for i in ids):
            raise HttpError(400, "id must be a list of page ids")
        if len(ids) > 250:
            raise HttpError(400, "At most 250 ids may be given")
        space_ids = set(request.params("space-id"))
        candidates = (
            [self.site.pages[i] for i in ids if i in self.site.pages] if ids else list(self.site.pages.values())
        )
        pages = [
            p
            for p in candidates
            if self.site.can_read_space(user, p.space_key)
            and (not space_ids or str(self.site.spaces[p.space_key].id) in space_ids)
        ]
        return self._v2_pages(request, user, pages, "/api/v2/pages")

    def v2_page(self, request: Request, user: User, id: str) -> _Ok:  # noqa: A002
        page = self._of_kind(id, user, "page", self._statuses(request))
        labels = request.param("include-labels") == "true"
        return self._ok(self._renderer().page_v2(page, request.param("body-format"), top=True, labels=labels))

    def v2_children(self, request: Request, user: User, id: str) -> _Ok:  # noqa: A002
        parent = self._of_kind(id, user, "page")
        children = [self.site.pages[c] for c in self.site.child_ids(parent.id)]
        children = [c for c in children if c.kind == "page" and self.site.can_read(user, c)]
        keys = [(c.position, c.numeric_id) for c in children]
        r = self._renderer()
        return self._v2_list(request, f"/api/v2/pages/{id}/children", children, keys, r.child_v2)

    def v2_labels(self, request: Request, user: User, id: str) -> _Ok:  # noqa: A002
        page = self._page(id, user)
        labels = sorted(page.labels, key=lambda lb: int(lb.id))
        keys = [(int(lb.id),) for lb in labels]
        render = lambda lb: {"id": lb.id, "name": lb.name, "prefix": lb.prefix}  # noqa: E731
        return self._v2_list(request, f"/api/v2/pages/{id}/labels", labels, keys, render)


class ConfluenceServer(ServerBase):
    """A running Confluence sandbox: ``url``, credentials of the default user, ``faults`` and ``stats``."""

    def __init__(
        self,
        site: Site,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        context_path: str = "/wiki",
        limits: Limits | None = None,
        user: User | None = None,
        rate_limit: RateLimit | None = None,
        v1_removed: bool = False,
        flavour: str | None = None,
    ) -> None:
        """``rate_limit``: a token bucket and its headers on every response (sandbox/ratelimits.py; None:
        no rate limit); ``v1_removed``: the deprecated v1 endpoints (DEPRECATED_V1) answer 410 Gone;
        ``flavour``: CLOUD refuses personal access tokens as Cloud does, DATA_CENTER has no v2 API (404);
        None (the default) takes either credential and serves both APIs. The same API is also served
        under ``/ex/confluence/<cloudId>`` as the API gateway does (``gateway_url``, scoped tokens)."""
        if flavour not in (None, CLOUD, DATA_CENTER):
            raise ValueError(f"flavour must be {CLOUD!r}, {DATA_CENTER!r} or None, got {flavour!r}")
        context_path = "/" + context_path.strip("/") if context_path.strip("/") else ""
        self.site = site
        self.context_path = context_path
        self.user = user or site.default_user
        if flavour == DATA_CENTER and rate_limit is not None:  # Data Center's token-bucket headers
            rate_limit = dataclasses.replace(rate_limit, style=DC_RATE_STYLE)
        app = ConfluenceApp(site, context_path, limits or Limits(), v1_removed=v1_removed, flavour=flavour)
        super().__init__(app, host=host, port=port)
        self.set_rate_limit(rate_limit)

    def start(self) -> ConfluenceServer:
        super().start()
        self.app.base_url = self.url
        return self

    def __enter__(self) -> ConfluenceServer:
        return self.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.context_path}"

    @property
    def gateway_url(self) -> str:
        """The site through the API gateway: ``CONFLUENCE_URL`` for scoped tokens (``/wiki`` is added)."""
        return f"http://{self.host}:{self.port}{GATEWAY_PREFIX}{self.site.cloud_id}"

    @property
    def cloud_id(self) -> str:
        return self.site.cloud_id

    @property
    def scoped_token(self) -> str | None:
        return self.user.scoped_token

    @property
    def email(self) -> str:
        return self.user.email

    @property
    def api_token(self) -> str | None:
        return self.user.api_token

    @property
    def pat(self) -> str | None:
        return self.user.pat
