"""Confluence Cloud's permission model in the sandbox: groups, space permissions, anonymous access and
content restrictions; the ground truth of who may read what; their REST shapes and routes; a generator.

Who may view a page, as Cloud decides it (see README, Sandbox, "Permissions"):

- the space: a ``read``/``space`` permission for the user, for a group the user is in, or for anonymous
  users. Anonymous access opens the space to *every* user, permissions or not;
- the page and every ancestor: where a ``read`` restriction exists, the user must be named in it or be in
  one of its groups (a restriction is inherited by all descendants; nested ones must all be satisfied).
  ``update`` restrictions never limit viewing and are not inherited.

Groups are flat: Cloud groups come from Atlassian administration and do not nest. Every user is in the
default group ``confluence-users`` (product access); a space created without readers grants it ``read``.
No permission change is a new version of any page (CQL on ``lastModified`` cannot see it).
"""

from __future__ import annotations

import hashlib
import random
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from confluence_assets.sandbox.paging import BadParameter, int_param, offset_window

if TYPE_CHECKING:
    from confluence_assets.sandbox.corpus import CorpusInfo
    from confluence_assets.sandbox.httpbase import Request
    from confluence_assets.sandbox.shapes import Renderer, Tree
    from confluence_assets.sandbox.site import Attachment, Page, Site, Space, User

DEFAULT_GROUP = "confluence-users"
OPERATIONS = ("read", "update")  # what content restrictions restrict
SUBJECTS_LIMIT = 100  # users and groups per restriction page (default and cap)
GROUPS_DEFAULT, GROUPS_MAX = 25, 200  # v1 group lists (the cap is the sandbox's choice)


@dataclass(slots=True)
class Group:
    id: str  # a UUID, as Cloud's group ids are
    name: str
    members: set[str] = field(default_factory=set)  # account ids


@dataclass(frozen=True, slots=True)
class Principal:
    type: str  # user | group | anonymous
    id: str = ""  # account id, group id, "" for anonymous


@dataclass(frozen=True, slots=True)
class SpacePermission:
    id: str  # numeric, the same in v1 and v2
    principal: Principal
    operation: str = "read"
    target: str = "space"


@dataclass(frozen=True, slots=True)
class Restriction:
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()  # group ids

    def allows(self, account_id: str | None, group_ids: frozenset[str]) -> bool:
        return account_id in self.users or not self.groups.isdisjoint(group_ids)


def account_of(user: User | str) -> str:
    return str(getattr(user, "account_id", user))


