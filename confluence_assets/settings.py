"""Every setting the product reads from the environment: their names, defaults and validation, in one place.

``load()`` reads the environment once into a typed, frozen :class:`Settings`. The code location calls it
when its definitions load (not when a module is imported), and so do ``search``, ``doctor``, ``dev`` and
the other commands, so a value means the same everywhere and a bad one is refused with the same one-line
message (:class:`SettingsError`, naming the variable and what it accepts). Values that are unset or blank
take their defaults; a missing required value (``CONFLUENCE_URL``, credentials) is not an error here: the
command or step that needs it says so.

Secrets are read as values for the plain clients (``search``, ``doctor``) and wired into Dagster's
resources as the *names* of their variables (``dg.EnvVar``), so the UI never shows them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from confluence_assets.settings_reader import Reader as _Reader

# -- variable names ------------------------------------------------------------------------------------
CONFLUENCE_URL = "CONFLUENCE_URL"
CONFLUENCE_EMAIL = "CONFLUENCE_EMAIL"  # Cloud: email + API token (Basic auth)
CONFLUENCE_API_TOKEN = "CONFLUENCE_API_TOKEN"
CONFLUENCE_PAT = "CONFLUENCE_PAT"  # Data Center: personal access token (Bearer)
CONFLUENCE_SITE_TIMEZONE = "CONFLUENCE_SITE_TIMEZONE"  # IANA name; CQL dates are evaluated in it
CONFLUENCE_RENDERED_MACROS = "CONFLUENCE_RENDERED_MACROS"  # macro kinds whose rendered output is fetched
CONFLUENCE_CONTENT_TYPES = "CONFLUENCE_CONTENT_TYPES"  # page, blogpost: what the sync lists and reconciles
CONFLUENCE_ATTACHMENTS = "CONFLUENCE_ATTACHMENTS"  # on | off: attachments' text indexed with their page
CONFLUENCE_ATTACHMENT_MAX_MB = "CONFLUENCE_ATTACHMENT_MAX_MB"  # larger attachments are listed, not downloaded
CONFLUENCE_ATTACHMENT_TIMEOUT_SECONDS = "CONFLUENCE_ATTACHMENT_TIMEOUT_SECONDS"  # per download and per extraction
CONFLUENCE_ATTACHMENT_MAX_TEXT_CHARS = "CONFLUENCE_ATTACHMENT_MAX_TEXT_CHARS"  # an attachment's text is cut there
CONFLUENCE_COMMENTS = "CONFLUENCE_COMMENTS"  # on | off: footer and inline comments indexed with their page
CONFLUENCE_API_TIMEOUT = "CONFLUENCE_API_TIMEOUT"  # seconds per request
CONFLUENCE_MAX_PAGES_PER_REQUEST = "CONFLUENCE_MAX_PAGES_PER_REQUEST"  # results asked for per listing request
CONFLUENCE_MAX_CONCURRENT_REQUESTS = "CONFLUENCE_MAX_CONCURRENT_REQUESTS"  # in flight to the site, per process
CONFLUENCE_RETRY_ATTEMPTS = "CONFLUENCE_RETRY_ATTEMPTS"  # retries of one request (429, 5xx, network)
CONFLUENCE_SYNC_BATCH_SIZE = "CONFLUENCE_SYNC_BATCH_SIZE"  # pages per transaction of page_metadata, page_chunks
CONFLUENCE_RATE_LIMIT_MAX_WAIT_SECONDS = "CONFLUENCE_RATE_LIMIT_MAX_WAIT_SECONDS"  # a longer 429 fails at once
CONFLUENCE_REQUESTS_PER_SECOND = "CONFLUENCE_REQUESTS_PER_SECOND"  # the site's ceiling across processes; 0: none

OPENAI_API_KEY = "OPENAI_API_KEY"
OPENAI_BASE_URL = "OPENAI_BASE_URL"
EMBEDDING_MODEL = "EMBEDDING_MODEL"
EMBEDDING_DIMENSIONS = "EMBEDDING_DIMENSIONS"
# The model's input limit in its own tokens, for a model embeddings/limits.py does not know; chunks fit it.
EMBEDDING_MAX_INPUT_TOKENS = "EMBEDDING_MAX_INPUT_TOKENS"

DATABASE_URL = "DATABASE_URL"  # the application database; unset: the embedded server
DAGSTER_DATABASE_URL = "DAGSTER_DATABASE_URL"  # Dagster's storage; unset: database "dagster" beside it
DAGSTER_HOME = "DAGSTER_HOME"
CONFLUENCE_ASSETS_HOME = "CONFLUENCE_ASSETS_HOME"  # the embedded server's data and dev's DAGSTER_HOME
CONFLUENCE_ASSETS_SQL_DIR = "CONFLUENCE_ASSETS_SQL_DIR"  # migrations from elsewhere than the package
CONFLUENCE_ASSETS_DAGSTER_STORAGE_URL = "CONFLUENCE_ASSETS_DAGSTER_STORAGE_URL"  # set by dev for dagster.yaml
CONFLUENCE_ASSETS_TEST_CRASH_AT = "CONFLUENCE_ASSETS_TEST_CRASH_AT"  # tests only: see sync/crashpoints.py

CONFLUENCE_SPACES = "CONFLUENCE_SPACES"
CONFLUENCE_EXCLUDE_SPACES = "CONFLUENCE_EXCLUDE_SPACES"
CONFLUENCE_SPACE_TYPES = "CONFLUENCE_SPACE_TYPES"
CONFLUENCE_SPACE_STATUSES = "CONFLUENCE_SPACE_STATUSES"
CONFLUENCE_DELETION_STRATEGY = "CONFLUENCE_DELETION_STRATEGY"
CONFLUENCE_MASS_DELETION_LIMIT = "CONFLUENCE_MASS_DELETION_LIMIT"  # "20%" of a space's live pages, or a count
CONFLUENCE_MASS_DELETION_MIN_PAGES = "CONFLUENCE_MASS_DELETION_MIN_PAGES"  # this many or fewer: never held back
CONFLUENCE_FRESHNESS_MARGIN_SECONDS = "CONFLUENCE_FRESHNESS_MARGIN_SECONDS"  # chunk_embeddings' freshness
# Archon's knowledge_type of the spaces' sources, chunks and pages: "business", or "HR=business,*=technical"
CONFLUENCE_KNOWLEDGE_TYPES = "CONFLUENCE_KNOWLEDGE_TYPES"

CONFLUENCE_CHANGE_SENSOR_INTERVAL_SECONDS = "CONFLUENCE_CHANGE_SENSOR_INTERVAL_SECONDS"
CONFLUENCE_SPACE_SENSOR_INTERVAL_SECONDS = "CONFLUENCE_SPACE_SENSOR_INTERVAL_SECONDS"
CONFLUENCE_RECONCILIATION_CRON = "CONFLUENCE_RECONCILIATION_CRON"
CONFLUENCE_RECONCILIATION_TIMEZONE = "CONFLUENCE_RECONCILIATION_TIMEZONE"
CONFLUENCE_PERMISSIONS_CRON = "CONFLUENCE_PERMISSIONS_CRON"  # the permission refresh of unchanged pages
CONFLUENCE_AUTOMATION_DEFAULT = "CONFLUENCE_AUTOMATION_DEFAULT"  # running | stopped
CONFLUENCE_STEP_RETRY_DELAY_SECONDS = "CONFLUENCE_STEP_RETRY_DELAY_SECONDS"

CONFLUENCE_MCP_AS_USER = "CONFLUENCE_MCP_AS_USER"  # `mcp` over stdio: the principal (account id or e-mail)
CONFLUENCE_MCP_TOKENS_FILE = "CONFLUENCE_MCP_TOKENS_FILE"  # `mcp --http`: bearer tokens -> principals

SANDBOX_HOST = "SANDBOX_HOST"
SANDBOX_CONFLUENCE_PORT = "SANDBOX_CONFLUENCE_PORT"
SANDBOX_EMBEDDINGS_PORT = "SANDBOX_EMBEDDINGS_PORT"
SANDBOX_TIMEZONE = "SANDBOX_TIMEZONE"
SANDBOX_LATENCY = "SANDBOX_LATENCY"
SANDBOX_CONFLUENCE_FAULTS = "SANDBOX_CONFLUENCE_FAULTS"
SANDBOX_EMBEDDINGS_FAULTS = "SANDBOX_EMBEDDINGS_FAULTS"
SANDBOX_RATE_LIMIT = "SANDBOX_RATE_LIMIT"  # a token bucket, e.g. "20" (requests/s) or "capacity=20,fill_rate=10"
SANDBOX_V1_REMOVED = "SANDBOX_V1_REMOVED"  # 1: the deprecated v1 endpoints answer 410 Gone

# -- defaults and accepted values ----------------------------------------------------------------------
DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
DEFAULT_EMBEDDING_DIMENSIONS = 1536
# The embedding columns archon_crawled_pages has.
SUPPORTED_DIMENSIONS = (384, 768, 1024, 1536, 3072)
DELETION_STRATEGIES = ("weekly_reconciliation", "every_sync", "on_demand")
DEFAULT_DELETION_STRATEGY = "weekly_reconciliation"
KNOWLEDGE_TYPES = ("technical", "business")  # what Archon's UI filters on
DEFAULT_KNOWLEDGE_TYPE = "technical"
SPACE_TYPES = ("global", "personal")
SPACE_STATUSES = ("current", "archived")
AUTOMATION_DEFAULTS = ("running", "stopped")
# Macros whose text only Confluence's rendering has (body.export_view, fetched for the pages with them).
RENDERABLE_MACROS = (
    "jira",
    "detailssummary",
    "contentbylabel",
    "recently-updated",
    "tasks-report",
    "include",
    "excerpt-include",
)
DEFAULT_RENDERED_MACROS = RENDERABLE_MACROS
# What a space syncs: pages (with the tree's folders, whiteboards, databases and embeds) and blog posts.
CONTENT_TYPES = ("page", "blogpost")
DEFAULT_CONTENT_TYPES = CONTENT_TYPES
DEFAULT_HOME = "~/.confluence-assets"
SWITCHES = ("on", "off")


class SettingsError(ValueError):
    """A setting has a value the product cannot use; the message names the variable and what it accepts."""


def env(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The variable's value, or None when unset or blank."""
    value = (os.environ if environ is None else environ).get(name)
    return value if value and value.strip() else None


