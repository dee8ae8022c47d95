"""A convolution and the pool after it, computed together.

A `(P, Q)` max pool after a stride-1 convolution keeps, for every `P x Q`
block of conv outputs, the largest. The block's `P * Q` outputs read one
`(P - 1 + kh) x (Q - 1 + kw)` patch of the input, so one matrix product over
those patches gives all of them side by side, and the pool becomes a max over
the product's columns: no conv output image is written and no window is
reduced over image axes, which XLA's CPU backend does slowly
(docs/performance.md, "Conv and pool together"). An average pool after an
activation (the lecture's LeNet: sigmoid, then average) applies the
activation to those columns and averages them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxcnn.errors import reverse_mode_only
from jaxcnn.nn.auto import BANDED_MAX_CHANNELS, conv2d_auto
from jaxcnn.nn.conv import conv_call
from jaxcnn.nn.cpu_kernels import patch_product
from jaxcnn.nn.geometry import IntPair, Padding, PadPairs, window_geometry
from jaxcnn.nn.norm import channel_sum
from jaxcnn.nn.params import Params
from jaxcnn.nn.patches import stack_grid, tap_selector
from jaxcnn.nn.pool import avg_pool2d, max_pool2d
from jaxcnn.parallel import reshape_examples

# A per-example bias row up to this many values (256 KB in float32, a fraction
# of a core's L2 cache): the row is meant to stay in cache while each example's
# values stream past it; a larger one would be read from memory too.
PER_EXAMPLE_BIAS_MAX_SIZE = 2**16


def conv2d_max_pool(
    params: Params,
    x: jax.Array,
    window: IntPair,
    *,
    padding: Padding = 0,
    backend: str | None = None,
) -> jax.Array:
    """`max_pool2d(conv2d(params, x, padding=padding), window)`, computed together.

    Same values as the two layers, and the same gradients: where a pool window
    holds equal maxima, its gradient is shared between them, as `max_pool2d`
    does. Conv outputs that no window covers (the last rows or columns when
    the window does not divide the conv's output) are not computed. With more
    than `BANDED_MAX_CHANNELS` input channels, or off the CPU (`backend`,
    default JAX's default backend), it runs `conv2d_auto`, then `max_pool2d`,
    since the convolution of XLA (or cuDNN, or the TPU's) is faster there.

    Non-finite inputs: a pool window's products multiply every pixel of its
    patch by the band's zeros too, and `inf * 0` is NaN, so a pooled output
    whose patch holds an inf or NaN pixel can be NaN where the two layers
    give inf or a finite value; outputs whose patches hold only finite pixels
    are not affected.

    Args:
      params: `{"kernel": (kh, kw, in_channels, out_channels),
        "bias": (out_channels,)}`; `"bias"` may be absent.
      x: NHWC input `(n, h, w, in_channels)`, or one HWC image.
      window: the pool's window, an int or `(P, Q)`; its stride is the window.
      padding: the convolution's, in any form `conv2d` takes.
      backend: the backend to choose kernels for; None for JAX's default.

    Returns:
      NHWC `(n, conv_h // P, conv_w // Q, out_channels)`, where `conv_h, conv_w`
      are the stride-1 convolution's output sizes.
    """
    call = conv_call(params, x, 1, padding, 1, 1)
    pool = window_geometry(call.geom.out_hw, window, window, 0)
    if runs_fused(call.kernel.shape[2], backend):
        y = block_products(call.x, call.kernel, call.geom.padding, pool.window, pool.out_hw)
        y = y.max(axis=3)
    else:
        conv = conv2d_auto({"kernel": call.kernel}, call.x, padding=padding, backend=backend)
        y = max_pool2d(conv, window)
    on_cpu = (backend or jax.default_backend()) == "cpu"
    return call.finish(y, add_bias=add_bias_per_example if on_cpu else jnp.add)


@reverse_mode_only(
    'on CPU, for forward mode use `conv2d` and `avg_pool2d` (in a layer or config, `impl="lax"`)'
)
def conv2d_avg_pool(
    params: Params,
    x: jax.Array,
    window: IntPair,
    *,
    activation: Callable[[jax.Array], jax.Array] | None = None,
    padding: Padding = 0,
    backend: str | None = None,
) -> jax.Array:
    """`avg_pool2d(activation(conv2d(params, x, padding=padding)), window)`, computed together.

    The lecture's LeNet puts a sigmoid between each conv and its average
    pool; unlike ReLU before a max pool, it cannot move after the pool, so
    each pool window's conv outputs come from one product, as in
    `conv2d_max_pool`, and the activation runs on them before their mean.
    Same values as the three steps and the same gradients, for the outputs
    that some window covers. With more than `BANDED_MAX_CHANNELS` input
    channels, or off the CPU, it runs the three steps (`conv2d_auto`).

    On CPU the gradients are written by hand (reverse mode only, as
    `conv2d_auto`'s): the input's gradient is one small product per patch
    cell, summed in one pass, and the bias's a sum in two steps, which XLA's
    CPU backend runs faster than autodiff's (docs/performance.md, "Conv and
    pool together"). Non-finite inputs as `conv2d_max_pool`.

    Args:
      params: `{"kernel": (kh, kw, in_channels, out_channels),
        "bias": (out_channels,)}`; `"bias"` may be absent.
      x: NHWC input `(n, h, w, in_channels)`, or one HWC image.
      window: the pool's window, an int or `(P, Q)`; its stride is the window.
      activation: an elementwise function (`jax.nn.sigmoid`...); None for none.
      padding: the convolution's, in any form `conv2d` takes.
      backend: the backend to choose kernels for; None for JAX's default.

    Returns:
      NHWC `(n, conv_h // P, conv_w // Q, out_channels)`.
    """
    call = conv_call(params, x, 1, padding, 1, 1)
    pool = window_geometry(call.geom.out_hw, window, window, 0)
    act = activation or (lambda z: z)
    if not runs_fused(call.kernel.shape[2], backend):
        return avg_pool2d(act(conv2d_auto(params, x, padding=padding, backend=backend)), window)
    z = block_products_written(call.x, call.kernel, call.geom.padding, pool.window, pool.out_hw)
    if call.bias is not None:
        z = add_channel_bias(z, call.bias)
    y = act(z).mean(axis=3)
    return y[0] if call.unbatched else y


def runs_fused(in_channels: int, backend: str | None = None) -> bool:
    """Whether a conv of `in_channels` input channels and its pool run as one product.

    On CPU with at most `BANDED_MAX_CHANNELS` input channels; past that, or
    off the CPU (`backend`, default JAX's), the convolution of XLA (or
    cuDNN, or the TPU's) is faster.
    """
    on_cpu = (backend or jax.default_backend()) == "cpu"
    return on_cpu and in_channels <= BANDED_MAX_CHANNELS


def block_products(
    x: jax.Array,
    kernel: jax.Array,
    padding: PadPairs,
    window: tuple[int, int],
    out_hw: tuple[int, int],
) -> jax.Array:
    """Every conv output of each pool window, by one matrix product.

    The padded input is cut into `P x Q` cells (space to depth). An output
    block reads `ch x cw` neighbouring cells, `ch = ceil((P - 1 + kh) / P)`;
    stacked, they are its patch. The band matrix maps that patch to the
    block's outputs: `band[(du, dv, r, s, c), (a, b, o)] = kernel[p, q, c, o]`
    where the pixel `(du * P + r, dv * Q + s)` of the patch is `(a + p, b + q)`
    (zero elsewhere). Then `patches @ band` is `(blocks, P * Q * o)`.

    Args:
      x: NHWC `(n, h, w, c)`, unpadded.
      kernel: HWIO `(kh, kw, c, o)`.
      padding: the conv's `((top, bottom), (left, right))`.
      window: the pool's `(P, Q)`.
      out_hw: the pooled output's `(rows, cols)`.

    Returns:
      `(n, rows, cols, P * Q, o)`: output `(a, b)` of block `(i, j)`, the conv's
      `(i * P + a, j * Q + b)`, at `[:, i, j, a * Q + b]`.
    """
    return _block_products_fwd(x, kernel, padding, window, out_hw)[0]


def _cells(x, kernel_hw, padding, window, out_hw):
    """The padded input as `(n, rows + ch - 1, cols + cw - 1, P * Q * c)` cells."""
    (P, Q), (rows, cols) = window, out_hw
    ch, cw = _cell_extent(kernel_hw, window)
    height, width = (rows + ch - 1) * P, (cols + cw - 1) * Q  # the pixels the cells cover
    (top, _), (left, _) = padding
    n, h, w, c = x.shape
    x = jnp.pad(
        x, ((0, 0), (top, max(0, height - h - top)), (left, max(0, width - w - left)), (0, 0))
    )
    cells = reshape_examples(x[:, :height, :width], (n, height // P, P, width // Q, Q, c))
    return reshape_examples(
        cells.transpose(0, 1, 3, 2, 4, 5), (n, height // P, width // Q, P * Q * c)
    )


def _cell_extent(kernel_hw, window):
    """`(ch, cw)`: the cells one block's patch spans."""
    (kh, kw), (P, Q) = kernel_hw, window
    return math.ceil((P - 1 + kh) / P), math.ceil((Q - 1 + kw) / Q)


def _band(kernel, window):
    """`(ch, cw, P * Q * c, P * Q * o)`: the band, one `(P * Q * c, P * Q * o)` block a cell."""
    P, Q = window
    kh, kw, c, o = kernel.shape
    ch, cw = _cell_extent((kh, kw), window)
    # Pixel `(d, r)` of a patch, `d * P + r`, is the tap `p` of output `a` where it is `a + p`.
    rows_taps = tap_selector(kh, ch * P, P).reshape(kh, ch, P, P)
    cols_taps = tap_selector(kw, cw * Q, Q).reshape(kw, cw, Q, Q)
    band = jnp.einsum(
        "pdra,qesb,pqco->derscabo",
        jnp.asarray(rows_taps, kernel.dtype),
        jnp.asarray(cols_taps, kernel.dtype),
        kernel,
    )
    return band.reshape(ch, cw, P * Q * c, P * Q * o)


def _block_products_fwd(x, kernel, padding, window, out_hw):
    (P, Q), (rows, cols) = window, out_hw
    n = x.shape[0]
    cells = _cells(x, kernel.shape[:2], padding, window, out_hw)
    band = _band(kernel, window)
    ch, cw, k, j = band.shape
    patches = stack_grid(
        [[cells[:, du : du + rows, dv : dv + cols] for dv in range(cw)] for du in range(ch)], axis=3
    )  # (n, rows, cols, ch, cw, P * Q * c)
    patches = reshape_examples(patches, (n * rows * cols, ch * cw * k))
    y = patch_product(patches, band.reshape(ch * cw * k, j), n)
    return reshape_examples(y, (n, rows, cols, P * Q, kernel.shape[-1])), (x, kernel, patches, band)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def block_products_written(x, kernel, padding, window, out_hw):
    """`block_products`, with its gradients written by hand (reverse mode only).

    The input's gradient is, for each of the `ch x cw` cells of a patch, the
    output gradient times that cell's block of the band, padded into place;
    the sum of those runs as one pass. Autodiff's transpose of the patches
    (a padded slice a cell, summed) left XLA's CPU backend writing each cell
    out and summing them again for every consumer.
    """
    return block_products(x, kernel, padding, window, out_hw)


def _block_products_bwd(padding, window, out_hw, residuals, grad):
    x, kernel, patches, band = residuals
    rows, cols = out_hw
    n = x.shape[0]
    ch, cw, k, j = band.shape
    grad = reshape_examples(grad, (n * rows * cols, j))
    _, band_vjp = jax.vjp(lambda b: patch_product(patches, b, n), band.reshape(ch * cw * k, j))
    (band_grad,) = band_vjp(grad)
    (kernel_grad,) = jax.linear_transpose(lambda w: _band(w, window), kernel)(
        band_grad.reshape(band.shape)
    )
    cells_grad = sum(
        jnp.pad(
            reshape_examples(grad @ band[du, dv].T, (n, rows, cols, k)),
            ((0, 0), (du, ch - 1 - du), (dv, cw - 1 - dv), (0, 0)),
        )
        for du in range(ch)
        for dv in range(cw)
    )
    cells = lambda v: _cells(v, kernel.shape[:2], padding, window, out_hw)  # noqa: E731
    (x_grad,) = jax.linear_transpose(cells, x)(cells_grad)
    return x_grad, kernel_grad


block_products_written.defvjp(_block_products_fwd, _block_products_bwd)


@jax.custom_vjp
def add_channel_bias(y: jax.Array, bias: jax.Array) -> jax.Array:
    """`y + bias` over the last axis; the bias's gradient is `norm.channel_sum`, two sums
    that XLA's CPU backend runs faster than one (docs/performance.md, "Batch norm")."""
    return y + bias


add_channel_bias.defvjp(lambda y, bias: (y + bias, None), lambda _, grad: (grad, channel_sum(grad)))


def add_bias_per_example(y: jax.Array, bias: jax.Array) -> jax.Array:
    """`y + bias` for NHWC `y` `(n, h, w, c)`, as `(n, h * w * c)` rows plus `bias` tiled `h * w` times.

    The bias's gradient sums the output's over `n, h, w`. As one reduction of
    rows `c` values wide, XLA's CPU backend splits it into a slow
    `reduce-window`; this way it sums the rows, then the `h * w` pixels of
    that sum, and the barrier keeps XLA from merging the two sums back into
    one. Not used by `conv2d_auto`, whose tap-sum forward XLA then fused
    worse (docs/performance.md, "Bias").
    """
    n, *pixel_shape = y.shape
    size = math.prod(pixel_shape)
    if size > PER_EXAMPLE_BIAS_MAX_SIZE:
        return y + bias
    row = jax.lax.optimization_barrier(jnp.tile(bias, size // bias.shape[0]))
    return reshape_examples(reshape_examples(y, (n, size)) + row, y.shape)
