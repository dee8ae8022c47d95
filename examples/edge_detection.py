"""The lecture's demonstration (d2l 7.2): find a vertical edge with the kernel [1, -1], then learn
that kernel back from the image and its edges by gradient descent.

    python examples/edge_detection.py [--out edges.png]

Prints the edges, the loss as the kernel is learned and the learned kernel,
and saves a picture of the image, its edges and the learned kernel's output.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import jaxcnn


def black_and_white() -> jax.Array:
    """A 6x8 image: white (1) on both sides, a black (0) band in the middle."""
    return jnp.ones((6, 8)).at[:, 2:6].set(0.0)


def learn_kernel(x: jax.Array, y: jax.Array, steps: int = 40, lr: float = 0.03, log=print):
    """A 1x2 kernel, from random, fitted to give `y` from `x` by gradient descent on the
    squared error, as d2l does (its conv has no bias either)."""
    params = {"kernel": jax.random.normal(jax.random.key(0), (1, 2, 1, 1))}
    image = x[None, :, :, None]  # NHWC

    def loss(params):
        return jnp.sum((jaxcnn.conv2d(params, image)[0, :, :, 0] - y) ** 2)

    step = jax.jit(lambda p: jax.tree.map(lambda w, g: w - lr * g, p, jax.grad(loss)(p)))
    for i in range(steps):
        params = step(params)
        if (i + 1) % 10 == 0:
            log(f"step {i + 1}, loss {float(loss(params)):.6f}")
    return params["kernel"][:, :, 0, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="edges.png", help="where the picture goes")
    args = parser.parse_args()
    x = black_and_white()
    y = jaxcnn.corr2d(x, jnp.array([[1.0, -1.0]]))  # 1 at white-to-black, -1 at black-to-white
    print("edges found with the kernel [1, -1]:")
    print(np.asarray(y).astype(int))
    kernel = learn_kernel(x, y)
    print("learned kernel:", np.round(np.asarray(kernel), 4).tolist())

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3))
    FigureCanvasAgg(fig)
    panels = [
        (x, "image"),
        (y, "edges, kernel [1, -1]"),
        (jaxcnn.corr2d(x, kernel), f"learned kernel {np.round(np.asarray(kernel), 2).tolist()}"),
    ]
    for ax, (picture, title) in zip(fig.subplots(1, 3), panels):
        ax.imshow(np.asarray(picture), cmap="gray", vmin=-1, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"picture: {args.out}")


if __name__ == "__main__":
    main()