@dataclass(frozen=True)
class ConfluenceSettings:
    url: str | None = None
    email: str | None = None
    api_token: str | None = None
    personal_access_token: str | None = None
    site_timezone: str | None = None
    rendered_macros: tuple[str, ...] = DEFAULT_RENDERED_MACROS
    content_types: tuple[str, ...] = DEFAULT_CONTENT_TYPES
    api_timeout_seconds: float = 30.0
    max_pages_per_request: int = 100  # Confluence caps body-expanded searches at 50 whatever is asked
    max_concurrent_requests: int | None = None  # unset: no bound of our own (the seed's 5 would cut probes' 8)
    retry_attempts: int = 6  # the seed named 3; the client has retried 6 times since its reliability work
    sync_batch_size: int = 50
    rate_limit_max_wait_seconds: float = 120.0
    requests_per_second: float = 0.0  # 0: no ceiling of our own (Confluence's rate limit still applies)


@dataclass(frozen=True)
class AttachmentSettings:
    """What of a page besides its body is indexed with it: its attachments' text and its comments."""

    enabled: bool = True
    max_mb: int = 50
    timeout_seconds: float = 30.0
    # About 100 chunks: a 5 MB CSV export would otherwise be a thousand embeddings of one file.
    max_text_chars: int = 300_000
    comments: bool = True

    @property
    def child_types(self) -> tuple[str, ...]:
        """The CQL types of a page's content the sync follows besides its body: comment, attachment."""
        return (*(("comment",) if self.comments else ()), *(("attachment",) if self.enabled else ()))