class SitePermissions:
    """The permission half of :class:`Site` (which inherits it): mutations and ground truth."""

    lock: threading.RLock
    generation: int
    name: str
    users: dict[str, User]
    spaces: dict[str, Space]
    pages: dict[str, Page]
    groups: dict[str, Group]
    default_group: Group

    def _init_permissions(self) -> None:
        self.groups = {}
        self._next_permission_id = 360_000_000
        self.default_group = self.add_group(DEFAULT_GROUP)

    @contextmanager
    def _changing(self) -> Iterator[None]:
        with self.lock:
            self.generation += 1
            yield

    # ----------------------------------------------------------------- groups

    def add_group(self, name: str, *, group_id: str | None = None) -> Group:
        with self._changing():
            if any(g.name.lower() == name.lower() for g in self.groups.values()):
                raise self._error(f"A group named {name!r} already exists")
            gid = group_id or str(uuid.UUID(bytes=hashlib.md5(f"{self.name}:group:{name}".encode()).digest()))  # noqa: S324
            group = Group(gid, name)
            self.groups[gid] = group
            return group

    def group(self, group: Group | str) -> Group:
        """A group by object, id or name."""
        with self.lock:
            if isinstance(group, Group):
                return group
            found = self.groups.get(group) or next((g for g in self.groups.values() if g.name == group), None)
            if found is None:
                raise self._error(f"No group {group!r}")
            return found

    def add_to_group(self, group: Group | str, *users: User | str) -> None:
        with self._changing():
            target = self.group(group)
            for user in users:
                if isinstance(user, Group):
                    raise self._error("Confluence Cloud groups do not nest: add users, not groups")
                target.members.add(account_of(user))

    def remove_from_group(self, group: Group | str, *users: User | str) -> None:
        with self._changing():
            target = self.group(group)
            for user in users:
                if account_of(user) not in target.members:
                    raise self._error(f"{account_of(user)} is not a member of {target.name}")
                target.members.discard(account_of(user))

    def groups_of(self, user: User | str | None) -> list[Group]:
        """The user's groups, by name (what ``user/memberof`` lists)."""
        with self.lock:
            account = None if user is None else account_of(user)
            return sorted((g for g in self.groups.values() if account in g.members), key=_group_order)

    def _group_ids(self, account: str | None) -> frozenset[str]:
        return frozenset(g.id for g in self.groups.values() if account in g.members)

    # ----------------------------------------------------------------- space permissions

    def grant_space(
        self, key: str, principal: User | Group | str, operation: str = "read", target: str = "space"
    ) -> SpacePermission:
        """Give a user or a group (object, group id or name; other strings are account ids) an operation."""
        with self._changing():
            return self._grant(self._space_of(key), self._principal(principal), operation, target)

    def revoke_space(self, key: str, principal: User | Group | str, operation: str = "read", target: str = "space"):
        with self._changing():
            space, wanted = self._space_of(key), self._principal(principal)
            kept = [p for p in space.permissions if (p.principal, p.operation, p.target) != (wanted, operation, target)]
            if len(kept) == len(space.permissions):
                raise self._error(f"{wanted.type} {wanted.id} has no {operation}/{target} permission in {key}")
            space.permissions = kept

    def allow_anonymous(self, key: str) -> None:
        """Anonymous users may view the space, and so may every user of the site."""
        with self._changing():
            space = self._space_of(key)
            if not any(p.principal.type == "anonymous" for p in space.permissions):
                self._grant(space, Principal("anonymous"), "read", "space")

    def disallow_anonymous(self, key: str) -> None:
        with self._changing():
            space = self._space_of(key)
            space.permissions = [p for p in space.permissions if p.principal.type != "anonymous"]

    def restrict_space(self, key: str, readers: Iterable[User | Group | str] | User | Group | str) -> None:
        """Only ``readers`` (users and groups) may see the space; for everyone else it does not exist."""
        with self._changing():
            self._set_readers(self._space_of(key), readers)

    def unrestrict_space(self, key: str) -> None:
        """Back to what a new space has: ``read`` for the default group (every user)."""
        with self._changing():
            self._set_readers(self._space_of(key), None)

    def _set_readers(self, space: Space, readers: Iterable[User | Group | str] | User | Group | str | None) -> None:
        space.permissions = [p for p in space.permissions if (p.operation, p.target) != ("read", "space")]
        for principal in [self.default_group] if readers is None else _as_list(readers):
            self._grant(space, self._principal(principal), "read", "space")

    def _grant(self, space: Space, principal: Principal, operation: str, target: str) -> SpacePermission:
        for existing in space.permissions:
            if (existing.principal, existing.operation, existing.target) == (principal, operation, target):
                return existing
        self._next_permission_id += 1
        permission = SpacePermission(str(self._next_permission_id), principal, operation, target)
        space.permissions.append(permission)
        return permission

    def _principal(self, value: User | Group | str) -> Principal:
        if isinstance(value, Group) or (isinstance(value, str) and self._find_group(value)):
            return Principal("group", self.group(value).id)
        return Principal("user", account_of(value))

    def _find_group(self, value: str) -> bool:
        return value in self.groups or any(g.name == value for g in self.groups.values())

    # ----------------------------------------------------------------- content restrictions

    def restrict_page(
        self,
        page_id: str,
        users: Iterable[User | str] | User | str = (),
        *,
        groups: Iterable[Group | str] | Group | str = (),
        operation: str = "read",
    ) -> None:
        """Set the page's ``operation`` restriction to these users and groups (none: no restriction). A
        ``read`` restriction hides the page and its descendants from everyone else. Not a new version."""
        if operation not in OPERATIONS:
            raise self._error(f"Content restrictions are read or update, not {operation!r}")
        with self._changing():
            page = self.page(page_id)
            restriction = Restriction(
                frozenset(account_of(u) for u in _as_list(users)),
                frozenset(self.group(g).id for g in _as_list(groups)),
            )
            if restriction.users or restriction.groups:
                page.restrictions[operation] = restriction
            else:
                page.restrictions.pop(operation, None)

    def unrestrict_page(self, page_id: str, operation: str | None = None) -> None:
        with self._changing():
            page = self.page(page_id)
            for op in OPERATIONS if operation is None else (operation,):
                page.restrictions.pop(op, None)

    # ----------------------------------------------------------------- ground truth

    def can_read_space(self, user: User | str | None, key: str) -> bool:
        """``user`` None is an anonymous visitor."""
        with self.lock:
            space = self.spaces.get(key)
            if space is None:
                return False
            account = None if user is None else account_of(user)
            groups = self._group_ids(account)
            for p in space.permissions:
                if (p.operation, p.target) != ("read", "space"):
                    continue
                who = p.principal
                if who.type == "anonymous" or (account is not None and _holds(who, account, groups)):
                    return True
            return False

    def can_read(self, user: User | str | None, item: Page | Attachment) -> bool:
        """The space permission plus the read restrictions of the page and every ancestor."""
        with self.lock:
            if not self.can_read_space(user, item.space_key):
                return False
            account = None if user is None else account_of(user)
            groups = self._group_ids(account)
            page: Page | None = self.pages.get(getattr(item, "page_id", None) or item.id)
            while page is not None:
                restriction = page.restrictions.get("read")
                if restriction is not None and not restriction.allows(account, groups):
                    return False
                page = self.pages.get(page.parent_id) if page.parent_id else None
            return True

    def readable_page_ids(self, user: User | str | None, space_key: str | None = None) -> set[str]:
        """Ids of the current pages ``user`` may view (in one space, or everywhere); pages only, as
        ``type = page`` lists them (folders, blog posts and other content are not pages)."""
        with self.lock:
            return {
                p.id
                for p in self.pages.values()
                if p.status == "current"
                and p.kind == "page"
                and space_key in (None, p.space_key)
                and self.can_read(user, p)
            }

    def readers_of(self, page_id: str) -> set[str]:
        """Account ids of the site's users who may view the page."""
        with self.lock:
            page = self.page(page_id)
            return {account for account in self.users if self.can_read(account, page)}

    def _space_of(self, key: str) -> Space:
        if key not in self.spaces:
            raise self._error(f"No space with key {key}")
        return self.spaces[key]

    def _error(self, message: str) -> Exception:
        from confluence_assets.sandbox.site import SiteError  # site.py imports this module

        return SiteError(message)


