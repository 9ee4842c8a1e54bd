"""Who a search runs as: a Confluence user, nobody named, or the service account.

Every search path (hybrid search, the metadata queries, the known-item evaluation) takes one of these and
passes it to the SQL, which resolves it once per query with ``confluence_viewer_access()``
(sql/0.1.0/040): a user gets exactly what they may open in Confluence; nobody named gets the pages no
read restriction limits (the database setting ``confluence_search.unidentified_access`` can narrow that
to spaces with anonymous access, or to nothing); the service account gets everything stored, and that is
logged at WARNING.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from confluence_assets.search.errors import SearchError

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_WARNING = "searching as the service account: Confluence permissions not applied"
MAX_IDENTIFIER_LENGTH = 255


class PrincipalError(SearchError):
    """A principal that cannot be searched as (an unknown e-mail, both a user and the service account)."""


@dataclass(frozen=True)
class Principal:
    """``account_id`` None and ``service_account`` False: nobody named (unrestricted pages only)."""

    account_id: str | None = None
    service_account: bool = False

    def __post_init__(self) -> None:
        if self.account_id is not None and self.service_account:
            raise PrincipalError("a search runs as a user or as the service account, not both")

    @property
    def kind(self) -> str:
        if self.service_account:
            return "service_account"
        return "user" if self.account_id is not None else "nobody"

    @property
    def is_nobody(self) -> bool:
        return self.kind == "nobody"

    def sql_params(self) -> dict[str, Any]:
        """``viewer`` and ``admin``: the arguments of confluence_viewer_access() and the search functions;
        ``access``: the resolved access (None until :func:`with_access` fills it in)."""
        return {"viewer": self.account_id, "admin": self.service_account, "access": None}

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "account_id": self.account_id}


NOBODY = Principal()
SERVICE_ACCOUNT = Principal(service_account=True)

# The viewer arguments of confluence_filtered_pages(), with the parameters of Principal.sql_params(). The
# access is resolved first, in a query of its own (with_access), and passed as a value: the planner then
# inlines the page filter with the access as a constant, and every index of the filters serves. Resolved
# inside the same query instead, the access is a sub-select: as an argument (``access => (SELECT
# confluence_viewer_access(...))``) it stops the inlining of confluence_filtered_pages altogether; from the
# viewer arguments alone (access NULL: what these arguments fall back to) it is one InitPlan, but the page
# test is then an opaque call per row whose guessed selectivity can turn an index scan into a sequential one.
VIEWER_ARGUMENTS = sql.SQL(
    "viewer_account_id => %(viewer)s::text, as_service_account => %(admin)s::boolean, "
    "access => %(access)s::confluence_access"
)


def resolve_access(conn: psycopg.Connection, principal: Principal) -> str:
    """What ``principal`` may read (confluence_viewer_access(), sql/0.1.0/040), in its text form."""
    return conn.execute(
        "SELECT confluence_viewer_access(%s::text, %s::boolean)::text",
        (principal.account_id, principal.service_account),
        prepare=False,
    ).fetchone()[0]


def with_access(conn: psycopg.Connection, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` (from Principal.sql_params()) with the access resolved, if it is not yet."""
    if params.get("access") is not None or "viewer" not in params:
        return params
    principal = Principal(account_id=params["viewer"], service_account=bool(params["admin"]))
    return {**params, "access": resolve_access(conn, principal)}


_BY_EMAIL = """SELECT account_id FROM confluence_users
               WHERE email IS NOT NULL AND lower(email) = lower(%s) ORDER BY account_id LIMIT 2"""


def resolve_principal(
    conn: psycopg.Connection, as_user: str | None = None, as_service_account: bool = False
) -> Principal:
    """The principal of a search: ``as_user`` is an account id, or an e-mail looked up (case-insensitively)
    in confluence_users; ``as_service_account`` applies no permission and is logged at WARNING."""
    if as_service_account:
        if as_user is not None:
            raise PrincipalError("--as-user and --as-service-account exclude each other: search as one of them")
        log.warning(SERVICE_ACCOUNT_WARNING)
        return SERVICE_ACCOUNT
    if as_user is None:
        return NOBODY
    value = as_user.strip() if isinstance(as_user, str) else ""
    if not value or len(value) > MAX_IDENTIFIER_LENGTH or not value.isprintable():
        raise PrincipalError("--as-user needs a Confluence account id or the e-mail of a Confluence user")
    if "@" not in value:
        return Principal(account_id=value)
    found = [row[0] for row in conn.execute(_BY_EMAIL, (value,), prepare=False).fetchall()]
    if not found:
        raise PrincipalError(
            "no Confluence user with that e-mail is known (e-mails are learnt from group listings; "
            "a user whose e-mail Confluence hides needs their account id): nothing was searched"
        )
    if len(found) > 1:
        raise PrincipalError("that e-mail belongs to more than one Confluence account: give the account id")
    return Principal(account_id=found[0])
