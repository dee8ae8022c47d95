"""Random augmentation of a batch of images, on the device, inside `jit`."""

from __future__ import annotations

import jax
import jax.numpy as jnp

# The `augment` values a config can name.
AUGMENTATIONS = ("", "flip", "shift", "shift_flip")


def augment(rng: jax.Array, x: jax.Array, kind: str) -> jax.Array:
    """Random left-right flips ('flip'), shifts of up to 2 pixels with zero fill ('shift'), or both.

    Args:
      rng: a PRNG key.
      x: `(n, h, w, c)` float images.
      kind: one of `AUGMENTATIONS`.

    Returns:
      `(n, h, w, c)`, each image flipped and shifted on its own draw.
    """
    shift_key, flip_key = jax.random.split(rng)
    b, h, w, c = x.shape
    if "shift" in kind:
        padded = jnp.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
        offsets = jax.random.randint(shift_key, (b, 2), 0, 5)
        crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, c))  # noqa: E731
        x = jax.vmap(crop)(padded, offsets)
    if "flip" in kind:
        flip = jax.random.bernoulli(flip_key, 0.5, (b, 1, 1, 1))
        x = jnp.where(flip, x[:, :, ::-1], x)
    return x
