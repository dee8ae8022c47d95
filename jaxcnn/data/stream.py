"""Batches read from disk as training needs them, for splits larger than memory.

A prepared split's arrays are memory-mapped (`np.load(mmap_mode="r")`), and
`chunks` reads each call's batches with grain (the JAX ecosystem's loader),
a few calls ahead on threads, while the devices train. Each process reads
only its own slice of every global batch, the examples its devices take; the
batches are those the in-memory path cuts from the same permutation, so the
same seed trains the same way either way.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

PREFETCH_CALLS = 2  # calls' batches read ahead


def process_slice(batch_size: int, process_index: int, process_count: int) -> slice:
    """The examples of each global batch that one process's devices take."""
    local = batch_size // process_count
    return slice(process_index * local, (process_index + 1) * local)


def chunks(
    images: np.ndarray,
    labels: np.ndarray,
    order: np.ndarray,
    chunk: int,
    start: int = 0,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """This process's share of each call's batches, read ahead.

    Args:
      images, labels: a split's arrays, memory-mapped or in memory.
      order: `(steps, batch)` example indices of an epoch (`epoch_batches`).
      chunk: steps per call.
      start: the first step to read (a resumed epoch's).
      process_index, process_count: which share of each batch to read.

    Yields:
      `(images (chunk, local_batch, h, w, c), labels (chunk, local_batch))`.
    """
    import grain  # here, not at the top: only streamed splits need it, and it costs start-up

    share = order[start:, process_slice(order.shape[1], process_index, process_count)]

    def read(call: int) -> tuple[np.ndarray, np.ndarray]:
        index = share[call * chunk : (call + 1) * chunk]
        flat = index.ravel()
        sorted_positions = np.argsort(flat, kind="stable")  # a disk reads best in order
        rows = np.empty((len(flat), *images.shape[1:]), images.dtype)
        rows[sorted_positions] = images[flat[sorted_positions]]
        return rows.reshape(*index.shape, *images.shape[1:]), np.asarray(labels)[index]

    calls = grain.MapDataset.range(len(share) // chunk).map(read)
    options = grain.ReadOptions(num_threads=PREFETCH_CALLS, prefetch_buffer_size=PREFETCH_CALLS)
    yield from calls.to_iter_dataset(options)
