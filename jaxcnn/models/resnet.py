"""ResNet (d2l 8.6): residual blocks of two 3x3 convs, in stages that halve the image."""

from __future__ import annotations

import jax

from jaxcnn.models.blocks import classifier, conv_bn_relu, widths
from jaxcnn.nn import layers as L


def residual_block(channels: int, *, stride: int = 1, conv_impl: str = "auto") -> L.Layer:
    """`relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))`, d2l's `Residual`.

    With a stride, or a change of channels, the shortcut is a strided 1x1
    conv with batch norm (the block's input shape must change as the body's
    does); otherwise it is `x` itself.
    """

    def conv(c, stride=1, kernel=3):
        return L.conv2d(
            c,
            kernel,
            stride=stride,
            padding="SAME",
            use_bias=False,
            kernel_init="he_normal",
            impl=conv_impl,
        )

    shortcut = None
    if stride != 1:
        shortcut = L.sequential(conv=conv(channels, stride, kernel=1), bn=L.batch_norm())
    body = L.sequential(
        conv1=conv(channels, stride),
        bn1=L.batch_norm(),
        act1=L.activation(jax.nn.relu),
        conv2=conv(channels),
        bn2=L.batch_norm(),
    )
    return L.residual(body, shortcut=shortcut, activation=jax.nn.relu)


def resnet(
    num_classes: int = 10,
    *,
    stages: tuple[int, ...] = (16, 32, 64),
    blocks: int = 1,
    stem_pool: bool = False,
    conv_impl: str = "auto",
) -> L.Layer:
    """A CIFAR-style ResNet: a 3x3 stem, `stages` of `blocks` residual blocks, global average.

    Each stage after the first starts with a stride-2 block (28 -> 14 -> 7).
    The defaults, 16/32/64 channels with one block each (a ResNet-8), are
    sized for a 2-core CPU; `stages=(64, 128, 256, 512), blocks=2` is
    `resnet18`. `stem_pool` halves the image after the stem with a 2x2 max
    pool (28 -> 14 -> 7 -> 4), as ImageNet ResNets do: the stages then run
    at a quarter of the positions, where wider layers cost what narrow ones did.
    """
    channels = widths("stages", stages)
    (count,) = widths("blocks", (blocks,), 1)
    layers: dict[str, L.Layer] = {"stem": conv_bn_relu(channels[0], 3, conv_impl=conv_impl)}
    if stem_pool:
        layers["stem_pool"] = L.max_pool2d(2)
    for s, c in enumerate(channels):
        for b in range(count):
            stride = 2 if s > 0 and b == 0 else 1
            layers[f"stage{s + 1}_block{b + 1}"] = residual_block(
                c, stride=stride, conv_impl=conv_impl
            )
    return L.sequential(**layers, head=classifier(num_classes))


def resnet18(num_classes: int = 10, *, conv_impl: str = "auto") -> L.Layer:
    """The CIFAR-style ResNet-18: 64/128/256/512 channels, two blocks each (11.2M parameters)."""
    return resnet(num_classes, stages=(64, 128, 256, 512), blocks=2, conv_impl=conv_impl)
