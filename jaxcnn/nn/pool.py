"""Max and average pooling over NHWC images.

As in the lecture and PyTorch, `stride` defaults to the window, so windows
tile the image without overlap. Windows, strides and padding follow the same
rules as convolution (`jaxcnn.nn.geometry`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcnn.nn.geometry import Geometry, IntPair, Padding, as_image_batch, int_pair, window_geometry
from jaxcnn.parallel import reshape_examples


def pool_geometry(
    in_hw: Sequence[int], window: IntPair, stride: IntPair | None, padding: Padding
) -> Geometry:
    """A pool's window over an image of `in_hw` pixels; `stride` None is the window.

    Raises:
      ValueError: if the padding on a side reaches the window's size (such a window could
        hold padding alone, which has no max or mean), or as `window_geometry`.
    """
    geom = window_geometry(in_hw, window, window if stride is None else stride, padding)
    for k, pads in zip(geom.window, geom.padding):
        if max(pads) >= k:
            raise ValueError(
                f"`padding` {padding!r} must be smaller than `window` {geom.window} "
                f"on each side, got {geom.padding}"
            )
    return geom


def _pool_geometry(
    x: jax.Array, window: IntPair, stride: IntPair | None, padding: Padding
) -> tuple[jax.Array, bool, Geometry]:
    x, unbatched = as_image_batch(x)
    return x, unbatched, pool_geometry(x.shape[1:3], window, stride, padding)


def _reduce(x: jax.Array, init: float, op, geom: Geometry) -> jax.Array:
    return lax.reduce_window(
        x,
        np.array(init, x.dtype),  # a concrete identity lets JAX pick a differentiable reducer
        op,
        window_dimensions=(1, *geom.window, 1),
        window_strides=(1, *geom.stride, 1),
        padding=((0, 0), *geom.padding, (0, 0)),
    )


def max_pool2d(
    x: jax.Array,
    window: IntPair,
    *,
    stride: IntPair | None = None,
    padding: Padding = 0,
) -> jax.Array:
    """The largest value in each window; padded pixels count as -inf.

    The gradient goes to each window's maximum. With ties inside one window it
    goes to the first maximum when windows overlap (`stride != window`) and is
    shared equally when they tile the image (`stride == window`, the default,
    computed by a faster path).

    Args:
      x: NHWC `(n, h, w, c)`, or one HWC image.
      window: an int or `(wh, ww)`.
      stride: an int or `(sh, sw)`; defaults to `window`.
      padding: any form `conv2d` takes, each side smaller than the window.

    Returns:
      NHWC `(n, out_h, out_w, c)`, `out = (in + pad_lo + pad_hi - k) // s + 1`.
    """
    x, unbatched, geom = _pool_geometry(x, window, stride, padding)
    if geom.stride == geom.window:
        y = _tiled_max(x, geom)
    else:
        y = _reduce(x, -jnp.inf, lax.max, geom)
    return y[0] if unbatched else y


def _tiled_max(x: jax.Array, geom: Geometry) -> jax.Array:
    """Non-overlapping max pool as a reshape and a max over the window axes.

    Same values as `reduce_window`, whose gradient (select-and-scatter) is slow
    on CPU (docs/performance.md, "Pooling"). Where a window
    holds several equal maxima, its gradient is shared equally between them
    (JAX's rule for `max`) instead of going to the first one.
    """
    (kh, kw), (oh, ow) = geom.window, geom.out_hw
    x = jnp.pad(x, ((0, 0), *geom.padding, (0, 0)), constant_values=-jnp.inf)
    x = x[:, : oh * kh, : ow * kw]  # rows and columns no window reaches are dropped
    n, _, _, c = x.shape
    return reshape_examples(x, (n, oh, kh, ow, kw, c)).max(axis=(2, 4))


def avg_pool2d(
    x: jax.Array,
    window: IntPair,
    *,
    stride: IntPair | None = None,
    padding: Padding = 0,
    count_include_pad: bool = True,
) -> jax.Array:
    """The mean of each window.

    Args:
      x: NHWC `(n, h, w, c)`, or one HWC image.
      window: an int or `(wh, ww)`.
      stride: an int or `(sh, sw)`; defaults to `window`.
      padding: any form `conv2d` takes, each side smaller than the window;
        padded pixels are zeros.
      count_include_pad: divide by the full window size (True, PyTorch's
        default) or by the number of real pixels in each window (False).

    Returns:
      NHWC `(n, out_h, out_w, c)`, sizes as `max_pool2d`.
    """
    x, unbatched, geom = _pool_geometry(x, window, stride, padding)
    sums = _reduce(x, 0, lax.add, geom)
    if count_include_pad:
        y = sums / (geom.window[0] * geom.window[1])
    else:
        ones = jnp.ones((1, *x.shape[1:3], 1), x.dtype)
        y = sums / _reduce(ones, 0, lax.add, geom)
    return y[0] if unbatched else y


def global_avg_pool2d(x: jax.Array) -> jax.Array:
    """The mean of each channel over the whole image: NHWC `(n, h, w, c)` -> `(n, c)`.

    What NiN, GoogLeNet, ResNet and DenseNet put before their classifier.
    """
    x, unbatched = as_image_batch(x)
    y = jnp.mean(x, axis=(1, 2))
    return y[0] if unbatched else y


def adaptive_avg_pool2d(x: jax.Array, output_size: IntPair) -> jax.Array:
    """Average pooling to a fixed output size, with PyTorch's bins.

    Output pixel `i` of an axis of `n` input pixels averages inputs
    `floor(i * n / out)` to `ceil((i + 1) * n / out) - 1`, so bins overlap
    when `out` does not divide `n`. Computed as two averaging matrices, one
    per axis: `y = A_h @ x @ A_w^T` for each example and channel.

    Args:
      x: NHWC `(n, h, w, c)`, or one HWC image.
      output_size: an int or `(out_h, out_w)`, each >= 1.

    Returns:
      NHWC `(n, out_h, out_w, c)`.
    """
    x, unbatched = as_image_batch(x)
    out_h, out_w = int_pair(output_size, "output_size")
    rows = jnp.asarray(_averaging_matrix(x.shape[1], out_h), x.dtype)
    cols = jnp.asarray(_averaging_matrix(x.shape[2], out_w), x.dtype)
    y = jnp.einsum("ih,nhwc,jw->nijc", rows, x, cols)
    return y[0] if unbatched else y


def _averaging_matrix(size: int, out: int) -> np.ndarray:
    """`(out, size)`: row `i` averages PyTorch's bin `i` of an axis of `size` pixels."""
    matrix = np.zeros((out, size), np.float32)
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        matrix[i, start:end] = 1 / (end - start)
    return matrix
