"""Database URL helpers: masking secrets for display and deriving Dagster's storage URL."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (URL or key=value form)."""
    if "://" not in url:
        return _KV_PASSWORD.sub(r"\1***", url)
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo:
            user, _, password = userinfo.partition(":")
            userinfo = f"{user}:***" if password else f"{user}:"
        netloc = f"{userinfo}@{hostport}"
    query = urlencode(
        [(k, "***" if k.lower() == "password" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)],
        safe="/*",
    )
    # Built by hand: urlunsplit drops the "//" of an empty host (socket URLs: postgresql:///db?host=/dir).
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def with_database(url: str, database: str) -> str:
    """Return ``url`` pointing at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


def sqlalchemy_psycopg2_url(url: str) -> str:
    """Dagster's storage URL: SQLAlchemy 2.1 maps plain ``postgresql://`` to psycopg 3, which breaks
    dagster-postgres's NOTIFY statements, so name the psycopg2 driver explicitly."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme == "postgres":
        scheme = "postgresql"
    return urlunsplit((f"{scheme}+psycopg2", parts.netloc, parts.path, parts.query, parts.fragment))
