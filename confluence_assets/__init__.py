"""confluence-assets: a Dagster asset pipeline that keeps a Confluence site searchable in PostgreSQL + pgvector."""

__version__ = "0.1.0"
