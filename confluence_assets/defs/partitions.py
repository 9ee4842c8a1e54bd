"""One dynamic partition per Confluence space; keys are space keys (see confluence.keys)."""

import dagster as dg

SPACES_PARTITIONS_NAME = "confluence_spaces"

confluence_spaces_partitions_def = dg.DynamicPartitionsDefinition(name=SPACES_PARTITIONS_NAME)
