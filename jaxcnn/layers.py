"""Layers as values, and combinators to build networks from them.

The stax idea with named parameters, explicit state and explicit randomness.
Each kind of layer here is a frozen dataclass (`Conv2d`, `Dense`, ...) whose
fields are its options, and whose `make` and `forward` call a pure function of
jaxcnn (`conv2d`, `dense`, `batch_norm`, ...) and its `init_*`; output shapes
are inferred with `jax.eval_shape`, so no size is ever written by hand. The
lower-case names are the same classes, for building networks the way stax and
the lecture write them:

    model = sequential(conv2d(6, 5, padding=2, name="conv"), jax.nn.relu,
                       max_pool2d(2), flatten(), dense(10, name="fc"))
    out_shape, params = model.init(key, (1, 28, 28, 1))   # params["conv"]["kernel"]
    logits = model.apply(params, images)

With batch norm or dropout, `init_with_state` and `apply_with_state` carry the
state and take the key. A new kind of layer is a class here (its options,
`make`, `forward`, and its `flops` for the summary) and its name in
`__all__`; the PyTorch and Flax twins (`jaxcnn.bench`) hold a table from kind
to their framework's layer, which a kind without a twin is simply absent from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax

from jaxcnn import fused, linear
from jaxcnn import init as init_lib
from jaxcnn import pool as pool_lib
from jaxcnn.auto import choose_kernel, conv2d_auto
from jaxcnn.combinators import (
    Activation,
    Concat,
    Residual,
    Sequential,
    concat,
    residual,
    sequential,
)
from jaxcnn.conv import conv2d as lax_conv2d
from jaxcnn.conv import conv2d_patches
from jaxcnn.dropout import check_rate
from jaxcnn.dropout import dropout as dropout_fn
from jaxcnn.geometry import Geometry, IntPair, Padding, window_geometry
from jaxcnn.network import Layer, Node, Shape, size, walk
from jaxcnn.norm import batch_norm as batch_norm_fn
from jaxcnn.norm import init_batch_norm
from jaxcnn.summary import summary

__all__ = [
    "CONV_IMPLS",
    "Activation",
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm",
    "Concat",
    "Conv2d",
    "Conv2dAvgPool",
    "Conv2dMaxPool",
    "ConvLayer",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2d",
    "Identity",
    "Layer",
    "MaxPool2d",
    "Node",
    "PoolLayer",
    "Residual",
    "Sequential",
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
    "walk",
]

# The conv implementations a layer (and a config's `model.conv_impl`) can name.
CONV_IMPLS: dict[str, Callable[..., jax.Array]] = {
    "lax": lax_conv2d,
    "patches": conv2d_patches,
    "auto": conv2d_auto,
}
KERNEL_NAMES = {"tap_sum": "tap sums", "banded": "banded products", "lax": "lax conv"}


def conv_impl(impl: str) -> Callable[..., jax.Array]:
    """The conv function `CONV_IMPLS` names `impl`.

    Raises:
      ValueError: if `impl` is not one of them.
    """
    if impl not in CONV_IMPLS:
        raise ValueError(f"`impl` must be one of {sorted(CONV_IMPLS)}, got {impl!r}")
    return CONV_IMPLS[impl]


def _frozen(value: Any) -> Any:
    """Lists as tuples, all the way down: a layer's options must hash."""
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def _freeze_fields(layer: Layer, *names: str) -> None:
    for name in names:
        object.__setattr__(layer, name, _frozen(getattr(layer, name)))


def _fn_name(fn: Callable | None) -> str | None:
    return None if fn is None else getattr(fn, "__name__", repr(fn))


# ---- convolutions


