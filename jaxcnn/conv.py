"""2-D convolution (cross-correlation, as in deep learning) three ways.

- `corr2d`: the lecture's loops — multiply elementwise, then sum — over one
  single-channel 2-D array. For teaching and as the naive benchmark baseline.
- `conv2d`: batched, multi-channel, through `jax.lax.conv_general_dilated`.
- `conv2d_patches`: the same semantics written by hand: cut the padded input
  into patches with strided slices (im2col) and do one matrix product.
- `conv2d_auto`: the same numbers computed the fastest way for the layer's
  shape on CPU: a sum over kernel taps, matrix products over banded patches,
  or `lax` (see its docstring for the measurements behind the choice).

Images are NHWC, kernels HWIO: `(kh, kw, in_channels // groups, out_channels)`.
Parameters are `{"kernel": ..., "bias": ...}`; `"bias"` is optional.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec

from jaxcnn.geometry import (
    DIMENSION_NUMBERS,
    Geometry,
    IntPair,
    Padding,
    PadPairs,
    as_image_batch,
    effective_window,
    window_geometry,
)
from jaxcnn.parallel import examples_sharding, reshape_examples
from jaxcnn.params import kernel_and_bias

Params = Mapping[str, jax.Array]


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


def _check_conv(
    params: Params,
    x: jax.Array,
    stride: IntPair,
    padding: Padding,
    dilation: IntPair,
    groups: int,
) -> tuple[jax.Array, jax.Array | None, jax.Array, bool, Geometry]:
    """Validates a conv call; returns kernel, bias, NHWC x, unbatch flag, geometry."""
    kernel, bias = kernel_and_bias(params, "(kh, kw, in_channels // groups, out_channels)")
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
    return kernel, bias, x, unbatched, geom


def _finish(
    y: jax.Array,
    bias: jax.Array | None,
    unbatched: bool,
    add_bias: Callable[[jax.Array, jax.Array], jax.Array] = jnp.add,
) -> jax.Array:
    """`y + bias` (through `add_bias`), then the HWC image back for an HWC input."""
    if bias is not None:
        y = add_bias(y, bias)
    return y[0] if unbatched else y


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
        or `"VALID"` (see `jaxcnn.geometry.pad_pairs`).
      dilation: kernel dilation, an int or `(dh, dw)`.
      groups: split the channels into this many independent groups.

    Returns:
      NHWC `(n, out_h, out_w, out_channels)` (HWC for an HWC input), where
      `out = (in + pad_lo + pad_hi - (k - 1) * d - 1) // s + 1`.

    Its gradients are autodiff's, so every JAX transform applies. On CPU they
    are slow inside loops such as `lax.scan` (jax-ml/jax#12868); `conv2d_auto`
    gives the same numbers without that cost.
    """
    kernel, bias, x, unbatched, geom = _check_conv(params, x, stride, padding, dilation, groups)
    return _finish(_lax_conv(x, kernel, geom, groups), bias, unbatched)


def _lax_conv(
    x: jax.Array, kernel: jax.Array, geom: Geometry, groups: int, *, nhwc_grads: bool = False
) -> jax.Array:
    """The conv through `lax`; `nhwc_grads` picks `_conv_nhwc_grads`'s gradients."""
    conv = functools.partial(
        _conv_nhwc_grads if nhwc_grads else _xla_conv, geom=geom, groups=groups
    )
    batch = examples_sharding(x)
    if batch is not None:
        # Under explicit sharding JAX (0.10) cannot type the kernel gradient's
        # conv, a sum over the sharded examples; XLA's partitioner can.
        conv = jax.sharding.auto_axes(conv, out_sharding=PartitionSpec(batch))
    return conv(x, kernel)


def _nhwc_conv(
    x: jax.Array,
    kernel: jax.Array,
    *,
    stride: tuple[int, int] = (1, 1),
    padding: PadPairs,
    lhs_dilation: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
    batch_groups: int = 1,
) -> jax.Array:
    """`lax.conv_general_dilated` with NHWC images, HWIO kernels and NHWC results."""
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