@dataclass(frozen=True)
class EmbeddingSettings:
    model: str = DEFAULT_EMBEDDING_MODEL
    dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS
    api_key: str | None = None
    base_url: str | None = None
    max_input_tokens: int | None = None  # None: the model's from embeddings/limits.py's table


@dataclass(frozen=True)
class DatabaseSettings:
    url: str | None = None  # None: the embedded server
    dagster_url: str | None = None
    home: Path = field(default_factory=lambda: Path(DEFAULT_HOME).expanduser())  # CONFLUENCE_ASSETS_HOME
    home_is_set: bool = False
    sql_dir: Path | None = None
    dagster_home: Path | None = None


@dataclass(frozen=True)
class SpaceSelectionSettings:
    include_keys: tuple[str, ...] = ()
    exclude_keys: tuple[str, ...] = ()
    space_types: tuple[str, ...] = ("global",)
    statuses: tuple[str, ...] = ("current",)
    deletion_strategy: str = DEFAULT_DELETION_STRATEGY
    # (space key or "*", knowledge type) pairs; a space not named gets "*"'s, else DEFAULT_KNOWLEDGE_TYPE
    knowledge_types: tuple[tuple[str, str], ...] = ()

    def knowledge_type(self, space_key: str) -> str:
        """Archon's knowledge_type of the space (its Technical/Business filter)."""
        chosen = dict(self.knowledge_types)
        return chosen.get(space_key.upper(), chosen.get("*", DEFAULT_KNOWLEDGE_TYPE))


