"""Cutting images into the windows a kernel sees (im2col), and the band patterns over them.

`extract_patches` is the patch matrix of `conv2d_patches`; `tap_slices`,
`stack_grid` and `tap_selector` are the pieces it and the CPU kernels
(`jaxcnn.nn.cpu_kernels`, `jaxcnn.nn.fused`) build their patches and band matrices from.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn.nn.geometry import Geometry
from jaxcnn.parallel import reshape_examples


def extract_patches(x: jax.Array, geom: Geometry) -> jax.Array:
    """Cuts a padded NHWC batch into the windows a kernel sees (im2col).

    Args:
      x: NHWC `(n, h, w, c)`.
      geom: the window's geometry (see `jaxcnn.nn.geometry.window_geometry`).

    Returns:
      `(n, out_h, out_w, kh * kw, c)`: `patches[b, i, j, p * kw + q]` is the
      input pixel under kernel tap `(p, q)` for output pixel `(i, j)`.
    """
    kh, kw = geom.window
    taps = tap_slices(x, geom)
    patches = stack_grid([taps[p * kw : (p + 1) * kw] for p in range(kh)], axis=3)
    n, oh, ow, *_, c = patches.shape
    return reshape_examples(patches, (n, oh, ow, kh * kw, c))


def tap_slices(x: jax.Array, geom: Geometry) -> list[jax.Array]:
    """For each kernel tap `(p, q)`, row-major, the `(n, out_h, out_w, c)` pixels it multiplies.

    Args:
      x: NHWC `(n, h, w, c)`, unpadded; `geom.padding` is applied here.
      geom: the window's geometry.
    """
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = geom.window, geom.stride, geom.dilation, geom.out_hw
    x = jnp.pad(x, ((0, 0), *geom.padding, (0, 0)))
    return [
        x[:, strided(p * dh, oh, sh), strided(q * dw, ow, sw)] for p in range(kh) for q in range(kw)
    ]


def strided(start: int, count: int, stride: int) -> slice:
    """The `count` indices `start, start + stride, ...` that one kernel tap visits along an axis."""
    return slice(start, start + (count - 1) * stride + 1, stride)


def stack_grid(grid: list[list[jax.Array]], axis: int) -> jax.Array:
    """`grid[i][j]`, arrays of one shape, stacked into new axes `axis` (i) and `axis + 1` (j).

    One axis at a time, not all pieces in one `jnp.stack`: XLA's CPU backend
    fuses the slices that make the pieces and a concatenate of at most 8 of
    them, not along the last axis, into one loop, but otherwise copies each
    piece before concatenating (docs/performance.md, "Building patches").
    """
    return jnp.stack([jnp.stack(row, axis=axis) for row in grid], axis=axis)


def tap_selector(k: int, width: int, block: int, stride: int = 1, dilation: int = 1) -> np.ndarray:
    """The pattern of a band matrix: `m[q, v, j] = 1` where pixel `v` of a `width`-pixel
    patch is tap `q` of output `j` of a block of `block` outputs, else 0.

    Pixel `v` is tap `q` of output `j` where `v == j * stride + q * dilation`;
    `einsum("...q...,qvj->...v...j...", kernel, m)` spreads a kernel into a band.

    Returns:
      `(k, width, block)` float32 zeros and ones.
    """
    m = np.zeros((k, width, block), np.float32)
    for q in range(k):
        m[q, np.arange(block) * stride + q * dilation, np.arange(block)] = 1
    return m
