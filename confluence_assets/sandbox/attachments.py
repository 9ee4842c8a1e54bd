"""Attachments in the sandbox: versions with real bytes, their REST shapes, uploads and downloads.

As on Confluence Cloud:

- an attachment belongs to a page or a blog post, keeps its id for life and gets a new version when a
  file of the same name is uploaded to the same container again; the container's own version and
  ``lastModified`` stay (only the attachment's change, which CQL ``lastModified`` sees);
- bytes come from ``GET /wiki/rest/api/content/{pageId}/child/attachment/{attachmentId}/download``, which
  answers ``302`` to a second URL (Cloud's media/file store, ``api.media.atlassian.com/file/{fileId}/binary``
  with a signed token; here ``/media/file/{fileId}/binary`` on the same server, outside ``/wiki``) that
  streams them with ``Content-Type`` and ``Content-Length``. The token is an HS256 JWT that expires, and
  the media URL needs no other credentials;
- the ``/wiki/download/attachments/...`` servlet path in ``_links.download`` answers ``401`` with
  ``WWW-Authenticate: OAuth`` to API-token Basic auth (Atlassian's changelog CHANGE-2735, "Deprecation of
  /download/attachments/ APIs"); a Data Center personal access token (Bearer) still gets the bytes there;
- uploads are multipart ``POST``/``PUT`` to ``child/attachment`` (or ``.../{attachmentId}/data``) and need
  ``X-Atlassian-Token: no-check`` (403 "XSRF check failed" without it); ``DELETE /rest/api/content/{id}``
  trashes an attachment (purges it with ``status=trashed``), v2 ``DELETE /attachments/{id}`` likewise;
- an attachment is visible exactly when its container is (sandbox/permissions.py): trashed, restricted
  or missing containers make their attachments 404 and invisible to CQL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email.policy import HTTP
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from confluence_assets.sandbox.clock import epoch_ms, friendly, iso
from confluence_assets.sandbox.files import MEDIA_TYPES, Blob, BytesBlob, GeneratedBlob, SampleFile
from confluence_assets.sandbox.paging import int_param, link, offset_window

if TYPE_CHECKING:
    import threading

    from confluence_assets.sandbox.httpbase import Request, Response
    from confluence_assets.sandbox.shapes import Renderer, Tree
    from confluence_assets.sandbox.site import Page, User

MEDIA_TOKEN_SECONDS = 2940  # Cloud's media URLs say max-age=2940
CONTAINER_KINDS = ("page", "blogpost")
_DESCRIPTIONS = {  # extensions.mediaTypeDescription ("PNG Image" as in the shipped samples)
    "image/png": "PNG Image",
    "image/jpeg": "JPEG Image",
    "image/gif": "GIF Image",
    "image/svg+xml": "SVG Image",
    "application/pdf": "PDF Document",
    "text/plain": "Text File",
    "text/csv": "CSV File",
    "text/markdown": "Markdown File",
    "text/html": "HTML Document",
    "application/zip": "Zip Archive",
    MEDIA_TYPES["docx"]: "Microsoft Word Document",
    MEDIA_TYPES["xlsx"]: "Microsoft Excel Spreadsheet",
    MEDIA_TYPES["pptx"]: "Microsoft PowerPoint Presentation",
}
_EXTENSION_TYPES = {**MEDIA_TYPES, "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif"}
_EXTENSION_TYPES.update({"svg": "image/svg+xml", "json": "application/json", "htm": "text/html"})


def media_type_of(filename: str) -> str:
    return _EXTENSION_TYPES.get(filename.rsplit(".", 1)[-1].lower(), "application/octet-stream")


def describe(media_type: str) -> str:
    return _DESCRIPTIONS.get(media_type, media_type.split("/")[-1].upper() + " File")


@dataclass(slots=True)
class AttachmentVersion:
    """One uploaded version: its bytes and what the upload said."""

    number: int
    when: datetime
    by: str
    comment: str
    media_type: str
    blob: Blob

    @property
    def file_size(self) -> int:
        return self.blob.size


@dataclass(slots=True)
class Attachment:
    id: str  # "att<number>", as Confluence spells attachment ids
    page_id: str  # the container: a page or a blog post
    space_key: str
    title: str
    media_type: str
    file_size: int
    file_id: str  # the media store's id of the current version's file
    created_at: datetime
    author_id: str
    comment: str = ""
    version: int = 1
    kind: str = "attachment"
    status: str = "current"  # current | trashed
    modified_at: datetime | None = None  # the current version's time (None: created_at)
    modified_by: str = ""
    blob: Blob | None = None
    previous: list[AttachmentVersion] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.modified_at is None:
            self.modified_at = self.created_at
        if not self.modified_by:
            self.modified_by = self.author_id
        if self.blob is None:  # metadata-only callers: deterministic bytes of the declared size
            self.blob = GeneratedBlob(self.file_size, f"{self.id}:{self.version}")

    @property
    def numeric_id(self) -> int:
        return int(self.id.removeprefix("att"))

    def version_blob(self, number: int | None) -> Blob | None:
        if number in (None, self.version):
            return self.blob
        return next((v.blob for v in self.previous if v.number == number), None)


def _file_id(att_id: str, version: int) -> str:
    return str(uuid.UUID(hashlib.md5(f"{att_id}:{version}".encode()).hexdigest()))  # noqa: S324 - an id


class SiteAttachments:
    """The attachment half of :class:`Site` (which inherits it): uploads, versions, deletion."""

    lock: threading.RLock
    attachments: dict[str, Attachment]
    pages: dict[str, Page]
    generation: int

    def add_attachment(
        self,
        page_id: str,
        filename: str,
        *,
        data: bytes | Blob | None = None,
        media_type: str | None = None,
        file_size: int | None = None,
        comment: str = "",
        author: User | str | None = None,
        when: datetime | str | None = None,
        attachment_id: str | None = None,
        file_id: str | None = None,
    ) -> Attachment:
        """Upload ``filename`` to a page or blog post: a new attachment, or a new version of the one with
        that name (same id, version + 1). ``data`` are the bytes (or a :class:`Blob`); without them the
        attachment has ``file_size`` (default 1024) generated bytes. The container's version stays."""
        with self.lock:
            self.generation += 1
            page = self._current(page_id)  # type: ignore[attr-defined]
            if page.kind not in CONTAINER_KINDS:
                raise self._error(f"Content {page.id} ({page.kind}) takes no attachments")  # type: ignore[attr-defined]
            when_ = self.now(when)  # type: ignore[attr-defined]
            author_id = _account(author) if author else self.default_user.account_id  # type: ignore[attr-defined]
            existing = self.attachment_named(page.id, filename)
            att_id = existing.id if existing else attachment_id or f"att{self.new_id()}"  # type: ignore[attr-defined]
            blob = _blob(data, file_size, f"{att_id}:{existing.version + 1 if existing else 1}")
            if existing is not None:
                existing.previous.append(
                    AttachmentVersion(
                        existing.version,
                        existing.modified_at,
                        existing.modified_by,
                        existing.comment,
                        existing.media_type,
                        existing.blob,
                    )
                )
                existing.version += 1
                existing.blob = blob
                existing.file_size = blob.size
                existing.media_type = media_type or existing.media_type
                existing.comment = comment
                existing.modified_at = when_
                existing.modified_by = author_id
                existing.file_id = file_id or _file_id(existing.id, existing.version)
                return existing
            attachment = Attachment(
                id=att_id,
                page_id=page.id,
                space_key=page.space_key,
                title=filename,
                media_type=media_type or media_type_of(filename),
                file_size=blob.size,
                file_id=file_id or _file_id(att_id, 1),
                created_at=when_,
                author_id=author_id,
                comment=comment,
                blob=blob,
            )
            self.attachments[att_id] = attachment
            page.attachment_ids.append(att_id)
            return attachment

    def attachment_named(self, page_id: str, filename: str) -> Attachment | None:
        with self.lock:
            for att_id in self.pages[page_id].attachment_ids:
                att = self.attachments[att_id]
                if att.title == filename and att.status == "current":
                    return att
            return None

    def attachments_of(self, page_id: str, *, status: str = "current") -> list[Attachment]:
        with self.lock:
            atts = (self.attachments[a] for a in self.page(page_id).attachment_ids)  # type: ignore[attr-defined]
            return [a for a in atts if a.status == status]

    def remove_attachment(self, page_id: str, filename: str) -> None:
        """Delete an attachment for good, every version (what the UI's "Delete" and purging do)."""
        with self.lock:
            att = self.attachment_named(page_id, filename)
            if att is None:
                raise self._error(f"Page {page_id} has no attachment {filename!r}")  # type: ignore[attr-defined]
            self.purge_attachment(att.id)

    def trash_attachment(self, attachment_id: str) -> Attachment:
        """``DELETE /rest/api/content/{id}`` on a current attachment: to the trash (hidden everywhere)."""
        with self.lock:
            self.generation += 1
            att = self.attachments[attachment_id]
            att.status = "trashed"
            return att

    def purge_attachment(self, attachment_id: str) -> None:
        with self.lock:
            self.generation += 1
            att = self.attachments.pop(attachment_id)
            page = self.pages.get(att.page_id)
            if page is not None and attachment_id in page.attachment_ids:
                page.attachment_ids.remove(attachment_id)


