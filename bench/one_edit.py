"""One page edited, then searchable: timed through a deployed instance (`confluence-assets dev --sandbox`).

    .venv/bin/python bench/one_edit.py [--edits 5] [--pages 60]

Starts the real `dev` command (embedded PostgreSQL, `dagster dev` with webserver and daemon, the run
queue, the sandbox servers), discovers the spaces and syncs the first one through Dagster's GraphQL
API, then `--edits` times: edits one page through atlassian-python-api, submits the space's
`confluence_sync_job` run and polls the database until the edit's text is in the live chunks. Prints,
per edit and as medians: submit -> live (what a user waits), run start -> live (the target: <= 5 s),
and the run's own duration as Dagster records it. Nothing here is a test; tests check behaviour.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

import psycopg
from atlassian import Confluence
from dagster_graphql import DagsterGraphQLClient
from dev_instance import dev_instance, wait_for

from confluence_assets.sandbox.site import DEFAULT_API_TOKEN, DEFAULT_EMAIL

RUN_QUERY = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status startTime endTime } } }"""


def _run(client: DagsterGraphQLClient, run_id: str) -> dict:
    return client._execute(RUN_QUERY, {"id": run_id})["runOrError"]  # noqa: SLF001 - no public run query


def _finished(client: DagsterGraphQLClient, run_id: str) -> dict | None:
    run = _run(client, run_id)
    if run["status"] in ("FAILURE", "CANCELED"):
        raise SystemExit(f"run {run_id} ended {run['status']}")
    return run if run["status"] == "SUCCESS" else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edits", type=int, default=5)
    parser.add_argument("--pages", type=int, default=60, help="pages in the synced sandbox space")
    args = parser.parse_args()

    arguments = ["--sandbox-spaces", "1", "--sandbox-pages", str(args.pages)]
    with dev_instance(arguments, prefix="ca-one-edit-") as dev:
        port = dev.port
        conf_url = re.search(r"sandbox Confluence (\S+)", dev.log).group(1)
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        spaces_run = client.submit_job_execution("confluence_spaces_job")
        wait_for(lambda: _finished(client, spaces_run), 120, "confluence_spaces_job")
        confluence = Confluence(conf_url, username=DEFAULT_EMAIL, password=DEFAULT_API_TOKEN)
        space = confluence.get("rest/api/space", params={"limit": 1})["results"][0]["key"]
        first = client.submit_job_execution("confluence_sync_job", tags={"dagster/partition": space})
        began = time.monotonic()
        wait_for(lambda: _finished(client, first), 600, "the first sync")
        print(f"first sync of {space} ({args.pages} pages): {time.monotonic() - began:.1f} s submit -> done")

        db_url = dev.database_url
        pages = confluence.get("rest/api/content", params={"spaceKey": space, "type": "page", "limit": 50})
        rows = []
        with psycopg.connect(db_url, autocommit=True) as conn:
            for n in range(args.edits):
                target = pages["results"][n % len(pages["results"])]
                marker = f"edit-{n}-{int(time.time() * 1000)}"
                confluence.update_page(target["id"], target["title"], f"<p>The one edit {marker} is live.</p>")
                submitted = time.time()
                run_id = client.submit_job_execution("confluence_sync_job", tags={"dagster/partition": space})

                def live(marker=marker):
                    row = conn.execute(
                        "SELECT 1 FROM archon_crawled_pages WHERE source_id = %s AND content LIKE %s LIMIT 1",
                        (f"confluence_{space}", f"%{marker}%"),
                    ).fetchone()
                    return time.time() if row else None

                live_at = wait_for(live, 300, f"edit {n} in the live chunks", interval=0.05)
                run = wait_for(lambda run_id=run_id: _finished(client, run_id), 120, "the run's end", interval=0.05)
                rows.append((live_at - submitted, live_at - run["startTime"], run["endTime"] - run["startTime"]))
                print(
                    f"edit {n + 1}: submit -> live {rows[-1][0]:5.2f} s, run start -> live {rows[-1][1]:5.2f} s, "
                    f"run duration {rows[-1][2]:5.2f} s"
                )
        medians = [statistics.median(column) for column in zip(*rows, strict=True)]
        print(
            f"median of {len(rows)}: submit -> live {medians[0]:.2f} s, run start -> live {medians[1]:.2f} s "
            f"(target <= 5 s), run duration {medians[2]:.2f} s"
        )


if __name__ == "__main__":
    main()
