"""DenseNet (d2l 8.7): each layer's output concatenated to its input; small for 28x28."""

from __future__ import annotations

import jax

from jaxcnn.models.blocks import classifier, conv_bn_relu, widths
from jaxcnn.nn import layers as L


def bn_relu_conv(channels: int, kernel_size: int, *, conv_impl: str = "auto") -> L.Layer:
    """batch norm -> ReLU -> conv: DenseNet's order (d2l's `conv_block`)."""
    return L.sequential(
        bn=L.batch_norm(),
        act=L.activation(jax.nn.relu),
        conv=L.conv2d(
            channels, kernel_size, padding="SAME", kernel_init="he_normal", impl=conv_impl
        ),
    )


def dense_block(layers: int, growth: int, *, conv_impl: str = "auto") -> L.Layer:
    """`layers` times: `x = concat(x, bn_relu_conv(x))`, `growth` new channels each."""
    return L.sequential(
        **{
            f"layer{i + 1}": L.concat(
                input=L.identity(), new=bn_relu_conv(growth, 3, conv_impl=conv_impl)
            )
            for i in range(layers)
        }
    )


def transition(channels: int, *, conv_impl: str = "auto") -> L.Layer:
    """A 1x1 conv to `channels`, then a 2x2 average pool: between dense blocks."""
    return L.sequential(conv=bn_relu_conv(channels, 1, conv_impl=conv_impl), pool=L.avg_pool2d(2))


def densenet(
    num_classes: int = 10,
    *,
    stem: int = 32,
    growth: int = 16,
    layers: tuple[int, ...] = (4, 4, 4),
    conv_impl: str = "auto",
) -> L.Layer:
    """A small DenseNet: a stem, dense blocks with transitions halving channels and image.

    d2l's uses four blocks of four layers, growth 32, on 96x96 images; three
    blocks take 28x28 to 7x7.
    """
    (stem_width, growth_rate) = widths("stem, growth", (stem, growth), 2)
    counts = widths("layers", layers)
    parts: dict[str, L.Layer] = {"stem": conv_bn_relu(stem_width, 3, conv_impl=conv_impl)}
    channels = stem_width
    for i, count in enumerate(counts):
        parts[f"block{i + 1}"] = dense_block(count, growth_rate, conv_impl=conv_impl)
        channels += count * growth_rate
        if i < len(counts) - 1:
            channels //= 2
            parts[f"transition{i + 1}"] = transition(channels, conv_impl=conv_impl)
    return L.sequential(
        **parts, norm=L.batch_norm(), act=L.activation(jax.nn.relu), head=classifier(num_classes)
    )
