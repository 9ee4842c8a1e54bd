"""Jobs: discover spaces; sync one space partition; reconcile one space partition (partitioning comes from
the selected assets, named by key so the jobs need no settings)."""

import dagster as dg

confluence_spaces_job = dg.define_asset_job(
    name="confluence_spaces_job",
    selection=["confluence_spaces"],
    description="List the visible Confluence spaces, apply the selection and update the space partitions.",
)

confluence_sync_job = dg.define_asset_job(
    name="confluence_sync_job",
    selection=["changed_pages", "page_metadata", "page_chunks", "chunk_embeddings"],
    description="Sync one space: changed pages -> metadata -> chunks -> embeddings (one run per space).",
)

confluence_reconciliation_job = dg.define_asset_job(
    name="confluence_reconciliation_job",
    selection=["page_reconciliation", "page_metadata", "page_chunks", "chunk_embeddings"],
    description=(
        "Reconcile one space: soft-delete pages gone from Confluence, then bring in the changes CQL missed, "
        "moved and restored pages (one run per space)."
    ),
)
