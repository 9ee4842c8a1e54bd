"""The sync steps as plain functions over a psycopg connection (no Dagster in here).

One step per asset: stage_changes (changed_pages), convert_staged (page_metadata), chunk_staged
(page_chunks), embed_and_swap (chunk_embeddings), and reconcile_space (page_reconciliation). State between
steps lives in the staging tables of sql/0.1.0/020, never in memory, so any step can be re-run and a
killed run is picked up by the next one. The steps are siblings: they share ``staging`` (the stages a
page goes through), ``page_tree`` (confluence_pages' tree) and ``sources`` (a space's source row and
sync state), never each other.
"""
