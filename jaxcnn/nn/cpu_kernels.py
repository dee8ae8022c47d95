"""CPU kernels for convolution: the same numbers as `conv2d`, by other arithmetic.

XLA's CPU convolution is slow for few channels, above all its gradients, and
its gradient convs are slow inside `lax.scan`. These kernels are what
`conv2d_auto` (`jaxcnn.nn.auto`) and `conv2d_max_pool` (`jaxcnn.nn.fused`) run on
CPU instead; docs/performance.md has the measurements behind each.

- `tap_sum`: the lecture's sum over kernel taps as broadcast multiplies.
- `pointwise_conv`: a strided 1x1 conv as a strided slice and a matrix product.
- `banded_conv`: matrix products over banded patches (a block of output
  columns reads `kh` rows of input; the kernel acts as a banded matrix).
- `patch_product`: the product those patches go through.
- `conv_nhwc_grads`: `lax`'s convolution with its gradients written as NHWC
  convs, which stay fast inside `lax.scan`; a strided conv's input gradient
  as one stride-1 conv over the input's phases (`strided_input_grad`).
"""

from __future__ import annotations

import functools
import operator

import jax
import jax.numpy as jnp

from jaxcnn.nn.conv import geometry_conv, nhwc_conv
from jaxcnn.nn.geometry import Geometry, effective_window
from jaxcnn.nn.patches import stack_grid, strided, tap_selector, tap_slices
from jaxcnn.parallel import examples_sharding, reshape_examples


# `lax`'s convolution with its gradients written as NHWC x HWIO convs, the same
# numbers as autodiff's. Autodiff's gradient convs read the image with batch
# and channel axes swapped; XLA's CPU compiler rewrites such convs into the
# form its fast kernel takes only outside loops (jax-ml/jax#12868), which is
# where train.py runs its steps. Reverse mode only, as any `jax.custom_vjp`.
@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_nhwc_grads(x: jax.Array, kernel: jax.Array, geom: Geometry, groups: int) -> jax.Array:
    return nhwc_conv(
        x, kernel, stride=geom.stride, padding=geom.padding, dilation=geom.dilation, groups=groups
    )


def _conv_nhwc_grads_fwd(x, kernel, geom, groups):
    return conv_nhwc_grads(x, kernel, geom, groups), (x, kernel)


