"""Configurable resources, and the code location's resources built from the loaded settings.

Secrets come in through EnvVar, so the UI shows the variable's name, never its value; optional settings
are wired only when set, so Cloud (email + token) and Data Center (PAT) set-ups both load. The plain
clients the resources build know nothing about Dagster.
"""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import psycopg
from pydantic import Field, PrivateAttr

from confluence_assets import settings
from confluence_assets.confluence.client import PROBE_RETRY, PROBE_TIMEOUT_SECONDS, ConfluenceAPI, RetryPolicy
from confluence_assets.confluence.cql import site_zone
from confluence_assets.confluence.errors import ConfluenceConfigError
from confluence_assets.db import migrations
from confluence_assets.db.connection import connect, resolve_database
from confluence_assets.db.request_budget import SiteRequestBudget
from confluence_assets.db.urls import mask_url
from confluence_assets.embeddings import Embedder
from confluence_assets.embeddings.limits import chunk_token_limit
from confluence_assets.settings import (
    DEFAULT_CONTENT_TYPES,
    DEFAULT_DELETION_STRATEGY,
    DEFAULT_EMBEDDING_DIMENSIONS,
    DEFAULT_EMBEDDING_MODEL,
    DEFAULT_RENDERED_MACROS,
)


class ConfluenceResource(dg.ConfigurableResource):
    """Confluence Cloud (email + API token, Basic) or Data Center (personal access token, Bearer)."""

    url: str = Field(
        description="Base URL: https://your-site.atlassian.net/wiki, https://api.atlassian.com/ex/confluence/<cloudId> "
        "(a scoped token) or a Data Center URL"
    )
    email: str | None = Field(default=None, description="Cloud: the account's email")
    api_token: str | None = Field(default=None, description="Cloud: an API token (use an EnvVar)")
    personal_access_token: str | None = Field(default=None, description="Data Center: a PAT (use an EnvVar)")
    site_timezone: str | None = Field(
        default=None,
        description="IANA zone Confluence evaluates CQL dates in (e.g. Asia/Seoul). Unset: a 12 h safety margin",
    )
    timeout_seconds: float = Field(default=30.0, description="Per-request timeout")
    max_retries: int = Field(default=6, description="Retries on 429/5xx/connection errors per request")
    backoff_seconds: float = Field(default=0.5, description="First retry delay; doubles each retry")
    backoff_max_seconds: float = Field(default=30.0, description="Cap of the exponential backoff")
    retry_after_cap_seconds: float = Field(default=120.0, description="Cap on a server's Retry-After")
    rate_limit_max_wait_seconds: float = Field(
        default=120.0, description="A 429 asking to wait longer (an exhausted hourly quota) fails the step at once"
    )
    max_concurrent_requests: int | None = Field(
        default=None, description="Requests in flight to the site at once, per process; unset: no bound"
    )
    requests_per_second: float = Field(
        default=0.0,
        description="The site's requests/s ceiling, shared by all runs and sensors via the database; 0: none",
    )
    budget_database_url: str | None = Field(
        default=None, description="Where the shared request budget lives (DATABASE_URL; unset: the embedded server)"
    )
    page_size: int = Field(default=50, description="Results per search request (Confluence caps it at 50 with body)")
    overlap_minutes: int = Field(default=10, description="How far before the watermark each sync looks again")
    rendered_macros: list[str] = Field(
        default_factory=lambda: list(DEFAULT_RENDERED_MACROS),
        description="Macro kinds whose rendered output (body.export_view) is fetched for the pages that have "
        "them, one request per 50 such pages (jira, detailssummary, contentbylabel, recently-updated, "
        "tasks-report, include, excerpt-include); empty: none",
    )
    content_types: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CONTENT_TYPES),
        description="What each space syncs: page (with the tree's folders, whiteboards, databases, embeds), "
        "blogpost, or both",
    )

    def api(self) -> ConfluenceAPI:
        return self._client(
            self.timeout_seconds,
            RetryPolicy(
                max_retries=self.max_retries,
                backoff_seconds=self.backoff_seconds,
                backoff_max_seconds=self.backoff_max_seconds,
                retry_after_cap_seconds=self.retry_after_cap_seconds,
                rate_limit_max_wait_seconds=self.rate_limit_max_wait_seconds,
            ),
        )

    def probe_api(self) -> ConfluenceAPI:
        """A client for the change sensor's probes: at most the probe's timeout, retries and Retry-After
        cap (confluence_assets.confluence.client.PROBE_RETRY), whatever the sync's settings allow, so a
        slow or rate-limited space cannot hold a sensor tick up."""
        return self._client(
            min(self.timeout_seconds, PROBE_TIMEOUT_SECONDS),
            RetryPolicy(
                max_retries=min(self.max_retries, PROBE_RETRY.max_retries),
                backoff_seconds=min(self.backoff_seconds, PROBE_RETRY.backoff_seconds),
                backoff_max_seconds=min(self.backoff_max_seconds, PROBE_RETRY.backoff_max_seconds),
                jitter_seconds=PROBE_RETRY.jitter_seconds,
                retry_after_cap_seconds=min(self.retry_after_cap_seconds, PROBE_RETRY.retry_after_cap_seconds),
                rate_limit_max_wait_seconds=self.rate_limit_max_wait_seconds,
            ),
        )

    def _client(self, timeout_seconds: float, retry: RetryPolicy) -> ConfluenceAPI:
        if not self.url:
            raise ConfluenceConfigError(f"{settings.CONFLUENCE_URL} is not set")
        return ConfluenceAPI(
            self.url,
            email=self.email,
            api_token=self.api_token,
            personal_access_token=self.personal_access_token,
            timeout_seconds=timeout_seconds,
            retry=retry,
            page_size=self.page_size,
            max_concurrent_requests=self.max_concurrent_requests,
            request_gate=self._request_gate(),
        )

    def _request_gate(self) -> SiteRequestBudget | None:
        if self.requests_per_second <= 0:
            return None
        url = resolve_database(self.budget_database_url).url
        return SiteRequestBudget(url, self.url, self.requests_per_second)

    def zone(self) -> ZoneInfo | None:
        return site_zone(self.site_timezone)

    @property
    def overlap(self) -> timedelta:
        return timedelta(minutes=self.overlap_minutes)


