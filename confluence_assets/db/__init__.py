"""Database plumbing with no Dagster in it: where the database is, connections, migrations."""
