"""LeNet-5, as the lecture draws it, in its modern form, and with batch norm (d2l 8.5)."""

from __future__ import annotations

import jax

from jaxcnn.nn import layers as L


def lenet_d2l(num_classes: int = 10, *, conv_impl: str = "auto") -> L.Layer:
    """d2l's LeNet: sigmoid and average pooling, Xavier init (61,706 parameters for 28x28x1).

    conv 6@5x5 pad 2 -> sigmoid -> avg-pool 2 -> conv 16@5x5 -> sigmoid -> avg-pool 2
    -> dense 120 -> sigmoid -> dense 84 -> sigmoid -> dense `num_classes`.

    Each conv, its sigmoid and its pool make one layer (`conv2d_avg_pool`),
    which `conv_impl="auto"` computes together.
    """
    init = "xavier_uniform"
    sigmoid = jax.nn.sigmoid
    return L.sequential(
        conv1=L.conv2d_avg_pool(
            6, 5, 2, activation=sigmoid, padding=2, kernel_init=init, impl=conv_impl
        ),
        conv2=L.conv2d_avg_pool(16, 5, 2, activation=sigmoid, kernel_init=init, impl=conv_impl),
        flatten=L.flatten(),
        fc1=L.dense(120, kernel_init=init),
        act3=L.activation(jax.nn.sigmoid),
        fc2=L.dense(84, kernel_init=init),
        act4=L.activation(jax.nn.sigmoid),
        fc3=L.dense(num_classes, kernel_init=init),
    )


def lenet(
    num_classes: int = 10,
    *,
    channels: tuple[int, int] = (6, 16),
    hidden: tuple[int, int] = (120, 84),
    conv_impl: str = "auto",
) -> L.Layer:
    """Modern LeNet-5: ReLU, max pooling, He init; widths are arguments.

    conv c1@5x5 pad 2 -> relu -> max-pool 2 -> conv c2@5x5 -> relu -> max-pool 2
    -> dense h1 -> relu -> dense h2 -> relu -> dense `num_classes`.

    Each ReLU runs after its pool rather than before: since ReLU never
    decreases, `relu(max(z)) == max(relu(z))`, with the same gradients, and
    each conv and its pool make one layer (`conv2d_max_pool`), which
    `conv_impl="auto"` computes together.
    """
    init = "he_normal"
    c1, c2 = two("channels", channels)
    h1, h2 = two("hidden", hidden)
    return L.sequential(
        conv1=L.conv2d_max_pool(c1, 5, 2, padding=2, kernel_init=init, impl=conv_impl),
        act1=L.activation(jax.nn.relu),
        conv2=L.conv2d_max_pool(c2, 5, 2, kernel_init=init, impl=conv_impl),
        act2=L.activation(jax.nn.relu),
        flatten=L.flatten(),
        fc1=L.dense(h1, kernel_init=init),
        act3=L.activation(jax.nn.relu),
        fc2=L.dense(h2, kernel_init=init),
        act4=L.activation(jax.nn.relu),
        fc3=L.dense(num_classes, kernel_init="lecun_normal"),
    )


def lenet_bn(num_classes: int = 10, *, conv_impl: str = "auto") -> L.Layer:
    """d2l 8.5's LeNet with batch norm after every conv and dense layer, before its sigmoid.

    conv 6@5x5 -> bn -> sigmoid -> avg-pool 2 -> conv 16@5x5 -> bn -> sigmoid -> avg-pool 2
    -> dense 120 -> bn -> sigmoid -> dense 84 -> bn -> sigmoid -> dense `num_classes`.
    """
    return L.sequential(
        conv1=L.conv2d(6, 5, impl=conv_impl),
        bn1=L.batch_norm(),
        act1=L.activation(jax.nn.sigmoid),
        pool1=L.avg_pool2d(2),
        conv2=L.conv2d(16, 5, impl=conv_impl),
        bn2=L.batch_norm(),
        act2=L.activation(jax.nn.sigmoid),
        pool2=L.avg_pool2d(2),
        flatten=L.flatten(),
        fc1=L.dense(120),
        bn3=L.batch_norm(),
        act3=L.activation(jax.nn.sigmoid),
        fc2=L.dense(84),
        bn4=L.batch_norm(),
        act4=L.activation(jax.nn.sigmoid),
        fc3=L.dense(num_classes),
    )


def two(name: str, widths) -> tuple[int, int]:
    """`widths` as a pair, checked."""
    if not isinstance(widths, tuple | list) or len(widths) != 2:
        raise ValueError(f"`{name}` must be two widths, got {widths!r}")
    return widths[0], widths[1]
