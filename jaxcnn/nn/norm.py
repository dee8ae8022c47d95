"""Batch normalisation (d2l 8.5) as a pure function: parameters and running statistics in, out.

`y = scale * (x - mean) / sqrt(var + eps) + bias`, per channel (the last axis),
with the statistics of the batch while training and the running ones after.
Under data parallelism inside `jax.jit` (a batch sharded over a mesh, as
`train.py` runs) the batch's mean and variance are those of the whole global
batch: XLA turns the means into all-reduces, so there is no `axis_name` to
pass, and 1 or N devices give the same numbers. (Under `pmap`, as in older
Flax and Haiku examples, each device would see only its own slice.)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from jaxcnn.errors import reverse_mode_only
from jaxcnn.nn.init import positive_int
from jaxcnn.parallel import reshape_examples

BatchNormParams = Mapping[str, jax.Array]  # {"scale": (c,), "bias": (c,)}
BatchNormState = Mapping[str, jax.Array]  # {"mean": (c,), "var": (c,)}


def init_batch_norm(
    num_features: int, dtype: jnp.dtype = jnp.float32
) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """Parameters and state for `batch_norm`: scale 1, bias 0; running mean 0, variance 1.

    Returns:
      `({"scale": (c,), "bias": (c,)}, {"mean": (c,), "var": (c,)})`.
    """
    c = positive_int(num_features, "num_features")
    params = {"scale": jnp.ones((c,), dtype), "bias": jnp.zeros((c,), dtype)}
    state = {"mean": jnp.zeros((c,), dtype), "var": jnp.ones((c,), dtype)}
    return params, state


@reverse_mode_only(
    "with `training=True` (the batch's statistics); `training=False` takes every transform"
)
def batch_norm(
    params: BatchNormParams,
    state: BatchNormState,
    x: jax.Array,
    *,
    training: bool,
    momentum: float = 0.9,
    eps: float = 1e-5,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Normalises each channel of `x` by the batch's statistics (training) or the running ones.

    Training uses the batch's mean and biased variance over every axis but
    the last, and updates `running = momentum * running + (1 - momentum) *
    batch` with the unbiased variance: PyTorch's numbers with its momentum
    `1 - momentum`. Evaluation (`training=False`) uses the running statistics
    and returns `state` unchanged.

    Args:
      params: `{"scale": (c,), "bias": (c,)}`.
      state: `{"mean": (c,), "var": (c,)}`, the running statistics.
      x: NHWC `(n, h, w, c)` or `(n, c)` (after a dense layer).
      training: batch statistics and an updated state, or the running ones.
      momentum: in [0, 1): how much of the running statistics each update keeps.
      eps: added to the variance, > 0.

    Returns:
      `(y, new_state)`, `y` shaped as `x`.
    """
    c = _check(params, state, x, momentum, eps)
    if not training:
        rstd = jax.lax.rsqrt(state["var"] + eps).astype(x.dtype)
        y = (x - state["mean"].astype(x.dtype)) * rstd * params["scale"]
        return y + params["bias"], dict(state)
    y, mean, var = _normalize(x, params["scale"], params["bias"], eps)
    count = x.size // c
    unbiased = var * count / max(count - 1, 1)
    new_state = {
        "mean": momentum * state["mean"] + (1 - momentum) * jax.lax.stop_gradient(mean),
        "var": momentum * state["var"] + (1 - momentum) * jax.lax.stop_gradient(unbiased),
    }
    return y, new_state


def channel_sum(x: jax.Array) -> jax.Array:
    """`x` summed over every axis but the last: `(n, ..., c)` -> `(c,)`.

    In two steps, the examples' rows first, then the pixels of that sum:
    as one reduction of rows `c` values wide, XLA's CPU backend splits it
    into slow `reduce-window`s inside `lax.scan`; the barrier keeps it from
    merging the two back (docs/performance.md, "Batch norm").
    """
    n, c = x.shape[0], x.shape[-1]
    rows = reshape_examples(x, (n, x.size // n)).sum(axis=0)
    return jax.lax.optimization_barrier(rows).reshape(-1, c).sum(axis=0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _normalize(x, scale, bias, eps):
    """`(scale * (x - mean) / sqrt(var + eps) + bias, mean, var)` with the batch's statistics.

    Its gradient is written out (the textbook formula, one pass over `x`
    and two channel sums) rather than derived by autodiff, whose reductions
    XLA's CPU backend runs slowly.
    """
    return _normalize_fwd(x, scale, bias, eps)[0]


def _normalize_fwd(x, scale, bias, eps):
    # Statistics in float32 at least: bfloat16 sums of a whole batch drift.
    count = x.size // x.shape[-1]
    x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    mean = channel_sum(x32) / count
    var = channel_sum(jnp.square(x32 - mean)) / count  # biased, to normalise with
    rstd = jax.lax.rsqrt(var + eps)
    xhat = ((x32 - mean) * rstd).astype(x.dtype)
    y = xhat * scale + bias
    return (y, mean, var), (xhat, rstd.astype(x.dtype), scale)


def _normalize_bwd(eps, residuals, cotangents):
    xhat, rstd, scale = residuals
    dy, dmean, dvar = cotangents
    count = xhat.size // xhat.shape[-1]
    dbias = channel_sum(dy)
    dscale = channel_sum(dy * xhat)
    # dx of y, then of the mean and biased variance themselves (zero when they only
    # feed the running statistics, which stop their gradient).
    dx = (scale * rstd / count) * (count * dy - dbias - xhat * dscale)
    dx = dx + dmean / count + dvar * 2 * xhat / (rstd * count)
    return dx, dscale, dbias


_normalize.defvjp(_normalize_fwd, _normalize_bwd)


def _check(params, state, x, momentum, eps) -> int:
    for name, tree, keys in (
        ("params", params, ("scale", "bias")),
        ("state", state, ("mean", "var")),
    ):
        if not isinstance(tree, Mapping) or set(keys) - set(tree):
            got = sorted(tree) if isinstance(tree, Mapping) else type(tree).__name__
            raise ValueError(f"`{name}` must be a dict with {list(keys)}, got {got}")
    ndim = getattr(x, "ndim", None)
    if ndim not in (2, 4):
        raise ValueError(
            f"`x` must be NHWC (n, h, w, c) or (n, c), got shape {getattr(x, 'shape', x)}"
        )
    c = x.shape[-1]
    for name, tree in (("params", params), ("state", state)):
        for key, value in tree.items():
            if getattr(value, "shape", None) != (c,):
                raise ValueError(
                    f"`{name}['{key}']` must have shape ({c},) for {c} channels, "
                    f"got {getattr(value, 'shape', value)}"
                )
    if not 0 <= momentum < 1:
        raise ValueError(f"`momentum` must be in [0, 1), got {momentum!r}")
    if not eps > 0:
        raise ValueError(f"`eps` must be > 0, got {eps!r}")
    return c
