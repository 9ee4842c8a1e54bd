"""Space keys: validation before any request, and their Dagster partition keys."""

from __future__ import annotations

import re

SPACE_KEY_PATTERN = re.compile(r"[A-Za-z0-9_~-]+")
SOURCE_ID_PREFIX = "confluence_"


class InvalidSpaceKeyError(ValueError):
    """A value that is not a Confluence space key; nothing was sent to Confluence."""


def validate_space_key(key: object) -> str:
    """Return ``key`` if it is a space key (``[A-Za-z0-9_~-]+``), else raise InvalidSpaceKeyError."""
    if not isinstance(key, str) or not SPACE_KEY_PATTERN.fullmatch(key) or len(key) > 255:
        shown = repr(key)[:80]
        raise InvalidSpaceKeyError(
            f"invalid Confluence space key {shown}: a space key contains only letters, digits, '_', '-' "
            "and a leading '~' for personal spaces"
        )
    return key


def source_id_for(space_key: str) -> str:
    """The archon_sources.source_id of a space."""
    return SOURCE_ID_PREFIX + validate_space_key(space_key)


# Dagster accepts '~' in partition keys (it rejects '...', control characters, and ',' '|' '/' break UI
# selection), and every valid space key is made of safe characters only, so the mapping is the identity,
# guarded by validation in both directions. It stays a pair of functions so that a future key format
# can be encoded reversibly in one place.
def space_key_to_partition_key(space_key: str) -> str:
    return validate_space_key(space_key)


def partition_key_to_space_key(partition_key: str) -> str:
    return validate_space_key(partition_key)