def _blob(data: bytes | Blob | None, file_size: int | None, seed: str) -> Blob:
    if isinstance(data, Blob):
        return data
    if data is not None:
        return BytesBlob(bytes(data))
    return GeneratedBlob(1024 if file_size is None else file_size, seed)  # the same bytes on every run


def _account(user: User | str) -> str:
    return str(getattr(user, "account_id", user))


def attach_samples(site: Any, page_id: str, samples: list[SampleFile], **kwargs: Any) -> dict[str, SampleFile]:
    """Attach sample files (``files.good_file``, ``files.bad_files()``) to a page: attachment id -> sample."""
    return {
        site.add_attachment(page_id, f.filename, data=f.blob, media_type=f.media_type, **kwargs).id: f for f in samples
    }


# --------------------------------------------------------------------------------------------- shapes


def download_path(att: Attachment) -> str:
    """``_links.download`` (v1) and ``downloadLink`` (v2): the servlet path, relative to ``_links.base``."""
    return (
        f"/download/attachments/{att.page_id}/{quote(att.title)}?version={att.version}"
        f"&modificationDate={epoch_ms(att.modified_at)}&cacheVersion=1&api=v2"
    )


def attachment_v1(r: Renderer, att: Attachment, expand: Tree | None = None, *, top: bool = False) -> dict:
    """The v1 content shape of an attachment, key for key as Cloud's ``child/attachment`` (samples)."""
    expand = expand or {}
    numeric = att.id.removeprefix("att")
    out: dict[str, Any] = {"id": att.id, "type": "attachment", **r._ari("attachment", numeric)}
    out["status"] = att.status
    out["title"] = att.title
    if "space" in expand:
        out["space"] = r.space(r.site.spaces[att.space_key], expand["space"])
    if "version" in expand:
        out["version"] = {
            "by": r.user(att.modified_by),
            "when": iso(att.modified_at),
            "friendlyWhen": friendly(att.modified_at),
            "message": att.comment,
            "number": att.version,
            "minorEdit": False,
            "ncsStepVersion": str(att.version),
            "ncsStepVersionSource": "ncs-ack",
            "confRev": f"confluence$content${att.id}.{att.version}",
            "contentTypeModified": False,
            "_expandable": {"collaborators": "", "content": f"/rest/api/content/{att.id}"},
            "_links": {"self": f"{r.base}/rest/api/content/{att.id}/version/{att.version}"},
        }
    if "history" in expand:
        out["history"] = {
            "latest": True,
            "createdBy": r.user(att.author_id),
            "createdDate": iso(att.created_at),
            "_links": {"self": f"{r.base}/rest/api/content/{att.id}/history"},
        }
    if "container" in expand:
        out["container"] = r.content(r.site.pages[att.page_id], expand["container"])
    out["macroRenderedOutput"] = {}
    out["metadata"] = {"mediaType": att.media_type}
    out["extensions"] = {
        "mediaType": att.media_type,
        "fileSize": att.file_size,
        "comment": att.comment,
        "mediaTypeDescription": describe(att.media_type),
        "fileId": att.file_id,
        "collectionName": f"contentId-{att.page_id}",
    }
    expandable = {
        "container": f"/rest/api/content/{att.page_id}",
        "restrictions": f"/rest/api/content/{att.id}/restriction/byOperation",
        "history": f"/rest/api/content/{att.id}/history",
        "body": "",
        "version": "",
        "descendants": f"/rest/api/content/{att.id}/descendant",
        "space": f"/rest/api/space/{att.space_key}",
        "childTypes": "",
        "schedulePublishInfo": "",
        "operations": "",
        "schedulePublishDate": "",
        "children": f"/rest/api/content/{att.id}/child",
        "ancestors": "",
        "draftVersion": "",
    }
    out["_expandable"] = {k: v for k, v in expandable.items() if k not in expand}
    out["_links"] = {
        "webui": f"/pages/viewpageattachments.action?pageId={att.page_id}"
        f"&preview=%2F{att.page_id}%2F{numeric}%2F{quote(att.title)}",
        "self": f"{r.base}/rest/api/content/{att.id}",
        "download": download_path(att),
    }
    if top:
        out["_links"].update({"base": r.base, "context": r.context})
    return out