@dataclass(frozen=True)
class MassDeletionSettings:
    """When a reconciliation holds its deletions back until a user confirms them (sync/deletion_guard.py):
    more than ``percent`` of the space's live pages, or (``pages`` set instead) more than that many; a
    share is never held back at ``min_pages`` deletions or fewer (a small space losing 2 of its 5 pages)."""

    percent: float | None = 20.0
    pages: int | None = None
    min_pages: int = 10


@dataclass(frozen=True)
class AutomationSettings:
    change_sensor_interval_seconds: int = 3600
    space_sensor_interval_seconds: int = 3600
    reconciliation_cron: str = "0 3 * * 0"  # Sundays 03:00
    reconciliation_timezone: str = "UTC"  # also the permission refresh's
    permissions_cron: str = "30 2 * * *"  # daily 02:30
    running_by_default: bool = True  # sensors and the schedule start when the code location loads
    step_retry_delay_seconds: float = 30.0
    # chunk_embeddings is stale (its freshness policy fails) when no space has synced for the change
    # sensor's interval plus this margin (a run queued behind others, its own duration)
    freshness_margin_seconds: int = 3600


@dataclass(frozen=True)
class SandboxSettings:
    host: str = "127.0.0.1"
    confluence_port: int = 8090
    embeddings_port: int = 8091
    timezone: str = "Asia/Seoul"
    latency_seconds: float = 0.0
    confluence_faults: str = ""
    embeddings_faults: str = ""
    rate_limit: str = ""  # sandbox/ratelimits.py parse_rate_limit; empty: no rate limit
    v1_removed: bool = False


@dataclass(frozen=True)
class McpSettings:
    """``confluence-assets mcp``: over stdio it searches as ``as_user`` (unset: nobody named, the same
    fail-closed default as ``search``); over HTTP as the principal each bearer token of ``tokens_file`` maps to."""

    as_user: str | None = None
    tokens_file: Path | None = None


@dataclass(frozen=True)
class Settings:
    confluence: ConfluenceSettings = field(default_factory=ConfluenceSettings)
    embeddings: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    spaces: SpaceSelectionSettings = field(default_factory=SpaceSelectionSettings)
    automation: AutomationSettings = field(default_factory=AutomationSettings)
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    attachments: AttachmentSettings = field(default_factory=AttachmentSettings)
    mass_deletion: MassDeletionSettings = field(default_factory=MassDeletionSettings)
    mcp: McpSettings = field(default_factory=McpSettings)
    # Names of the variables that are set (not their values): what resources wire as EnvVar.
    present: frozenset[str] = frozenset()

    def is_set(self, name: str) -> bool:
        return name in self.present


def _whole(value: float | None) -> int | None:
    return None if value is None else int(value)


def _content_types(r: _Reader) -> tuple[str, ...]:
    """CONFLUENCE_CONTENT_TYPES: page, blogpost or both (at least one: a space syncs something)."""
    raw = r.text(CONFLUENCE_CONTENT_TYPES)
    if raw is None:
        return DEFAULT_CONTENT_TYPES
    types = tuple(dict.fromkeys(item.strip().lower() for item in raw.split(",") if item.strip()))
    if not types or set(types) - set(CONTENT_TYPES):
        r.fail(CONFLUENCE_CONTENT_TYPES, f"{CONFLUENCE_CONTENT_TYPES} must be page, blogpost or both, got {raw!r}")
        return DEFAULT_CONTENT_TYPES
    return types


def _knowledge_types(r: _Reader) -> tuple[tuple[str, str], ...]:
    """CONFLUENCE_KNOWLEDGE_TYPES: a type for every space ("business") or per space ("HR=business,*=technical")."""
    return r.per_space(CONFLUENCE_KNOWLEDGE_TYPES, KNOWLEDGE_TYPES, "'HR=business,*=technical'")


