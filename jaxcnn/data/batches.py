"""Cutting a device-resident split into batches: shuffled for training, padded for evaluation.

Training keeps a whole split on its devices and cuts batches there:
`epoch_batches` permutes indices with a PRNG key and drops the last partial
batch (as the Flax examples do), so every training step has the same shape
and nothing recompiles; each epoch's permutation differs, so every example is
still seen.
"""

from __future__ import annotations

import jax
import numpy as np


def epoch_batches(key: jax.Array, num_examples: int, batch_size: int) -> jax.Array:
    """Shuffled example indices `[num_examples // batch_size, batch_size]`; the rest is dropped."""
    steps = num_examples // batch_size
    if steps == 0:
        raise ValueError(f"`batch_size` ({batch_size}) is larger than the dataset ({num_examples})")
    return jax.random.permutation(key, num_examples)[: steps * batch_size].reshape(
        steps, batch_size
    )


def eval_batches(num_examples: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """All indices in `[steps, batch_size]` batches, the last padded; with a 0/1 mask of real ones."""
    steps = -(-num_examples // batch_size)
    index = np.arange(steps * batch_size)
    mask = index < num_examples
    return np.where(mask, index, 0).reshape(steps, batch_size), mask.reshape(steps, batch_size)
