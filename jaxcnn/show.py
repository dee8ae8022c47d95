"""Pictures of a trained model: `python -m jaxcnn.show --workdir runs/NAME [--out DIR] [--image N ...]`.

Writes PNG files (matplotlib) into `--out` (default `<workdir name>-pictures` in the
current folder: like predict.py, it writes nothing in the workdir):

- `kernels.png`: the first conv layer's kernels, one cell per kernel and input channel;
- `features_<N>.png`: test image N and the feature maps of every conv and pool
  layer on it, one grid per layer (`--image`, default the first three);
- `confusion.png`: the confusion matrix on the test split;
- `mistakes.png`: the most confidently misclassified test images, with their
  true and predicted classes;
- `learning_curves.png`: loss and accuracy per epoch.

A missing workdir, one without a checkpoint, or an image index out of range is
one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from jaxcnn import data
from jaxcnn.errors import ConfigError, JaxcnnError, WorkdirError
from jaxcnn.nn.layers import Concat, ConvLayer, Layer, PoolLayer, Residual, Sequential
from jaxcnn.train.metrics import METRICS_FILE, plot_curves
from jaxcnn.train.predict import Predictor, add_checkpoint_flag

FEATURE_LAYERS = (ConvLayer, PoolLayer, Residual, Concat)  # whose outputs are pictured
MISTAKES = 16  # cells of the misclassified-images grid


def figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def grid_shape(count: int) -> tuple[int, int]:
    """Rows and columns, nearly square, for `count` cells."""
    cols = math.ceil(math.sqrt(count))
    return math.ceil(count / cols), cols


def first_conv_kernel(params: dict, model: Layer) -> tuple[str, np.ndarray]:
    """The path and HWIO kernel of the first conv layer, depth first."""

    def find(layer: Layer, params: dict, path: str):
        if isinstance(layer, ConvLayer):
            return path, np.asarray(params["kernel"], np.float32)
        for name, child in layer.children():
            found = find(child, params.get(name, {}), f"{path}.{name}" if path else name)
            if found:
                return found
        return None

    found = find(model, params, "")
    if found is None:
        raise ConfigError("the model has no conv layer to show the kernels of")
    return found


def draw_kernels(path: str, kernel: np.ndarray, out: Path) -> int:
    """A grid of `kernel[..., c, o]`, one row per output channel, one column per input
    channel; each cell scaled on its own. Returns the number of cells."""
    kh, kw, cin, cout = kernel.shape
    fig = figure(max(3, cin * 1.2), max(3, cout * 1.2))
    axes = fig.subplots(cout, cin, squeeze=False)
    for o in range(cout):
        for c in range(cin):
            ax = axes[o][c]
            ax.imshow(kernel[:, :, c, o], cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
            if o == 0 and cin > 1:
                ax.set_title(f"in {c}", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"out {o}", fontsize=8)
    fig.suptitle(f"{path}: {cout} kernels of {kh}x{kw} over {cin} input channel(s)")
    fig.savefig(out, dpi=90)
    return cin * cout


def feature_maps(model: Layer, params: dict, state: dict, x: Any) -> list[tuple[str, np.ndarray]]:
    """`(layer path, NHWC output)` of every conv and pool layer on `x`, in order.

    Walks `sequential` layers one sublayer at a time; a residual or concat
    block counts as one step, its inner layers seen through its sublayers.
    """
    maps: list[tuple[str, np.ndarray]] = []

    def run(layer: Layer, params: dict, state: dict, x, path: str):
        if isinstance(layer, Sequential):
            for name, child in layer.steps:
                x = run(child, params.get(name, {}), state.get(name, {}), x, f"{path}{name}.")
            return x
        y, _ = layer.forward(params, state, x, training=False, key=None)
        if isinstance(layer, FEATURE_LAYERS):
            maps.append((path.rstrip(".") or layer.kind, np.asarray(y)))
        return y

    run(model, params, state, x, "")
    return maps


def draw_features(
    image: np.ndarray, label: str, maps: list[tuple[str, np.ndarray]], out: Path
) -> int:
    """The image, then each layer's channels as a grid. Returns the number of grids."""
    fig = figure(4 * (len(maps) + 1), 4.5)
    panels: Any = np.ravel(fig.subfigures(1, len(maps) + 1))  # type: ignore[arg-type]
    ax = panels[0].subplots()
    ax.imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None)
    ax.set_title(label, fontsize=9)
    ax.axis("off")
    for panel, (name, y) in zip(panels[1:], maps):
        channels = y.shape[-1]
        rows, cols = grid_shape(channels)
        axes = panel.subplots(rows, cols, squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < channels:
                ax.imshow(y[0, :, :, i], cmap="viridis")
        panel.suptitle(f"{name} {y.shape[1]}x{y.shape[2]}x{channels}", fontsize=9)
    fig.savefig(out, dpi=80)
    return len(maps)


def draw_confusion(matrix: np.ndarray, names: tuple[str, ...], out: Path) -> None:
    n = len(names)
    fig = figure(1.0 + 0.6 * n, 1.0 + 0.6 * n)
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            color = "white" if matrix[i, j] > matrix.max() / 2 else "black"
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
    accuracy = np.trace(matrix) / matrix.sum()
    ax.set_title(f"test split: {matrix.sum():,} images, accuracy {accuracy:.2%}")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def draw_mistakes(images, true, predicted, confidence, names, out: Path) -> int:
    rows, cols = grid_shape(max(len(images), 1))
    fig = figure(2.2 * cols, 2.4 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, t, p, c in zip(axes.flat, images, true, predicted, confidence):
        ax.imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None)
        ax.set_title(f"{names[t]}\nas {names[p]} ({c:.0%})", fontsize=7)
    fig.suptitle(
        "the most confident mistakes on the test split"
        if len(images)
        else "no test image is misclassified"
    )
    fig.savefig(out, dpi=90)
    return len(images)


def show(workdir: Path, out: Path, images: list[int], checkpoint: str = "best") -> list[Path]:
    """Writes the pictures of the model in `workdir` (at its `checkpoint`, as
    `Predictor.load` takes it) to `out`; returns their paths.

    Raises:
      WorkdirError, CheckpointError, DataError, ConfigError: a workdir without a
        trained model, data that is not there, an image index out of range.
    """
    if not workdir.is_dir():
        raise WorkdirError(f"--workdir {workdir}: no such folder")
    predictor = Predictor.load(workdir, checkpoint)
    config = predictor.trainer.config  # as config.json has it (`config.saved`)
    _, test, info = data.load(config)
    for n in images:
        if not 0 <= n < len(test.labels):
            raise ConfigError(
                f"--image {n} is out of range: the test split has {len(test.labels)} images"
            )
    out.mkdir(parents=True, exist_ok=True)
    model, state = predictor.trainer.model, predictor.state
    written = []
    path, kernel = first_conv_kernel(state.params, model)
    draw_kernels(path, kernel, out / "kernels.png")
    written.append(out / "kernels.png")
    for n in images:
        x = predictor.trainer.normalize(jnp.asarray(test.images[n : n + 1]))
        maps = feature_maps(model, state.params, state.model_state, x)
        label = f"test image {n}: {info.class_names[int(test.labels[n])]}"
        draw_features(np.asarray(test.images[n]), label, maps, out / f"features_{n}.png")
        written.append(out / f"features_{n}.png")
    probs = np.concatenate(
        [
            predictor.probabilities(np.asarray(test.images[i : i + 1000]))
            for i in range(0, len(test.labels), 1000)
        ]
    )
    labels = np.asarray(test.labels)
    predicted = probs.argmax(axis=1)
    matrix = np.zeros((info.num_classes, info.num_classes), np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    draw_confusion(matrix, info.class_names, out / "confusion.png")
    wrong = np.nonzero(predicted != labels)[0]
    worst = wrong[np.argsort(-probs[wrong, predicted[wrong]])][:MISTAKES]
    draw_mistakes(
        np.asarray(test.images[worst]),
        labels[worst],
        predicted[worst],
        probs[worst, predicted[worst]],
        info.class_names,
        out / "mistakes.png",
    )
    written += [out / "confusion.png", out / "mistakes.png"]
    if (workdir / METRICS_FILE).exists():
        plot_curves(workdir / METRICS_FILE, out / "learning_curves.png")
        written.append(out / "learning_curves.png")
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m jaxcnn.show", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--out", type=Path, help="default: <workdir name>-pictures, here")
    parser.add_argument("--image", type=int, nargs="+", default=[0, 1, 2], help="test images")
    add_checkpoint_flag(parser)
    args = parser.parse_args(argv)
    workdir = args.workdir.expanduser().resolve()
    try:
        out = args.out or Path(f"{workdir.name}-pictures")
        paths = show(workdir, out, args.image, args.checkpoint)
    except JaxcnnError as e:
        sys.exit(f"jaxcnn.show: {e}")
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