def _holds(principal: Principal, account: str, group_ids: frozenset[str]) -> bool:
    return (principal.type == "user" and principal.id == account) or (
        principal.type == "group" and principal.id in group_ids
    )


def _as_list(value: Iterable[Any] | Any) -> list[Any]:
    return [value] if isinstance(value, str | Group) or hasattr(value, "account_id") else list(value)


def _group_order(group: Group) -> tuple[str, str]:
    return (group.name.lower(), group.id)


# --------------------------------------------------------------------------------------------- shapes


def group_shape(r: Renderer, group: Group) -> dict:
    return {
        "type": "group",
        "name": group.name,
        "id": group.id,
        "usageType": "USERBASE_GROUP",
        "managedBy": "ADMINS",
        "_links": {"self": f"{r.base}/rest/api/group/by-id?id={group.id}"},
    }


def restriction_shape(r: Renderer, page: Page, operation: str, tree: Tree, start: int = 0, limit: int = 0) -> dict:
    """One operation's restriction *on this page only* (inherited ones are not listed, as on Cloud)."""
    limit = limit or SUBJECTS_LIMIT
    restriction = page.restrictions.get(operation) or Restriction()
    out: dict[str, Any] = {"operation": operation}
    if "restrictions" in tree:
        wanted = tree["restrictions"]
        subjects: dict[str, Any] = {}
        if "user" in wanted:
            users = [r.user(a) for a in sorted(restriction.users)[start : start + limit]]
            subjects["user"] = {"results": users, "start": start, "limit": limit, "size": len(users)}
        if "group" in wanted:
            groups = sorted((r.site.groups[g] for g in restriction.groups if g in r.site.groups), key=_group_order)
            shown = [group_shape(r, g) for g in groups[start : start + limit]]
            subjects["group"] = {"results": shown, "start": start, "limit": limit, "size": len(shown)}
        if missing := [k for k in ("user", "group") if k not in wanted]:
            subjects["_expandable"] = {k: "" for k in missing}
        out["restrictions"] = subjects
    if "content" in tree:
        out["content"] = r.content(page)
    expandable = {"restrictions": "", "content": f"/rest/api/content/{page.id}"}
    out["_expandable"] = {k: v for k, v in expandable.items() if k not in tree}
    out["_links"] = {"self": f"{r.base}/rest/api/content/{page.id}/restriction/byOperation/{operation}"}
    return out


