"""Network in Network (d2l 8.3), small enough for 28x28 images on a CPU."""

from __future__ import annotations

import jax

from jaxcnn.models.blocks import widths
from jaxcnn.nn import layers as L
from jaxcnn.nn.geometry import IntPair


def nin_block(
    channels: int,
    kernel_size: IntPair,
    *,
    padding=0,
    batch_norm: bool = True,
    conv_impl: str = "auto",
) -> L.Layer:
    """A conv, then two 1x1 convs (a dense layer at every pixel), each followed by ReLU,
    and with `batch_norm`, by batch norm before it."""
    layers: dict[str, L.Layer] = {}
    for name, k, pad in (("conv", kernel_size, padding), ("mlp1", 1, 0), ("mlp2", 1, 0)):
        layers[name] = L.conv2d(
            channels,
            k,
            padding=pad,
            use_bias=not batch_norm,
            kernel_init="he_normal",
            impl=conv_impl,
        )
        if batch_norm:
            layers[f"{name}_bn"] = L.batch_norm()
        layers[f"{name}_act"] = L.activation(jax.nn.relu)
    return L.sequential(**layers)


def nin(
    num_classes: int = 10,
    *,
    channels: tuple[int, int, int] = (32, 64, 96),
    dropout: float = 0.5,
    batch_norm: bool = True,
    conv_impl: str = "auto",
) -> L.Layer:
    """NiN: three NiN blocks with max pools, then a block of `num_classes` channels averaged.

    28x28: block 5x5 (pad 2) -> max-pool 3/2 -> block 3x3 (pad 1) -> max-pool 3/2
    -> block 3x3 (pad 1) -> max-pool 3/2 -> dropout -> block of `num_classes`
    channels -> global average: no dense layer at all. d2l's NiN has no batch
    norm and trains slowly from scratch; `batch_norm=False` is d2l's.
    """
    c1, c2, c3 = widths("channels", channels, 3)

    def block(c, k, padding):
        return nin_block(c, k, padding=padding, batch_norm=batch_norm, conv_impl=conv_impl)

    return L.sequential(
        block1=block(c1, 5, 2),
        pool1=L.max_pool2d(3, stride=2, padding=1),
        block2=block(c2, 3, 1),
        pool2=L.max_pool2d(3, stride=2, padding=1),
        block3=block(c3, 3, 1),
        pool3=L.max_pool2d(3, stride=2, padding=1),
        drop=L.dropout(dropout),
        block4=block(num_classes, 3, 1),
        pool=L.global_avg_pool2d(),
    )
