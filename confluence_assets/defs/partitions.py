"""One dynamic partition per Confluence space (keys are space keys, see confluence.keys), and the one way
the space partitions change: requests computed from a space refresh, applied by whoever holds them."""

from __future__ import annotations

import dagster as dg

from confluence_assets.confluence.keys import partition_key_to_space_key, space_key_to_partition_key

SPACES_PARTITIONS_NAME = "confluence_spaces"

confluence_spaces_partitions_def = dg.DynamicPartitionsDefinition(name=SPACES_PARTITIONS_NAME)

PartitionRequest = dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest


def space_keys(instance: dg.DagsterInstance) -> list[str]:
    """The space keys that have a partition now."""
    return [partition_key_to_space_key(k) for k in instance.get_dynamic_partitions(SPACES_PARTITIONS_NAME)]


def partition_requests(added: list[str], removed: list[str]) -> list[PartitionRequest]:
    """The partition changes for spaces added to and removed from the selection (space keys)."""
    requests: list[PartitionRequest] = []
    if added:
        requests.append(
            confluence_spaces_partitions_def.build_add_request([space_key_to_partition_key(k) for k in added])
        )
    if removed:
        requests.append(
            confluence_spaces_partitions_def.build_delete_request([space_key_to_partition_key(k) for k in removed])
        )
    return requests


def apply_partition_requests(instance: dg.DagsterInstance, requests: list[PartitionRequest]) -> None:
    """Carry the requests out on ``instance`` (an asset's way; a sensor returns them in its result)."""
    for request in requests:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