def restrictions_expansion(r: Renderer, page: Page, tree: Tree) -> dict:
    """``expand=restrictions.read.restrictions.user,...`` on content: the operations named, level by level."""
    out: dict[str, Any] = {op: restriction_shape(r, page, op, tree[op]) for op in OPERATIONS if op in tree}
    if missing := [op for op in OPERATIONS if op not in tree]:
        out["_expandable"] = {op: "" for op in missing}
    out["_links"] = {"self": f"{r.base}/rest/api/content/{page.id}/restriction/byOperation"}
    return out


def space_permission_v2(permission: SpacePermission) -> dict:
    return {
        "id": permission.id,
        "principal": {"type": permission.principal.type, "id": permission.principal.id},
        "operation": {"key": permission.operation, "targetType": permission.target},
    }


def space_permissions_v1(r: Renderer, space: Space) -> list[dict]:
    """v1 ``space?expand=permissions``: the only place anonymous access shows (``anonymousAccess``)."""
    out = []
    for p in space.permissions:
        item: dict[str, Any] = {"id": int(p.id)}
        if p.principal.type == "user":
            item["subjects"] = {"user": {"results": [r.user(p.principal.id)], "size": 1}, "_expandable": {"group": ""}}
        elif p.principal.type == "group":
            group = group_shape(r, r.site.groups[p.principal.id])
            item["subjects"] = {"group": {"results": [group], "size": 1}, "_expandable": {"user": ""}}
        item["operation"] = {"operation": p.operation, "targetType": p.target}
        item["anonymousAccess"] = p.principal.type == "anonymous"
        item["unlicensedAccess"] = False
        out.append(item)
    return out


# --------------------------------------------------------------------------------------------- routes


