"""Data parallelism: every device holds the model, each batch is split across devices.

A 1-D mesh over the devices, axis `BATCH_AXIS`. Parameters and optimizer state
are replicated; batches are sharded along their example axis. `jax.jit` then
partitions the step (GSPMD): each device runs the model on its slice of the
batch, and the mean over the batch (loss, gradients) becomes an all-reduce.
Random numbers are drawn for the whole batch, so a step gives the same result
on any number of devices, up to float summation order.

On one host the CPU can be split into several XLA devices (`use_cpu_devices`),
each running its share of the batch (docs/performance.md, "CPU devices", says
when that pays). Across hosts, start JAX with `jax.distributed.initialize()`
first (`train.py --distributed`); every process then loads the same data and
keeps the same arrays, and `put` builds global arrays from them.

The layers also run in programs under JAX's explicit sharding: those that
reshape the examples do so through `reshape_examples`, which keeps their
sharding.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax import lax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

BATCH_AXIS = "batch"


XLA_DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def xla_flags_device_count(flags: str | None = None) -> int | None:
    """The CPU device count that `XLA_FLAGS` (or `flags`) asks for, if it asks."""
    for flag in (os.environ.get("XLA_FLAGS", "") if flags is None else flags).split():
        name, _, value = flag.partition("=")
        if name == XLA_DEVICE_COUNT_FLAG and value.isdigit():
            return int(value)
    return None


def use_cpu_devices(count: int) -> None:
    """Splits the host CPU into `count` XLA devices; 0 leaves it to JAX (and `XLA_FLAGS`).

    Must run before JAX first uses a backend (before any array is created).

    Raises:
      ValueError: if `count` < 0, if `XLA_FLAGS` asks for another count (naming
        both), or if JAX has already started its backends.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"`cpu_devices` must be an int >= 0 (0: as JAX has it), got {count!r}")
    flagged = xla_flags_device_count()
    if count == 0:
        return
    if flagged is not None and flagged != count:
        raise ValueError(
            f"`cpu_devices` ({count}) and XLA_FLAGS' {XLA_DEVICE_COUNT_FLAG}={flagged} ask for "
            "different numbers of CPU devices: give one of them, or the same number"
        )
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError as e:
        raise ValueError(
            f"`cpu_devices` ({count}) must be set before JAX starts its backends: {e}"
        ) from None


def examples_sharding(x: jax.Array) -> str | tuple[str, ...] | None:
    """The mesh axes that x's first axis (the examples) is explicitly sharded over, if any.

    Under `jax.make_mesh`'s default Explicit axes, arrays carry their sharding
    in their type and some layers must pass it on (`reshape_examples`,
    `jaxcnn.nn.conv`); with Auto axes, as `data_mesh` makes, or none, this is None.
    """
    return (*jax.typeof(x).sharding.spec, None)[0]


def reshape_examples(x: jax.Array, shape: Sequence[int]) -> jax.Array:
    """`x.reshape(shape)` where the leading axes of both are the examples, or start with them.

    Under explicit sharding JAX cannot infer how most reshapes lay out their
    result; here the examples keep x's sharding of its first axis, and every
    other axis is left unsharded.
    """
    batch = examples_sharding(x)
    if batch is None:
        return x.reshape(shape)
    return lax.reshape(x, tuple(shape), out_sharding=PartitionSpec(batch))


def data_mesh(num_devices: int = 0) -> Mesh:
    """A 1-D mesh, axis `BATCH_AXIS`, over the first `num_devices` of `jax.devices()` (0: all).

    Its axis type is Auto: jit partitions the program, the layers need no
    sharding annotations.

    Raises:
      ValueError: if `num_devices` is negative or more than there are.
    """
    available = jax.device_count()
    if not isinstance(num_devices, int) or not 0 <= num_devices <= available:
        raise ValueError(
            f"`num_devices` must be an int from 0 (all) to the {available} "
            f"{jax.default_backend()} device(s) there are, got {num_devices!r}"
        )
    devices = jax.devices()[: num_devices or available]
    return Mesh(np.array(devices), (BATCH_AXIS,), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
    """The same whole array on every device of `mesh`."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh, axis: int = 0) -> NamedSharding:
    """Split along `axis` (the examples) into one equal slice per device of `mesh`."""
    return NamedSharding(mesh, PartitionSpec(*[None] * axis, BATCH_AXIS))


def put(tree: Any, sharding: NamedSharding) -> Any:
    """Every array leaf of `tree` as a global array laid out by `sharding`.

    Each process passes the same full values; it places the slices its own
    devices hold (`jax.make_array_from_callback`), so this works on one host
    and across many.

    Raises:
      ValueError: if a sharded axis does not divide evenly over the devices.
    """

    def place(x):
        x = np.asarray(x)
        for size, name in zip(x.shape, sharding.spec):
            if name is not None and size % sharding.mesh.size:
                raise ValueError(
                    f"an array of shape {x.shape} cannot be split over {sharding.mesh.size} "
                    f"devices: its axis of size {size} does not divide evenly"
                )
        return jax.make_array_from_callback(x.shape, sharding, lambda index: np.asarray(x[index]))

    return jax.tree.map(place, tree)


def fetch(tree: Any) -> Any:
    """Replicated arrays (metrics, the step count) as NumPy, read from this process's first copy.

    Works across hosts too, where `np.asarray` of a global array would fail:
    no process can address every device.
    """
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)


def any_process(*flags: bool) -> tuple[bool, ...]:
    """Each flag, true if it is true in any process of the job: a decision every process takes
    alike (stop, save, set a checkpoint aside), whatever each saw. One process: `flags`."""
    if jax.process_count() == 1:
        return tuple(bool(flag) for flag in flags)
    from jax.experimental import multihost_utils

    gathered = multihost_utils.process_allgather(np.asarray(flags, np.int32))
    return tuple(bool(flag) for flag in np.asarray(gathered).reshape(-1, len(flags)).max(axis=0))


def from_process_0(values: Sequence[int]) -> list[int]:
    """Process 0's `values` in every process (at most 64 of them, each >= 0)."""
    if jax.process_count() == 1:
        return list(values)
    from jax.experimental import multihost_utils

    padded = np.full(64, -1, np.int64)
    padded[: len(values)] = list(values)[:64]
    shared = np.asarray(multihost_utils.broadcast_one_to_all(padded))
    return [int(v) for v in shared if v >= 0]
