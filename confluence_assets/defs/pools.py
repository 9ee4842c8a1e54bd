"""The Dagster pools this code location's steps claim, created once before any run needs them.

Dagster creates a pool's slots the first time a step claims it. When several runs reach that moment at
once on PostgreSQL storage (a backfill of many spaces), all but one fail with a UniqueViolation on
``concurrency_limits`` (Dagster 1.13), and the losers' runs fail. Creating the pools up front, from one
process (``confluence-assets dev``, or ``confluence-assets migrate`` with DAGSTER_HOME set), removes
the race. The limit stays "from default": dagster.yaml's ``concurrency.pools.default_limit`` governs it.
"""

from __future__ import annotations

import dagster as dg

from confluence_assets.defs.execution import CONFLUENCE_POOL

POOLS = (CONFLUENCE_POOL,)


def prepare_pools(instance: dg.DagsterInstance) -> dict[str, int]:
    """Create each of our pools that the instance does not know yet; {pool: its slot limit}."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return {}
    known = storage.get_concurrency_keys()
    limits: dict[str, int] = {}
    for pool in POOLS:
        if pool not in known:
            storage.initialize_concurrency_limit_to_default(pool)
        limits[pool] = storage.get_concurrency_info(pool).slot_count
    return limits


def prepare_pools_in(dagster_home: str) -> dict[str, int]:
    """:func:`prepare_pools` for the instance configured by ``dagster_home``'s dagster.yaml."""
    with dg.DagsterInstance.from_config(dagster_home) as instance:
        return prepare_pools(instance)
