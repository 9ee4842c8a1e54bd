"""JSON shapes of Confluence REST responses, copied key for key from real Cloud responses
(confluence_samples/): content, spaces, users, versions, history, labels, attachments, in the v1
and v2 flavours. Every function builds a fresh dict; callers hold the site lock while rendering.

``expand`` arguments are trees parsed from Confluence's ``expand=a.b,c`` parameter: an expansion present
in the tree is rendered and leaves ``_expandable``; everything else stays listed there, as real
responses do.
"""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import quote

from confluence_assets.sandbox.clock import friendly, iso
from confluence_assets.sandbox.nodes import webui as node_webui
from confluence_assets.sandbox.paging import encode_cursor
from confluence_assets.sandbox.permissions import restrictions_expansion, space_permissions_v1
from confluence_assets.sandbox.site import Attachment, Label, Page, Site, Space, User
from confluence_assets.sandbox.view import ViewRenderer

Tree = dict[str, "Tree"]

CHILDREN_EXPANSION_LIMIT = 25  # expanded children lists are truncated, with a next link, as in Cloud
LABELS_EXPANSION_LIMIT = 200
V2_INCLUDED_LABELS = 50  # v2 include-labels: the first 50, then a cursor (the v2 reference: "up to 50")


def parse_expand(expand: str | None, prefix: str | None = None) -> Tree:
    """``"body.storage,version"`` -> ``{"body": {"storage": {}}, "version": {}}``; ``prefix`` selects a
    subtree (the search endpoint expands ``content.body.storage``)."""
    tree: Tree = {}
    for item in (expand or "").split(","):
        parts = [p for p in item.strip().split(".") if p]
        if prefix is not None:
            if not parts or parts[0] != prefix:
                continue
            parts = parts[1:]
        node = tree
        for part in parts:
            node = node.setdefault(part, {})
    return tree


def tiny_ui(content_id: str) -> str:
    """Confluence's short link: the id as a little-endian long, base64url, trailing 'A's dropped."""
    raw = base64.b64encode(int(content_id).to_bytes(8, "little")).decode().rstrip("=").rstrip("A")
    return "/x/" + raw.replace("/", "-").replace("+", "_")


_TAGS = re.compile(r"<[^>]*>")
_SLUG_WORDS = re.compile(r"[A-Za-z0-9._-]+")
_SPACES = re.compile(r"\s+")


def excerpt(storage: str, length: int = 200) -> str:
    text = _SPACES.sub(" ", _TAGS.sub(" ", storage[: length * 20])).strip()
    return text[:length]


def space_type(space: Space) -> str:
    """Confluence's personal spaces are the ones whose key starts with '~'."""
    return "personal" if space.key.startswith("~") else "global"


