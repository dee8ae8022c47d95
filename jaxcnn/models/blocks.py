"""Small pieces the modern models share."""

from __future__ import annotations

from collections.abc import Sequence

import jax

from jaxcnn.nn import layers as L
from jaxcnn.nn.geometry import IntPair


def conv_bn_relu(
    channels: int, kernel_size: IntPair, *, stride: IntPair = 1, conv_impl: str = "auto"
) -> L.Layer:
    """conv (SAME padding, no bias: the batch norm's shift is one) -> batch norm -> ReLU."""
    return L.sequential(
        conv=L.conv2d(
            channels,
            kernel_size,
            stride=stride,
            padding="SAME",
            use_bias=False,
            kernel_init="he_normal",
            impl=conv_impl,
        ),
        bn=L.batch_norm(),
        act=L.activation(jax.nn.relu),
    )


def widths(name: str, values: Sequence[int], count: int | None = None) -> tuple[int, ...]:
    """`values` as a tuple of positive ints (`count` of them, if given), checked."""
    if not isinstance(values, tuple | list) or not values or (count and len(values) != count):
        what = f"{count} widths" if count else "a list of widths"
        raise ValueError(f"`{name}` must be {what}, got {values!r}")
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"`{name}` must hold positive ints, got {values!r}")
    return tuple(values)


def classifier(num_classes: int) -> L.Layer:
    """Global average pooling, then one dense layer: the head of NiN's successors."""
    return L.sequential(pool=L.global_avg_pool2d(), fc=L.dense(num_classes))