def attachment_v2(r: Renderer, att: Attachment, *, top: bool = False) -> dict:
    """The v2 attachment (``GET /api/v2/pages/{id}/attachments``, ``/attachments/{id}``)."""
    container = r.site.pages[att.page_id]
    numeric = att.id.removeprefix("att")
    webui = (
        f"/pages/viewpageattachments.action?pageId={att.page_id}&preview=%2F{att.page_id}%2F{numeric}"
        f"%2F{quote(att.title)}"
    )
    out: dict[str, Any] = {
        "id": att.id,
        "status": att.status,
        "title": att.title,
        "createdAt": iso(att.created_at),
        "blogPostId" if container.kind == "blogpost" else "pageId": container.id,
        "mediaType": att.media_type,
        "mediaTypeDescription": describe(att.media_type),
        "comment": att.comment,
        "fileId": att.file_id,
        "fileSize": att.file_size,
        "webuiLink": webui,
        "downloadLink": download_path(att),
        "version": {
            "number": att.version,
            "message": att.comment,
            "minorEdit": False,
            "authorId": att.modified_by,
            "createdAt": iso(att.modified_at),
        },
        "_links": {"webui": webui, "download": download_path(att)},
    }
    if top:
        out["_links"]["base"] = r.base
    return out


# --------------------------------------------------------------------------------------------- media tokens


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def media_token(secret: bytes, client: str, att: Attachment, version: int, now: float | None = None) -> str:
    """An HS256 JWT granting read of one file version, as the media store's tokens are JWTs."""
    issued = int(now if now is not None else time.time())
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {
        "iss": client,
        "access": {f"urn:filestore:file:{att.file_id}": ["read"]},
        "att": att.id,
        "ver": version,
        "nbf": issued - 60,
        "exp": issued + MEDIA_TOKEN_SECONDS,
    }
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def read_media_token(secret: bytes, token: str, now: float | None = None) -> dict | None:
    """The claims of a valid, unexpired token; None otherwise."""
    try:
        header, payload, signature = token.split(".")
        expected = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(signature)):
            return None
        claims = json.loads(_unb64(payload))
    except (ValueError, TypeError):
        return None
    moment = now if now is not None else time.time()
    if not isinstance(claims, dict) or not claims.get("nbf", 0) <= moment < claims.get("exp", 0):
        return None
    return claims


