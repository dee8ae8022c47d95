"""Parameter initialisation: `init_conv2d` and `init_dense`.

Initialisers come from `jax.nn.initializers` and are chosen by name or passed
as any `jax.nn.initializers.Initializer`. Fans follow the kernel layouts: for
HWIO, fan_in = kh * kw * in_channels // groups and fan_out = kh * kw * out.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.nn import initializers

from jaxcnn.nn.geometry import IntPair, int_pair

Initializer = Callable[..., jax.Array]  # (key, shape, dtype) -> array

INITIALIZERS: dict[str, Initializer] = {
    "glorot_uniform": initializers.glorot_uniform(),
    "glorot_normal": initializers.glorot_normal(),
    "xavier_uniform": initializers.glorot_uniform(),
    "xavier_normal": initializers.glorot_normal(),
    "he_uniform": initializers.he_uniform(),
    "he_normal": initializers.he_normal(),
    "kaiming_uniform": initializers.he_uniform(),
    "kaiming_normal": initializers.he_normal(),
    "lecun_uniform": initializers.lecun_uniform(),
    "lecun_normal": initializers.lecun_normal(),
    "zeros": initializers.zeros,
    "ones": initializers.ones,
}


def get_initializer(init: str | Initializer, name: str = "kernel_init") -> Initializer:
    """Looks an initialiser up by name in `INITIALIZERS`, or passes a callable through."""
    if callable(init):
        return init
    if isinstance(init, str) and init in INITIALIZERS:
        return INITIALIZERS[init]
    raise ValueError(f"`{name}` must be one of {sorted(INITIALIZERS)} or a callable, got {init!r}")


def positive_int(value: int, name: str) -> int:
    """`value` if it is an int >= 1; else a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value!r}")
    return value


def init_conv2d(
    key: jax.Array,
    in_channels: int,
    out_channels: int,
    kernel_size: IntPair,
    *,
    groups: int = 1,
    use_bias: bool = True,
    kernel_init: str | Initializer = "lecun_normal",
    bias_init: str | Initializer = "zeros",
    dtype: jnp.dtype = jnp.float32,
) -> dict[str, jax.Array]:
    """Parameters for `conv2d` / `conv2d_patches`.

    Returns:
      `{"kernel": (kh, kw, in_channels // groups, out_channels),
      "bias": (out_channels,)}` (no `"bias"` when `use_bias` is False).
    """
    in_channels = positive_int(in_channels, "in_channels")
    out_channels = positive_int(out_channels, "out_channels")
    groups = positive_int(groups, "groups")
    for n, what in ((in_channels, "in_channels"), (out_channels, "out_channels")):
        if n % groups:
            raise ValueError(f"`{what}` (={n}) must be divisible by `groups` (={groups})")
    kh, kw = int_pair(kernel_size, "kernel_size")
    shape = (kh, kw, in_channels // groups, out_channels)
    return _init(key, shape, use_bias, kernel_init, bias_init, dtype)


def init_dense(
    key: jax.Array,
    in_features: int,
    out_features: int,
    *,
    use_bias: bool = True,
    kernel_init: str | Initializer = "lecun_normal",
    bias_init: str | Initializer = "zeros",
    dtype: jnp.dtype = jnp.float32,
) -> dict[str, jax.Array]:
    """Parameters for `dense`.

    Returns:
      `{"kernel": (in_features, out_features), "bias": (out_features,)}`
      (no `"bias"` when `use_bias` is False).
    """
    shape = (positive_int(in_features, "in_features"), positive_int(out_features, "out_features"))
    return _init(key, shape, use_bias, kernel_init, bias_init, dtype)


def _init(key, shape, use_bias, kernel_init, bias_init, dtype) -> dict[str, jax.Array]:
    kernel_init = get_initializer(kernel_init, "kernel_init")
    bias_init = get_initializer(bias_init, "bias_init")
    kernel_key, bias_key = jax.random.split(key)
    params = {"kernel": kernel_init(kernel_key, shape, dtype)}
    if use_bias:
        params["bias"] = bias_init(bias_key, shape[-1:], dtype)
    return params