def _xla_conv(x: jax.Array, kernel: jax.Array, geom: Geometry, groups: int) -> jax.Array:
    return _nhwc_conv(
        x, kernel, stride=geom.stride, padding=geom.padding, dilation=geom.dilation, groups=groups
    )


# `_xla_conv` with its gradients written as NHWC x HWIO convs, the same numbers
# as autodiff's. Autodiff's gradient convs read the image with batch and
# channel axes swapped; XLA's CPU compiler rewrites such convs into the form
# its fast kernel takes only outside loops (jax-ml/jax#12868), so inside
# `lax.scan`, as train.py runs its steps, a LeNet step with them took 3.7x as
# long. Reverse mode only, as any `jax.custom_vjp`.
_conv_nhwc_grads = jax.custom_vjp(_xla_conv, nondiff_argnums=(2, 3))


def _conv_nhwc_grads_fwd(x, kernel, geom, groups):
    return _xla_conv(x, kernel, geom, groups), (x, kernel)


def _conv_nhwc_grads_bwd(geom, groups, residuals, grad):
    x, kernel = residuals
    kh, kw, group_in, out_channels = kernel.shape
    extent = effective_window(geom.window, geom.dilation)
    in_hw = x.shape[1:3]
    # Per axis, the padded input's trailing pixels that no window reaches.
    unreached = [
        (n + lo + hi - e) % s for n, (lo, hi), e, s in zip(in_hw, geom.padding, extent, geom.stride)
    ]
    # dx: the gradient, its pixels spread `stride` apart, correlated with the
    # kernel flipped and its in/out channels swapped within each group.
    flipped = jnp.flip(kernel, (0, 1)).reshape(kh, kw, group_in, groups, out_channels // groups)
    swapped = flipped.transpose(0, 1, 4, 3, 2).reshape(kh, kw, out_channels // groups, -1)
    dx = _nhwc_conv(
        grad,
        swapped,
        padding=[
            (e - 1 - lo, e - 1 - hi + r) for e, (lo, hi), r in zip(extent, geom.padding, unreached)
        ],
        lhs_dilation=geom.stride,
        dilation=geom.dilation,
        groups=groups,
    )
    # dkernel: the input correlated with the gradient as kernel, the examples
    # taking the place of channels: (c, h, w, n) x (oh, ow, n, o) -> (c, kh, kw, o).
    dkernel = _nhwc_conv(
        x.transpose(3, 1, 2, 0),
        grad.transpose(1, 2, 0, 3),
        stride=geom.dilation,
        padding=[(lo, hi - r) for (lo, hi), r in zip(geom.padding, unreached)],
        dilation=geom.stride,
        batch_groups=groups,
    )
    return dx, dkernel.transpose(1, 2, 0, 3)


_conv_nhwc_grads.defvjp(_conv_nhwc_grads_fwd, _conv_nhwc_grads_bwd)


def extract_patches(x: jax.Array, geom: Geometry) -> jax.Array:
    """Cuts a padded NHWC batch into the windows a kernel sees (im2col).

    Args:
      x: NHWC `(n, h, w, c)`.
      geom: the window's geometry (see `jaxcnn.geometry.window_geometry`).

    Returns:
      `(n, out_h, out_w, kh * kw, c)`: `patches[b, i, j, p * kw + q]` is the
      input pixel under kernel tap `(p, q)` for output pixel `(i, j)`.
    """
    kh, kw = geom.window
    taps = _tap_slices(x, geom)
    patches = _stack_grid([taps[p * kw : (p + 1) * kw] for p in range(kh)], axis=3)
    n, oh, ow, *_, c = patches.shape
    return reshape_examples(patches, (n, oh, ow, kh * kw, c))


def _stack_grid(grid: list[list[jax.Array]], axis: int) -> jax.Array:
    """`grid[i][j]`, arrays of one shape, stacked into new axes `axis` (i) and `axis + 1` (j).

    One axis at a time, not all pieces in one `jnp.stack`: XLA's CPU backend
    fuses the slices that make the pieces and a concatenate of at most 8 of
    them, not along the last axis, into one loop, but otherwise copies each
    piece before concatenating. Measured against one stack (2 cores):
    `conv2d_patches`' forward 1.0-1.6x faster (5x5 and 3x3 kernels); the
    banded products' forward and gradient 1.2-1.4x faster on LeNet's second
    conv; training steps ~3% (`configs/lenet.py`) and ~5% (`lenet_d2l`) faster.
    """
    return jnp.stack([jnp.stack(row, axis=axis) for row in grid], axis=axis)


def _tap_slices(x: jax.Array, geom: Geometry) -> list[jax.Array]:
    """For each kernel tap (p, q), row-major, the `[n, out_h, out_w, c]` pixels it multiplies."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = geom.window, geom.stride, geom.dilation, geom.out_hw
    x = jnp.pad(x, ((0, 0), *geom.padding, (0, 0)))
    return [
        x[:, _strided(p * dh, oh, sh), _strided(q * dw, ow, sw)]
        for p in range(kh)
        for q in range(kw)
    ]


def _strided(start: int, count: int, stride: int) -> slice:
    """The `count` indices `start, start + stride, ...` that one kernel tap visits along an axis."""
    return slice(start, start + (count - 1) * stride + 1, stride)


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
    kernel, bias, x, unbatched, geom = _check_conv(params, x, stride, padding, dilation, groups)
    kh, kw, group_in, out_channels = kernel.shape
    patches = extract_patches(x, geom)  # (n, oh, ow, kh*kw, c)
    n, oh, ow, taps, _ = patches.shape
    if groups == 1:
        # A plain (pixels, taps * c) @ (taps * c, o) product: with a group axis
        # in the contraction XLA transposes both large operands, ~3x slower.
        pixels = reshape_examples(patches, (n * oh * ow, taps * group_in))
        y = reshape_examples(pixels @ kernel.reshape(-1, out_channels), (n, oh, ow, out_channels))
    else:
        patches = patches.reshape(n, oh, ow, taps, groups, group_in)
        kernel = kernel.reshape(taps, group_in, groups, out_channels // groups)
        y = jnp.einsum("nhwtgc,tcgo->nhwgo", patches, kernel).reshape(n, oh, ow, out_channels)
    return _finish(y, bias, unbatched)


# `conv2d_auto`'s choices, measured on LeNet's layers (batch 256, 2 CPU cores):
# with at most TAP_SUM_MAX_CHANNELS input channels per group the forward sums
# over kernel taps; with at most BANDED_MAX_CHANNELS (and one group) forward
# and gradients are banded matrix products; above that, `lax` is faster.
TAP_SUM_MAX_CHANNELS = 4
BANDED_MAX_CHANNELS = 16


def conv2d_auto(
    params: Params,
    x: jax.Array,
    *,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> jax.Array:
    """`conv2d` computed the fastest way for the layer's shape on CPU; same results.

    XLA's CPU convolution is slow for few channels, above all its gradients
    (LeNet's second layer: ~14 ms forward and backward at batch 256, where the
    same arithmetic as matrix products takes ~5 ms). So, by input channels per
    group `c`:

    - `c <= TAP_SUM_MAX_CHANNELS` (a first layer on grey or RGB images): the
      forward is the lecture's sum over kernel taps, which XLA fuses into one
      pass (0.8 ms against 10 ms for LeNet's first layer); gradients as below
      with one group, else from `lax`.
    - `c <= BANDED_MAX_CHANNELS` and one group: forward and gradients are
      matrix products over banded patches (see `_banded_conv`).
    - otherwise `lax.conv_general_dilated`, forward and gradients, the
      gradients written as NHWC convs so that they stay fast inside
      `lax.scan` (see `_conv_nhwc_grads`).

    Its gradients are reverse mode only (`jax.grad`, `jax.vjp`): where they
    are written by hand, `jax.jvp` raises. `conv2d` supports every transform.
    Arguments, shapes and errors as `conv2d`.

    Non-finite inputs: the banded products multiply each patch's pixels by
    the band's zeros too, and `inf * 0` is NaN, so an inf or NaN pixel can
    make NaN of outputs whose windows miss it, in the blocks of columns that
    read it (so only in output rows whose windows hold its row), as FFT and
    Winograd convolutions spread them; `conv2d` gives those outputs finite
    values. Finite inputs are not affected.
    """
    kernel, bias, x, unbatched, geom = _check_conv(params, x, stride, padding, dilation, groups)
    group_in = kernel.shape[2]
    if group_in <= TAP_SUM_MAX_CHANNELS:
        y = _tap_sum_with_matmul_grad(x, kernel, geom, groups)
    elif group_in <= BANDED_MAX_CHANNELS and groups == 1:
        y = _banded_conv(x, kernel, geom)
    else:
        y = _lax_conv(x, kernel, geom, groups, nhwc_grads=True)
    return _finish(y, bias, unbatched)


def _tap_sum(x: jax.Array, kernel: jax.Array, geom: Geometry, groups: int) -> jax.Array:
    """`sum_{p,q,c} x_shifted(p, q)[..., c] * kernel[p, q, c]` as broadcast multiplies.

    Broadcasting rather than a dot per tap: XLA fuses the whole sum into one
    loop, where dots with so short a contraction run slowly.
    """
    kh, kw, group_in, out_channels = kernel.shape
    taps = _tap_slices(x, geom)
    n, oh, ow, _ = taps[0].shape
    kernel = kernel.reshape(kh * kw, group_in, groups, out_channels // groups)
    y = sum(
        tap.reshape(n, oh, ow, groups, group_in)[..., c, None] * kernel[t, c]
        for t, tap in enumerate(taps)
        for c in range(group_in)
    )
    return y.reshape(n, oh, ow, out_channels)


def _column_block(out_w: int, extent: int, stride: int) -> int:
    """Output columns per banded block.

    At least enough that a block's patch (`(B - 1) * stride + extent` pixels
    wide) at most doubles its `B * stride` new pixels; up to twice that, the
    size that pads the row least (LeNet's 10-pixel rows: 5, not 4 and 12).
    """
    fewest = min(out_w, max(1, -(-(extent - stride) // stride)))
    sizes = range(fewest, min(out_w, 2 * fewest) + 1)
    return min(sizes, key=lambda block: (-(-out_w // block) * block, block))


def _banded_conv(x: jax.Array, kernel: jax.Array, geom: Geometry) -> jax.Array:
    """One-group convolution as one matrix product per block of output columns.

    A block of `B` neighbouring output pixels in a row reads `kh` input rows of
    `bw = (B - 1) * sw + (kw - 1) * dw + 1` pixels each (its "banded patch"),
    and the kernel acts on that patch as a banded matrix
    `band[(p, v, c), (j, o)] = kernel[p, q, c, o]` where `v = j * sw + q * dw`
    (zero elsewhere). So `y_block = patch @ band`: `(n * oh * blocks, kh * bw * c)`
    times `(kh * bw * c, B * o)`. With `B = 1` this is im2col; a larger `B`
    repeats fewer input pixels than im2col would the more it widens the
    product (`B * o` columns), which is what matrix units need, at the cost of
    multiplying the band's zeros. Its gradients, from autodiff, are matrix
    products of the same sizes.

    Args:
      x: NHWC `(n, h, w, c)`.
      kernel: HWIO `(kh, kw, c, o)`.
      geom: the kernel's geometry over `x`.

    Returns:
      NHWC `(n, out_h, out_w, o)`.
    """
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = geom.window, geom.stride, geom.dilation, geom.out_hw
    _, _, c, o = kernel.shape
    _, extent = effective_window(geom.window, geom.dilation)
    block = _column_block(ow, extent, sw)
    blocks = -(-ow // block)
    bw = (block - 1) * sw + extent
    # Zeros on the right let the last block run past the image.
    needed_w = (blocks * block - 1) * sw + extent
    (top, bottom), (left, right) = geom.padding
    padded_w = x.shape[2] + left + right
    x = jnp.pad(x, ((0, 0), (top, bottom), (left, right + max(0, needed_w - padded_w)), (0, 0)))
    n = x.shape[0]
    patches = _stack_grid(
        [
            [
                x[:, _strided(p * dh, oh, sh), b * block * sw : b * block * sw + bw]
                for p in range(kh)
            ]
            for b in range(blocks)
        ],
        axis=2,
    )  # (n, oh, blocks, kh, bw, c)
    taps = _tap_selector(kw, bw, block, sw, dw)
    band = jnp.einsum("pqco,qvj->pvcjo", kernel, jnp.asarray(taps, kernel.dtype))
    patches = reshape_examples(patches, (n * oh * blocks, kh * bw * c))
    y = _patch_product(patches, band.reshape(kh * bw * c, -1), n)
    return reshape_examples(y, (n, oh, blocks * block, o))[:, :, :ow]


def _patch_product(patches: jax.Array, band: jax.Array, n: int) -> jax.Array:
    """`patches @ band` for `patches` `(m, k)`, the rows of `n` examples in order, and `band` `(k, j)`.

    Where `n` is even and the examples are not explicitly sharded, it is a
    batched product over the two halves of the examples: `band`'s gradient
    is then two products side by side, summed, rather than one contraction
    over all `m` rows, which XLA's CPU backend runs slowly. On 2 cores,
    LeNet's second conv's band gradient took 2.3-2.4 ms in halves against
    2.6-2.7 ms; a training step was 1-7% faster (median 3.4%, five
    interleaved comparisons) for `configs/lenet.py` and 1-3.5% faster for
    `lenet_d2l`.
    """
    parts = 2 if n % 2 == 0 and examples_sharding(patches) is None else 1
    m, k = patches.shape
    y = jnp.einsum(
        "smk,skn->smn",
        patches.reshape(parts, m // parts, k),
        jnp.broadcast_to(band, (parts, *band.shape)),
    )
    return y.reshape(m, band.shape[1])


def _tap_selector(k: int, width: int, block: int, stride: int = 1, dilation: int = 1) -> np.ndarray:
    """`m[q, v, j] = 1` where pixel `v` of a `width`-pixel patch is tap `q` of
    output `j` of the block (`v == j * stride + q * dilation`), else 0: the
    pattern of a band matrix `einsum(kernel, m)`, shape `(k, width, block)`."""
    m = np.zeros((k, width, block), np.float32)
    for q in range(k):
        m[q, np.arange(block) * stride + q * dilation, np.arange(block)] = 1
    return m


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _tap_sum_with_matmul_grad(
    x: jax.Array, kernel: jax.Array, geom: Geometry, groups: int
) -> jax.Array:
    return _tap_sum(x, kernel, geom, groups)


def _tap_sum_fwd(x, kernel, geom, groups):
    return _tap_sum(x, kernel, geom, groups), (x, kernel)


def _matmul_conv_bwd(geom, groups, residuals, grad):
    """Gradients of the banded products (one group) or of `lax` (groups)."""
    x, kernel = residuals
    if groups == 1:
        conv = lambda x, kernel: _banded_conv(x, kernel, geom)  # noqa: E731
    else:
        conv = lambda x, kernel: _lax_conv(x, kernel, geom, groups, nhwc_grads=True)  # noqa: E731
    _, vjp = jax.vjp(conv, x, kernel)
    return vjp(grad)


_tap_sum_with_matmul_grad.defvjp(_tap_sum_fwd, _matmul_conv_bwd)