class Renderer:
    """Renders site objects for one server: its base URL (``http://host:port/wiki``) and context path."""

    def __init__(self, site: Site, base_url: str, context: str, *, viewer: User | None = None) -> None:
        self.site = site
        self.base = base_url
        self.context = context
        self.viewer = viewer  # whose view body.view / export_view render (None: the site as it is)

    # ------------------------------------------------------------------ helpers

    def envelope(
        self, results: list, *, start: int | None, limit: int, self_path: str, next_path: str | None, **extra: Any
    ) -> dict:
        """A v1 list: ``results``, ``start``, ``limit``, ``size``, then ``_links`` relative to ``base``."""
        out: dict[str, Any] = {"results": results}
        if start is not None:
            out["start"] = start
        out["limit"] = limit
        out["size"] = len(results)
        out.update(extra)
        links: dict[str, str] = {"base": self.base, "context": self.context}
        if next_path:
            links["next"] = next_path
        links["self"] = self.base + self_path
        out["_links"] = links
        return out

    def user(self, account_id: str) -> dict:
        user = self.site.users.get(account_id) or User(account_id, "Unknown user", "")
        return {
            "type": "known",
            "accountId": user.account_id,
            "accountType": "atlassian",
            "email": "",  # Cloud hides e-mail addresses unless the user allows them
            "publicName": user.display_name,
            "profilePicture": {
                "path": f"{self.context}/aa-avatar/{quote(user.account_id)}",
                "width": 48,
                "height": 48,
                "isDefault": False,
            },
            "displayName": user.display_name,
            "isExternalCollaborator": False,
            "isGuest": False,
            "locale": "en_US",
            "accountStatus": "active",
            "_expandable": {"operations": "", "personalSpace": ""},
            "_links": {"self": f"{self.base}/rest/api/user?accountId={quote(user.account_id)}"},
        }

    def _ari(self, kind: str, numeric: str) -> dict:
        ari = f"ari:cloud:confluence:{self.site.cloud_id}:{kind}/{numeric}"
        encoded = base64.b64encode(f"ari:cloud:confluence:{self.site.cloud_id}:content/{numeric}".encode())
        return {"ari": ari, "base64EncodedAri": encoded.decode().rstrip("=")}

    def webui(self, page: Page) -> str:
        if (other := node_webui(self.site, page)) is not None:  # blog posts, folders & co. (sandbox/nodes.py)
            return other
        space = self.site.spaces[page.space_key]
        if space.homepage_id == page.id:
            return f"/spaces/{page.space_key}/overview"
        # Cloud's slug keeps the ASCII words of the title only ("실행 계획(Explain)" -> "Explain").
        words = _SLUG_WORDS.findall(page.title)
        slug = "/" + "+".join(words) if words else ""
        return f"/spaces/{page.space_key}/pages/{page.id}{slug}"

    # ------------------------------------------------------------------ v1 content

    def content(self, page: Page, expand: Tree | None = None, *, top: bool = False) -> dict:
        expand = expand or {}
        cid = page.id
        out: dict[str, Any] = {"id": cid, "type": page.kind, **self._ari(page.kind, cid)}
        out["status"] = page.status
        out["title"] = page.title
        if "space" in expand:
            out["space"] = self.space(self.site.spaces[page.space_key], expand["space"])
        if "history" in expand:
            out["history"] = self.history(page, expand["history"])
        if "version" in expand:
            out["version"] = self.version(page, expand["version"])
        if "ancestors" in expand:
            out["ancestors"] = [self.content(self.site.pages[a]) for a in self.site.ancestor_ids(cid)]
        if "container" in expand:
            out["container"] = self.space(self.site.spaces[page.space_key], expand["container"])
        out["macroRenderedOutput"] = {}
        if "body" in expand:
            out["body"] = self.body(page, expand["body"])
        if "metadata" in expand:
            out["metadata"] = self.metadata(page, expand["metadata"])
        if "children" in expand:
            out["children"] = self.children(page, expand["children"])
        if "restrictions" in expand:
            out["restrictions"] = self.restrictions(page, expand["restrictions"])
        out["extensions"] = {"position": page.position}
        expandable = {
            "container": f"/rest/api/space/{page.space_key}",
            "metadata": "",
            "restrictions": f"/rest/api/content/{cid}/restriction/byOperation",
            "history": f"/rest/api/content/{cid}/history",
            "body": "",
            "version": "",
            "descendants": f"/rest/api/content/{cid}/descendant",
            "space": f"/rest/api/space/{page.space_key}",
            "childTypes": "",
            "schedulePublishInfo": "",
            "operations": "",
            "schedulePublishDate": "",
            "children": f"/rest/api/content/{cid}/child",
            "ancestors": "",
            "draftVersion": "",
        }
        out["_expandable"] = {k: v for k, v in expandable.items() if k not in expand}
        links = {
            "editui": f"/pages/resumedraft.action?draftId={cid}",
            "webui": self.webui(page),
            "edituiv2": f"/spaces/{page.space_key}/pages/edit-v2/{cid}",
        }
        if top:
            links["context"] = self.context
        links["self"] = f"{self.base}/rest/api/content/{cid}"
        links["tinyui"] = tiny_ui(cid)
        if top:
            links["collection"] = "/rest/api/content"
            links["base"] = self.base
        out["_links"] = links
        return out

    def body(self, page: Page, expand: Tree) -> dict:
        out: dict[str, Any] = {}
        if "storage" in expand:
            out["storage"] = {
                "value": page.body,
                "representation": "storage",
                "embeddedContent": [],
                "_expandable": {"content": f"/rest/api/content/{page.id}"},
            }
        for representation in ("view", "export_view"):
            if representation in expand:
                # The storage with the macros that make content at view time rendered (sandbox/view.py);
                # export_view with absolute URLs.
                out[representation] = {
                    "value": self.rendered(page, export=representation == "export_view"),
                    "representation": representation,
                    "_expandable": {
                        "webresource": "",
                        "embeddedContent": "",
                        "mediaToken": "",
                        "content": f"/rest/api/content/{page.id}",
                    },
                }
        others = (
            "editor",
            "view",
            "export_view",
            "styled_view",
            "dynamic",
            "storage",
            "editor2",
            "anonymous_export_view",
            "atlas_doc_format",
        )
        out["_expandable"] = {k: "" for k in others if k not in expand}
        return out

    def rendered(self, page: Page, *, export: bool) -> str:
        return ViewRenderer(self.site, self.base, self.context, self.webui, export=export, viewer=self.viewer).render(
            page
        )

    def version(self, page: Page, expand: Tree | None = None) -> dict:
        return {
            "by": self.user(page.modified_by),
            "when": iso(page.modified_at),
            "friendlyWhen": friendly(page.modified_at),
            "message": page.version_message,
            "number": page.version,
            "minorEdit": page.minor_edit,
            "ncsStepVersion": str(page.version),
            "ncsStepVersionSource": "ncs-ack",
            "confRev": f"confluence$content${page.id}.{page.version}",
            "contentTypeModified": False,
            "_expandable": {"collaborators": "", "content": f"/rest/api/content/{page.id}"},
            "_links": {"self": f"{self.base}/rest/api/content/{page.id}/version/{page.version}"},
        }

    def history(self, page: Page, expand: Tree | None = None, *, full: bool = False) -> dict:
        expand = expand or {}
        out: dict[str, Any] = {
            "latest": page.status == "current",
            "createdBy": self.user(page.author_id),
            "ownedBy": self.user(page.owner_id),
            "createdDate": iso(page.created_at),
        }
        if full or "lastUpdated" in expand:
            out["lastUpdated"] = self.version(page)
        if (full or "previousVersion" in expand) and page.previous:
            prev = page.previous[-1]
            out["previousVersion"] = {
                "by": self.user(prev.by),
                "when": iso(prev.when),
                "friendlyWhen": friendly(prev.when),
                "message": prev.message,
                "number": prev.number,
                "minorEdit": prev.minor_edit,
                "_links": {"self": f"{self.base}/rest/api/content/{page.id}/version/{prev.number}"},
            }
        if full or "contributors" in expand:
            ids = list(dict.fromkeys([page.modified_by, *(v.by for v in reversed(page.previous))]))
            out["contributors"] = {"publishers": {"users": [self.user(i) for i in ids], "userKeys": ids}}
        remaining = ("lastUpdated", "previousVersion", "contributors", "nextVersion")
        out["_expandable"] = {k: "" for k in remaining if k not in out}
        out["_links"] = {"self": f"{self.base}/rest/api/content/{page.id}/history"}
        return out

    def label(self, label: Label) -> dict:
        return {"prefix": label.prefix, "name": label.name, "id": label.id, "label": label.name}

    def metadata(self, page: Page, expand: Tree) -> dict:
        out: dict[str, Any] = {}
        if "labels" in expand:
            labels = [self.label(label) for label in page.labels[:LABELS_EXPANSION_LIMIT]]
            out["labels"] = {
                "results": labels,
                "start": 0,
                "limit": LABELS_EXPANSION_LIMIT,
                "size": len(labels),
                "_links": {"self": f"{self.base}/rest/api/content/{page.id}/label"},
            }
        others = (
            "currentuser",
            "comments",
            "sourceTemplateEntityId",
            "simple",
            "properties",
            "frontend",
            "labels",
            "likes",
        )
        out["_expandable"] = {k: "" for k in others if k not in expand}
        return out

    def children(self, page: Page, expand: Tree) -> dict:
        out: dict[str, Any] = {}
        limit = CHILDREN_EXPANSION_LIMIT
        if "page" in expand:
            kids = [k for k in self.site.child_ids(page.id) if self.site.pages[k].kind == "page"]
            out["page"] = self._child_list(
                page, "page", [self.content(self.site.pages[k], expand["page"]) for k in kids[:limit]], len(kids)
            )
        if "attachment" in expand:
            atts = self.site.attachments_of(page.id)
            out["attachment"] = self._child_list(
                page, "attachment", [self.attachment(a, expand["attachment"]) for a in atts[:limit]], len(atts)
            )
        if "comment" in expand:  # root comments, as child/comment lists them (sandbox/comments.py)
            from confluence_assets.sandbox.comments import comment_v1

            roots = self.site.comments_of(page.id)
            out["comment"] = self._child_list(
                page, "comment", [comment_v1(self, c, expand["comment"]) for c in roots[:limit]], len(roots)
            )
        others = ("attachment", "comment", "page", "whiteboard", "database", "embed", "folder")
        out["_expandable"] = {k: f"/rest/api/content/{page.id}/child/{k}" for k in others if k not in expand}
        out["_links"] = {"self": f"{self.base}/rest/api/content/{page.id}/child"}
        return out

    def _child_list(self, page: Page, kind: str, results: list, total: int) -> dict:
        limit = CHILDREN_EXPANSION_LIMIT
        links = {"self": f"{self.base}/rest/api/content/{page.id}/child/{kind}"}
        if total > limit:
            links["next"] = f"/rest/api/content/{page.id}/child/{kind}?limit={limit}&start={limit}"
        return {"results": results, "start": 0, "limit": limit, "size": len(results), "_links": links}

    def restrictions(self, page: Page, expand: Tree) -> dict:
        """The page's own restrictions, the operations the expansion names (sandbox/permissions.py)."""
        return restrictions_expansion(self, page, expand)

    def attachment(self, att: Attachment, expand: Tree | None = None, *, top: bool = False) -> dict:
        from confluence_assets.sandbox.attachments import attachment_v1  # the attachment's module owns its shape

        return attachment_v1(self, att, expand, top=top)

    # ------------------------------------------------------------------ v1 spaces

    def space(self, space: Space, expand: Tree | None = None, *, top: bool = False) -> dict:
        expand = expand or {}
        out: dict[str, Any] = {"id": space.id, "key": space.key, "alias": space.key, "name": space.name}
        out["icon"] = {"path": "/images/logo/default-space-logo.svg", "width": 48, "height": 48, "isDefault": False}
        if "description" in expand:
            desc: dict[str, Any] = {}
            if "plain" in expand["description"]:
                desc["plain"] = {"value": space.description, "representation": "plain", "embeddedContent": []}
            if "view" in expand["description"]:
                desc["view"] = {"value": space.description, "representation": "view", "embeddedContent": []}
            desc["_expandable"] = {k: "" for k in ("view", "plain") if k not in expand["description"]}
            out["description"] = desc
        if "homepage" in expand and space.homepage_id:
            out["homepage"] = self.content(self.site.pages[space.homepage_id], expand["homepage"])
        if "permissions" in expand:
            out["permissions"] = space_permissions_v1(self, space)
        out["type"] = space_type(space)
        out["status"] = "current"
        expandable = {
            "settings": f"/rest/api/space/{space.key}/settings",
            "metadata": "",
            "operations": "",
            "lookAndFeel": f"/rest/api/settings/lookandfeel?spaceKey={space.key}",
            "identifiers": "",
            "permissions": "",
            "roles": "",
            "description": "",
            "theme": f"/rest/api/space/{space.key}/theme",
            "history": "",
            "homepage": f"/rest/api/content/{space.homepage_id}",
        }
        out["_expandable"] = {k: v for k, v in expandable.items() if k not in expand}
        links = {"webui": f"/spaces/{space.key}"}
        if top:
            links["context"] = self.context
        links["self"] = f"{self.base}/rest/api/space/{space.key}"
        if top:
            links["collection"] = "/rest/api/space"
            links["base"] = self.base
        out["_links"] = links
        return out

    # ------------------------------------------------------------------ search results

    def search_result(self, item: Page | Attachment, expand: Tree) -> dict:
        space = self.site.spaces[item.space_key]
        if isinstance(item, Page):
            content, url, icon = self.content(item, expand), self.webui(item), f"aui-icon content-type-{item.kind}"
            text = excerpt(item.body)
        elif item.kind == "comment":  # sandbox/comments.py
            from confluence_assets.sandbox.comments import comment_v1

            content, icon = comment_v1(self, item, expand), "aui-icon content-type-comment"
            url, text = content["_links"]["webui"], excerpt(item.body)
        else:
            content, icon = self.attachment(item, expand), "aui-icon content-type-attachment-file"
            url, text = content["_links"]["webui"], ""
        return {
            "content": content,
            "title": item.title,
            "excerpt": text,
            "url": url,
            "resultGlobalContainer": {"title": space.name, "displayUrl": f"/spaces/{space.key}"},
            "breadcrumbs": [],
            "entityType": "content",
            "iconCssClass": icon,
            "lastModified": iso(item.modified_at),
            "friendlyLastModified": friendly(item.modified_at),
            "score": 0.0,
        }

    # ------------------------------------------------------------------ v2

    def labels_v2(self, page: Page) -> dict:
        """``include-labels=true``: the first labels by id (the v2 reference's LabelArray: ``results``,
        ``meta.hasMore``/``cursor``, ``_links``; the rest from ``/pages/{id}/labels`` after the cursor)."""
        labels = sorted(page.labels, key=lambda lb: int(lb.id))
        shown = labels[:V2_INCLUDED_LABELS]
        path = f"{self.context}/api/v2/pages/{page.id}/labels"
        cursor = encode_cursor((int(shown[-1].id),)) if len(labels) > len(shown) else None
        links = {"self": path, **({"next": f"{path}?cursor={cursor}"} if cursor else {})}
        return {
            "results": [{"id": lb.id, "name": lb.name, "prefix": lb.prefix} for lb in shown],
            "meta": {"hasMore": cursor is not None, "cursor": cursor},
            "_links": links,
        }

    def page_v2(self, page: Page, body_format: str | None, *, top: bool = False, labels: bool = False) -> dict:
        parent = self.site.pages.get(page.parent_id) if page.parent_id else None
        out: dict[str, Any] = {
            "parentId": parent.id if parent else None,
            "ownerId": page.owner_id,
            "lastOwnerId": None,
            "authorId": page.author_id,
            "parentType": parent.kind if parent else None,
            "version": {
                "number": page.version,
                "message": page.version_message,
                "minorEdit": page.minor_edit,
                "authorId": page.modified_by,
                "createdAt": iso(page.modified_at),
                "ncsStepVersion": str(page.version),
            },
            "id": page.id,
            "createdAt": iso(page.created_at),
            "spaceId": str(self.site.spaces[page.space_key].id),
            "position": page.position,
            "body": {},
            "status": page.status,
            "title": page.title,
        }
        if body_format == "storage":
            out["body"] = {"storage": {"representation": "storage", "value": page.body}}
        elif body_format in ("view", "export_view"):
            value = self.rendered(page, export=body_format == "export_view")
            out["body"] = {body_format: {"representation": body_format, "value": value}}
        if labels:
            out["labels"] = self.labels_v2(page)
        links = {
            "editui": f"/pages/resumedraft.action?draftId={page.id}",
            "webui": self.webui(page),
            "edituiv2": f"/spaces/{page.space_key}/pages/edit-v2/{page.id}",
            "tinyui": tiny_ui(page.id),
        }
        if top:
            links["base"] = self.base
        out["_links"] = links
        return out

    def child_v2(self, page: Page) -> dict:
        return {
            "id": page.id,
            "status": page.status,
            "title": page.title,
            "spaceId": str(self.site.spaces[page.space_key].id),
            "childPosition": page.position,
        }

    def space_v2(self, space: Space, description_format: str | None = None) -> dict:
        """A v2 space (Get spaces / Get space by id): ``description`` only with ``description-format``
        (``plain`` or ``view``), null otherwise, as the v2 reference's Space has it."""
        description = None
        if description_format in ("plain", "view"):
            description = {description_format: {"representation": description_format, "value": space.description}}
        return {
            "id": str(space.id),
            "key": space.key,
            "name": space.name,
            "type": space_type(space),
            "status": "current",
            "authorId": space.creator_id,
            "createdAt": iso(space.created_at),
            "homepageId": space.homepage_id,
            "spaceOwnerId": space.creator_id,
            "currentActiveAlias": space.key,
            "description": description,
            "icon": None,
            "_links": {"webui": f"/spaces/{space.key}"},
        }
