"""2-D convolution (cross-correlation, as in deep learning), the lecture's three ways.

- `corr2d`: the lecture's loops — multiply elementwise, then sum — over one
  single-channel 2-D array. For teaching and as the naive benchmark baseline.
- `conv2d`: batched, multi-channel, through `jax.lax.conv_general_dilated`.
- `conv2d_patches`: the same semantics written by hand: cut the padded input
  into patches with strided slices (im2col) and do one matrix product.

`conv2d_auto` (in `jaxcnn.nn.auto`) gives the same numbers by whichever kernel is
fastest for the layer. Images are NHWC, kernels HWIO:
`(kh, kw, in_channels // groups, out_channels)`. Parameters are
`{"kernel": ..., "bias": ...}`; `"bias"` is optional.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec

from jaxcnn.nn.geometry import (
    DIMENSION_NUMBERS,
    Geometry,
    IntPair,
    Padding,
    PadPairs,
    as_image_batch,
    effective_window,
    window_geometry,
)
from jaxcnn.nn.params import Params, kernel_and_bias
from jaxcnn.nn.patches import extract_patches
from jaxcnn.parallel import examples_sharding, reshape_examples

KERNEL_FORM = "(kh, kw, in_channels // groups, out_channels)"


def corr2d(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """The lecture's 2-D cross-correlation, one output pixel at a time.

    `y[i, j] = sum(x[i:i + kh, j:j + kw] * kernel)` — no padding, stride 1.
    Python loops: under `jax.jit` they unroll, so keep it to small arrays.

    Args:
      x: a 2-D array `(h, w)`.
      kernel: a 2-D array `(kh, kw)`, no larger than `x`.

    Returns:
      `(h - kh + 1, w - kw + 1)`.
    """
    x, kernel = jnp.asarray(x), jnp.asarray(kernel)
    if x.ndim != 2 or kernel.ndim != 2:
        raise ValueError(f"`x` and `kernel` must be 2-D, got shapes {x.shape} and {kernel.shape}")
    (h, w), (kh, kw) = x.shape, kernel.shape
    if kh > h or kw > w:
        raise ValueError(f"`kernel` {kernel.shape} is larger than `x` {x.shape}")
    y = jnp.zeros((h - kh + 1, w - kw + 1), jnp.result_type(x, kernel))
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            y = y.at[i, j].set(jnp.sum(x[i : i + kh, j : j + kw] * kernel))
    return y


class ConvCall(NamedTuple):
    """A conv layer's call, checked: what every implementation computes from."""

    kernel: jax.Array  # HWIO (kh, kw, in_channels // groups, out_channels)
    bias: jax.Array | None  # (out_channels,)
    x: jax.Array  # NHWC (n, h, w, in_channels)
    unbatched: bool  # x was one HWC image; give one back
    geom: Geometry

    def finish(
        self, y: jax.Array, add_bias: Callable[[jax.Array, jax.Array], jax.Array] = jnp.add
    ) -> jax.Array:
        """`y + bias` (through `add_bias`), then the HWC image back for an HWC input."""
        if self.bias is not None:
            y = add_bias(y, self.bias)
        return y[0] if self.unbatched else y


def conv_call(
    params: Params,
    x: jax.Array,
    stride: IntPair,
    padding: Padding,
    dilation: IntPair,
    groups: int,
) -> ConvCall:
    """Checks a conv layer's arguments, the one rule for all implementations.

    Raises:
      ValueError, TypeError: naming the argument, what was given and what was expected.
    """
    kernel, bias = kernel_and_bias(params, KERNEL_FORM)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"`groups` must be a positive int, got {groups!r}")
    x, unbatched = as_image_batch(x)
    kh, kw, group_in, out_channels = kernel.shape
    in_channels = x.shape[-1]
    if in_channels % groups:
        raise ValueError(
            f"`x` has {in_channels} channels, which `groups` (={groups}) does not divide"
        )
    if out_channels % groups:
        raise ValueError(
            f"`params['kernel']` has {out_channels} output channels, "
            f"which `groups` (={groups}) does not divide"
        )
    if in_channels != group_in * groups:
        raise ValueError(
            f"`x` has {in_channels} channels but the kernel expects "
            f"{group_in} * groups ({groups}) = {group_in * groups}"
        )
    if bias is not None and bias.shape != (out_channels,):
        raise ValueError(f"`params['bias']` must have shape ({out_channels},), got {bias.shape}")
    geom = window_geometry(x.shape[1:3], (kh, kw), stride, padding, dilation, window_name="kernel")
    return ConvCall(kernel, bias, x, unbatched, geom)


