"""An in-memory Confluence site: users, spaces, pages, labels, attachments, permissions, and the
mutations tests drive.

What changes a page's version and ``lastModified`` follows Confluence, because the sync code has to live
with it: an edit or a rename is a new version; a move, a label, an attachment, a restriction, trashing and
restoring are not (so CQL on ``lastModified`` never sees them). Titles are unique within a space, as
Confluence enforces. Trashing a page moves its children up to its parent unless the whole subtree is
trashed, and purging works only from the trash. Every public method takes the site lock, so servers may
read while a test mutates.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from confluence_assets.sandbox.attachments import Attachment, SiteAttachments
from confluence_assets.sandbox.clock import SiteClock, parse_when
from confluence_assets.sandbox.comments import Comment, SiteComments
from confluence_assets.sandbox.jira import JiraSite
from confluence_assets.sandbox.nodes import SiteNodes
from confluence_assets.sandbox.permissions import Group, Restriction, SitePermissions, SpacePermission

DEFAULT_TIMEZONE = "Asia/Seoul"
DEFAULT_EMAIL = "sandbox@example.com"
DEFAULT_API_TOKEN = "sandbox-api-token"  # noqa: S105 - a fixed fake credential of the offline sandbox
DEFAULT_PAT = "sandbox-personal-access-token"  # noqa: S105
DEFAULT_SCOPED_TOKEN = "sandbox-scoped-api-token"  # noqa: S105


class SiteError(ValueError):
    """A mutation Confluence itself would refuse (duplicate title, purge of a live page, ...)."""


@dataclass(slots=True)
class User:
    account_id: str
    display_name: str
    email: str
    api_token: str | None = None
    pat: str | None = None
    scoped_token: str | None = None  # a scoped API token: accepted through the API gateway only


@dataclass(slots=True)
class Space:
    id: int
    key: str
    name: str
    description: str
    created_at: datetime
    creator_id: str
    homepage_id: str | None = None
    permissions: list[SpacePermission] = field(default_factory=list)  # see sandbox/permissions.py


@dataclass(slots=True)
class Label:
    id: str
    name: str
    prefix: str = "global"


@dataclass(slots=True)
class VersionInfo:
    number: int
    when: datetime
    by: str
    title: str
    message: str = ""
    minor_edit: bool = False


@dataclass(slots=True)
class Page:
    id: str
    space_key: str
    title: str
    body: str
    parent_id: str | None
    position: int
    created_at: datetime
    author_id: str
    owner_id: str
    version: int
    modified_at: datetime
    modified_by: str
    version_message: str = ""
    minor_edit: bool = False
    status: str = "current"  # current | trashed
    labels: list[Label] = field(default_factory=list)
    attachment_ids: list[str] = field(default_factory=list)
    restrictions: dict[str, Restriction] = field(default_factory=dict)  # read (inherited) / update
    previous: list[VersionInfo] = field(default_factory=list)
    kind: str = "page"  # page | blogpost | folder | whiteboard | database | embed (sandbox/nodes.py)
    embed_url: str = ""  # an embed's (smart link's) URL

    @property
    def numeric_id(self) -> int:
        return int(self.id)


@dataclass(frozen=True, slots=True)
class PageSnapshot:
    """Ground truth for one page, as a pipeline test compares it with the database."""

    id: str
    space_key: str
    title: str
    version: int
    status: str
    parent_id: str | None
    ancestors: tuple[str, ...]  # ids, root first
    ancestor_titles: tuple[str, ...]
    created_at: datetime
    last_modified: datetime
    labels: tuple[str, ...]
    attachments: tuple[str, ...]  # file names
    body: str
    kind: str = "page"  # page | blogpost | folder | whiteboard | database | embed
    ancestor_kinds: tuple[str, ...] = ()  # the content type of each ancestor (folders too), root first


class Site(SitePermissions, SiteNodes, SiteAttachments, SiteComments):
    """In-memory Confluence: spaces, pages, users, attachments, permissions, the site clock and time zone.
    Groups, space permissions, restrictions and who may read what: :class:`SitePermissions`."""

    def __init__(
        self,
        timezone: str = DEFAULT_TIMEZONE,
        *,
        clock: SiteClock | None = None,
        name: str = "sandbox",
        email: str = DEFAULT_EMAIL,
        api_token: str = DEFAULT_API_TOKEN,
        pat: str = DEFAULT_PAT,
        scoped_token: str = DEFAULT_SCOPED_TOKEN,
    ) -> None:
        self.lock = threading.RLock()
        self.timezone = ZoneInfo(timezone)
        self.clock = clock or SiteClock()
        self.name = name
        self.cloud_id = str(uuid.UUID(bytes=hashlib.md5(name.encode()).digest()))  # noqa: S324 - an id, not security
        self.users: dict[str, User] = {}
        self.spaces: dict[str, Space] = {}
        self.pages: dict[str, Page] = {}
        self.attachments: dict[str, Attachment] = {}
        self._children: dict[str, list[str]] = {}  # parent id -> child ids (any status), by position
        self._titles: dict[tuple[str, str], str] = {}  # (space key, title) -> id of the current page
        self._next_id = 100_000
        self._next_space_id = 98_000
        self._words_cache: dict[tuple[str, int, str], frozenset[str]] = {}
        self.generation = 0  # bumped by every mutation; servers key their query caches on it
        self.jira = JiraSite()  # the issues Jira issues macros show (see sandbox/jira.py)
        self._init_permissions()  # the default group every user joins
        self._init_comments()  # comments of pages and blog posts (sandbox/comments.py)
        self.default_user = self.add_user(
            "Sandbox User",
            email=email,
            api_token=api_token,
            pat=pat,
            scoped_token=scoped_token,
            account_id="557058:sandbox-default-user",
        )

    # ----------------------------------------------------------------- identities and configuration

    def new_id(self) -> str:
        with self.lock:
            while True:
                self._next_id += 1
                candidate = str(self._next_id)
                taken = candidate in self.pages or candidate in self.comments or f"att{candidate}" in self.attachments
                if not taken:
                    return candidate

    def set_timezone(self, timezone: str) -> None:
        """Change the site's time zone: CQL date literals are read in it from now on."""
        with self.lock:
            self.generation += 1
            self.timezone = ZoneInfo(timezone)

    def now(self, when: datetime | str | None = None) -> datetime:
        return parse_when(when) if when is not None else self.clock.now()

    def add_user(
        self,
        display_name: str,
        *,
        email: str | None = None,
        account_id: str | None = None,
        api_token: str | None = None,
        pat: str | None = None,
        scoped_token: str | None = None,
    ) -> User:
        with self.lock:
            self.generation += 1
            if account_id is None:
                n = len(self.users)
                while account_id is None or account_id in self.users:  # unique even for the same name
                    digest = hashlib.sha1(f"{display_name}:{n}".encode()).hexdigest()  # noqa: S324 - an id
                    account_id = f"712020:{uuid.UUID(digest[:32])}"
                    n += 1
            user = User(account_id, display_name, email or "", api_token, pat, scoped_token)
            self.users[account_id] = user
            self.default_group.members.add(account_id)  # product access: the default group
            return user

    def user_for_basic(self, email: str, token: str, *, gateway: bool = False) -> User | None:
        """The user of e-mail + token: a classic API token on the site, a scoped one through the gateway
        (Atlassian's "Scoped API Tokens in Confluence Cloud": scoped tokens use api.atlassian.com)."""
        with self.lock:
            for user in self.users.values():
                expected = user.scoped_token if gateway else user.api_token
                if expected and user.email.lower() == email.lower() and _same(expected, token):
                    return user
        return None

    def user_for_bearer(self, token: str) -> User | None:
        with self.lock:
            for user in self.users.values():
                if user.pat and _same(user.pat, token):
                    return user
        return None

    def user_names(self) -> dict[str, str]:
        with self.lock:
            return {u.account_id: u.display_name for u in self.users.values()}

    # ----------------------------------------------------------------- spaces

    def add_space(
        self,
        key: str,
        name: str | None = None,
        *,
        description: str = "",
        homepage_title: str | None = None,
        homepage_body: str = "",
        space_id: int | None = None,
        homepage_id: str | None = None,
        creator: User | str | None = None,
        when: datetime | str | None = None,
        readers: Iterable[User | Group | str] | None = None,
    ) -> Space:
        """A space and its homepage (Confluence creates both at once; the homepage is the tree's root)."""
        with self.lock:
            self.generation += 1
            if key in self.spaces:
                raise SiteError(f"A space with key {key} already exists")
            when_ = self.now(when)
            creator_id = _account(creator) if creator else self.default_user.account_id
            if space_id is None:
                self._next_space_id += 1
                space_id = self._next_space_id
            space = Space(space_id, key, name or key, description, when_, creator_id)
            self.spaces[key] = space
            self._set_readers(space, readers)  # None: read for the default group, as a new space has
            home = self.create_page(
                key,
                homepage_title or space.name,
                homepage_body,
                parent_id=None,
                author=creator_id,
                when=when_,
                page_id=homepage_id,
                _root=True,
            )
            space.homepage_id = home.id
            return space

    def _space(self, key: str) -> Space:
        try:
            return self.spaces[key]
        except KeyError:
            raise SiteError(f"No space with key {key}") from None

    # ----------------------------------------------------------------- page mutations

    def create_page(
        self,
        space_key: str,
        title: str,
        body: str = "",
        *,
        parent_id: str | None = None,
        author: User | str | None = None,
        when: datetime | str | None = None,
        page_id: str | None = None,
        position: int | None = None,
        labels: Iterable[str] = (),
        version: int = 1,
        created_at: datetime | str | None = None,
        kind: str = "page",
        _root: bool = False,
    ) -> Page:
        """A new current page (version 1) under ``parent_id``, by default under the space's homepage.
        ``kind``: ``blogpost`` (no parent, ever), or a tree node (``folder``, ``whiteboard``, ``database``,
        ``embed``; see sandbox/nodes.py), which pages can live under."""
        with self.lock:
            self.generation += 1
            space = self._space(space_key)
            if kind == "blogpost":
                parent_id = None
            elif not _root and parent_id is None:
                parent_id = space.homepage_id
            if parent_id is not None:
                parent = self.page(parent_id)
                if parent.space_key != space_key or parent.status != "current" or parent.kind == "blogpost":
                    raise SiteError(f"Parent {parent_id} is not a current page of space {space_key}")
            when_ = self.now(when)
            self._claim_kind_title(space_key, title, kind, self.now(created_at) if created_at is not None else when_)
            author_id = _account(author) if author else self.default_user.account_id
            pid = page_id or self.new_id()
            if pid in self.pages:
                raise SiteError(f"Content id {pid} already exists")
            siblings = self._children.setdefault(parent_id, []) if parent_id else []
            if position is None:
                position = (self.pages[siblings[-1]].position + 1) if siblings else 0
            page = Page(
                id=pid,
                space_key=space_key,
                title=title,
                body=body,
                parent_id=parent_id,
                position=position,
                created_at=self.now(created_at) if created_at is not None else when_,
                author_id=author_id,
                owner_id=author_id,
                version=version,
                modified_at=when_,
                modified_by=author_id,
                kind=kind,
            )
            self.pages[pid] = page
            if kind == "page":
                self._titles[(space_key, title)] = pid
            if parent_id:
                self._insert_child(parent_id, page)
            for name in labels:
                self._add_label(page, name)
            return page

    def edit_page(
        self,
        page_id: str,
        *,
        body: str | None = None,
        title: str | None = None,
        author: User | str | None = None,
        when: datetime | str | None = None,
        message: str = "",
        minor_edit: bool = False,
    ) -> Page:
        """A new version: number + 1, ``lastModified`` = ``when`` (default: the site clock)."""
        with self.lock:
            self.generation += 1
            page = self._current(page_id)
            renamed = title is not None and title != page.title
            if renamed:
                self._claim_kind_title(page.space_key, title, page.kind, page.created_at)
            page.previous.append(
                VersionInfo(page.version, page.modified_at, page.modified_by, page.title, page.version_message)
            )
            if renamed and page.kind == "page":
                del self._titles[(page.space_key, page.title)]
                self._titles[(page.space_key, title)] = page.id
            if renamed:
                page.title = title
            if body is not None:
                page.body = body
            page.version += 1
            page.modified_at = self.now(when)
            page.modified_by = _account(author) if author else self.default_user.account_id
            page.version_message = message
            page.minor_edit = minor_edit
            return page

    def rename_page(self, page_id: str, title: str, **kwargs) -> Page:
        """A rename is an edit of the title: a new version."""
        return self.edit_page(page_id, title=title, **kwargs)

    def move_page(self, page_id: str, new_parent_id: str, *, position: int | None = None) -> Page:
        """Re-parent a page (and its subtree, across spaces too). Not a new version, as in Confluence."""
        with self.lock:
            self.generation += 1
            page = self._current(page_id)
            parent = self._current(new_parent_id)
            if new_parent_id == page_id or page_id in self.ancestor_ids(new_parent_id):
                raise SiteError("A page cannot be moved under itself")
            if "blogpost" in (page.kind, parent.kind):
                raise SiteError("Blog posts have no place in the page tree")
            if parent.space_key != page.space_key:
                subtree = [page, *self._descendants(page)]
                for p in subtree:
                    if p.status == "current" and p.kind == "page" and (parent.space_key, p.title) in self._titles:
                        raise SiteError(f"A page titled {p.title!r} already exists in {parent.space_key}")
                for p in subtree:
                    if self._titles.get((p.space_key, p.title)) == p.id:
                        del self._titles[(p.space_key, p.title)]
                        self._titles[(parent.space_key, p.title)] = p.id
                    p.space_key = parent.space_key
                    for att_id in p.attachment_ids:
                        self.attachments[att_id].space_key = parent.space_key
            self._unlink_child(page)
            page.parent_id = new_parent_id
            siblings = self._children.setdefault(new_parent_id, [])
            page.position = (
                position if position is not None else ((self.pages[siblings[-1]].position + 1) if siblings else 0)
            )
            self._insert_child(new_parent_id, page)
            return page

    def trash_page(self, page_id: str, *, with_descendants: bool = False) -> Page:
        """Move to the trash. Children move up to the page's parent unless ``with_descendants``."""
        with self.lock:
            self.generation += 1
            page = self._current(page_id)
            if page.parent_id is None and page.kind != "blogpost":
                raise SiteError("A space homepage cannot be trashed")
            if with_descendants:
                for child in self._descendants(page):
                    if child.status == "current":
                        self._set_trashed(child)
            else:
                for child_id in list(self._children.get(page.id, [])):
                    child = self.pages[child_id]
                    if child.status == "current":
                        self.move_page(child_id, page.parent_id)
            self._set_trashed(page)
            return page

    def restore_page(self, page_id: str) -> Page:
        """Back from the trash: under its old parent if that is still current, else under the homepage."""
        with self.lock:
            self.generation += 1
            page = self.page(page_id)
            if page.status != "trashed":
                raise SiteError(f"Page {page_id} is not in the trash")
            self._claim_kind_title(page.space_key, page.title, page.kind, page.created_at)
            parent = self.pages.get(page.parent_id or "")
            if page.kind != "blogpost" and (parent is None or parent.status != "current"):
                self._unlink_child(page)
                page.parent_id = self.spaces[page.space_key].homepage_id
                self._insert_child(page.parent_id, page)
            page.status = "current"
            if page.kind == "page":
                self._titles[(page.space_key, page.title)] = page.id
            return page

    def purge_page(self, page_id: str) -> None:
        """Delete a trashed page for good (Confluence purges only from the trash)."""
        with self.lock:
            self.generation += 1
            page = self.page(page_id)
            if page.status != "trashed":
                raise SiteError(f"Page {page_id} must be trashed before it can be purged")
            self._unlink_child(page)
            for child_id in list(self._children.get(page.id, [])):  # trashed descendants go with it
                if self.pages[child_id].status == "trashed":
                    self.purge_page(child_id)
            for att_id in page.attachment_ids:
                self.attachments.pop(att_id, None)
            self._drop_comments(page.id)  # comments go with their page (sandbox/comments.py)
            self._children.pop(page.id, None)
            del self.pages[page.id]

    def add_label(self, page_id: str, name: str) -> Label:
        """Labels are not versioned in Confluence: the page's version and lastModified stay."""
        with self.lock:
            self.generation += 1
            return self._add_label(self._current(page_id), name)

    def remove_label(self, page_id: str, name: str) -> None:
        with self.lock:
            self.generation += 1
            page = self._current(page_id)
            page.labels = [label for label in page.labels if label.name != name]

    # ----------------------------------------------------------------- reads (also the servers' view)

    def page(self, page_id: str) -> Page:
        try:
            return self.pages[str(page_id)]
        except KeyError:
            raise SiteError(f"No content with id {page_id}") from None

    def page_by_title(self, space_key: str, title: str) -> Page | None:
        with self.lock:
            pid = self._titles.get((space_key, title))
            return self.pages[pid] if pid else None

    def ancestor_ids(self, page_id: str) -> list[str]:
        """Ids from the space root down to the page's parent."""
        with self.lock:
            chain: list[str] = []
            parent = self.page(page_id).parent_id
            while parent is not None:
                chain.append(parent)
                parent = self.pages[parent].parent_id
            chain.reverse()
            return chain

    def child_ids(self, page_id: str, *, status: str = "current") -> list[str]:
        with self.lock:
            return [cid for cid in self._children.get(str(page_id), []) if self.pages[cid].status == status]

    def iter_pages(self, space_key: str | None = None) -> Iterator[Page]:
        for page in list(self.pages.values()):
            if space_key is None or page.space_key == space_key:
                yield page

    def live_pages(self, space_key: str | None = None, *, user: User | str | None = None) -> list[PageSnapshot]:
        """Current pages (optionally only those ``user`` may read), ordered by id, as plain snapshots."""
        with self.lock:
            out = []
            for page in self.iter_pages(space_key):
                if page.status != "current" or (user is not None and not self.can_read(user, page)):
                    continue
                out.append(self.snapshot(page.id))
            return sorted(out, key=lambda s: int(s.id))

    def snapshot(self, page_id: str) -> PageSnapshot:
        with self.lock:
            page = self.page(page_id)
            ancestors = self.ancestor_ids(page.id)
            return PageSnapshot(
                id=page.id,
                space_key=page.space_key,
                title=page.title,
                version=page.version,
                status=page.status,
                parent_id=page.parent_id,
                ancestors=tuple(ancestors),
                ancestor_titles=tuple(self.pages[a].title for a in ancestors),
                created_at=page.created_at,
                last_modified=page.modified_at,
                labels=tuple(label.name for label in page.labels),
                attachments=tuple(a.title for a in self.attachments_of(page.id)),
                body=page.body,
                kind=page.kind,
                ancestor_kinds=tuple(self.pages[a].kind for a in ancestors),
            )

    def search(self, cql: str, *, user: User | str | None = None) -> list[str]:
        """Ids CQL finds (what the search endpoints return, unpaginated); ``user`` applies permissions."""
        from confluence_assets.sandbox.cql import parse

        query = parse(cql)
        with self.lock:
            docs = query.run(self, self.search_documents())
            return [d.id for d in docs if user is None or self.can_read(user, d)]

    def search_documents(self) -> list[Page | Attachment | Comment]:
        """What CQL sees: current pages, their current attachments and their comments. Never anything in
        the trash."""
        with self.lock:
            docs: list[Page | Attachment | Comment] = []
            for page in self.pages.values():
                if page.status == "current":
                    docs.append(page)
                    docs.extend(self.attachments_of(page.id))
                    docs.extend(self.comments_of(page.id, roots_only=False))
            return docs

    def words(self, item: Page | Attachment | Comment, field_name: str) -> frozenset[str]:
        """Lower-cased words of a title or of the page text, cached per version (CQL's ``~``)."""
        from confluence_assets.sandbox.cql import words_of

        version = item.version  # pages and comments: edits are versions; attachments: a new upload
        key = (item.id, version, field_name)
        cached = self._words_cache.get(key)
        if cached is None:
            text = item.title
            if field_name == "text":
                text = f"{item.title} {getattr(item, 'body', '')}"  # attachments: their title only
            cached = words_of(text)
            self._words_cache[key] = cached
        return cached

    # ----------------------------------------------------------------- internals

    def _current(self, page_id: str) -> Page:
        page = self.page(page_id)
        if page.status != "current":
            raise SiteError(f"Page {page_id} is {page.status}")
        return page

    def _claim_title(self, space_key: str, title: str) -> None:
        if not title.strip():
            raise SiteError("A page needs a title")
        if (space_key, title) in self._titles:
            raise SiteError(f"A page with this title already exists in space {space_key}: {title!r}")

    def _set_trashed(self, page: Page) -> None:
        page.status = "trashed"
        if self._titles.get((page.space_key, page.title)) == page.id:
            del self._titles[(page.space_key, page.title)]

    def _insert_child(self, parent_id: str, page: Page) -> None:
        siblings = self._children.setdefault(parent_id, [])
        index = len(siblings)
        while index > 0 and self.pages[siblings[index - 1]].position > page.position:
            index -= 1
        siblings.insert(index, page.id)

    def _unlink_child(self, page: Page) -> None:
        if page.parent_id and page.id in self._children.get(page.parent_id, []):
            self._children[page.parent_id].remove(page.id)

    def _descendants(self, page: Page) -> list[Page]:
        out: list[Page] = []
        stack = list(reversed(self._children.get(page.id, [])))
        while stack:
            child = self.pages[stack.pop()]
            out.append(child)
            stack.extend(reversed(self._children.get(child.id, [])))
        return out

    def _add_label(self, page: Page, name: str) -> Label:
        name = name.strip().lower().replace(" ", "-")  # Confluence stores labels lower-cased, no spaces
        for label in page.labels:
            if label.name == name:
                return label
        label = Label(id=str(_label_id(name)), name=name)
        page.labels.append(label)
        return label


def _account(user: User | str) -> str:
    return user.account_id if isinstance(user, User) else str(user)


def _same(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


def _label_id(name: str) -> int:
    # Label ids are site-wide in Confluence: the same name has the same id on every page.
    return 1_000_000 + int.from_bytes(hashlib.sha1(name.encode()).digest()[:3], "big")  # noqa: S324
