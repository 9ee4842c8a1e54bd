"""What Confluence's permission answers mean: a page's own read restriction (the
``restrictions.read.restrictions.user/group`` expansion of content and CQL results, completed from
``content/{id}/restriction/byOperation/read`` when a subject list is longer than the expansion shows), who
may read a space (v2 ``spaces/{id}/permissions`` plus v1 ``space/{key}?expand=permissions``, the only place
anonymous access shows), and the members of a group (``group/{id}/membersByGroupId``). Plain functions over
the parsed JSON; the only requests made are through the ``fetch`` callable a caller hands
:func:`settle_read_restriction`.

Fail closed: a restriction is ``ok`` only when the expansion is there and complete; a missing expansion,
a list that may be longer than shown and could not be completed, or a subject without an id make it
``unknown`` (the page and its descendants are hidden until a later read succeeds). ``update``
restrictions never limit viewing and are not read. Cloud's folders (and whiteboards, databases, embeds)
are content too: the same listing brings them with their own read restriction, they are stored on their
pages' paths, and a restriction on one limits everything below it as a restricted page does.

The sync keeps what it did to a payload's restriction under :data:`SYNC_KEY` of ``restrictions.read``:
when the listing that brought it started (``read_at``), whether truncated lists were completed, and why
not (``error``). Conversion reads it back from the staged payload.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluence_assets.confluence import errors

RESTRICTION_EXPAND = "restrictions.read.restrictions.user,restrictions.read.restrictions.group"
SUBJECT_KINDS = ("user", "group")
SUBJECT_PAGE = 100  # subjects per byOperation/read request (Cloud's default and cap)
MAX_SUBJECT_REQUESTS = 100  # per page: 10,000 users or groups, far beyond any real restriction
SYNC_KEY = "_sync"  # ours, inside restrictions.read of a payload
OK, UNKNOWN = "ok", "unknown"
# Errors that say the whole run cannot work: raised, never recorded as one page's unknown restriction.
FATAL = (errors.ConfluenceAuthError, errors.ConfluenceConfigError)


@dataclass(frozen=True, order=True)
class GroupRef:
    id: str  # Cloud: the group's id; Data Center (no ids): its name
    name: str


@dataclass(frozen=True)
class PageRestriction:
    """One page's own read restriction; ``users``/``groups`` empty and ``ok``: no read restriction."""

    page_id: str
    status: str  # ok | unknown
    users: tuple[str, ...] = ()
    groups: tuple[GroupRef, ...] = ()
    error: str | None = None
    read_at: datetime | None = None  # when the listing that brought it started (None: not known)

    @property
    def restricted(self) -> bool:
        return bool(self.users or self.groups)


@dataclass(frozen=True)
class SpaceReaders:
    """Who may view a space: anonymous access (every user then), users and groups with read/space."""

    anonymous: bool
    users: tuple[str, ...]
    groups: tuple[GroupRef, ...]


@dataclass(frozen=True)
class Member:
    account_id: str
    email: str | None
    display_name: str | None


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _read(page: Mapping[str, Any]) -> dict | None:
    """``restrictions.read`` of a content object when both subject lists are expanded, else None."""
    read = _dict(_dict(page.get("restrictions")).get("read"))
    subjects = _dict(read.get("restrictions"))
    if all(isinstance(_dict(subjects.get(k)).get("results"), list) for k in SUBJECT_KINDS):
        return read
    return None


def user_id(user: Mapping[str, Any]) -> str | None:
    """Cloud's accountId; Data Center's userKey (or username)."""
    for key in ("accountId", "userKey", "username"):
        if isinstance(user.get(key), str) and user[key]:
            return user[key]
    return None


def group_ref(group: Mapping[str, Any]) -> GroupRef | None:
    gid, name = group.get("id"), group.get("name")
    if isinstance(gid, str) and gid:
        return GroupRef(gid, name if isinstance(name, str) and name else gid)
    if isinstance(name, str) and name:
        return GroupRef(name, name)
    return None


def _truncated(listing: Mapping[str, Any]) -> bool:
    """A subject list that may go on: as many results (or a ``size``) as its ``limit``, or a larger total."""
    results = listing.get("results") or []
    limit = listing.get("limit")
    size = listing.get("size") if isinstance(listing.get("size"), int) else len(results)
    total = listing.get("totalSize")
    if isinstance(total, int) and total > len(results):
        return True
    return isinstance(limit, int) and limit > 0 and max(size, len(results)) >= limit


