"""Jobs: discover spaces; sync one space partition; reconcile one space partition; refresh permissions
(partitioning comes from the selected assets, named by key so the jobs need no settings)."""

import dagster as dg

confluence_spaces_job = dg.define_asset_job(
    name="confluence_spaces_job",
    selection=["confluence_spaces"],
    description="List the visible Confluence spaces, apply the selection and update the space partitions.",
)

confluence_sync_job = dg.define_asset_job(
    name="confluence_sync_job",
    selection=["changed_pages", "page_metadata", "page_attachments", "page_chunks", "chunk_embeddings"],
    description="Sync one space: changed pages -> metadata -> chunks -> embeddings (one run per space).",
)

confluence_reconciliation_job = dg.define_asset_job(
    name="confluence_reconciliation_job",
    selection=[
        "page_reconciliation",
        "page_permissions",
        "page_metadata",
        "page_attachments",
        "page_chunks",
        "chunk_embeddings",
    ],
    description=(
        "Reconcile one space: soft-delete pages gone from Confluence, then bring in the changes CQL missed, "
        "moved and restored pages, and refresh the permissions of every page (one run per space)."
    ),
)

confluence_permissions_job = dg.define_asset_job(
    name="confluence_permissions_job",
    selection=[
        "page_permissions",
        "page_metadata",
        "page_attachments",
        "page_chunks",
        "chunk_embeddings",
        "confluence_groups",
    ],
    description=(
        "Refresh permissions: page_permissions for one space partition (a run per space), then the pages it "
        "staged again (withdrawn or moved) through metadata, chunks and embeddings; or confluence_groups "
        "(site-wide group membership, a run of its own)."
    ),
)


@dg.definitions
def defs() -> dg.Definitions:
    # Every run executes its steps in the run worker's own process. The sync steps form one chain, so the
    # multiprocess default bought no parallelism, only a new Python process per step (3-4 s of imports
    # each, before any work: most of a one-page edit's time to search). Retries, pools and the run
    # queue work the same in process; a killed run worker is retried as a whole run (dagster.yaml), and
    # every step continues from durable staging. Attachment text is still extracted in worker processes.
    # A module with a definitions function contributes only what that function returns.
    jobs = [confluence_spaces_job, confluence_sync_job, confluence_reconciliation_job, confluence_permissions_job]
    return dg.Definitions(jobs=jobs, executor=dg.in_process_executor)
