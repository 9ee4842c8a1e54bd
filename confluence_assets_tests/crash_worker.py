"""One sync run of one space partition in a process of its own, so that the crash matrix can SIGKILL it.

    python -m confluence_assets_tests.crash_worker '{"space": "ENG", "db_url": "...", "confluence_url": ...}'

It materializes the sync job's four assets (changed_pages -> page_metadata -> page_chunks ->
chunk_embeddings) for the partition with Dagster's `materialize` on an ephemeral instance, against the
sandbox servers the parent process serves, and exits 0 when the run succeeded, 1 when it failed. With
CONFLUENCE_ASSETS_TEST_CRASH_AT set (see confluence_assets/sync/crashpoints.py) it kills itself there.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    config = json.loads(argv[1])
    import dagster as dg

    from confluence_assets.defs.partitions import SPACES_PARTITIONS_NAME
    from confluence_assets.defs.resources import ConfluenceResource, EmbeddingsResource, PostgresResource
    from confluence_assets_tests.pipeline_support import SYNC_ASSETS

    resources = {
        "confluence": ConfluenceResource(
            url=config["confluence_url"],
            email=config["email"],
            api_token=config["api_token"],
            site_timezone=config.get("site_timezone", "Asia/Seoul"),
            page_size=config.get("page_size", 50),
            backoff_seconds=0.01,
            backoff_max_seconds=0.05,
            retry_after_cap_seconds=0.5,
        ),
        "database": PostgresResource(database_url=config["db_url"]),
        "embeddings": EmbeddingsResource(
            api_key=config["openai_api_key"],
            base_url=config["openai_base_url"],
            dimensions=1536,
            batch_size=config.get("embedding_batch_size", 256),
        ),
    }
    home = config.get("dagster_home")  # an instance from a dagster.yaml (shared storage, pools), else ephemeral
    with dg.DagsterInstance.from_config(home) if home else dg.DagsterInstance.ephemeral() as instance:
        if config["space"] not in instance.get_dynamic_partitions(SPACES_PARTITIONS_NAME):
            instance.add_dynamic_partitions(SPACES_PARTITIONS_NAME, [config["space"]])
        result = dg.materialize(
            SYNC_ASSETS,
            partition_key=config["space"],
            instance=instance,
            resources=resources,
            raise_on_error=False,
            selection=[a.key for a in SYNC_ASSETS],
        )
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
