"""Environment variable names shared by the CLI, the Dagster resources and the doctor.

Kept in one place so that a user reading the README, ``doctor`` output and the resource config sees the
same names. Values are read where they are used; secrets are never logged.
"""

from __future__ import annotations

import os

CONFLUENCE_URL = "CONFLUENCE_URL"
CONFLUENCE_EMAIL = "CONFLUENCE_EMAIL"  # Cloud: email + API token (Basic auth)
CONFLUENCE_API_TOKEN = "CONFLUENCE_API_TOKEN"
CONFLUENCE_PAT = "CONFLUENCE_PAT"  # Data Center: personal access token (Bearer)
CONFLUENCE_SITE_TIMEZONE = "CONFLUENCE_SITE_TIMEZONE"  # IANA name; CQL dates are evaluated in it

OPENAI_API_KEY = "OPENAI_API_KEY"
OPENAI_BASE_URL = "OPENAI_BASE_URL"
EMBEDDING_MODEL = "EMBEDDING_MODEL"
EMBEDDING_DIMENSIONS = "EMBEDDING_DIMENSIONS"

DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
DEFAULT_EMBEDDING_DIMENSIONS = 1536
# The embedding columns archon_crawled_pages has.
SUPPORTED_DIMENSIONS = (384, 768, 1024, 1536, 3072)


def env(name: str) -> str | None:
    """The variable's value, or None when unset or blank."""
    value = os.environ.get(name)
    return value if value and value.strip() else None
