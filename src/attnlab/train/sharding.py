"""Data parallelism with ``jax.sharding``: one ``data`` mesh axis over every device.

Parameters and optimizer state are replicated; each batch is split along its first axis. Each
process loads ``batch_size / process_count`` examples, and the global array is assembled from
the process-local pieces, so the same code runs on one CPU, a forced 4-device CPU
(``XLA_FLAGS=--xla_force_host_platform_device_count=4``), or several hosts after
``jax.distributed.initialize``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def initialize_distributed(
    coordinator_address: str | None, num_processes: int | None, process_id: int | None
) -> None:
    """Join a multi-host job when a coordinator address is given; otherwise do nothing."""
    if coordinator_address:
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
        )


def make_mesh() -> Mesh:
    """A one-axis mesh over every device of every process."""
    return Mesh(np.asarray(jax.devices()), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def local_batch_size(global_batch_size: int, mesh: Mesh) -> int:
    """Examples this process loads per step; the global batch must split evenly over devices."""
    if global_batch_size % mesh.size:
        raise ValueError(
            f"batch_size {global_batch_size} does not split over {mesh.size} devices; "
            f"use a multiple of {mesh.size}"
        )
    return global_batch_size // jax.process_count()


def shard_batch(batch: Mapping[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
    """Assemble the global batch from this process's numpy arrays (non-arrays are dropped)."""
    sharding = batch_sharding(mesh)
    return {
        key: jax.make_array_from_process_local_data(sharding, value)
        for key, value in batch.items()
        if isinstance(value, np.ndarray) and value.dtype != object
    }


def shard_global_batch(batch: Mapping[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
    """Shard a batch that every process holds in full (evaluation batches)."""
    sharding = batch_sharding(mesh)
    out = {}
    for key, value in batch.items():
        if isinstance(value, np.ndarray) and value.dtype != object:
            out[key] = jax.make_array_from_callback(value.shape, sharding, lambda i, v=value: v[i])
    return out
