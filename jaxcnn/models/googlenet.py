"""GoogLeNet (d2l 8.4): Inception blocks of four parallel branches; small for 28x28."""

from __future__ import annotations

from jaxcnn.models.blocks import classifier, conv_bn_relu, widths
from jaxcnn.nn import layers as L


def inception(
    c1: int, c2: tuple[int, int], c3: tuple[int, int], c4: int, *, conv_impl: str = "auto"
) -> L.Layer:
    """Four branches on one input, concatenated along channels (d2l's `Inception`).

    - `b1`: 1x1 conv of `c1`;
    - `b2`: 1x1 conv of `c2[0]`, then 3x3 of `c2[1]`;
    - `b3`: 1x1 conv of `c3[0]`, then 5x5 of `c3[1]`;
    - `b4`: 3x3 max pool (stride 1), then 1x1 conv of `c4`.
    Output channels: `c1 + c2[1] + c3[1] + c4`. Batch norm after each conv.
    """

    def conv(c, k):
        return conv_bn_relu(c, k, conv_impl=conv_impl)

    return L.concat(
        b1=conv(c1, 1),
        b2=L.sequential(reduce=conv(c2[0], 1), conv=conv(c2[1], 3)),
        b3=L.sequential(reduce=conv(c3[0], 1), conv=conv(c3[1], 5)),
        b4=L.sequential(pool=L.max_pool2d(3, stride=1, padding=1), conv=conv(c4, 1)),
    )


def googlenet(num_classes: int = 10, *, width: int = 16, conv_impl: str = "auto") -> L.Layer:
    """A small GoogLeNet: a stem, two stages of two Inception blocks, global average, dense.

    28x28: stem conv 3x3 of `2 * width` -> inception x2 (14x14 after a pool)
    -> max-pool 3/2 -> inception x2 (7x7) -> global average -> dense. The
    blocks keep d2l's proportions between branches, scaled by `width`.
    """
    (w,) = widths("width", (width,), 1)

    def block(c1, c2, c3, c4):
        return inception(
            w * c1 // 4,
            (w * c2[0] // 4, w * c2[1] // 4),
            (w * c3[0] // 4, w * c3[1] // 4),
            w * c4 // 4,
            conv_impl=conv_impl,
        )

    return L.sequential(
        stem=conv_bn_relu(2 * w, 3, conv_impl=conv_impl),
        pool1=L.max_pool2d(3, stride=2, padding=1),
        block3a=block(4, (6, 8), (1, 2), 2),  # d2l's 64, (96, 128), (16, 32), 32 over 16
        block3b=block(8, (8, 12), (2, 6), 4),
        pool2=L.max_pool2d(3, stride=2, padding=1),
        block4a=block(12, (6, 13), (1, 3), 4),
        block4b=block(10, (7, 14), (2, 4), 4),
        head=classifier(num_classes),
    )