class PermissionRoutes:
    """The permission endpoints of :class:`ConfluenceApp` (which inherits them)."""

    def permission_routes(self, v1: str, v2: str) -> list[tuple[str, Callable]]:
        byop = f"{v1}/content/{{id}}/restriction/byOperation"
        return [
            (f"{v1}/group", self.group_list),
            (f"{v1}/group/by-id", self.group_get),
            (f"{v1}/group/{{groupId}}/membersByGroupId", self.group_members),
            (f"{v1}/user/memberof", self.member_of),
            (f"{v1}/content/{{id}}/restriction", self.restrictions_all),
            (byop, self.restrictions_by_operation),
            # One route per operation, so fault rules and stats can name them.
            (f"{byop}/read", partial(self.restriction_for, operation="read")),
            (f"{byop}/update", partial(self.restriction_for, operation="update")),
            (f"{v2}/spaces/{{id}}/permissions", self.v2_space_permissions),
        ]

    def _v1_list(self, request: Request, path: str, items: list, render: Callable, **extra: Any):
        start = int_param(request.param("start"), "start", 0)
        limit = self._limit(request, GROUPS_DEFAULT, GROUPS_MAX)
        window, next_start = offset_window(items, start, limit)
        r = self._renderer()
        results = [render(r, item) for item in window]
        nxt = self._next_offset(request, path, limit, next_start)
        return self._ok(r.envelope(results, start=start, limit=limit, self_path=path, next_path=nxt, **extra))

    def group_list(self, request: Request, user: User):
        groups = sorted(self.site.groups.values(), key=_group_order)  # alphabetical, as documented
        return self._v1_list(request, "/rest/api/group", groups, group_shape)

    def group_get(self, request: Request, user: User):
        group = self.site.groups.get(request.param("id") or "")
        if group is None:
            raise _http_error(404, f"No group found with id : {request.param('id')}")
        out = group_shape(self._renderer(), group)
        return self._ok(out)

    def group_members(self, request: Request, user: User, groupId: str):  # noqa: N803 - the route's name
        group = self.site.groups.get(groupId)
        if group is None:
            raise _http_error(404, f"No group found with id : {groupId}")
        members = sorted(group.members)
        extra = {"totalSize": len(members)} if request.param("shouldReturnTotalSize") == "true" else {}
        path = f"/rest/api/group/{groupId}/membersByGroupId"
        return self._v1_list(request, path, members, lambda r, account: r.user(account), **extra)

    def member_of(self, request: Request, user: User):
        account = request.param("accountId")
        if not account:
            raise BadParameter("accountId is required")
        if account not in self.site.users:
            raise _http_error(404, f"No user found with accountId : {account}")
        return self._v1_list(request, "/rest/api/user/memberof", self.site.groups_of(account), group_shape)

    def _subjects_tree(self, request: Request) -> Tree:
        from confluence_assets.sandbox.shapes import parse_expand

        tree = parse_expand(request.param("expand"))
        tree.setdefault("restrictions", {}).update({"user": {}, "group": {}})  # expanded by default
        return tree

    def _subject_window(self, request: Request) -> tuple[int, int]:
        start = int_param(request.param("start"), "start", 0)
        return start, self._limit(request, SUBJECTS_LIMIT, SUBJECTS_LIMIT)

    def _top_links(self, r: Renderer, path: str) -> dict:
        return {"self": f"{r.base}{path}", "base": r.base, "context": r.context}

    def restriction_for(self, request: Request, user: User, id: str, operation: str):  # noqa: A002
        page, r = self._page(id, user), self._renderer()
        start, limit = self._subject_window(request)
        out = restriction_shape(r, page, operation, self._subjects_tree(request), start, limit)
        out["_links"] = self._top_links(r, f"/rest/api/content/{id}/restriction/byOperation/{operation}")
        return self._ok(out)

    def restrictions_by_operation(self, request: Request, user: User, id: str):  # noqa: A002
        page, r, tree = self._page(id, user), self._renderer(), self._subjects_tree(request)
        out: dict[str, Any] = {op: restriction_shape(r, page, op, tree) for op in OPERATIONS}
        out["_links"] = self._top_links(r, f"/rest/api/content/{id}/restriction/byOperation")
        return self._ok(out)

    def restrictions_all(self, request: Request, user: User, id: str):  # noqa: A002
        page, r, tree = self._page(id, user), self._renderer(), self._subjects_tree(request)
        start, limit = self._subject_window(request)
        results = [restriction_shape(r, page, op, tree, start, limit) for op in OPERATIONS]
        state = repr(sorted((op, sorted(x.users), sorted(x.groups)) for op, x in page.restrictions.items()))
        out = {"results": results, "start": start, "limit": limit, "size": len(results)}
        out["restrictionsHash"] = hashlib.sha256(state.encode()).hexdigest()
        out["_links"] = self._top_links(r, f"/rest/api/content/{id}/restriction")
        return self._ok(out)

    def v2_space_permissions(self, request: Request, user: User, id: str):  # noqa: A002
        space = self._v2_space_by_id(user, id)
        # v2 documents user, group and role principals only: anonymous access shows in v1 (see above).
        perms = sorted((p for p in space.permissions if p.principal.type != "anonymous"), key=lambda p: int(p.id))
        keys = [(int(p.id),) for p in perms]
        return self._v2_list(request, f"/api/v2/spaces/{id}/permissions", perms, keys, space_permission_v2)


