"""Which spaces to sync: the visible spaces filtered by include/exclude keys, type and status."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from confluence_assets.confluence.keys import SPACE_KEY_PATTERN, validate_space_key
from confluence_assets.confluence.responses import Space
from confluence_assets.settings import SPACE_STATUSES, SPACE_TYPES, SpaceSelectionSettings
from confluence_assets.sync import sources


class SelectionError(ValueError):
    """The space selection names an unknown type or status."""


@dataclass
class Selection:
    selected: list[Space] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    invalid_keys: list[str] = field(default_factory=list)
    missing_includes: list[str] = field(default_factory=list)


def validate_selection(
    include_keys: list[str] = (), exclude_keys: list[str] = (), space_types=("global",), statuses=("current",)
) -> None:
    """Reject a bad selection before any request is made."""
    for key in [*include_keys, *exclude_keys]:
        validate_space_key(key)
    for value, allowed, what in ((space_types, SPACE_TYPES, "space type"), (statuses, SPACE_STATUSES, "status")):
        unknown = set(value) - set(allowed)
        if unknown:
            raise SelectionError(f"unknown {what} {sorted(unknown)}: use {', '.join(allowed)}")


def select_spaces(
    spaces: Iterable[Space],
    *,
    include_keys: list[str] = (),
    exclude_keys: list[str] = (),
    space_types: list[str] = ("global",),
    statuses: list[str] = ("current",),
) -> Selection:
    validate_selection(include_keys, exclude_keys, space_types, statuses)
    include, exclude = set(include_keys), set(exclude_keys)
    result = Selection()
    seen = set()
    for space in spaces:
        seen.add(space.key)
        if not SPACE_KEY_PATTERN.fullmatch(space.key):
            result.invalid_keys.append(space.key)
        elif (
            (include and space.key not in include)
            or space.key in exclude
            or space.type not in space_types
            or space.status not in statuses
        ):
            result.excluded.append(space.key)
        else:
            result.selected.append(space)
    result.missing_includes = sorted(include - seen)
    return result


@dataclass
class SpaceRefresh:
    selection: Selection
    visible: int
    added: list[str]
    removed: list[str]
    deleted_in_archon: list[str] = field(default_factory=list)  # selected, but their source was deleted


def refresh_spaces(
    api,
    conn,
    existing_keys: list[str],
    *,
    include_keys: list[str] = (),
    exclude_keys: list[str] = (),
    space_types: list[str] = ("global",),
    statuses: list[str] = ("current",),
    default_deletion_strategy: str = sources.DEFAULT_DELETION_STRATEGY,
    deletion_strategies: dict[str, str] | None = None,
    knowledge_types: SpaceSelectionSettings | None = None,
) -> SpaceRefresh:
    """List the visible spaces, upsert a source row per selected space, mark dropped ones removed.

    Returns which partition keys to add and remove; applying them is the caller's (asset or sensor).
    """
    validate_selection(include_keys, exclude_keys, space_types, statuses)
    overrides = {validate_space_key(k): v for k, v in (deletion_strategies or {}).items()}
    visible = [Space.from_api(data, api.site_base) for data in api.list_spaces()]
    selection = select_spaces(
        visible, include_keys=include_keys, exclude_keys=exclude_keys, space_types=space_types, statuses=statuses
    )
    with conn.transaction():
        # A source the user deleted in Archon stays deleted: its partition goes, its row is not re-created.
        deleted = sources.deleted_by_user(conn, [s.key for s in selection.selected])
        wanted = {s.key for s in selection.selected} - deleted
        added, removed = sorted(wanted - set(existing_keys)), sorted(set(existing_keys) - wanted)
        for space in selection.selected:
            if space.key in deleted:
                continue
            sources.upsert_space(
                conn,
                space,
                base_url=api.site_base,
                default_deletion_strategy=default_deletion_strategy,
                deletion_strategy=overrides.get(space.key),
                knowledge_type=(knowledge_types or SpaceSelectionSettings()).knowledge_type(space.key),
            )
        for key in removed:
            sources.mark_removed(conn, key)
    return SpaceRefresh(
        selection=selection, visible=len(visible), added=added, removed=removed, deleted_in_archon=sorted(deleted)
    )


def restore_space(database_url: str | None, space_key: str) -> str:
    """``confluence-assets restore-space KEY``: select again a space whose source the user deleted in
    Archon (its tombstone forgotten); the next space refresh creates its source and syncs it in full."""
    from confluence_assets.db.connection import connect, resolve_database

    with connect(resolve_database(database_url).url, autocommit=True) as conn:
        return sources.restore(conn, space_key)
