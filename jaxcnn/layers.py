"""Layers as values, and combinators to build networks from them.

The stax idea with named parameters, explicit state and explicit randomness
(a `jaxcnn.layer.Layer` holds an `initialize` and a `forward` function). Each layer with parameters is partial application of a pure function of
jaxcnn (`conv2d`, `dense`, `batch_norm`, ...) plus its `init_*`; output shapes
are inferred with `jax.eval_shape`, so no size is ever written by hand.
`sequential`, `residual` and `concat` combine layers into layers, and
parameters and state stay nested dicts named as the layers are
(`params["stage2"]["block1"]["conv1"]["kernel"]`). A layer also says what it
is (`kind`, `options`), so that `summary` can describe it and a benchmark can
build the same network in another framework.

For models without state or dropout the plain forms are enough:

    model = sequential(conv=conv2d(6, 5, padding=2), act=activation(jax.nn.relu),
                       pool=max_pool2d(2), flat=flatten(), fc=dense(10))
    out_shape, params = model.init(key, (1, 28, 28, 1))   # params["conv"]["kernel"]
    logits = model.apply(params, images)

With batch norm or dropout, `init_with_state` and `apply_with_state` carry the
state and take the key.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax

from jaxcnn import fused, linear
from jaxcnn import init as init_lib
from jaxcnn import pool as pool_lib
from jaxcnn.auto import conv2d_auto
from jaxcnn.combinators import concat, residual, sequential
from jaxcnn.conv import conv2d as lax_conv2d
from jaxcnn.conv import conv2d_patches
from jaxcnn.dropout import check_rate
from jaxcnn.dropout import dropout as dropout_fn
from jaxcnn.geometry import IntPair, Padding
from jaxcnn.layer import Forward, Layer, leaf
from jaxcnn.norm import batch_norm as batch_norm_fn
from jaxcnn.norm import init_batch_norm
from jaxcnn.params import ParamTree as Params
from jaxcnn.summary import summary

__all__ = [
    "CONV_IMPLS",
    "Layer",
    "activation",
    "adaptive_avg_pool2d",
    "avg_pool2d",
    "batch_norm",
    "concat",
    "conv2d",
    "conv2d_avg_pool",
    "conv2d_max_pool",
    "conv_impl",
    "dense",
    "dropout",
    "flatten",
    "global_avg_pool2d",
    "identity",
    "max_pool2d",
    "residual",
    "sequential",
    "stateless",
    "summary",
]

# The conv implementations a layer (and a config's `model.conv_impl`) can name.
CONV_IMPLS: dict[str, Callable[..., jax.Array]] = {
    "lax": lax_conv2d,
    "patches": conv2d_patches,
    "auto": conv2d_auto,
}


def _stateless(kind: str, options: dict[str, Any], fn: Callable[[jax.Array], jax.Array]) -> Layer:
    return leaf(kind, options, lambda key, shape: ({}, {}), lambda p, s, x, t, k: (fn(x), {}))


def stateless(fn: Callable[[jax.Array], jax.Array]) -> Layer:
    """A layer without parameters or state: `apply(params, x) = fn(x)`."""
    return _stateless("function", {"fn": getattr(fn, "__name__", repr(fn))}, fn)


def activation(fn: Callable[[jax.Array], jax.Array]) -> Layer:
    """An elementwise function as a layer: `jax.nn.relu`, `jax.nn.sigmoid`, ..."""
    return _stateless("activation", {"fn": getattr(fn, "__name__", repr(fn))}, fn)


def identity() -> Layer:
    """`x` unchanged: a `concat` branch that passes its input on (DenseNet)."""
    return _stateless("identity", {}, lambda x: x)


def _params_only(apply: Callable[[Params, jax.Array], jax.Array]) -> Forward:
    return lambda p, s, x, training, key: (apply(p, x), {})


def conv2d(
    out_channels: int,
    kernel_size: IntPair,
    *,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    use_bias: bool = True,
    kernel_init: str | init_lib.Initializer = "lecun_normal",
    impl: str = "auto",
) -> Layer:
    """A conv layer; `impl` picks `"auto"` (`jaxcnn.conv2d_auto`: the fastest kernel for the
    layer's shapes and backend), `"lax"` (`jaxcnn.conv2d`) or `"patches"`
    (`jaxcnn.conv2d_patches`). Forward-mode autodiff (`jax.jvp`, `jax.jacfwd`) needs
    `impl="lax"` or `"patches"`: `"auto"`'s gradients on CPU are written for reverse mode."""
    apply = functools.partial(
        conv_impl(impl), stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    options = dict(
        out_channels=init_lib.positive_int(out_channels, "out_channels"),
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        use_bias=use_bias,
        impl=impl,
    )
    make = _conv_params(out_channels, kernel_size, groups, use_bias, kernel_init)
    return leaf("conv2d", options, make, _params_only(apply))


def conv2d_max_pool(
    out_channels: int,
    kernel_size: IntPair,
    window: IntPair,
    *,
    padding: Padding = 0,
    use_bias: bool = True,
    kernel_init: str | init_lib.Initializer = "lecun_normal",
    impl: str = "auto",
) -> Layer:
    """A stride-1 conv layer followed by a `window` max pool; with `impl="auto"` (the
    default) the two are computed together (`jaxcnn.conv2d_max_pool`), else one after
    the other (forward mode, as `conv2d`)."""
    conv = conv_impl(impl)
    apply: Callable[[Params, jax.Array], jax.Array]
    if impl == "auto":
        apply = functools.partial(fused.conv2d_max_pool, window=window, padding=padding)
    else:

        def apply(params, x):
            return pool_lib.max_pool2d(conv(params, x, padding=padding), window)

    options = dict(
        out_channels=init_lib.positive_int(out_channels, "out_channels"),
        kernel_size=kernel_size,
        window=window,
        padding=padding,
        use_bias=use_bias,
        impl=impl,
    )
    make = _conv_params(out_channels, kernel_size, 1, use_bias, kernel_init)
    return leaf("conv2d_max_pool", options, make, _params_only(apply))


def conv2d_avg_pool(
    out_channels: int,
    kernel_size: IntPair,
    window: IntPair,
    *,
    activation: Callable[[jax.Array], jax.Array] | None = None,
    padding: Padding = 0,
    use_bias: bool = True,
    kernel_init: str | init_lib.Initializer = "lecun_normal",
    impl: str = "auto",
) -> Layer:
    """A stride-1 conv layer, `activation`, then a `window` average pool; with
    `impl="auto"` (the default) the three are computed together
    (`jaxcnn.conv2d_avg_pool`), else one after the other (forward mode, as `conv2d`)."""
    conv = conv_impl(impl)
    act = activation or (lambda z: z)
    apply: Callable[[Params, jax.Array], jax.Array]
    if impl == "auto":
        apply = functools.partial(
            fused.conv2d_avg_pool, window=window, activation=activation, padding=padding
        )
    else:

        def apply(params, x):
            return pool_lib.avg_pool2d(act(conv(params, x, padding=padding)), window)

    options = dict(
        out_channels=init_lib.positive_int(out_channels, "out_channels"),
        kernel_size=kernel_size,
        window=window,
        activation=getattr(activation, "__name__", repr(activation)) if activation else None,
        padding=padding,
        use_bias=use_bias,
        impl=impl,
    )
    make = _conv_params(out_channels, kernel_size, 1, use_bias, kernel_init)
    return leaf("conv2d_avg_pool", options, make, _params_only(apply))


def conv_impl(impl: str) -> Callable[..., jax.Array]:
    """The conv function `CONV_IMPLS` names `impl`.

    Raises:
      ValueError: if `impl` is not one of them.
    """
    if impl not in CONV_IMPLS:
        raise ValueError(f"`impl` must be one of {sorted(CONV_IMPLS)}, got {impl!r}")
    return CONV_IMPLS[impl]


def _conv_params(out_channels, kernel_size, groups, use_bias, kernel_init):
    def make(key, input_shape):
        params = init_lib.init_conv2d(
            key,
            input_shape[-1],
            out_channels,
            kernel_size,
            groups=groups,
            use_bias=use_bias,
            kernel_init=kernel_init,
        )
        return params, {}

    return make


def dense(
    out_features: int,
    *,
    use_bias: bool = True,
    kernel_init: str | init_lib.Initializer = "lecun_normal",
) -> Layer:
    """A fully connected layer over the last axis."""

    def make(key, input_shape):
        params = init_lib.init_dense(
            key, input_shape[-1], out_features, use_bias=use_bias, kernel_init=kernel_init
        )
        return params, {}

    options = dict(out_features=init_lib.positive_int(out_features, "out_features"))
    return leaf("dense", {**options, "use_bias": use_bias}, make, _params_only(linear.dense))


def batch_norm(*, momentum: float = 0.9, eps: float = 1e-5) -> Layer:
    """`jaxcnn.batch_norm` over the last axis (channels, or a dense layer's features)."""

    def make(key, input_shape):
        return init_batch_norm(input_shape[-1])

    def forward(params, state, x, training, key):
        return batch_norm_fn(params, state, x, training=training, momentum=momentum, eps=eps)

    options = {"momentum": momentum, "eps": eps}
    return leaf("batch_norm", options, make, forward, has_state=True)


def dropout(rate: float) -> Layer:
    """`jaxcnn.dropout`: drops with probability `rate` when training, the identity after."""
    check_rate(rate)  # now, as the layer is built: building a model does no array work

    def forward(params, state, x, training, key):
        return dropout_fn(x, key, rate, training=training), {}

    return leaf("dropout", {"rate": rate}, lambda k, s: ({}, {}), forward, random=rate > 0)


def max_pool2d(window: IntPair, *, stride: IntPair | None = None, padding: Padding = 0) -> Layer:
    return _stateless(
        "max_pool2d",
        {"window": window, "stride": stride, "padding": padding},
        functools.partial(pool_lib.max_pool2d, window=window, stride=stride, padding=padding),
    )


def avg_pool2d(
    window: IntPair,
    *,
    stride: IntPair | None = None,
    padding: Padding = 0,
    count_include_pad: bool = True,
) -> Layer:
    pool = functools.partial(
        pool_lib.avg_pool2d,
        window=window,
        stride=stride,
        padding=padding,
        count_include_pad=count_include_pad,
    )
    return _stateless("avg_pool2d", dict(pool.keywords), pool)


def global_avg_pool2d() -> Layer:
    """NHWC `(n, h, w, c)` -> `(n, c)`: each channel's mean."""
    return _stateless("global_avg_pool2d", {}, pool_lib.global_avg_pool2d)


def adaptive_avg_pool2d(output_size: IntPair) -> Layer:
    return _stateless(
        "adaptive_avg_pool2d",
        {"output_size": output_size},
        functools.partial(pool_lib.adaptive_avg_pool2d, output_size=output_size),
    )


def flatten() -> Layer:
    return _stateless("flatten", {}, linear.flatten)