@dataclasses.dataclass(frozen=True)
class ConvLayer(Layer):
    """What every conv layer shares: a kernel `(kh, kw, in / groups, out_channels)` and
    bias, and the choice of implementation (`"auto"`, `"lax"` or `"patches"`)."""

    out_channels: int
    kernel_size: IntPair
    _: dataclasses.KW_ONLY
    padding: Padding = 0
    use_bias: bool = True
    kernel_init: str | init_lib.Initializer = "lecun_normal"
    impl: str = "auto"

    def __post_init__(self) -> None:
        init_lib.positive_int(self.out_channels, "out_channels")
        conv_impl(self.impl)
        _freeze_fields(self, "kernel_size", "padding")

    def make(self, key, input_shape):
        params = init_lib.init_conv2d(
            key,
            input_shape[-1],
            self.out_channels,
            self.kernel_size,
            groups=self.strides_and_groups[2],
            use_bias=self.use_bias,
            kernel_init=self.kernel_init,
        )
        return params, {}

    @property
    def strides_and_groups(self) -> tuple[IntPair, IntPair, int]:
        """`(stride, dilation, groups)`: all 1 but for a plain conv."""
        return 1, 1, 1

    def geometry(self, in_shape: Shape) -> Geometry:
        """The conv's window over NHWC `in_shape` (before any pool)."""
        stride, dilation, _ = self.strides_and_groups
        return window_geometry(in_shape[1:3], self.kernel_size, stride, self.padding, dilation)

    def conv_flops(self, in_shape: Shape, conv_pixels: int) -> int:
        """Multiply-adds of `conv_pixels` output pixels, as 2 FLOPs each."""
        kh, kw = self.geometry(in_shape).window
        group_in = in_shape[-1] // self.strides_and_groups[2]
        return 2 * conv_pixels * self.out_channels * kh * kw * group_in

    def conv_plan(self, in_shape: Shape, backend: str | None) -> str:
        """The kernel the conv runs, in words, as `conv2d_auto` chooses it for `impl="auto"`."""
        if self.impl != "auto":
            return {"lax": "lax conv", "patches": "im2col product"}[self.impl]
        geom, groups = self.geometry(in_shape), self.strides_and_groups[2]
        kernel_shape = (*geom.window, in_shape[-1] // groups, self.out_channels)
        kernel = choose_kernel(in_shape, kernel_shape, geom, groups, backend)
        return f"auto: {KERNEL_NAMES[kernel]}"


@dataclasses.dataclass(frozen=True)
class Conv2d(ConvLayer):
    """A conv layer; `impl` picks `"auto"` (`jaxcnn.conv2d_auto`: the fastest kernel for
    the layer's shapes and backend), `"lax"` (`jaxcnn.conv2d`) or `"patches"`
    (`jaxcnn.conv2d_patches`). Forward-mode autodiff (`jax.jvp`, `jax.jacfwd`) needs
    `impl="lax"` or `"patches"` on CPU: `"auto"`'s gradients there are written for
    reverse mode."""

    kind = "conv2d"
    _: dataclasses.KW_ONLY
    stride: IntPair = 1
    dilation: IntPair = 1
    groups: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        _freeze_fields(self, "stride", "dilation")

    @property
    def strides_and_groups(self) -> tuple[IntPair, IntPair, int]:
        return self.stride, self.dilation, self.groups

    def forward(self, params, state, x, *, training, key):
        conv = conv_impl(self.impl)
        y = conv(
            params,
            x,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
        )
        return y, {}

    def flops(self, in_shape, out_shape):
        bias = size(out_shape) if self.use_bias else 0
        return self.conv_flops(in_shape, out_shape[1] * out_shape[2]) + bias

    def runs_as(self, in_shape, backend=None):
        return self.conv_plan(in_shape, backend)


@dataclasses.dataclass(frozen=True)
class PooledConv(ConvLayer):
    """A stride-1 conv and the `window` pool after it: with `impl="auto"` (the default)
    computed together on CPU (`jaxcnn.fused`), else one after the other."""

    window: IntPair
    pool = "max"

    def __post_init__(self) -> None:
        super().__post_init__()
        _freeze_fields(self, "window")

    def conv_pixels(self, out_shape: Shape) -> int:
        """The conv outputs the pool reads."""
        pool = window_geometry(out_shape[1:3], self.window, self.window, 0)
        return out_shape[1] * out_shape[2] * pool.window[0] * pool.window[1]

    def runs_as(self, in_shape, backend=None):
        if self.impl == "auto" and fused.runs_fused(in_shape[-1], backend):
            return "conv+pool products"
        return f"{self.conv_plan(in_shape, backend)} + {self.pool} pool"


@dataclasses.dataclass(frozen=True)
class Conv2dMaxPool(PooledConv):
    """A stride-1 conv layer followed by a `window` max pool (`jaxcnn.conv2d_max_pool`)."""

    kind = "conv2d_max_pool"

    def forward(self, params, state, x, *, training, key):
        if self.impl == "auto":
            return fused.conv2d_max_pool(params, x, self.window, padding=self.padding), {}
        conv = conv_impl(self.impl)(params, x, padding=self.padding)
        return pool_lib.max_pool2d(conv, self.window), {}

    def flops(self, in_shape, out_shape):
        bias = size(out_shape) if self.use_bias else 0
        return self.conv_flops(in_shape, self.conv_pixels(out_shape)) + bias


@dataclasses.dataclass(frozen=True)
class Conv2dAvgPool(PooledConv):
    """A stride-1 conv layer, `activation`, then a `window` average pool
    (`jaxcnn.conv2d_avg_pool`, the lecture's LeNet)."""

    kind = "conv2d_avg_pool"
    pool = "average"
    _: dataclasses.KW_ONLY
    activation: Callable[[jax.Array], jax.Array] | None = None

    def forward(self, params, state, x, *, training, key):
        if self.impl == "auto":
            y = fused.conv2d_avg_pool(
                params, x, self.window, activation=self.activation, padding=self.padding
            )
            return y, {}
        z = conv_impl(self.impl)(params, x, padding=self.padding)
        z = z if self.activation is None else self.activation(z)
        return pool_lib.avg_pool2d(z, self.window), {}

    def flops(self, in_shape, out_shape):
        pixels = self.conv_pixels(out_shape)
        per_output = 3 if self.use_bias else 2  # bias, activation and mean on every conv output
        return self.conv_flops(in_shape, pixels) + pixels * self.out_channels * per_output


# ---- dense, normalisation, dropout


@dataclasses.dataclass(frozen=True)
class Dense(Layer):
    """A fully connected layer over the last axis (`jaxcnn.dense`)."""

    kind = "dense"
    out_features: int
    _: dataclasses.KW_ONLY
    use_bias: bool = True
    kernel_init: str | init_lib.Initializer = "lecun_normal"

    def __post_init__(self) -> None:
        init_lib.positive_int(self.out_features, "out_features")

    def make(self, key, input_shape):
        params = init_lib.init_dense(
            key,
            input_shape[-1],
            self.out_features,
            use_bias=self.use_bias,
            kernel_init=self.kernel_init,
        )
        return params, {}

    def forward(self, params, state, x, *, training, key):
        return linear.dense(params, x), {}

    def flops(self, in_shape, out_shape):
        return 2 * in_shape[-1] * self.out_features + (size(out_shape) if self.use_bias else 0)


@dataclasses.dataclass(frozen=True)
class BatchNorm(Layer):
    """`jaxcnn.batch_norm` over the last axis (channels, or a dense layer's features)."""

    kind = "batch_norm"
    _: dataclasses.KW_ONLY
    momentum: float = 0.9
    eps: float = 1e-5

    @property
    def has_state(self) -> bool:
        return True

    def make(self, key, input_shape):
        return init_batch_norm(input_shape[-1])

    def forward(self, params, state, x, *, training, key):
        return batch_norm_fn(
            params, state, x, training=training, momentum=self.momentum, eps=self.eps
        )

    def flops(self, in_shape, out_shape):
        return 2 * size(in_shape)


@dataclasses.dataclass(frozen=True)
class Dropout(Layer):
    """`jaxcnn.dropout`: drops with probability `rate` when training, the identity after."""

    kind = "dropout"
    rate: float

    def __post_init__(self) -> None:
        check_rate(self.rate)  # now, as the layer is built: building a model does no array work

    @property
    def random(self) -> bool:
        return self.rate > 0

    def forward(self, params, state, x, *, training, key):
        return dropout_fn(x, key, self.rate, training=training), {}

    def flops(self, in_shape, out_shape):
        return size(in_shape)


# ---- pooling and reshaping


@dataclasses.dataclass(frozen=True)
class PoolLayer(Layer):
    """A window pool; `stride` defaults to the window."""

    window: IntPair
    _: dataclasses.KW_ONLY
    stride: IntPair | None = None
    padding: Padding = 0

    def __post_init__(self) -> None:
        _freeze_fields(self, "window", "stride", "padding")

    def geometry(self, in_shape: Shape) -> Geometry:
        """The pool's window over NHWC `in_shape`."""
        stride = self.window if self.stride is None else self.stride
        return window_geometry(in_shape[1:3], self.window, stride, self.padding)

    def flops(self, in_shape, out_shape):
        return size(in_shape)  # each input pixel read once into a window


@dataclasses.dataclass(frozen=True)
class MaxPool2d(PoolLayer):
    """`jaxcnn.max_pool2d`."""

    kind = "max_pool2d"

    def forward(self, params, state, x, *, training, key):
        return pool_lib.max_pool2d(x, self.window, stride=self.stride, padding=self.padding), {}


@dataclasses.dataclass(frozen=True)
class AvgPool2d(PoolLayer):
    """`jaxcnn.avg_pool2d`."""

    kind = "avg_pool2d"
    _: dataclasses.KW_ONLY
    count_include_pad: bool = True

    def forward(self, params, state, x, *, training, key):
        y = pool_lib.avg_pool2d(
            x,
            self.window,
            stride=self.stride,
            padding=self.padding,
            count_include_pad=self.count_include_pad,
        )
        return y, {}


@dataclasses.dataclass(frozen=True)
class GlobalAvgPool2d(Layer):
    """NHWC `(n, h, w, c)` -> `(n, c)`: each channel's mean."""

    kind = "global_avg_pool2d"

    def forward(self, params, state, x, *, training, key):
        return pool_lib.global_avg_pool2d(x), {}

    def flops(self, in_shape, out_shape):
        return size(in_shape)


@dataclasses.dataclass(frozen=True)
class AdaptiveAvgPool2d(Layer):
    """`jaxcnn.adaptive_avg_pool2d`: PyTorch's bins, `output_size` of them per axis."""

    kind = "adaptive_avg_pool2d"
    output_size: IntPair

    def __post_init__(self) -> None:
        _freeze_fields(self, "output_size")

    def forward(self, params, state, x, *, training, key):
        return pool_lib.adaptive_avg_pool2d(x, self.output_size), {}

    def flops(self, in_shape, out_shape):
        return size(in_shape)


@dataclasses.dataclass(frozen=True)
class Flatten(Layer):
    """`(n, ...)` -> `(n, -1)`."""

    kind = "flatten"

    def forward(self, params, state, x, *, training, key):
        return linear.flatten(x), {}


@dataclasses.dataclass(frozen=True)
class Identity(Layer):
    """`x` unchanged: a `concat` branch that passes its input on (DenseNet)."""

    kind = "identity"

    def forward(self, params, state, x, *, training, key):
        return x, {}


# The names networks are written with: `L.conv2d(6, 5)` is `L.Conv2d(6, 5)`.
conv2d = Conv2d
conv2d_max_pool = Conv2dMaxPool
conv2d_avg_pool = Conv2dAvgPool
dense = Dense
dropout = Dropout
max_pool2d = MaxPool2d
avg_pool2d = AvgPool2d
adaptive_avg_pool2d = AdaptiveAvgPool2d


def batch_norm(*, momentum: float = 0.9, eps: float = 1e-5, name: str | None = None) -> BatchNorm:
    """`BatchNorm`: `jaxcnn.batch_norm` over the last axis."""
    return BatchNorm(momentum=momentum, eps=eps, name=name)


def activation(fn: Callable[[jax.Array], jax.Array], *, name: str | None = None) -> Activation:
    """An elementwise function as a layer: `jax.nn.relu`, `jax.nn.sigmoid`, ... (in a
    `sequential` the function alone does the same)."""
    if not callable(fn):
        raise TypeError(f"`fn` must be a function, got {type(fn).__name__}")
    return Activation(fn=fn, name=name)


stateless = activation  # any function of `x` alone, without parameters


def global_avg_pool2d(*, name: str | None = None) -> GlobalAvgPool2d:
    return GlobalAvgPool2d(name=name)


def flatten(*, name: str | None = None) -> Flatten:
    return Flatten(name=name)


def identity(*, name: str | None = None) -> Identity:
    return Identity(name=name)


_ = (Concat, Residual, Sequential, concat, residual, sequential)  # re-exported