def _http_error(status: int, message: str) -> Exception:
    from confluence_assets.sandbox.confluence_server import HttpError  # the server imports this module

    return HttpError(status, message)


# --------------------------------------------------------------------------------------------- generator


@dataclass(frozen=True)
class PermissionSite:
    """What :func:`generate_permissions` made: the corpus, who logs in how, and the cases it set up."""

    corpus: CorpusInfo
    users: dict[str, tuple[str, str]]  # account id -> (e-mail, API token)
    groups: tuple[str, ...]  # group ids, default group excluded
    policies: dict[str, str]  # space key -> what its space permissions are
    anonymous_space: str
    cases: dict[str, str]  # case name -> page id
    outsider: tuple[str, str]  # (account id, page id): in the page's restriction group, not in its space
    sync_group: str  # group id of the service account, in every grant and every read restriction


GROUP_NAMES = (
    "engineering",
    "operations",
    "security-team",
    "finance",
    "hr-confidential",
    "contractors",
    "leadership",
    "support-tier2",
    "data-science",
    "legal-review",
    "design",
    "sales-emea",
)
POLICIES = ("open", "groups", "users-and-group", "anonymous", "team")


def generate_permissions(
    site: Site,
    seed: int = 7,
    users: int = 50,
    groups: int = 10,
    spaces: int = 5,
    pages_per_space: int = 40,
    *,
    service_account: User | None = None,
) -> PermissionSite:
    """A corpus (``generate_corpus``) under a realistic permission scheme, the same for the same seed.

    ``users`` users with credentials, ``groups`` groups (1-3 per user), ``spaces`` spaces (at least 5) with
    the policies of :data:`POLICIES` (anonymous access on one), and read restrictions at several depths:
    a restricted parent with an unrestricted child, a restricted child of an open parent, nested
    restrictions of different groups, an edit-only restriction, a user in a restriction's group who is
    not in the space. ``service_account`` (default: the site's default user) can read everything.
    """
    from confluence_assets.sandbox.corpus import generate_corpus

    if spaces < len(POLICIES) or users < 2 or groups < 4:
        raise ValueError(f"at least {len(POLICIES)} spaces, 2 users and 4 groups")
    rng = random.Random(f"permissions:{seed}")
    corpus = generate_corpus(site, seed, spaces, pages_per_space, large_pages=0)
    service = service_account or site.default_user
    with site.lock:
        sync = site.add_group(f"content-sync-{seed}")
        site.add_to_group(sync, service)
        made = [site.add_group(_group_name(i, seed)) for i in range(groups)]
        logins: dict[str, tuple[str, str]] = {}
        people = []
        for i in range(users):
            account = f"712020:{rng.getrandbits(128):032x}"
            email, token = f"user{i}.{seed}@example.com", f"token-{seed}-{i}"
            people.append(site.add_user(f"User {i} ({seed})", email=email, api_token=token, account_id=account))
            logins[account] = (email, token)
            for group in rng.sample(made, rng.choice((1, 1, 2, 3))):
                site.add_to_group(group, account)
        policies: dict[str, str] = {}
        cases: dict[str, str] = {}
        outsider = ("", "")
        for n, key in enumerate(corpus.space_keys):
            policy = POLICIES[n % len(POLICIES)]
            policies[key] = policy
            g = made[(2 * n) % len(made)], made[(2 * n + 1) % len(made)]
            if policy == "open":
                site.grant_space(key, g[0], "create", "page")
                site.grant_space(key, people[0], "administer", "space")
            elif policy == "groups":
                site.restrict_space(key, [g[0], g[1], sync])
            elif policy == "users-and-group":
                site.restrict_space(key, [*rng.sample(people, 3), g[0], sync])
            elif policy == "anonymous":
                site.restrict_space(key, [g[0], sync])
                site.allow_anonymous(key)
            else:  # team: read for g[0]; a page restricted to g[1], whose lone member has no space access
                site.restrict_space(key, [g[0], sync])
            tree = _tree(site, corpus.page_ids[key])
            made_cases = _restrict_tree(site, rng, key, tree, g, sync, people)
            cases.update({f"{key}:{name}": pid for name, pid in made_cases.items()})
            if policy == "team":
                member = next(p for p in people if g[0].id not in {x.id for x in site.groups_of(p)})
                site.add_to_group(g[1], member)
                outsider = (member.account_id, made_cases["restricted_child_of_open_parent"])
        anonymous = next(k for k, v in policies.items() if v == "anonymous")
    return PermissionSite(corpus, logins, tuple(g.id for g in made), policies, anonymous, cases, outsider, sync.id)


