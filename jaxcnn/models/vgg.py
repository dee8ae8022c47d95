"""VGG (d2l 8.2): blocks of 3x3 convs, each block halving the image; small for 28x28."""

from __future__ import annotations

import jax

from jaxcnn.models.blocks import conv_bn_relu, widths
from jaxcnn.nn import layers as L


def vgg_block(convs: int, channels: int, *, conv_impl: str = "auto") -> L.Layer:
    """`convs` 3x3 convs (with batch norm) of `channels`, then a 2x2 max pool."""
    layers = {f"conv{i + 1}": conv_bn_relu(channels, 3, conv_impl=conv_impl) for i in range(convs)}
    return L.sequential(**layers, pool=L.max_pool2d(2))


def vgg(
    num_classes: int = 10,
    *,
    blocks: tuple[tuple[int, int], ...] = ((1, 32), (1, 64), (2, 128)),
    hidden: int = 256,
    dropout: float = 0.5,
    conv_impl: str = "auto",
) -> L.Layer:
    """A small VGG: `blocks` of `(convs, channels)`, then two dense layers with dropout.

    d2l's VGG-11 has five blocks and 4096-wide dense layers for 224x224 images;
    three blocks take 28x28 to 3x3. Batch norm after each conv (d2l trains
    VGG without; with it, a higher learning rate works).
    """
    if not isinstance(blocks, tuple | list) or not blocks:
        raise ValueError(f"`blocks` must be (convs, channels) pairs, got {blocks!r}")
    stages = {
        f"block{i + 1}": vgg_block(*widths(f"blocks[{i}]", b, 2), conv_impl=conv_impl)
        for i, b in enumerate(blocks)
    }
    (width,) = widths("hidden", (hidden,), 1)
    return L.sequential(
        **stages,
        flatten=L.flatten(),
        fc1=L.dense(width, kernel_init="he_normal"),
        act1=L.activation(jax.nn.relu),
        drop1=L.dropout(dropout),
        fc2=L.dense(width, kernel_init="he_normal"),
        act2=L.activation(jax.nn.relu),
        drop2=L.dropout(dropout),
        fc3=L.dense(num_classes),
    )
