"""The asset checks of chunk_embeddings, one table: name, what it guarantees, severity, and the plain check
of confluence_assets.sync.checks that decides it. chunk_embeddings evaluates them after its swap.

And the mass-deletion guard's blocking check on the assets that reconcile (page_reconciliation, and
changed_pages for spaces reconciled with every sync): it fails when deletions were held back, so the
run stops there until the user confirms them or fixes the cause."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import dagster as dg
import psycopg

from confluence_assets.defs.partitions import confluence_spaces_partitions_def
from confluence_assets.sync import checks
from confluence_assets.sync.reconcile import ReconcileSummary
from confluence_assets.sync.sources import SyncState

MASS_DELETION_CHECK = "no_mass_deletion_unconfirmed"


@dataclass(frozen=True)
class CheckInputs:
    conn: psycopg.Connection
    space_key: str
    model: str
    dimensions: int
    state_before: SyncState
    watermark: datetime | None


@dataclass(frozen=True)
class SpaceCheck:
    name: str
    description: str
    evaluate: Callable[[CheckInputs], checks.CheckOutcome]
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR


SPACE_CHECKS = (
    SpaceCheck(
        "every_live_page_has_chunks",
        "Every live page of the space has at least one chunk",
        lambda i: checks.pages_without_chunks(i.conn, i.space_key),
    ),
    SpaceCheck(
        "every_chunk_embedded",
        "No chunk of the space lacks an embedding for the configured dimension",
        lambda i: checks.chunks_without_embedding(i.conn, i.space_key, i.dimensions),
    ),
    SpaceCheck(
        "no_orphan_chunks",
        "No chunk belongs to a deleted or unknown page",
        lambda i: checks.orphan_chunks(i.conn, i.space_key),
    ),
    SpaceCheck(
        "embedding_model_matches",
        "Every chunk is embedded with the configured model and dimension",
        lambda i: checks.embedding_dimension_matches(i.conn, i.space_key, i.model, i.dimensions),
    ),
    SpaceCheck(
        "watermark_current",
        "The watermark reached the newest change this sync saw (nothing left staged)",
        lambda i: checks.watermark_current(i.state_before, i.watermark, i.conn),
        dg.AssetCheckSeverity.WARN,  # reconciliation's requeued pages catch up on the next sync
    ),
)
CHECKS = {check.name: check.description for check in SPACE_CHECKS}


def check_specs(asset: str) -> list[dg.AssetCheckSpec]:
    """One check per space partition, so the UI shows each space's results. Partitioned checks are a
    Dagster preview feature; its warning would otherwise greet every process that loads the code."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(
                check.name, asset=asset, description=check.description, partitions_def=confluence_spaces_partitions_def
            )
            for check in SPACE_CHECKS
        ]


def check_results(asset: str, inputs: CheckInputs) -> list[dg.AssetCheckResult]:
    results = []
    for check in SPACE_CHECKS:
        outcome = check.evaluate(inputs)
        results.append(
            dg.AssetCheckResult(
                check_name=check.name,
                asset_key=asset,
                passed=outcome.passed,
                description=outcome.description,
                metadata=outcome.metadata,
                severity=check.severity,
            )
        )
    return results


def mass_deletion_check_spec(asset: str) -> dg.AssetCheckSpec:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            MASS_DELETION_CHECK,
            asset=asset,
            description=(
                "Reconciliation deleted no more of the space's live pages than CONFLUENCE_MASS_DELETION_LIMIT "
                "allows without confirm_mass_deletion (blocking: the run stops until confirmed or fixed)"
            ),
            partitions_def=confluence_spaces_partitions_def,
            blocking=True,
        )


def mass_deletion_result(asset: str, reconciled: ReconcileSummary | None, confirmed: bool) -> dg.AssetCheckResult:
    """Failed, with the counts and a sample of the pages, when deletions were held back; ``reconciled``
    None: the run did not reconcile (a sync of a space whose deletions wait for its weekly reconciliation)."""
    held_back = reconciled.held_back if reconciled else None
    deleted = len(reconciled.deleted) if reconciled else None
    if held_back is not None:
        return dg.AssetCheckResult(
            check_name=MASS_DELETION_CHECK,
            asset_key=asset,
            passed=False,
            description=held_back.describe(),
            metadata={
                "would_delete": held_back.would_delete,
                "live_pages": held_back.live_pages,
                "percent": round(held_back.percent, 1),
                "limit": held_back.limit,
                "sample": dg.MetadataValue.json([{"page_id": p, "title": t} for p, t in held_back.sample]),
            },
        )
    if deleted is None:
        description = "this sync did not reconcile: nothing deleted"
    elif confirmed:
        description = f"{deleted} pages deleted (confirm_mass_deletion)"
    else:
        description = f"{deleted} pages deleted, within the limit"
    return dg.AssetCheckResult(
        check_name=MASS_DELETION_CHECK,
        asset_key=asset,
        passed=True,
        description=description,
        metadata={"deleted": deleted or 0, "confirmed": confirmed},
    )