def _group_name(i: int, seed: int) -> str:
    return GROUP_NAMES[i] if i < len(GROUP_NAMES) else f"team-{i}-{seed}"


def _tree(site: Site, ids: tuple[str, ...]) -> dict[str, list[str]]:
    return {pid: site.child_ids(pid) for pid in ids}


def _restrict_tree(
    site: Site,
    rng: random.Random,
    key: str,
    tree: dict[str, list[str]],
    g: tuple[Group, Group],
    sync: Group,
    people: list[User],
) -> dict[str, str]:
    """Read restrictions at several depths of one space's tree; returns the cases by name."""
    home = site.spaces[key].homepage_id or ""
    top = [c for c in tree[home] if tree[c]]  # depth-1 pages with children
    if len(top) < 2:
        raise ValueError(f"space {key} is too small for the permission cases: use more pages_per_space")
    parent, open_parent = top[0], top[1]
    child = tree[parent][0]
    site.restrict_page(parent, groups=[g[0], sync])  # restricted parent ...
    cases = {"restricted_parent": parent, "open_child_of_restricted_parent": child}  # ... its child inherits
    restricted_child = tree[open_parent][0]
    site.restrict_page(restricted_child, groups=[g[1], sync])
    cases["restricted_child_of_open_parent"] = restricted_child
    if len(tree[parent]) > 1:  # nested: both the parent's g[0] and this page's g[1] are needed
        nested = tree[parent][1]
        site.restrict_page(nested, [rng.choice(people)], groups=[g[1], sync])
        cases["nested_restriction"] = nested
    # Cloud folders in the tree: one restricted (its pages inherit it, as below a restricted page), one open.
    closed = site.create_folder(key, f"Board papers {key}", parent_id=home)  # type: ignore[attr-defined]
    site.restrict_page(closed.id, groups=[g[0], sync])
    cases["restricted_folder"] = closed.id
    cases["page_in_restricted_folder"] = site.create_page(
        key, f"Board minutes {key}", "<p>The quarterly board minutes and the audit findings.</p>", parent_id=closed.id
    ).id
    shared = site.create_folder(key, f"Shared papers {key}", parent_id=home)  # type: ignore[attr-defined]
    cases["page_in_open_folder"] = site.create_page(
        key, f"Shared handbook {key}", "<p>The shared handbook for every reader of the space.</p>", parent_id=shared.id
    ).id
    edit_only = next(p for p in reversed(tree[home]) if p not in (parent, open_parent))
    site.restrict_page(edit_only, [rng.choice(people)], operation="update")
    cases["edit_only"] = edit_only
    others = [p for p in tree if p not in (home, open_parent, *cases.values())]
    for pid in rng.sample(others, len(others) // 10):
        site.restrict_page(pid, rng.sample(people, 2), groups=[rng.choice(g), sync])
    return cases
