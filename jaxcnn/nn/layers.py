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
state and take the key. A new kind of layer is a class here, or in a module of
its family as the conv kinds are in `jaxcnn.nn.conv_layers` (its options, `make`,
`forward`, and its `flops` for the summary), and its name in `__all__`; the PyTorch and Flax twins (`jaxcnn.bench`) hold a table from kind
to their framework's layer, which a kind without a twin is simply absent from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax

from jaxcnn.nn import init as init_lib
from jaxcnn.nn import linear
from jaxcnn.nn import pool as pool_lib
from jaxcnn.nn.combinators import (
    Activation,
    Concat,
    Residual,
    Sequential,
    concat,
    residual,
    sequential,
)
from jaxcnn.nn.conv_layers import (
    CONV_IMPLS,
    Conv2d,
    Conv2dAvgPool,
    Conv2dMaxPool,
    ConvLayer,
    PooledConv,
    conv_impl,
)
from jaxcnn.nn.dropout import check_rate
from jaxcnn.nn.dropout import dropout as dropout_fn
from jaxcnn.nn.geometry import Geometry, IntPair, Padding
from jaxcnn.nn.network import Layer, Node, Shape, freeze_options, size, walk
from jaxcnn.nn.norm import batch_norm as batch_norm_fn
from jaxcnn.nn.norm import init_batch_norm
from jaxcnn.nn.summary import summary

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
    "PooledConv",
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
        freeze_options(self, "window", "stride", "padding")

    def geometry(self, in_shape: Shape) -> Geometry:
        """The pool's window over NHWC `in_shape`."""
        return pool_lib.pool_geometry(in_shape[1:3], self.window, self.stride, self.padding)

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
        freeze_options(self, "output_size")

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