class DatabaseUnavailableError(RuntimeError):
    """The application database cannot be reached or used; the message names what to check."""


class PostgresResource(dg.ConfigurableResource):
    """The application database: DATABASE_URL, or the embedded PostgreSQL when unset. Pending migrations
    are applied before a step runs (a no-op when up to date)."""

    database_url: str | None = Field(default=None, description="PostgreSQL URL (use an EnvVar); unset: embedded")
    _url: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        url = resolve_database(self.database_url).url
        try:
            migrations.migrate(url)
        except psycopg.OperationalError as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DatabaseUnavailableError(
                f"cannot use the database {mask_url(url)}: {reason}: check DATABASE_URL (host, port, user, "
                "password, database), or unset it to use the embedded server"
            ) from None
        self._url = url

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = resolve_database(self.database_url).url
        return self._url

    def connect(self) -> psycopg.Connection:
        """An autocommit connection: the sync steps manage their own transactions."""
        return connect(self.url, autocommit=True)


class EmbeddingsResource(dg.ConfigurableResource):
    """OpenAI or any OpenAI-compatible embeddings server."""

    model: str = Field(default=DEFAULT_EMBEDDING_MODEL)
    dimensions: int = Field(default=DEFAULT_EMBEDDING_DIMENSIONS, description="384, 768, 1024, 1536 or 3072")
    api_key: str = Field(description="OPENAI_API_KEY (use an EnvVar)")
    base_url: str | None = Field(default=None, description="OPENAI_BASE_URL for an OpenAI-compatible server")
    max_input_tokens: int | None = Field(
        default=None, description="Model input limit in its tokens (EMBEDDING_MAX_INPUT_TOKENS); None: known"
    )
    batch_size: int = Field(default=256, description="Inputs per request (max 2048)")
    max_retries: int = Field(default=5)
    timeout_seconds: float = Field(default=60.0)

    def embedder(self) -> Embedder:
        return Embedder(
            model=self.model,
            dimensions=self.dimensions,
            api_key=self.api_key,
            base_url=self.base_url,
            batch_size=self.batch_size,
            max_retries=self.max_retries,
            timeout_seconds=self.timeout_seconds,
            max_input_tokens=self.chunk_token_limit(),
        )

    def chunk_token_limit(self) -> int:
        """The largest chunk the model reads whole, in the chunker's units (embeddings/limits.py)."""
        return chunk_token_limit(self.model, self.max_input_tokens)