_RATE_OPTION = r"((capacity|fill_rate|interval_seconds|hourly_quota)=[0-9.]+|style=(cloud|datacenter))"
_RATE_LIMIT_SPEC = rf"[0-9.]+|{_RATE_OPTION}(,\s*{_RATE_OPTION})*"  # sandbox/ratelimits.py reads it


def _sandbox_rate_limit(r: _Reader) -> str:
    example = "'20' (requests/s) or 'capacity=20,fill_rate=10,interval_seconds=1,hourly_quota=5000'"
    return r.matching(SANDBOX_RATE_LIMIT, _RATE_LIMIT_SPEC, example)


def _mass_deletion(r: _Reader) -> MassDeletionSettings:
    """CONFLUENCE_MASS_DELETION_LIMIT: a share of the space's live pages ("20%") or a number of pages ("500")."""
    min_pages = int(r.number(CONFLUENCE_MASS_DELETION_MIN_PAGES, 10))
    limit = r.share_or_count(CONFLUENCE_MASS_DELETION_LIMIT, "a space's live pages")
    if limit is None:
        return MassDeletionSettings(min_pages=min_pages)
    return MassDeletionSettings(percent=limit[0], pages=limit[1], min_pages=min_pages)


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings in ``environ`` (default: the process environment); SettingsError names every bad value."""
    loaded, problems = load_reporting(environ)
    if problems:
        raise SettingsError("; ".join(problems.values()))
    return loaded


def load_reporting(environ: Mapping[str, str] | None = None) -> tuple[Settings, dict[str, str]]:
    """The settings with each bad value replaced by its default, and the message about each bad value by
    variable name (what ``doctor`` reports instead of stopping at the first)."""
    environ = os.environ if environ is None else environ
    r = _Reader(environ)
    columns = "the embedding columns of archon_crawled_pages"
    dimensions = r.whole_one_of(EMBEDDING_DIMENSIONS, DEFAULT_EMBEDDING_DIMENSIONS, SUPPORTED_DIMENSIONS, columns)
    home = r.path(CONFLUENCE_ASSETS_HOME)
    settings = Settings(
        confluence=ConfluenceSettings(
            url=r.text(CONFLUENCE_URL),
            email=r.text(CONFLUENCE_EMAIL),
            api_token=r.text(CONFLUENCE_API_TOKEN),
            personal_access_token=r.text(CONFLUENCE_PAT),
            site_timezone=r.zone(CONFLUENCE_SITE_TIMEZONE, None),
            rendered_macros=r.kinds(CONFLUENCE_RENDERED_MACROS, DEFAULT_RENDERED_MACROS, RENDERABLE_MACROS),
            content_types=_content_types(r),
            api_timeout_seconds=float(r.number(CONFLUENCE_API_TIMEOUT, 30.0, kind=float, minimum=1)),
            max_pages_per_request=int(r.number(CONFLUENCE_MAX_PAGES_PER_REQUEST, 100, minimum=1, maximum=1000)),
            max_concurrent_requests=_whole(r.number(CONFLUENCE_MAX_CONCURRENT_REQUESTS, None, minimum=1)),
            retry_attempts=int(r.number(CONFLUENCE_RETRY_ATTEMPTS, 6)),
            sync_batch_size=int(r.number(CONFLUENCE_SYNC_BATCH_SIZE, 50, minimum=1)),
            rate_limit_max_wait_seconds=float(r.number(CONFLUENCE_RATE_LIMIT_MAX_WAIT_SECONDS, 120.0, kind=float)),
            requests_per_second=float(r.number(CONFLUENCE_REQUESTS_PER_SECOND, 0.0, kind=float)),
        ),
        embeddings=EmbeddingSettings(
            model=r.text(EMBEDDING_MODEL) or DEFAULT_EMBEDDING_MODEL,
            dimensions=dimensions,
            api_key=r.text(OPENAI_API_KEY),
            base_url=r.text(OPENAI_BASE_URL),
            max_input_tokens=_whole(r.number(EMBEDDING_MAX_INPUT_TOKENS, None, minimum=64)),
        ),
        database=DatabaseSettings(
            url=r.text(DATABASE_URL),
            dagster_url=r.text(DAGSTER_DATABASE_URL),
            home=(home or Path(DEFAULT_HOME).expanduser()).resolve(),
            home_is_set=home is not None,
            sql_dir=r.path(CONFLUENCE_ASSETS_SQL_DIR),
            dagster_home=r.path(DAGSTER_HOME),
        ),
        spaces=SpaceSelectionSettings(
            include_keys=r.space_keys(CONFLUENCE_SPACES),
            exclude_keys=r.space_keys(CONFLUENCE_EXCLUDE_SPACES),
            space_types=r.items(CONFLUENCE_SPACE_TYPES, ("global",), SPACE_TYPES),
            statuses=r.items(CONFLUENCE_SPACE_STATUSES, ("current",), SPACE_STATUSES),
            deletion_strategy=r.choice(CONFLUENCE_DELETION_STRATEGY, DEFAULT_DELETION_STRATEGY, DELETION_STRATEGIES),
            knowledge_types=_knowledge_types(r),
        ),
        automation=AutomationSettings(
            change_sensor_interval_seconds=int(r.number(CONFLUENCE_CHANGE_SENSOR_INTERVAL_SECONDS, 3600, minimum=1)),
            space_sensor_interval_seconds=int(r.number(CONFLUENCE_SPACE_SENSOR_INTERVAL_SECONDS, 3600, minimum=1)),
            reconciliation_cron=r.cron(CONFLUENCE_RECONCILIATION_CRON, "0 3 * * 0"),
            reconciliation_timezone=r.zone(CONFLUENCE_RECONCILIATION_TIMEZONE, "UTC") or "UTC",
            permissions_cron=r.cron(CONFLUENCE_PERMISSIONS_CRON, "30 2 * * *"),
            running_by_default=r.choice(CONFLUENCE_AUTOMATION_DEFAULT, "running", AUTOMATION_DEFAULTS) == "running",
            step_retry_delay_seconds=float(r.number(CONFLUENCE_STEP_RETRY_DELAY_SECONDS, 30.0, kind=float)),
            freshness_margin_seconds=int(r.number(CONFLUENCE_FRESHNESS_MARGIN_SECONDS, 3600, minimum=60)),
        ),
        sandbox=SandboxSettings(
            host=r.text(SANDBOX_HOST) or "127.0.0.1",
            confluence_port=int(r.number(SANDBOX_CONFLUENCE_PORT, 8090)),
            embeddings_port=int(r.number(SANDBOX_EMBEDDINGS_PORT, 8091)),
            timezone=r.text(SANDBOX_TIMEZONE) or "Asia/Seoul",
            latency_seconds=float(r.number(SANDBOX_LATENCY, 0.0, kind=float)),
            confluence_faults=r.text(SANDBOX_CONFLUENCE_FAULTS) or "",
            embeddings_faults=r.text(SANDBOX_EMBEDDINGS_FAULTS) or "",
            rate_limit=_sandbox_rate_limit(r),
            v1_removed=r.choice(SANDBOX_V1_REMOVED, "no", ("0", "1", "true", "false", "yes", "no"))
            in ("1", "true", "yes"),
        ),
        attachments=AttachmentSettings(
            enabled=r.choice(CONFLUENCE_ATTACHMENTS, "on", SWITCHES) == "on",
            max_mb=int(r.number(CONFLUENCE_ATTACHMENT_MAX_MB, 50, minimum=1)),
            timeout_seconds=float(r.number(CONFLUENCE_ATTACHMENT_TIMEOUT_SECONDS, 30.0, kind=float, minimum=1)),
            max_text_chars=int(r.number(CONFLUENCE_ATTACHMENT_MAX_TEXT_CHARS, 300_000, minimum=1000)),
            comments=r.choice(CONFLUENCE_COMMENTS, "on", SWITCHES) == "on",
        ),
        mass_deletion=_mass_deletion(r),
        mcp=McpSettings(as_user=r.text(CONFLUENCE_MCP_AS_USER), tokens_file=r.path(CONFLUENCE_MCP_TOKENS_FILE)),
        present=frozenset(name for name in _NAMES if env(name, environ)),
    )
    return settings, r.errors


_NAMES = tuple(
    value for key, value in dict(globals()).items() if key.isupper() and isinstance(value, str) and key == value
)
