"""Dropout as a pure function: the mask comes from a key the caller passes."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def check_rate(rate: float) -> None:
    """Raises ValueError unless `rate` is a number in [0, 1); touches no array."""
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate < 1:
        raise ValueError(f"`rate` must be a number in [0, 1), got {rate!r}")


def dropout(x: jax.Array, key: jax.Array | None, rate: float, *, training: bool) -> jax.Array:
    """Zeroes each element with probability `rate` and scales the rest by `1 / (1 - rate)`.

    Inverted dropout: the expected value of each element is unchanged, so
    evaluation (`training=False`) is the identity, as is `rate == 0`. The
    same key gives the same mask.

    Args:
      x: any shape.
      key: a PRNG key; needed only when training with `rate > 0`.
      rate: the probability of dropping an element, in [0, 1).
      training: drop (True) or pass `x` through (False).

    Returns:
      An array shaped as `x`.
    """
    check_rate(rate)
    if not training or rate == 0:
        return x
    if key is None:
        raise ValueError("`key` must be a PRNG key when training with `rate` > 0, got None")
    keep = jax.random.bernoulli(key, 1 - rate, jnp.shape(x))
    return jnp.where(keep, x / (1 - rate), jnp.zeros_like(x))
