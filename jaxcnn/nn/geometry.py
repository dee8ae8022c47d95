"""Stride, padding, dilation and window rules, written once for conv and pool.

Every image in jaxcnn is NHWC (batch, height, width, channels) and every conv
kernel is HWIO (height, width, in_channels // groups, out_channels). The
functions here turn the user's `stride` / `padding` / `dilation` / `window`
arguments into explicit per-axis integers, check them, and compute output
sizes, so that `conv2d`, `conv2d_patches` and the pools agree to the pixel.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any, NamedTuple, TypeAlias

import jax

IMAGE_LAYOUT = "NHWC"
KERNEL_LAYOUT = "HWIO"
DIMENSION_NUMBERS = (IMAGE_LAYOUT, KERNEL_LAYOUT, IMAGE_LAYOUT)

IntPair: TypeAlias = int | Sequence[int]
Padding: TypeAlias = (
    str | int | Sequence[int] | Sequence[Sequence[int]]
)  # "SAME" | "VALID" | p | (ph, pw) | ((top, bottom), (left, right))
PadPairs: TypeAlias = tuple[tuple[int, int], tuple[int, int]]


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"`{name}` must be an int, got bool {value!r}")
    try:
        return operator.index(value)  # ints and NumPy integers, not floats
    except TypeError:
        raise TypeError(f"`{name}` must be an int, got {type(value).__name__} {value!r}") from None


def int_pair(value: IntPair, name: str, *, minimum: int = 1) -> tuple[int, int]:
    """Normalises an int or an (h, w) pair, checking each entry is >= `minimum`.

    Args:
      value: an int (used for both axes) or a sequence of two ints.
      name: the argument's name, used in error messages.
      minimum: the smallest value allowed.

    Returns:
      `(h, w)` as Python ints.
    """
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise ValueError(f"`{name}` must be an int or a pair (h, w), got {value!r}")
        pair = (_as_int(value[0], name), _as_int(value[1], name))
    else:
        n = _as_int(value, name)
        pair = (n, n)
    if min(pair) < minimum:
        raise ValueError(f"`{name}` must be >= {minimum} on both axes, got {value!r}")
    return pair


def effective_window(window: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int]:
    """The extent of a dilated window: (k - 1) * d + 1 per axis."""
    (kh, kw), (dh, dw) = window, dilation
    return (kh - 1) * dh + 1, (kw - 1) * dw + 1


def pad_pairs(
    padding: Padding,
    in_hw: Sequence[int],
    window: tuple[int, int],
    stride: tuple[int, int],
) -> PadPairs:
    """Normalises `padding` to `((top, bottom), (left, right))`.

    Args:
      padding: `"VALID"`; `"SAME"` (TensorFlow's rule: output size
        ceil(in / stride), the odd pixel padded at the end); an int for all four
        sides; `(ph, pw)` for both sides of each axis; or
        `((top, bottom), (left, right))` for one-sided padding.
      in_hw: the input's (height, width).
      window: the effective (dilated) window (height, width).
      stride: (height, width) strides.

    Returns:
      Non-negative `((top, bottom), (left, right))`.
    """
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return ((0, 0), (0, 0))
        if mode == "SAME":
            (h, w), (kh, kw), (sh, sw) = in_hw, window, stride
            return _same_pad(h, kh, sh), _same_pad(w, kw, sw)
        raise ValueError(f"`padding` string must be 'SAME' or 'VALID', got {padding!r}")
    expected = (
        "an int, a pair (ph, pw), a pair of pairs ((top, bottom), (left, right)), 'SAME' or 'VALID'"
    )
    pads: PadPairs
    if isinstance(padding, Sequence):
        sides: Sequence[Any] = padding
        if len(sides) != 2:
            raise ValueError(f"`padding` must be {expected}, got {padding!r}")
        rows, cols = sides
        if all(isinstance(p, Sequence) and not isinstance(p, str) for p in sides):
            if any(len(p) != 2 for p in sides):
                raise ValueError(f"`padding` must be {expected}, got {padding!r}")
            pads = (_int_pads(rows), _int_pads(cols))
        else:
            ph, pw = _as_int(rows, "padding"), _as_int(cols, "padding")
            pads = ((ph, ph), (pw, pw))
    else:
        p = _as_int(padding, "padding")
        pads = ((p, p), (p, p))
    if min(min(pair) for pair in pads) < 0:
        raise ValueError(f"`padding` must be non-negative, got {padding!r}")
    return pads


def _same_pad(n: int, k: int, s: int) -> tuple[int, int]:
    """TensorFlow's SAME: output `ceil(n / s)`, the odd pixel padded at the end."""
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _int_pads(pair: Any) -> tuple[int, int]:
    lo, hi = pair
    return _as_int(lo, "padding"), _as_int(hi, "padding")


class Geometry(NamedTuple):
    """A window sliding over an image, with every argument made explicit."""

    window: tuple[int, int]  # (kh, kw), undilated
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: PadPairs  # ((top, bottom), (left, right))
    out_hw: tuple[int, int]


def window_geometry(
    in_hw: Sequence[int],
    window: IntPair,
    stride: IntPair,
    padding: Padding,
    dilation: IntPair = 1,
    *,
    window_name: str = "window",
) -> Geometry:
    """Checks and normalises the arguments of a sliding window (conv or pool).

    Args:
      in_hw: the input's (height, width).
      window: window (or kernel) size, an int or (kh, kw).
      stride: an int or (sh, sw), each >= 1.
      padding: any form accepted by `pad_pairs`.
      dilation: an int or (dh, dw), each >= 1.
      window_name: what to call the window in error messages.

    Returns:
      A `Geometry` whose `out_hw` is
      `(in + top + bottom - ((k - 1) * d + 1)) // s + 1` per axis.

    Raises:
      ValueError: if an argument is malformed or the dilated window is larger
        than the padded input.
    """
    window = int_pair(window, window_name)
    stride = int_pair(stride, "stride")
    dilation = int_pair(dilation, "dilation")
    extent = effective_window(window, dilation)
    pads = pad_pairs(padding, in_hw, extent, stride)
    for axis, n, (lo, hi), k in zip(("height", "width"), in_hw, pads, extent):
        if n + lo + hi < k:
            raise ValueError(
                f"`{window_name}` {window} (dilated extent {extent}) is larger than the "
                f"padded input along {axis}: {n} + {lo} + {hi} = {n + lo + hi} < {k}"
            )
    (h, w), ((top, bottom), (left, right)), (eh, ew), (sh, sw) = in_hw, pads, extent, stride
    out_hw = ((h + top + bottom - eh) // sh + 1, (w + left + right - ew) // sw + 1)
    return Geometry(window, stride, dilation, pads, out_hw)


def as_image_batch(x: jax.Array, name: str = "x") -> tuple[jax.Array, bool]:
    """Returns `x` as NHWC and whether a batch axis was added to an HWC input."""
    ndim = getattr(x, "ndim", None)
    if ndim is None:
        raise TypeError(f"`{name}` must be an array, got {type(x).__name__}")
    if ndim == 4:
        return x, False
    if ndim == 3:
        return x[None], True
    raise ValueError(f"`{name}` must be a 4-D NHWC batch (or a 3-D HWC image), got shape {x.shape}")
