"""The kinds of conv layer: a conv alone (`Conv2d`), or with the pool after it (`Conv2dMaxPool`,
`Conv2dAvgPool`), and the implementations a conv layer can run (`CONV_IMPLS`).

Each is a frozen description of its options (`jaxcnn.nn.network.Layer`); the
kernel it runs is chosen once per layer, from its options, its input's shape
and the backend (`runs_as` says which, the summary prints it), by
`jaxcnn.nn.auto.choose_kernel` and `jaxcnn.nn.fused.runs_fused`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax

from jaxcnn.nn import fused
from jaxcnn.nn import init as init_lib
from jaxcnn.nn import pool as pool_lib
from jaxcnn.nn.auto import choose_kernel, conv2d_auto
from jaxcnn.nn.conv import conv2d as lax_conv2d
from jaxcnn.nn.conv import conv2d_patches
from jaxcnn.nn.geometry import Geometry, IntPair, Padding, window_geometry
from jaxcnn.nn.network import Layer, Shape, freeze_options, size

# The conv implementations a layer (and a config's `model.conv_impl`) can name.
CONV_IMPLS: dict[str, Callable[..., jax.Array]] = {
    "lax": lax_conv2d,
    "patches": conv2d_patches,
    "auto": conv2d_auto,
}
KERNEL_NAMES = {
    "pointwise": "slice and product",
    "tap_sum": "tap sums",
    "banded": "banded products",
    "lax": "lax conv",
}


def conv_impl(impl: str) -> Callable[..., jax.Array]:
    """The conv function `CONV_IMPLS` names `impl`.

    Raises:
      ValueError: if `impl` is not one of them.
    """
    if impl not in CONV_IMPLS:
        raise ValueError(f"`impl` must be one of {sorted(CONV_IMPLS)}, got {impl!r}")
    return CONV_IMPLS[impl]


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
        freeze_options(self, "kernel_size", "padding")

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
        freeze_options(self, "stride", "dilation")

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
    computed together on CPU (`jaxcnn.nn.fused`), else one after the other."""

    window: IntPair
    pool = "max"

    def __post_init__(self) -> None:
        super().__post_init__()
        freeze_options(self, "window")

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
