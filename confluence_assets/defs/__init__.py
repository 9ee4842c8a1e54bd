"""Dagster definitions: thin wrappers that call the plain modules (sync/, content/, confluence/...)."""
