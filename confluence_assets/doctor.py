"""``confluence-assets doctor``: checks a user can act on, one line each, never printing a secret."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from confluence_assets import settings
from confluence_assets.db import migrations, vector_indexes
from confluence_assets.db.connection import resolve_database

MIN_SERVER_VERSION_NUM = 140000  # PostgreSQL 14: the oldest the schema and search SQL are written for


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""

    def line(self) -> str:
        text = f"{'OK  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"
        if not self.ok and self.hint:
            text += f"\n     fix: {self.hint}"
        return text


def run_checks(database_url: str | None = None, *, online: bool = True) -> list[Check]:
    """Every check; ``online`` also makes one request to Confluence with the configured credentials."""
    config, problems = settings.load_reporting()
    checks = _database_checks(database_url, config.embeddings.dimensions)
    settings_check = _confluence_check(config.confluence)
    checks.append(settings_check)
    checks.append(_request_limits(config.confluence))
    if online and settings_check.ok:
        checks.append(_confluence_reachable(config.confluence))
    checks.extend(_embedding_checks(config.embeddings, problems.pop(settings.EMBEDDING_DIMENSIONS, None)))
    checks.extend(Check("settings", False, message, f"fix or unset {name}") for name, message in problems.items())
    return checks


def _database_checks(database_url: str | None, dimensions: int = settings.DEFAULT_EMBEDDING_DIMENSIONS) -> list[Check]:
    try:
        target = resolve_database(database_url)
    except Exception as exc:  # the embedded server failed to start
        return [
            Check(
                "database",
                False,
                f"embedded PostgreSQL did not start: {exc}",
                f"see ${settings.CONFLUENCE_ASSETS_HOME}/pgdata/log, or set {settings.DATABASE_URL} to your own "
                "PostgreSQL",
            )
        ]
    where = "embedded" if target.embedded else settings.DATABASE_URL
    try:
        with psycopg.connect(target.url, autocommit=True, connect_timeout=10) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            number = int(conn.execute("SHOW server_version_num").fetchone()[0])
            if number < MIN_SERVER_VERSION_NUM:
                return [
                    Check(
                        "database",
                        False,
                        f"{where} {target.masked} is PostgreSQL {version}; 14 or newer is required",
                        f"upgrade that server, or unset {settings.DATABASE_URL} to use the embedded PostgreSQL",
                    )
                ]
            checks = [Check("database", True, f"{where} {target.masked} (PostgreSQL {version})")]
            checks.append(_vector_check(conn))
            checks.append(_migrations_check(conn))
            checks.extend(_archon_checks(conn, dimensions))
            return checks
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [
            Check(
                "database",
                False,
                f"{where} {target.masked} unreachable: {reason}",
                f"check host, port, user and password in {settings.DATABASE_URL}, or unset it to use the embedded "
                "server",
            )
        ]


def _vector_check(conn: psycopg.Connection) -> Check:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    if row:
        return Check("pgvector", True, f"extension vector {row[0]}")
    available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    if available:
        return Check("pgvector", False, "available but not created", "run: confluence-assets migrate")
    return Check(
        "pgvector",
        False,
        "the server has no pgvector extension",
        "install pgvector on that server (https://github.com/pgvector/pgvector#installation)",
    )


def _archon_checks(conn: psycopg.Connection, dimensions: int) -> list[Check]:
    """On an Archon database: the dimension Archon's server can see, and ivfflat indexes built before the
    rows they index (db/vector_indexes.py)."""
    if conn.execute("SELECT to_regclass('archon_crawled_pages') IS NULL").fetchone()[0]:
        return []
    checks = []
    if vector_indexes.is_archon_database(conn):
        if dimensions == vector_indexes.ARCHON_DIMENSION:
            checks.append(Check("archon", True, f"{dimensions}-d embeddings: Archon's server searches them too"))
        else:
            checks.append(
                Check(
                    "archon",
                    False,
                    f"{settings.EMBEDDING_DIMENSIONS}={dimensions}: Archon's server searches only embedding_1536, "
                    "so the Confluence chunks are invisible to Archon's own tools (our search still finds them)",
                    f"for Archon's tools, use a 1536-d model ({settings.EMBEDDING_DIMENSIONS}=1536) and re-sync",
                )
            )
    for index in vector_indexes.ivfflat_indexes(conn):
        if index.skewed:
            checks.append(
                Check(
                    f"index {index.name}",
                    False,
                    f"ivfflat (lists = {index.lists}) built on an empty or much smaller table: {index.newer_share:.0%} "
                    f"of its {index.rows} rows came after it, in lists computed without them (one probe finds "
                    f"{index.one_probe_recall:.0%} of a stored vector's 10 nearest); searches miss neighbours",
                    f"rebuild it on the data: psql -c '{index.rebuild}'",
                )
            )
        else:
            checks.append(
                Check(
                    f"index {index.name}",
                    True,
                    f"ivfflat (lists = {index.lists}), {index.rows} rows, one probe finds {index.one_probe_recall:.0%}",
                )
            )
    return checks


def _migrations_check(conn: psycopg.Connection) -> Check:
    try:
        states = migrations.status(conn)
    except migrations.MigrationError as exc:
        return Check("migrations", False, str(exc), "reinstall the package")
    changed = [s for s in states if s.state == "changed"]
    todo = [s for s in states if s.state in ("pending", "unverified")]
    if changed:
        names = ", ".join(f"{s.migration.version}/{s.migration.name}" for s in changed)
        return Check("migrations", False, f"edited after being applied: {names}", "restore those files from git")
    if todo:
        names = ", ".join(f"{s.migration.version}/{s.migration.name}" for s in todo)
        return Check("migrations", False, f"{len(todo)} pending: {names}", "run: confluence-assets migrate")
    return Check("migrations", True, f"{len(states)} applied, checksums match")


def _confluence_check(confluence: settings.ConfluenceSettings) -> Check:
    url = confluence.url
    if not url:
        return Check(
            "confluence",
            False,
            f"{settings.CONFLUENCE_URL} is not set",
            f"export {settings.CONFLUENCE_URL}=https://your-site.atlassian.net/wiki (or your Data Center base URL)",
        )
    from confluence_assets.confluence.errors import ConfluenceConfigError
    from confluence_assets.confluence.sites import CLOUD_SITE, site_form

    try:
        form = site_form(url, bearer=bool(confluence.personal_access_token))
    except ConfluenceConfigError as exc:
        return Check("confluence", False, str(exc), "see the README's supported URL and credential forms")
    email, token = confluence.email, confluence.api_token
    if form.bearer and form.kind == CLOUD_SITE:
        return Check("confluence", False, form.describe(), form.refusal_hint(401))
    if form.bearer or (email and token):
        return Check("confluence", True, form.describe(email))
    missing = [n for n, v in ((settings.CONFLUENCE_EMAIL, email), (settings.CONFLUENCE_API_TOKEN, token)) if not v]
    return Check(
        "confluence",
        False,
        f"{url} has no credentials ({', '.join(missing)} not set)",
        f"Cloud: set {settings.CONFLUENCE_EMAIL} and {settings.CONFLUENCE_API_TOKEN}; "
        f"Data Center: set {settings.CONFLUENCE_PAT}",
    )


def _request_limits(confluence: settings.ConfluenceSettings) -> Check:
    """How the client talks to Confluence (the values in effect; a refused one is reported separately)."""
    pages = confluence.max_pages_per_request
    return Check(
        "confluence requests",
        True,
        f"{settings.CONFLUENCE_API_TIMEOUT}={confluence.api_timeout_seconds:g} s, "
        f"{settings.CONFLUENCE_MAX_PAGES_PER_REQUEST}={pages} (searches with bodies: {min(pages, 50)}), "
        f"{settings.CONFLUENCE_MAX_CONCURRENT_REQUESTS}={confluence.max_concurrent_requests or 'none'}, "
        f"{settings.CONFLUENCE_RETRY_ATTEMPTS}={confluence.retry_attempts}, "
        f"{settings.CONFLUENCE_SYNC_BATCH_SIZE}={confluence.sync_batch_size}, "
        f"{settings.CONFLUENCE_RATE_LIMIT_MAX_WAIT_SECONDS}={confluence.rate_limit_max_wait_seconds:g} s, "
        f"{settings.CONFLUENCE_REQUESTS_PER_SECOND}="
        + (f"{confluence.requests_per_second:g}/s" if confluence.requests_per_second else "none"),
    )


def _confluence_reachable(confluence: settings.ConfluenceSettings) -> Check:
    """One cheap authenticated request (the first space), with the change probe's short timeout."""
    from confluence_assets.confluence.client import PROBE_RETRY, PROBE_TIMEOUT_SECONDS, ConfluenceAPI
    from confluence_assets.confluence.errors import (
        ConfluenceAuthError,
        ConfluenceConfigError,
        ConfluenceError,
        ConfluenceNotFoundError,
        ConfluencePermissionError,
    )

    name = "confluence reachable"
    try:
        api = ConfluenceAPI(
            confluence.url or "",
            email=confluence.email,
            api_token=confluence.api_token,
            personal_access_token=confluence.personal_access_token,
            timeout_seconds=min(confluence.api_timeout_seconds, PROBE_TIMEOUT_SECONDS),
            retry=PROBE_RETRY,
        )
        try:
            first_space = next(api.list_spaces(), None)  # v2 on Cloud, v1 on Data Center
            site = api.site_base
        finally:
            api.close()
    except (ConfluenceAuthError, ConfluencePermissionError) as exc:
        return Check(name, False, str(exc), "check the credentials (a new API token or PAT if it was revoked)")
    except (ConfluenceConfigError, ConfluenceNotFoundError) as exc:
        return Check(
            name, False, str(exc), f"check {settings.CONFLUENCE_URL} (Cloud: https://<site>.atlassian.net/wiki)"
        )
    except ConfluenceError as exc:
        return Check(name, False, str(exc), "check the network path to that host, or try again later")
    via = f" (site {site}, through {api.url})" if site != api.url else ""
    if first_space is None:
        return Check(name, True, f"authenticated, but these credentials see no space{via}")
    return Check(name, True, f"authenticated; spaces are visible{via}")


def _embedding_checks(embeddings: settings.EmbeddingSettings, dimensions_problem: str | None) -> list[Check]:
    """``dimensions_problem``: settings' message when EMBEDDING_DIMENSIONS was refused."""
    model = embeddings.model
    base_url = embeddings.base_url or "https://api.openai.com/v1"
    checks = []
    if embeddings.api_key:
        checks.append(Check("embeddings", True, f"{model} at {base_url}, API key set"))
    else:
        checks.append(
            Check(
                "embeddings",
                False,
                f"{settings.OPENAI_API_KEY} is not set ({model} at {base_url})",
                f"export {settings.OPENAI_API_KEY}=... (any value for a local OpenAI-compatible server)",
            )
        )
    if dimensions_problem is None:
        checks.append(Check("embedding dimensions", True, str(embeddings.dimensions)))
    else:
        hint = f"use one of {', '.join(map(str, settings.SUPPORTED_DIMENSIONS))}"
        checks.append(Check("embedding dimensions", False, dimensions_problem, hint))
    return checks
