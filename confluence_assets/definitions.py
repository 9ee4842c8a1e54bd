"""The code location: one Definitions object, loaded by workspace.yaml (and `dagster dev -m`).

Resources read their settings from environment variables. Optional settings are wired as EnvVar only
when set, so Cloud (email + token) and Data Center (PAT) set-ups both load, and secrets appear in the UI
as variable names, never values.
"""

from __future__ import annotations

import os

import dagster as dg

from confluence_assets import settings
from confluence_assets.defs.assets import (
    changed_pages,
    chunk_embeddings,
    confluence_spaces,
    page_chunks,
    page_metadata,
    page_reconciliation,
)
from confluence_assets.defs.automation import (
    confluence_change_sensor,
    confluence_reconciliation_schedule,
    confluence_space_sensor,
)
from confluence_assets.defs.jobs import confluence_reconciliation_job, confluence_spaces_job, confluence_sync_job
from confluence_assets.defs.resources import (
    ConfluenceResource,
    EmbeddingsResource,
    PostgresResource,
    SpaceSelectionResource,
)


def _optional_env(name: str) -> dg.EnvVar | None:
    return dg.EnvVar(name) if settings.env(name) else None


def _list_env(name: str, default: list[str]) -> list[str]:
    value = settings.env(name)
    return [item.strip() for item in value.split(",") if item.strip()] if value else default


def build_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "confluence": ConfluenceResource(
            url=dg.EnvVar(settings.CONFLUENCE_URL),
            email=_optional_env(settings.CONFLUENCE_EMAIL),
            api_token=_optional_env(settings.CONFLUENCE_API_TOKEN),
            personal_access_token=_optional_env(settings.CONFLUENCE_PAT),
            site_timezone=_optional_env(settings.CONFLUENCE_SITE_TIMEZONE),
        ),
        "database": PostgresResource(database_url=_optional_env("DATABASE_URL")),
        "embeddings": EmbeddingsResource(
            model=settings.env(settings.EMBEDDING_MODEL) or settings.DEFAULT_EMBEDDING_MODEL,
            dimensions=int(settings.env(settings.EMBEDDING_DIMENSIONS) or settings.DEFAULT_EMBEDDING_DIMENSIONS),
            api_key=dg.EnvVar(settings.OPENAI_API_KEY),
            base_url=_optional_env(settings.OPENAI_BASE_URL),
        ),
        "space_selection": SpaceSelectionResource(
            include_keys=_list_env("CONFLUENCE_SPACES", []),
            exclude_keys=_list_env("CONFLUENCE_EXCLUDE_SPACES", []),
            space_types=_list_env("CONFLUENCE_SPACE_TYPES", ["global"]),
            statuses=_list_env("CONFLUENCE_SPACE_STATUSES", ["current"]),
            deletion_strategy=os.environ.get("CONFLUENCE_DELETION_STRATEGY") or "weekly_reconciliation",
        ),
    }


defs = dg.Definitions(
    assets=[confluence_spaces, changed_pages, page_reconciliation, page_metadata, page_chunks, chunk_embeddings],
    jobs=[confluence_spaces_job, confluence_sync_job, confluence_reconciliation_job],
    sensors=[confluence_change_sensor, confluence_space_sensor],
    schedules=[confluence_reconciliation_schedule],
    resources=build_resources(),
)