# --------------------------------------------------------------------------------------------- routes


class AttachmentRoutes:
    """The attachment endpoints of :class:`ConfluenceApp` (which inherits them)."""

    MEDIA_PREFIX = "/media/file/"

    def attachment_routes(self, v1: str, v2: str) -> list[tuple[str, Callable]]:
        self._media_secret = secrets.token_bytes(32)
        self._media_client = str(uuid.uuid4())
        child = f"{v1}/content/{{id}}/child/attachment"
        return [
            (child, self.child_attachments),
            (f"{child}/{{attachmentId}}/download", self.attachment_download),
            (f"{child}/{{attachmentId}}/data", self._writes_only),  # POST only (attachment_writes)
            ("/download/attachments/{id}/{filename}", self.attachment_servlet),
            ("/json/removeattachment.action", self._writes_only),
            (f"{v2}/pages/{{id}}/attachments", partial_kind(self.v2_container_attachments, "page")),
            (f"{v2}/blogposts/{{id}}/attachments", partial_kind(self.v2_container_attachments, "blogpost")),
            (f"{v2}/attachments", self.v2_attachments),
            (f"{v2}/attachments/{{id}}", self.v2_attachment),
        ]

    def attachment_writes(self, v1: str, v2: str) -> dict[tuple[str, str], Callable]:
        child = f"{v1}/content/{{id}}/child/attachment"
        return {
            ("POST", child): self.attachment_create,
            ("PUT", child): self.attachment_create_or_update,
            ("POST", f"{child}/{{attachmentId}}/data"): self.attachment_update_data,
            ("DELETE", f"{v1}/content/{{id}}"): self.content_delete,
            ("DELETE", f"{v2}/attachments/{{id}}"): self.v2_attachment_delete,
            ("POST", "/json/removeattachment.action"): self.remove_attachment_action,
        }

    # ------------------------------------------------------------------ reads

    def _attachment(self, att_id: str, user: User, statuses: tuple[str, ...] = ("current",)) -> Attachment:
        """A visible attachment: its container current and readable by ``user``, else 404 as Cloud."""
        if not att_id.startswith("att"):
            att_id = f"att{att_id}"
        att = self.site.attachments.get(att_id)
        container = self.site.pages.get(att.page_id) if att else None
        if (
            att is None
            or att.status not in statuses
            or container is None
            or container.status != "current"
            or not self.site.can_read(user, att)
        ):
            raise _http_error(404, f"No content found with id : ContentId{{id={att_id.removeprefix('att')}}}")
        return att

    def _container(self, cid: str, user: User) -> Page:
        page = self._page(cid, user)
        if page.kind not in CONTAINER_KINDS:
            raise _http_error(404, f"No content found with id : ContentId{{id={cid}}}")
        return page

    def child_attachments(self, request: Request, user: User, id: str) -> Any:  # noqa: A002 - the route's name
        page = self._container(id, user)
        atts = self.site.attachments_of(page.id)
        if filename := request.param("filename"):
            atts = [a for a in atts if a.title == filename]
        if media_type := request.param("mediaType"):
            atts = [a for a in atts if a.media_type == media_type]
        start = int_param(request.param("start"), "start", 0)
        limit = self._limit(request, self.limits.attachments_default, self.limits.v1_max)
        window, next_start = offset_window(atts, start, limit)
        expand = self._att_expand(request)
        r = self._renderer()
        path = f"/rest/api/content/{id}/child/attachment"
        results = [] if request.empty_page else [attachment_v1(r, a, expand) for a in window]
        nxt = self._next_offset(request, path, limit, start if request.empty_page else next_start)
        return self._ok(r.envelope(results, start=start, limit=limit, self_path=path, next_path=nxt))

    def attachment_download(self, request: Request, user: User, id: str, attachmentId: str) -> Any:  # noqa: A002, N803
        """302 to the media URL of the asked version (``version``, default the current one)."""
        from confluence_assets.sandbox.httpbase import Response

        page = self._container(id, user)
        att = self._attachment(attachmentId, user)
        if att.page_id != page.id:
            raise _http_error(404, f"No attachment {attachmentId} on content {id}")
        version = int_param(request.param("version"), "version", att.version)
        if att.version_blob(version) is None:
            raise _http_error(404, f"No version {version} of attachment {att.id}")
        token = media_token(self._media_secret, self._media_client, att, version)
        query = link(
            "",
            {},
            {
                "token": token,
                "client": self._media_client,
                "collection": f"contentId-{att.page_id}",
                "version": version,
                "dl": "true",
                "name": att.title,
                "max-age": MEDIA_TOKEN_SECONDS,
            },
        )
        location = f"{self._origin()}{self.MEDIA_PREFIX}{att.file_id}/binary{query}"
        return Response(302, b"", "text/plain;charset=UTF-8", {"Location": location, "Cache-Control": "no-cache"})

    def attachment_servlet(self, request: Request, user: User, **_: str) -> Any:
        """The web servlet path: API tokens (Basic) are refused as on Cloud; a Bearer PAT is served."""
        from confluence_assets.sandbox.httpbase import Response

        if request.headers.get("Authorization", "").lower().startswith("basic "):
            realm = f'OAuth realm="{self.base_url}"'
            return Response(401, b"", "text/plain;charset=UTF-8", {"WWW-Authenticate": realm})
        page_id, filename = request.path.rstrip("/").split("/")[-2:]
        from urllib.parse import unquote

        att = self.site.attachment_named(page_id, unquote(filename)) if page_id in self.site.pages else None
        if att is None:
            raise _http_error(404, "Not Found")
        att = self._attachment(att.id, user)
        version = int_param(request.param("version"), "version", att.version)
        return self._stream(att, version)

    def _origin(self) -> str:
        return self.base_url[: len(self.base_url) - len(self.context)] if self.context else self.base_url

    def _stream(self, att: Attachment, version: int) -> Response:
        from confluence_assets.sandbox.httpbase import Response

        blob = att.version_blob(version)
        if blob is None:
            raise _http_error(404, f"No version {version} of attachment {att.id}")
        media_type = att.media_type if version == att.version else _version(att, version).media_type
        headers = {
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(att.title)}",
            "Cache-Control": "private, max-age=2940",
        }
        return Response(200, b"", media_type, headers, chunks=blob.chunks(), length=blob.size)

    def media_endpoint(self, request: Request) -> str | None:
        """The stats/fault key of a media store request (it lives outside the context path)."""
        if request.path.startswith(self.MEDIA_PREFIX) and request.path.endswith("/binary"):
            return f"{request.method} {self.MEDIA_PREFIX}{{fileId}}/binary"
        return None

    def media_response(self, request: Request) -> Response | None:
        """The media store: the token is the only credential, bound to one file version, expiring."""
        from confluence_assets.sandbox.httpbase import Response

        if self.media_endpoint(request) is None:
            return None
        file_id = request.path[len(self.MEDIA_PREFIX) : -len("/binary")]
        claims = read_media_token(self._media_secret, request.param("token") or "")
        forbidden = Response.json(401, {"error": {"code": "Unauthorized", "title": "Invalid or expired token"}})
        if claims is None or f"urn:filestore:file:{file_id}" not in claims.get("access", {}):
            return forbidden
        if request.method != "GET":
            return Response.json(405, {"error": {"code": "MethodNotAllowed"}})
        with self.site.lock:
            att = self.site.attachments.get(str(claims.get("att")))
            container = self.site.pages.get(att.page_id) if att else None
            if att is None or att.status != "current" or container is None or container.status != "current":
                return Response.json(404, {"error": {"code": "FileNotFound", "title": "File not found"}})
            return self._stream(att, int(claims["ver"]))

    # ------------------------------------------------------------------ v2 reads

    def v2_container_attachments(self, request: Request, user: User, id: str, kind: str) -> Any:  # noqa: A002
        page = self._page(id, user)
        if page.kind != kind:
            raise _http_error(404, "Not Found")
        atts = self.site.attachments_of(page.id)
        return self._v2_attachment_list(request, user, atts, f"/api/v2/{kind}s/{id}/attachments")

    def v2_attachments(self, request: Request, user: User) -> Any:
        atts = [
            a
            for a in self.site.attachments.values()
            if a.status == "current"
            and self.site.pages.get(a.page_id) is not None
            and self.site.pages[a.page_id].status == "current"
        ]
        return self._v2_attachment_list(request, user, atts, "/api/v2/attachments")

    def _v2_attachment_list(self, request: Request, user: User, atts: list[Attachment], path: str) -> Any:
        if filename := request.param("filename"):
            atts = [a for a in atts if a.title == filename]
        if media_type := request.param("mediaType"):
            atts = [a for a in atts if a.media_type == media_type]
        sort = request.param("sort") or "created-date"
        getters: dict[str, Callable[[Attachment], Any]] = {
            "created-date": lambda a: epoch_ms(a.created_at),
            "modified-date": lambda a: epoch_ms(a.modified_at),
        }
        getter = getters.get(sort.lstrip("-"))
        if getter is None:
            raise _http_error(400, f"Invalid sort: {sort}")
        sign = -1 if sort.startswith("-") else 1
        atts = sorted(atts, key=lambda a: (sign * getter(a), a.numeric_id))
        keys = [(sign * getter(a), a.numeric_id) for a in atts]
        r = self._renderer()
        render = lambda a: attachment_v2(r, a)  # noqa: E731
        return self._v2_list(request, path, atts, keys, render, lambda a: self.site.can_read(user, a))

    def v2_attachment(self, request: Request, user: User, id: str) -> Any:  # noqa: A002
        att = self._attachment(id, user)
        return self._ok(attachment_v2(self._renderer(), att, top=True))

    # ------------------------------------------------------------------ writes

    def _upload(self, request: Request) -> tuple[list[tuple[str, bytes, str]], str, bool]:
        """(files as (name, bytes, content type), comment, minorEdit) of a multipart upload."""
        if request.headers.get("X-Atlassian-Token", "").lower() != "no-check":
            raise _http_error(403, "XSRF check failed")
        content_type = request.headers.get("Content-Type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise _http_error(415, "Unsupported Media Type: attachments are uploaded as multipart/form-data")
        message = message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + request.body, policy=HTTP)
        files: list[tuple[str, bytes, str]] = []
        fields: dict[str, str] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            if name == "file" and filename is not None:
                files.append((filename, payload, part.get_content_type()))
            elif name:
                fields[str(name)] = payload.decode("utf-8", "replace")
        if not files:
            raise _http_error(400, "No file was uploaded: expected a multipart part named 'file'")
        return files, fields.get("comment", ""), fields.get("minorEdit", "false").lower() == "true"

    def _uploaded_type(self, filename: str, declared: str) -> str:
        # The part's Content-Type is what the caller named (atlassian-python-api's attach_content sends
        # "application/binary" unless told); a generic one is replaced by the type the file name implies.
        if declared in ("", "application/octet-stream", "application/binary"):
            return media_type_of(filename)
        return declared

    def _store(self, request: Request, user: User, cid: str, *, allow_new: bool, allow_existing: bool) -> list:
        page = self._container(cid, user)
        files, comment, _ = self._upload(request)
        stored = []
        for filename, payload, declared in files:
            exists = self.site.attachment_named(page.id, filename) is not None
            if exists and not allow_existing:
                raise _http_error(
                    400, f"Cannot add a new attachment with same file name as an existing attachment: {filename}"
                )
            if not exists and not allow_new:
                raise _http_error(404, f"No attachment {filename} to update")
            stored.append(
                self.site.add_attachment(
                    page.id,
                    filename,
                    data=payload,
                    media_type=self._uploaded_type(filename, declared),
                    comment=comment,
                    author=user,
                )
            )
        return stored

    def _created(self, stored: list[Attachment], path: str) -> Any:
        r = self._renderer()
        expand = self._expand_tree("version,container")
        results = [attachment_v1(r, a, expand) for a in stored]
        return self._ok(r.envelope(results, start=None, limit=len(results), self_path=path, next_path=None))

    def attachment_create(self, request: Request, user: User, id: str) -> Any:  # noqa: A002
        stored = self._store(request, user, id, allow_new=True, allow_existing=False)
        return self._created(stored, f"/rest/api/content/{id}/child/attachment")

    def attachment_create_or_update(self, request: Request, user: User, id: str) -> Any:  # noqa: A002
        stored = self._store(request, user, id, allow_new=True, allow_existing=True)
        return self._created(stored, f"/rest/api/content/{id}/child/attachment")

    def attachment_update_data(self, request: Request, user: User, id: str, attachmentId: str) -> Any:  # noqa: A002, N803
        """A new version of one attachment; the uploaded file may even be renamed (Cloud allows it)."""
        page = self._container(id, user)
        att = self._attachment(attachmentId, user)
        if att.page_id != page.id:
            raise _http_error(404, f"No attachment {attachmentId} on content {id}")
        files, comment, _ = self._upload(request)
        filename, payload, declared = files[0]
        if filename != att.title:
            att.title = filename
        self.site.add_attachment(
            page.id, att.title, data=payload, media_type=self._uploaded_type(filename, declared), comment=comment
        )
        return self._ok(attachment_v1(self._renderer(), att, self._expand_tree("version,container"), top=True))

    def content_delete(self, request: Request, user: User, id: str) -> Any:  # noqa: A002
        """``DELETE /rest/api/content/{id}`` (204): current pages, blog posts and attachments go to the trash,
        trashed ones (``status=trashed``) are purged; comments are deleted for good (sandbox/comments.py)."""
        from confluence_assets.sandbox.httpbase import Response

        purge = request.param("status") == "trashed"
        if id in self.site.comments:
            return self.comment_delete(request, user, id)
        if id.startswith("att"):
            att = self._attachment(id, user, ("trashed",) if purge else ("current",))
            if purge:
                self.site.purge_attachment(att.id)
            else:
                self.site.trash_attachment(att.id)
            return Response(204)
        page = self._page(id, user, ("trashed",) if purge else ("current",))
        try:
            if purge:
                self.site.purge_page(page.id)
            else:
                self.site.trash_page(page.id)
        except ValueError as exc:
            raise _http_error(400, str(exc)) from None
        return Response(204)

    def v2_attachment_delete(self, request: Request, user: User, id: str) -> Any:  # noqa: A002
        from confluence_assets.sandbox.httpbase import Response

        purge = request.param("purge") == "true"
        att = self._attachment(id, user, ("trashed",) if purge else ("current",))
        if purge:
            self.site.purge_attachment(att.id)
        else:
            self.site.trash_attachment(att.id)
        return Response(204)

    def remove_attachment_action(self, request: Request, user: User) -> Any:
        """atlassian-python-api's ``delete_attachment``: the old ``json/removeattachment.action`` web action
        (Basic auth with an API token, a form token header), which deletes the file for good."""
        page_id, filename = request.param("pageId") or "", request.param("fileName") or ""
        self._container(page_id, user)
        att = self.site.attachment_named(page_id, filename)
        if att is None:
            raise _http_error(404, f"No attachment {filename!r} on content {page_id}")
        self.site.purge_attachment(att.id)
        return self._ok({})

    # ------------------------------------------------------------------ helpers

    def _writes_only(self, request: Request, user: User, **_: str) -> Any:
        raise _http_error(405, f"Method {request.method} is not supported here")

    def _att_expand(self, request: Request) -> Tree:
        return self._expand_tree(request.param("expand"))

    def _expand_tree(self, expand: str | None) -> Tree:
        from confluence_assets.sandbox.shapes import parse_expand

        return parse_expand(expand)


def _version(att: Attachment, number: int) -> AttachmentVersion:
    return next(v for v in att.previous if v.number == number)


def partial_kind(handler: Callable, kind: str) -> Callable:
    def bound(request: Request, user: User, **kwargs: str) -> Any:
        return handler(request, user, kind=kind, **kwargs)

    return bound


def _http_error(status: int, message: str) -> Exception:
    from confluence_assets.sandbox.confluence_server import HttpError  # the server imports this module

    return HttpError(status, message)