def settle_read_restriction(page: dict, fetch: Callable[[int, int], dict], read_at: datetime) -> int:
    """Stamp ``page``'s read restriction with ``read_at`` and complete its truncated subject lists in place
    (``fetch(start, limit)``: one byOperation/read window). Returns the requests made (0 for every page
    whose lists are short). A failure is recorded in the payload (the restriction becomes unknown), not
    raised, unless it is one no page can get past (credentials, settings)."""
    read = _read(page)
    if read is None:
        return 0
    sync = read.setdefault(SYNC_KEY, {})
    sync["read_at"] = read_at.isoformat()
    subjects = read["restrictions"]
    pending = {k: len(subjects[k]["results"]) for k in SUBJECT_KINDS if _truncated(subjects[k])}
    requests = 0
    try:
        while pending:
            if requests >= MAX_SUBJECT_REQUESTS:
                raise errors.ConfluenceUnavailableError(f"more than {MAX_SUBJECT_REQUESTS} windows of subjects")
            start = min(pending.values())
            windows = _dict(fetch(start, SUBJECT_PAGE).get("restrictions"))
            requests += 1
            for kind, offset in list(pending.items()):
                if offset != start:
                    continue
                window = _dict(windows.get(kind))
                got = [s for s in window.get("results") or [] if isinstance(s, dict)]
                subjects[kind]["results"].extend(got)
                limit = window.get("limit") if isinstance(window.get("limit"), int) else SUBJECT_PAGE
                if got and len(got) >= limit:
                    pending[kind] = offset + len(got)
                else:
                    del pending[kind]
        if requests:
            sync["completed"] = True
            for kind in SUBJECT_KINDS:
                subjects[kind]["size"] = len(subjects[kind]["results"])
    except FATAL:
        raise
    except errors.ConfluenceError as exc:
        sync["error"] = f"could not read the rest of its read restriction: {str(exc)[:300]}"
    return requests


def page_restriction(page: Mapping[str, Any]) -> PageRestriction:
    """The page's own read restriction as its payload shows it (see the module docstring)."""
    page_id = str(page.get("id") or "")
    read = _read(page)
    if read is None:
        return PageRestriction(page_id, UNKNOWN, error="its read restriction was not expanded in the listing")
    sync = _dict(read.get(SYNC_KEY))
    read_at = _when(sync.get("read_at"))
    if sync.get("error"):
        return PageRestriction(page_id, UNKNOWN, error=str(sync["error"]), read_at=read_at)
    subjects = read["restrictions"]
    if not sync.get("completed") and any(_truncated(subjects[k]) for k in SUBJECT_KINDS):
        error = "its read restriction names more users or groups than the listing showed, and the rest was not read"
        return PageRestriction(page_id, UNKNOWN, error=error, read_at=read_at)
    users = [user_id(u) for u in subjects["user"]["results"] if isinstance(u, dict)]
    groups = [group_ref(g) for g in subjects["group"]["results"] if isinstance(g, dict)]
    if (
        None in users
        or None in groups
        or len(users) + len(groups) != sum(len(subjects[k]["results"]) for k in SUBJECT_KINDS)
    ):
        return PageRestriction(
            page_id, UNKNOWN, error="its read restriction names a subject without an id", read_at=read_at
        )
    return PageRestriction(
        page_id,
        OK,
        tuple(sorted({u for u in users if u})),
        tuple(sorted({g for g in groups if g})),
        read_at=read_at,
    )


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


def _is_space_read(operation: Mapping[str, Any]) -> bool:
    op = operation.get("key") or operation.get("operation")
    return op == "read" and operation.get("targetType") == "space"


def space_readers(v1_space: Mapping[str, Any], v2_permissions: Iterable[dict] | None) -> SpaceReaders:
    """Who may view the space, from v1 ``space/{key}?expand=permissions`` (anonymous access, group names)
    and the v2 permissions (users and groups); ``v2_permissions`` None (Data Center, no v2): v1 alone.
    Principals other than users and groups (roles) are not followed: their holders are not let in."""
    v1 = [
        p
        for p in v1_space.get("permissions") or []
        if isinstance(p, dict) and _is_space_read(_dict(p.get("operation")))
    ]
    anonymous = any(p.get("anonymousAccess") is True for p in v1)
    v1_users: set[str] = set()
    v1_groups: dict[str, GroupRef] = {}
    for p in v1:
        subjects = _dict(p.get("subjects"))
        for u in _dict(subjects.get("user")).get("results") or []:
            if isinstance(u, dict) and user_id(u):
                v1_users.add(user_id(u) or "")
        for g in _dict(subjects.get("group")).get("results") or []:
            ref = group_ref(g) if isinstance(g, dict) else None
            if ref:
                v1_groups[ref.id] = ref
    if v2_permissions is None:
        return SpaceReaders(anonymous, tuple(sorted(v1_users)), tuple(sorted(v1_groups.values())))
    users: set[str] = set()
    groups: set[GroupRef] = set()
    for p in v2_permissions:
        principal = _dict(p.get("principal"))
        pid = principal.get("id")
        if not _is_space_read(_dict(p.get("operation"))) or not isinstance(pid, str) or not pid:
            continue
        if principal.get("type") == "user":
            users.add(pid)
        elif principal.get("type") == "group":
            groups.add(v1_groups.get(pid) or GroupRef(pid, pid))
    return SpaceReaders(anonymous, tuple(sorted(users)), tuple(sorted(groups)))


def member(user: Mapping[str, Any]) -> Member | None:
    """A user of a group listing (None without an id); an e-mail Confluence hides ("") is None."""
    account = user_id(user)
    if account is None:
        return None
    email = user.get("email") if isinstance(user.get("email"), str) and user.get("email") else None
    name = user.get("displayName") or user.get("publicName")
    return Member(account, email, name if isinstance(name, str) and name else None)
