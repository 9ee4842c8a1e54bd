"""What every space asset does around its step: the partition's space, the space's lock and a connection,
a timer, failures a user can act on turned into one-line step failures, the step's figures recorded for
the run and shown in the UI, and the pages that failed logged.

Nothing here knows what a step does; the assets in ``assets.py`` call one plain function of
``confluence_assets.sync`` inside :func:`space_step`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import dagster as dg
import psycopg

from confluence_assets.confluence.cql import InvalidTimeZoneError
from confluence_assets.confluence.errors import (
    ConfluenceAuthError,
    ConfluenceConfigError,
    ConfluenceError,
    ConfluenceGoneError,
    ConfluenceNotFoundError,
    ConfluencePermissionError,
    ConfluenceRateLimitError,
    ConfluenceRequestError,
)
from confluence_assets.confluence.keys import InvalidSpaceKeyError, partition_key_to_space_key, source_id_for
from confluence_assets.defs.reporting import failures_table
from confluence_assets.defs.resources import PostgresResource
from confluence_assets.embeddings import EmbeddingAuthError, EmbeddingConfigError, EmbeddingError, EmbeddingQuotaError
from confluence_assets.settings import AutomationSettings
from confluence_assets.sync import sources
from confluence_assets.sync.locks import space_lock
from confluence_assets.sync.spaces import SelectionError

CONFLUENCE_POOL = "confluence_api"  # limits concurrent Confluence-calling steps across runs
STEP_MAX_RETRIES = 2

# Failures a retry cannot mend (credentials, settings, permissions, quota): final, never retried.
FINAL_ERRORS = (
    sources.SourceDeletedError,
    ConfluenceAuthError,
    ConfluenceConfigError,
    ConfluenceGoneError,
    ConfluencePermissionError,
    ConfluenceNotFoundError,
    ConfluenceRateLimitError,
    ConfluenceRequestError,
    EmbeddingAuthError,
    EmbeddingConfigError,
    EmbeddingQuotaError,
    InvalidSpaceKeyError,
    InvalidTimeZoneError,
    SelectionError,
    sources.InvalidStrategyError,
)


def step_retry_policy(automation: AutomationSettings) -> dg.RetryPolicy:
    """Steps that call Confluence or the embeddings provider retry a transient failure (the provider still
    failing after the client's own retries, a lost database connection) twice, ~30 s then ~60 s later."""
    return dg.RetryPolicy(
        max_retries=STEP_MAX_RETRIES,
        delay=automation.step_retry_delay_seconds,
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )


def embeddings_freshness(automation: AutomationSettings) -> dg.FreshnessPolicy:
    """chunk_embeddings warns when no space has synced for the change sensor's interval and fails (stale in
    the UI, alertable) after the margin on top. Dagster evaluates freshness per asset, from its newest
    materialization of any partition: it says the syncs stopped, not which quiet space had no change."""
    interval = max(automation.change_sensor_interval_seconds, 60)  # Dagster's smallest window: 1 minute
    return dg.FreshnessPolicy.time_window(
        fail_window=timedelta(seconds=interval + automation.freshness_margin_seconds),
        warn_window=timedelta(seconds=interval),
    )


@contextmanager
def clear_failures() -> Iterator[None]:
    """Errors a user must act on fail the step with their one-line message as the failure description.
    A transient one is also logged first: Dagster's retry event shows only that a retry was requested."""
    try:
        yield
    except FINAL_ERRORS as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    except (ConfluenceError, EmbeddingError) as exc:
        raise _transient(str(exc)) from None
    except psycopg.OperationalError as exc:
        raise _transient(
            f"lost the database connection ({_first_line(exc)}); staged work is kept and the next "
            "attempt continues from it"
        ) from None


def _transient(description: str) -> dg.Failure:
    dg.get_dagster_logger().warning(f"{description} (the step is retried per its retry policy)")
    return dg.Failure(description=description)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass
class SpaceStep:
    """One asset's work on one space partition, inside the space's lock."""

    context: dg.AssetExecutionContext
    space_key: str
    source_id: str
    conn: psycopg.Connection
    started: float = field(default_factory=time.monotonic)

    def record(self, figures: dict[str, Any]) -> dict[str, Any]:
        """Add this step's figures to the run's totals (archon_sources); returns the totals so far."""
        return sources.record_run_metrics(self.conn, self.source_id, self.context.run_id, figures)

    def progress(self, what: str):
        """A callback for the step's progress lines: ``progress(n)`` logs ``<space>: <n> <what>``."""
        return lambda n: self.context.log.info(f"{self.space_key}: {n} {what}")

    def finish(self, summary: Any, shown: dict[str, Any] | None = None, **kwargs: Any) -> dg.MaterializeResult:
        """Record the step summary's figures for the run and return them, with ``shown``, as the
        materialisation (the failed pages too, when the step has them)."""
        figures = summary.metrics()
        self.record(figures)
        return self.result({**figures, **(shown or {})}, getattr(summary, "failed", None), **kwargs)

    def result(self, metadata: dict[str, Any], failed: list | None = None, **kwargs: Any) -> dg.MaterializeResult:
        """The materialisation: ``metadata`` plus the failed pages (logged, and tabled) and the duration."""
        for failure in failed or ():
            self.context.log.warning(f"page {failure.page_id} ({failure.title}) failed: {failure.error}")
        shown = dict(metadata)
        if failed is not None:
            shown["failed_pages"] = dg.MetadataValue.md(failures_table(failed))
        shown.setdefault("duration_seconds", round(time.monotonic() - self.started, 2))
        return dg.MaterializeResult(metadata=shown, **kwargs)


def partition_space(context: dg.AssetExecutionContext) -> str:
    with clear_failures():
        return partition_key_to_space_key(context.partition_key)


@contextmanager
def space_step(context: dg.AssetExecutionContext, database: PostgresResource) -> Iterator[SpaceStep]:
    """The partition's space, its lock (one writer per space across runs) and an autocommit connection;
    user-fixable failures inside become one-line step failures."""
    space_key = partition_space(context)
    started = time.monotonic()
    source_id = source_id_for(space_key)
    with clear_failures(), space_lock(database.url, source_id), database.connect() as conn:
        yield SpaceStep(context, space_key, source_id, conn, started)
