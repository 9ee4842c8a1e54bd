"""Our access to Confluence, on top of atlassian-python-api (no Dagster in here)."""
