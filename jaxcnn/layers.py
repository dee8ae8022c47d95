"""Layers as (init, apply) pairs, and `sequential` to chain them.

The stax idea with named parameters: a `Layer` holds
`init(key, input_shape) -> (output_shape, params)` and `apply(params, x) -> y`.
Each parametrised layer is partial application of a pure function in
jaxcnn (`conv2d`, `dense`, ...) plus its `init_*`; output shapes are inferred
with `jax.eval_shape`, so no size is ever written by hand.

    model = sequential(
        conv1=conv2d(6, 5, padding=2), act1=activation(jax.nn.relu), pool1=max_pool2d(2),
        flat=flatten(), fc=dense(10),
    )
    out_shape, params = model.init(key, (1, 28, 28, 1))   # params["conv1"]["kernel"]
    logits = model.apply(params, images)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxcnn import fused, linear
from jaxcnn import init as init_lib
from jaxcnn import pool as pool_lib
from jaxcnn.auto import conv2d_auto
from jaxcnn.conv import conv2d as lax_conv2d
from jaxcnn.conv import conv2d_patches
from jaxcnn.geometry import IntPair, Padding
from jaxcnn.params import ParamTree as Params

Shape = tuple[int, ...]

# The conv implementations a layer (and a config's `model.conv_impl`) can name.
CONV_IMPLS: dict[str, Callable[..., jax.Array]] = {
    "lax": lax_conv2d,
    "patches": conv2d_patches,
    "auto": conv2d_auto,
}


class Layer(NamedTuple):
    """`init(key, input_shape) -> (output_shape, params)`; `apply(params, x) -> y`."""

    init: Callable[[jax.Array, Shape], tuple[Shape, Params]]
    apply: Callable[[Params, jax.Array], jax.Array]


def _output_shape(apply, params, input_shape: Shape) -> Shape:
    return jax.eval_shape(apply, params, jax.ShapeDtypeStruct(input_shape, jnp.float32)).shape


def _parametrised(make_params, apply) -> Layer:
    def init(key, input_shape):
        params = make_params(key, input_shape)
        return _output_shape(apply, params, input_shape), params

    return Layer(init, apply)


def stateless(fn: Callable[[jax.Array], jax.Array]) -> Layer:
    """A layer without parameters: `apply(params, x) = fn(x)`."""

    def apply(params, x):
        return fn(x)

    return _parametrised(lambda key, shape: {}, apply)


activation = stateless  # relu, sigmoid, ...: any elementwise `jax.nn` function


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
    impl: str = "lax",
) -> Layer:
    """A conv layer; `impl` picks `"lax"` (`jaxcnn.conv2d`), `"patches"`
    (`jaxcnn.conv2d_patches`) or `"auto"` (`jaxcnn.conv2d_auto`)."""
    apply = functools.partial(
        conv_impl(impl), stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    return _parametrised(
        _conv_params(out_channels, kernel_size, groups, use_bias, kernel_init), apply
    )


def conv2d_max_pool(
    out_channels: int,
    kernel_size: IntPair,
    window: IntPair,
    *,
    padding: Padding = 0,
    use_bias: bool = True,
    kernel_init: str | init_lib.Initializer = "lecun_normal",
    impl: str = "lax",
) -> Layer:
    """A stride-1 conv layer followed by a `window` max pool; with `impl="auto"`
    the two are computed together (`jaxcnn.conv2d_max_pool`), else one after
    the other."""
    conv = conv_impl(impl)
    apply: Callable[[Params, jax.Array], jax.Array]
    if impl == "auto":
        apply = functools.partial(fused.conv2d_max_pool, window=window, padding=padding)
    else:

        def apply(params, x):
            return pool_lib.max_pool2d(conv(params, x, padding=padding), window)

    return _parametrised(_conv_params(out_channels, kernel_size, 1, use_bias, kernel_init), apply)


def conv_impl(impl: str) -> Callable[..., jax.Array]:
    """The conv function `CONV_IMPLS` names `impl`.

    Raises:
      ValueError: if `impl` is not one of them.
    """
    if impl not in CONV_IMPLS:
        raise ValueError(f"`impl` must be one of {sorted(CONV_IMPLS)}, got {impl!r}")
    return CONV_IMPLS[impl]


def _conv_params(out_channels, kernel_size, groups, use_bias, kernel_init):
    def make_params(key, input_shape):
        return init_lib.init_conv2d(
            key,
            input_shape[-1],
            out_channels,
            kernel_size,
            groups=groups,
            use_bias=use_bias,
            kernel_init=kernel_init,
        )

    return make_params


def dense(
    out_features: int,
    *,
    use_bias: bool = True,
    kernel_init: str | init_lib.Initializer = "lecun_normal",
) -> Layer:
    """A fully connected layer over the last axis."""

    def make_params(key, input_shape):
        return init_lib.init_dense(
            key, input_shape[-1], out_features, use_bias=use_bias, kernel_init=kernel_init
        )

    return _parametrised(make_params, linear.dense)


def max_pool2d(window: IntPair, *, stride: IntPair | None = None, padding: Padding = 0) -> Layer:
    return stateless(
        functools.partial(pool_lib.max_pool2d, window=window, stride=stride, padding=padding)
    )


def avg_pool2d(
    window: IntPair,
    *,
    stride: IntPair | None = None,
    padding: Padding = 0,
    count_include_pad: bool = True,
) -> Layer:
    return stateless(
        functools.partial(
            pool_lib.avg_pool2d,
            window=window,
            stride=stride,
            padding=padding,
            count_include_pad=count_include_pad,
        )
    )


def flatten() -> Layer:
    return stateless(linear.flatten)


class Sequential(NamedTuple):
    """Named layers applied in order; parameters are `{name: layer_params}`."""

    layers: dict[str, Layer]

    def init(self, key: jax.Array, input_shape: Shape) -> tuple[Shape, Params]:
        params = {}
        keys = jax.random.split(key, len(self.layers))
        for layer_key, (name, layer) in zip(keys, self.layers.items()):
            input_shape, layer_params = layer.init(layer_key, input_shape)
            if layer_params:
                params[name] = layer_params
        return input_shape, params

    def apply(self, params: Params, x: jax.Array) -> jax.Array:
        for name, layer in self.layers.items():
            x = layer.apply(params.get(name, {}), x)
        return x


def sequential(**layers: Layer) -> Sequential:
    """Chains layers by keyword name, in order."""
    for name, layer in layers.items():
        if not isinstance(layer, Layer | Sequential):
            raise TypeError(f"`{name}` must be a Layer, got {type(layer).__name__}")
    return Sequential(layers)


def summary(model: Sequential, params: Params, input_shape: Shape) -> str:
    """A table of each layer's output shape, parameter count and FLOPs per example.

    FLOPs are XLA's own count (`cost_analysis` of the lowered layer) for a
    batch of one, of the arithmetic as implemented: `conv2d_auto`'s banded
    products count the multiplications by the band's zeros too.
    """
    rows = [("layer", "output shape", "params", "FLOPs")]
    shape = (1, *input_shape[1:])
    total_params = total_flops = 0
    for name, layer in model.layers.items():
        layer_params = params.get(name, {})
        x = jax.ShapeDtypeStruct(shape, jnp.float32)
        cost = jax.jit(layer.apply).lower(layer_params, x).cost_analysis() or {}
        flops = int(cost.get("flops", 0))
        count = sum(int(p.size) for p in jax.tree.leaves(layer_params))
        shape = _output_shape(layer.apply, layer_params, shape)
        rows.append((name, str(shape[1:]), f"{count:,}", f"{flops:,}"))
        total_params += count
        total_flops += flops
    rows.append(("total", "", f"{total_params:,}", f"{total_flops:,}"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths))
        )
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(-1, "-" * len(lines[0]))
    return "\n".join(lines)
