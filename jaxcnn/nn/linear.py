"""Fully connected layers and the flatten that feeds them."""

from __future__ import annotations

import jax

from jaxcnn.nn.params import Params, kernel_and_bias


def flatten(x: jax.Array) -> jax.Array:
    """`(n, d1, d2, ...)` -> `(n, d1 * d2 * ...)`, keeping the batch axis."""
    if x.ndim < 1:
        raise ValueError(f"`x` must have a batch axis, got shape {x.shape}")
    return x.reshape(x.shape[0], -1)


def dense(params: Params, x: jax.Array) -> jax.Array:
    """`y = x @ kernel + bias`.

    Args:
      params: `{"kernel": (in_features, out_features), "bias": (out_features,)}`;
        `"bias"` may be absent.
      x: `(..., in_features)`.

    Returns:
      `(..., out_features)`.
    """
    kernel, bias = kernel_and_bias(params, "(in_features, out_features)")
    if x.ndim < 1 or x.shape[-1] != kernel.shape[0]:
        raise ValueError(
            f"`x` must end in {kernel.shape[0]} features to match the kernel, got shape {x.shape}"
        )
    if bias is not None and bias.shape != (kernel.shape[1],):
        raise ValueError(f"`params['bias']` must have shape ({kernel.shape[1]},), got {bias.shape}")
    y = x @ kernel
    return y if bias is None else y + bias
