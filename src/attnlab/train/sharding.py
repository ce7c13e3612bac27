"""Data parallelism with ``jax.sharding``: one ``data`` mesh axis over every device.

Each batch is split along its first axis. Every process computes the same global batch plan
and loads only its rows of each global batch (``process_rows``: the rows its devices hold),
and the global array is assembled from the process-local pieces, so the same code runs on one
CPU, a forced 4-device CPU (``XLA_FLAGS=--xla_force_host_platform_device_count=4``), or
several processes after ``jax.distributed.initialize``.

Across processes, decisions that must agree use ``jax.experimental.multihost_utils``:
``agree_any`` (one process's SIGTERM stops all at the same step), ``gather_rows`` (evaluation
counts), ``assert_equal`` (the data plan's position at each save).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def initialize_distributed(
    coordinator_address: str | None, num_processes: int | None, process_id: int | None
) -> None:
    """Join a multi-host job when a coordinator address is given; otherwise do nothing."""
    if coordinator_address:
        # CPU devices of different processes talk through gloo (XLA:CPU has no default).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
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


def fsdp_spec(shape: tuple[int, ...], devices: int) -> PartitionSpec:
    """Split the largest dimension that ``devices`` divides along ``data``; else replicate.

    Ties go to the first such dimension. Scalars, and arrays with no divisible dimension
    (biases of odd sizes, Adam's step count), stay whole on every device.
    """
    candidates = [(size, -axis) for axis, size in enumerate(shape) if size % devices == 0]
    if devices == 1 or not candidates:
        return PartitionSpec()
    axis = -max(candidates)[1]
    return PartitionSpec(*([None] * axis), DATA_AXIS)


def state_shardings(abstract_state: Any, mesh: Mesh, mode: str) -> Any:
    """The sharding of every leaf of the train state under ``mode`` (``replicate``/``fsdp``).

    Parameters and their optimizer moments have the same shapes, so they are split alike.
    """
    if mode == "replicate":
        return jax.tree.map(lambda _: replicated(mesh), abstract_state)
    if mode != "fsdp":
        raise ValueError(f"unknown sharding {mode!r}; valid: replicate, fsdp")
    return jax.tree.map(
        lambda x: NamedSharding(mesh, fsdp_spec(tuple(x.shape), mesh.size)), abstract_state
    )


def bytes_per_device(tree: Any) -> int:
    """The largest number of bytes of ``tree``'s arrays that one (local) device holds."""
    held: dict[Any, int] = {}
    for leaf in jax.tree.leaves(tree):
        for shard in leaf.addressable_shards:
            held[shard.device] = held.get(shard.device, 0) + shard.data.nbytes
    return max(held.values(), default=0)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def process_rows(global_batch_size: int, mesh: Mesh) -> slice:
    """The rows of a global batch that this process's devices hold (one contiguous block)."""
    if global_batch_size % mesh.size:
        raise ValueError(
            f"batch_size {global_batch_size} does not split over {mesh.size} devices; "
            f"use a multiple of {mesh.size}"
        )
    held = batch_sharding(mesh).addressable_devices_indices_map((global_batch_size,))
    starts = sorted({index[0].start or 0 for index in held.values()})
    stops = sorted({index[0].stop or global_batch_size for index in held.values()})
    if stops[-1] - starts[0] != len(starts) * (global_batch_size // mesh.size):
        raise ValueError("this process's devices do not hold one contiguous block of the batch")
    return slice(starts[0], stops[-1])


def agree_any(flag: bool) -> bool:
    """True on every process if ``flag`` is True on any (a collective: call it everywhere)."""
    if jax.process_count() == 1:
        return bool(flag)
    return bool(np.any(multihost_utils.process_allgather(np.asarray(flag, np.bool_))))


def gather_rows(values: np.ndarray) -> np.ndarray:
    """Every process's ``values`` ([n, ...], the same n everywhere), stacked: [processes * n]."""
    if jax.process_count() == 1:
        return np.asarray(values)
    return np.asarray(multihost_utils.process_allgather(np.asarray(values), tiled=True))


def assert_same_everywhere(value: Any, what: str) -> None:
    """Raise if ``value`` (a pytree of arrays) differs between processes."""
    if jax.process_count() > 1:
        multihost_utils.assert_equal(value, f"{what} differs between processes")


def host_local(tree: Any) -> Any:
    """A copy of ``tree`` that this process alone can compute with (full values, one device).

    For work each process does on its own share (decoding its evaluation rows): a global
    array's computations otherwise involve every process.
    """
    if jax.process_count() == 1:
        return tree
    device = jax.local_devices()[0]

    def local(x):
        if not isinstance(x, jax.Array) or x.is_fully_addressable:
            return x
        if x.is_fully_replicated:
            return jax.device_put(x.addressable_data(0), device)
        return jax.device_put(multihost_utils.process_allgather(x, tiled=True), device)

    return jax.tree.map(local, tree)


def shard_batch(batch: Mapping[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
    """Assemble the global batch from this process's numpy arrays (non-arrays are dropped)."""
    sharding = batch_sharding(mesh)
    return {
        key: jax.make_array_from_process_local_data(sharding, value)
        for key, value in batch.items()
        if isinstance(value, np.ndarray) and value.dtype != object
    }
