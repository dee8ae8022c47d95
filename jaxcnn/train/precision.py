"""Mixed precision: compute in bfloat16 or float16, keep parameters and optimizer state in float32.

The forward and backward passes run in `compute_dtype` (the parameters and
the images cast to it); the loss, its softmax and every update stay float32.
float16's range is narrow, so its loss is scaled up before the gradients are
taken and the gradients scaled back after (dynamic loss scaling): a step whose
gradients overflow is skipped and the scale halved; after `GROWTH_INTERVAL`
good steps it doubles.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
INITIAL_LOSS_SCALE = 2.0**15
GROWTH_INTERVAL = 1000  # good float16 steps between doublings of the loss scale


def cast(tree: Any, dtype: Any) -> Any:
    """Every floating-point array of `tree` as `dtype`; integer arrays as they are."""
    return jax.tree.map(
        lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree
    )


def initial_loss_scale(compute_dtype: str) -> jax.Array:
    return jnp.asarray(INITIAL_LOSS_SCALE if compute_dtype == "float16" else 1.0, jnp.float32)


def all_finite(tree: Any) -> jax.Array:
    return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def next_loss_scale(scale: jax.Array, finite: jax.Array, step: jax.Array) -> jax.Array:
    """Halved after an overflow; doubled every `GROWTH_INTERVAL` steps otherwise."""
    grown = jnp.where((step + 1) % GROWTH_INTERVAL == 0, scale * 2, scale)
    return jnp.where(finite, jnp.minimum(grown, INITIAL_LOSS_SCALE), jnp.maximum(scale / 2, 1.0))