def _conv_nhwc_grads_bwd(geom, groups, residuals, grad):
    x, kernel = residuals
    kh, kw, group_in, out_channels = kernel.shape
    extent = effective_window(geom.window, geom.dilation)
    in_hw = x.shape[1:3]
    # Per axis, the padded input's trailing pixels that no window reaches.
    unreached = [
        (n + lo + hi - e) % s for n, (lo, hi), e, s in zip(in_hw, geom.padding, extent, geom.stride)
    ]
    if geom.stride != (1, 1) and geom.dilation == (1, 1) and groups == 1:
        dx = strided_input_grad(grad, kernel, geom, in_hw)
    else:
        # dx: the gradient, its pixels spread `stride` apart, correlated with the
        # kernel flipped and its in/out channels swapped within each group.
        flipped = jnp.flip(kernel, (0, 1)).reshape(kh, kw, group_in, groups, out_channels // groups)
        swapped = flipped.transpose(0, 1, 4, 3, 2).reshape(kh, kw, out_channels // groups, -1)
        dx = nhwc_conv(
            grad,
            swapped,
            padding=[
                (e - 1 - lo, e - 1 - hi + r)
                for e, (lo, hi), r in zip(extent, geom.padding, unreached)
            ],
            lhs_dilation=geom.stride,
            dilation=geom.dilation,
            groups=groups,
        )
    # dkernel: the input correlated with the gradient as kernel, the examples
    # taking the place of channels: (c, h, w, n) x (oh, ow, n, o) -> (c, kh, kw, o).
    dkernel = nhwc_conv(
        x.transpose(3, 1, 2, 0),
        grad.transpose(1, 2, 0, 3),
        stride=geom.dilation,
        padding=[(lo, hi - r) for (lo, hi), r in zip(geom.padding, unreached)],
        dilation=geom.stride,
        batch_groups=groups,
    )
    return dx, dkernel.transpose(1, 2, 0, 3)


conv_nhwc_grads.defvjp(_conv_nhwc_grads_fwd, _conv_nhwc_grads_bwd)


def strided_input_grad(
    grad: jax.Array, kernel: jax.Array, geom: Geometry, in_hw: tuple[int, int]
) -> jax.Array:
    """The input gradient `(n, h, w, c)` of a strided conv (one group, no dilation) as one
    stride-1 conv, whose `s_h * s_w * c` output channels are the input's pixels by phase.

    With stride `s`, input pixel `s * p + a` of the padded image meets kernel taps
    `s * m + a` only, at output `p - m`: phase `a` is a stride-1 correlation of the
    output gradient `(n, oh, ow, o)` with those taps, flipped. All phases at once: the
    kernel, zero-padded to `s * ceil(k / s)` taps per axis, rearranged into a
    `(ceil(kh / s_h), ceil(kw / s_w), o, s_h * s_w * c)` kernel; the phases are then
    interleaved (depth to space) and the padding cropped. XLA's CPU backend computes the
    usual form, the gradient spread `s` apart, as one product and a single-threaded
    scatter; this way it is one plain convolution (docs/performance.md).
    """
    kh, kw, c, o = kernel.shape
    (sh, sw), n = geom.stride, grad.shape[0]
    mh, mw = -(-kh // sh), -(-kw // sw)
    taps = jnp.pad(kernel, ((0, sh * mh - kh), (0, sw * mw - kw), (0, 0), (0, 0)))
    # [m, a, m', b, c, o] -> [t, t', o, (a, b, c)], t = mh - 1 - m: phase (a, b)'s taps, flipped.
    taps = jnp.flip(taps.reshape(mh, sh, mw, sw, c, o), (0, 2))
    taps = taps.transpose(0, 2, 5, 1, 3, 4).reshape(mh, mw, o, sh * sw * c)
    (top, bottom), (left, right) = geom.padding
    (h, w), (oh, ow) = in_hw, grad.shape[1:3]
    ph, pw = -(-(h + top + bottom) // sh), -(-(w + left + right) // sw)  # pixels per phase
    phases = nhwc_conv(grad, taps, padding=[(mh - 1, ph - oh), (mw - 1, pw - ow)])
    padded = phases.reshape(n, ph, pw, sh, sw, c).transpose(0, 1, 3, 2, 4, 5)
    return padded.reshape(n, ph * sh, pw * sw, c)[:, top : top + h, left : left + w]


def pointwise_conv(x: jax.Array, kernel: jax.Array, geom: Geometry) -> jax.Array:
    """A 1x1 conv (one group) as what it is: the pixels it reads, `stride` apart in the
    padded image, times the kernel as a `(c, o)` matrix; NHWC in, NHWC out, autodiff's
    gradients (a product, and the pixels put back in place)."""
    (top, bottom), (left, right) = geom.padding
    if top or bottom or left or right:
        x = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    (oh, ow), (sh, sw) = geom.out_hw, geom.stride
    read = x[:, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw]
    return read @ kernel.reshape(kernel.shape[2:])


def tap_sum(x: jax.Array, kernel: jax.Array, geom: Geometry, groups: int) -> jax.Array:
    """`sum_{p,q,c} x_shifted(p, q)[..., c] * kernel[p, q, c]` as broadcast multiplies.

    Broadcasting rather than a dot per tap: XLA fuses the whole sum into one
    loop, where dots with so short a contraction run slowly.

    Args:
      x: NHWC `(n, h, w, c)`.
      kernel: HWIO `(kh, kw, c // groups, o)`.
      geom: the kernel's geometry over `x`.
      groups: channel groups.

    Returns:
      NHWC `(n, out_h, out_w, o)`.
    """
    kh, kw, group_in, out_channels = kernel.shape
    taps = tap_slices(x, geom)
    n, oh, ow, _ = taps[0].shape
    kernel = kernel.reshape(kh * kw, group_in, groups, out_channels // groups)
    y = functools.reduce(
        operator.add,
        (
            tap.reshape(n, oh, ow, groups, group_in)[..., c, None] * kernel[t, c]
            for t, tap in enumerate(taps)
            for c in range(group_in)
        ),
    )
    return y.reshape(n, oh, ow, out_channels)


def column_block(out_w: int, extent: int, stride: int) -> int:
    """Output columns per banded block.

    At least enough that a block's patch (`(B - 1) * stride + extent` pixels
    wide) at most doubles its `B * stride` new pixels; up to twice that, the
    size that pads the row least (LeNet's 10-pixel rows: 5, not 4 and 12).
    """
    fewest = min(out_w, max(1, -(-(extent - stride) // stride)))
    sizes = range(fewest, min(out_w, 2 * fewest) + 1)
    return min(sizes, key=lambda block: (-(-out_w // block) * block, block))


def banded_layout(out_w: int, extent: int, stride: int) -> tuple[int, int, int]:
    """`(block, blocks, bw)`: output columns per block, blocks per row, a block's patch width."""
    block = column_block(out_w, extent, stride)
    return block, -(-out_w // block), (block - 1) * stride + extent


def banded_patch_bytes(
    x_shape: tuple[int, ...], kernel_shape: tuple[int, ...], geom: Geometry
) -> int:
    """The size of `banded_conv`'s patch matrix, `(n * oh * blocks, kh * bw * c)` floats."""
    n, c = x_shape[0], x_shape[-1]
    kh = kernel_shape[0]
    (oh, ow), (_, extent) = geom.out_hw, effective_window(geom.window, geom.dilation)
    _, blocks, bw = banded_layout(ow, extent, geom.stride[1])
    return 4 * n * oh * blocks * kh * bw * c


def banded_conv(x: jax.Array, kernel: jax.Array, geom: Geometry) -> jax.Array:
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
    block, blocks, bw = banded_layout(ow, extent, sw)
    # Zeros on the right let the last block run past the image.
    needed_w = (blocks * block - 1) * sw + extent
    (top, bottom), (left, right) = geom.padding
    padded_w = x.shape[2] + left + right
    x = jnp.pad(x, ((0, 0), (top, bottom), (left, right + max(0, needed_w - padded_w)), (0, 0)))
    n = x.shape[0]
    patches = stack_grid(
        [
            [x[:, strided(p * dh, oh, sh), b * block * sw : b * block * sw + bw] for p in range(kh)]
            for b in range(blocks)
        ],
        axis=2,
    )  # (n, oh, blocks, kh, bw, c)
    taps = tap_selector(kw, bw, block, sw, dw)
    band = jnp.einsum("pqco,qvj->pvcjo", kernel, jnp.asarray(taps, kernel.dtype))
    patches = reshape_examples(patches, (n * oh * blocks, kh * bw * c))
    y = patch_product(patches, band.reshape(kh * bw * c, -1), n)
    return reshape_examples(y, (n, oh, blocks * block, o))[:, :, :ow]


def patch_product(patches: jax.Array, band: jax.Array, n: int) -> jax.Array:
    """`patches @ band` for `patches` `(m, k)`, the rows of `n` examples in order, and `band` `(k, j)`.

    Where `n` is even and the examples are not explicitly sharded, it is a
    batched product over the two halves of the examples: `band`'s gradient is
    then two products side by side, summed, rather than one contraction over
    all `m` rows, which XLA's CPU backend runs slowly.

    Returns:
      `(m, j)`.
    """
    parts = 2 if n % 2 == 0 and examples_sharding(patches) is None else 1
    m, k = patches.shape
    y = jnp.einsum(
        "smk,skn->smn",
        patches.reshape(parts, m // parts, k),
        jnp.broadcast_to(band, (parts, *band.shape)),
    )
    return y.reshape(m, band.shape[1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def tap_sum_with_matmul_grads(
    x: jax.Array, kernel: jax.Array, geom: Geometry, groups: int
) -> jax.Array:
    """`tap_sum`, with the gradients of `banded_conv` (one group) or of `conv_nhwc_grads`."""
    return tap_sum(x, kernel, geom, groups)


def _tap_sum_fwd(x, kernel, geom, groups):
    return tap_sum(x, kernel, geom, groups), (x, kernel)


def _matmul_conv_bwd(geom, groups, residuals, grad):
    x, kernel = residuals
    if groups == 1:
        conv = lambda x, kernel: banded_conv(x, kernel, geom)  # noqa: E731
    else:
        conv = lambda x, kernel: geometry_conv(x, kernel, geom, groups, conv_nhwc_grads)  # noqa: E731
    _, vjp = jax.vjp(conv, x, kernel)
    return vjp(grad)


tap_sum_with_matmul_grads.defvjp(_tap_sum_fwd, _matmul_conv_bwd)