def conv2d(
    params: Params,
    x: jax.Array,
    *,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> jax.Array:
    """2-D convolution through `jax.lax.conv_general_dilated`.

    Args:
      params: `{"kernel": (kh, kw, in_channels // groups, out_channels),
        "bias": (out_channels,)}`; `"bias"` may be absent.
      x: NHWC input `(n, h, w, in_channels)`, or one HWC image.
      stride: an int or `(sh, sw)`.
      padding: an int, `(ph, pw)`, `((top, bottom), (left, right))`, `"SAME"`
        or `"VALID"` (see `jaxcnn.nn.geometry.pad_pairs`).
      dilation: kernel dilation, an int or `(dh, dw)`.
      groups: split the channels into this many independent groups.

    Returns:
      NHWC `(n, out_h, out_w, out_channels)` (HWC for an HWC input), where
      `out = (in + pad_lo + pad_hi - (k - 1) * d - 1) // s + 1`.

    Its gradients are autodiff's, so every JAX transform applies. On CPU they
    are slow inside loops such as `lax.scan` (jax-ml/jax#12868); `conv2d_auto`
    gives the same numbers without that cost.
    """
    call = conv_call(params, x, stride, padding, dilation, groups)
    return call.finish(geometry_conv(call.x, call.kernel, call.geom, groups))


def nhwc_conv(
    x: jax.Array,
    kernel: jax.Array,
    *,
    stride: tuple[int, int] = (1, 1),
    padding: PadPairs | list[tuple[int, int]],
    lhs_dilation: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
    batch_groups: int = 1,
) -> jax.Array:
    """`lax.conv_general_dilated` with NHWC images, HWIO kernels and NHWC results: jaxcnn's
    one call of it, which every conv that XLA runs as a convolution goes through."""
    return lax.conv_general_dilated(
        x,
        kernel,
        window_strides=stride,
        padding=padding,
        lhs_dilation=lhs_dilation,
        rhs_dilation=dilation,
        dimension_numbers=DIMENSION_NUMBERS,
        feature_group_count=groups,
        batch_group_count=batch_groups,
    )


def geometry_conv(
    x: jax.Array,
    kernel: jax.Array,
    geom: Geometry,
    groups: int,
    conv: Callable[[jax.Array, jax.Array, Geometry, int], jax.Array] | None = None,
) -> jax.Array:
    """The convolution `geom` describes, NHWC `x` and HWIO `kernel` in, NHWC out:
    `nhwc_conv` with `geom`'s stride, padding and dilation, or `conv(x, kernel, geom,
    groups)`, the same numbers with other gradients. Wherever it runs:

    - padded past the window first (`pad_past_window`, openxla/xla#48713);
    - under explicit sharding, run under Auto axes: JAX cannot type the kernel
      gradient's conv, a sum over the sharded examples; XLA's partitioner can.
    """
    x, geom = pad_past_window(x, geom)

    def run(x: jax.Array, kernel: jax.Array) -> jax.Array:
        if conv is not None:
            return conv(x, kernel, geom, groups)
        return nhwc_conv(
            x,
            kernel,
            stride=geom.stride,
            padding=geom.padding,
            dilation=geom.dilation,
            groups=groups,
        )

    batch = examples_sharding(x)
    if batch is None:
        return run(x, kernel)
    return jax.sharding.auto_axes(run, out_sharding=PartitionSpec(batch))(x, kernel)


def pad_past_window(x: jax.Array, geom: Geometry) -> tuple[jax.Array, Geometry]:
    """NHWC `x` padded by what `geom` pads past its window's extent less one, and
    `geom` padding the rest: the same convolution.

    Padded by more than `extent - 1` on a side, a conv's input gradient is a
    conv with negative padding, which XLA's CPU backend computes wrongly
    (openxla/xla#48713); padded first, that part of the gradient is a slice.
    """
    extent = effective_window(geom.window, geom.dilation)
    past = [(max(lo - e + 1, 0), max(hi - e + 1, 0)) for (lo, hi), e in zip(geom.padding, extent)]
    if not any(lo or hi for lo, hi in past):
        return x, geom
    (top, bottom), (left, right) = geom.padding
    (a, b), (c, d) = past
    rest = ((top - a, bottom - b), (left - c, right - d))
    return jnp.pad(x, ((0, 0), *past, (0, 0))), geom._replace(padding=rest)


def conv2d_patches(
    params: Params,
    x: jax.Array,
    *,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> jax.Array:
    """`conv2d` written as patch extraction and one matrix product.

    Each output pixel is the dot product of its input patch (kh * kw * in
    values) with each filter: `y[b, i, j, o] = sum_{p,q,c} patch[b, i, j, p, q, c]
    * kernel[p, q, c, o]`, computed for all pixels at once as one
    `(pixels, kh * kw * in) @ (kh * kw * in, out)` product (an `einsum` with a
    group axis when `groups > 1`). No `lax.conv*` primitive is used.
    Arguments, shapes and errors as `conv2d`.
    """
    call = conv_call(params, x, stride, padding, dilation, groups)
    kh, kw, group_in, out_channels = call.kernel.shape
    patches = extract_patches(call.x, call.geom)  # (n, oh, ow, kh*kw, c)
    n, oh, ow, taps, _ = patches.shape
    if groups == 1:
        # A plain (pixels, taps * c) @ (taps * c, o) product: with a group axis
        # in the contraction XLA transposes both large operands, ~3x slower.
        pixels = reshape_examples(patches, (n * oh * ow, taps * group_in))
        y = pixels @ call.kernel.reshape(-1, out_channels)
        y = reshape_examples(y, (n, oh, ow, out_channels))
    else:
        patches = patches.reshape(n, oh, ow, taps, groups, group_in)
        kernel = call.kernel.reshape(taps, group_in, groups, out_channels // groups)
        y = jnp.einsum("nhwtgc,tcgo->nhwgo", patches, kernel).reshape(n, oh, ow, out_channels)
    return call.finish(y)