class SpaceSelectionResource(dg.ConfigurableResource):
    """Which spaces become partitions, and each new space's deletion strategy."""

    include_keys: list[str] = Field(default_factory=list, description="Only these keys (empty: all)")
    exclude_keys: list[str] = Field(default_factory=list, description="Never these keys")
    space_types: list[str] = Field(default_factory=lambda: ["global"], description="global and/or personal")
    statuses: list[str] = Field(default_factory=lambda: ["current"], description="current and/or archived")
    deletion_strategy: str = Field(
        default=DEFAULT_DELETION_STRATEGY, description="New spaces: weekly_reconciliation, every_sync or on_demand"
    )
    deletion_strategies: dict[str, str] = Field(
        default_factory=dict, description="Per-space deletion strategy overrides, e.g. {'DOCS': 'every_sync'}"
    )
    knowledge_types: dict[str, str] = Field(
        default_factory=dict,
        description="Archon's knowledge_type per space key, '*' for the rest (default technical): {'HR': 'business'}",
    )

    def choice(self) -> dict:
        """Keyword arguments for confluence_assets.sync.spaces.refresh_spaces."""
        return dict(
            include_keys=self.include_keys,
            exclude_keys=self.exclude_keys,
            space_types=self.space_types,
            statuses=self.statuses,
            default_deletion_strategy=self.deletion_strategy,
            deletion_strategies=self.deletion_strategies,
            knowledge_types=settings.SpaceSelectionSettings(knowledge_types=tuple(self.knowledge_types.items())),
        )


def _env_var(loaded: settings.Settings, name: str) -> dg.EnvVar | None:
    """The variable by name when it is set (its value stays out of the resource's config and the UI)."""
    return dg.EnvVar(name) if loaded.is_set(name) else None


def build_resources(loaded: settings.Settings) -> dict[str, dg.ConfigurableResource]:
    return {
        "confluence": ConfluenceResource(
            url=dg.EnvVar(settings.CONFLUENCE_URL),
            email=_env_var(loaded, settings.CONFLUENCE_EMAIL),
            api_token=_env_var(loaded, settings.CONFLUENCE_API_TOKEN),
            personal_access_token=_env_var(loaded, settings.CONFLUENCE_PAT),
            site_timezone=_env_var(loaded, settings.CONFLUENCE_SITE_TIMEZONE),
            rendered_macros=list(loaded.confluence.rendered_macros),
            content_types=list(loaded.confluence.content_types),
            timeout_seconds=loaded.confluence.api_timeout_seconds,
            max_retries=loaded.confluence.retry_attempts,
            page_size=loaded.confluence.max_pages_per_request,
            max_concurrent_requests=loaded.confluence.max_concurrent_requests,
            rate_limit_max_wait_seconds=loaded.confluence.rate_limit_max_wait_seconds,
            requests_per_second=loaded.confluence.requests_per_second,
            budget_database_url=_env_var(loaded, settings.DATABASE_URL),
        ),
        "database": PostgresResource(database_url=_env_var(loaded, settings.DATABASE_URL)),
        "embeddings": EmbeddingsResource(
            model=loaded.embeddings.model,
            dimensions=loaded.embeddings.dimensions,
            api_key=dg.EnvVar(settings.OPENAI_API_KEY),
            base_url=_env_var(loaded, settings.OPENAI_BASE_URL),
            max_input_tokens=loaded.embeddings.max_input_tokens,
        ),
        "space_selection": SpaceSelectionResource(
            include_keys=list(loaded.spaces.include_keys),
            exclude_keys=list(loaded.spaces.exclude_keys),
            space_types=list(loaded.spaces.space_types),
            statuses=list(loaded.spaces.statuses),
            deletion_strategy=loaded.spaces.deletion_strategy,
            knowledge_types=dict(loaded.spaces.knowledge_types),
        ),
    }


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(resources=build_resources(settings.load()))
