"""Using a trained model: the classes of new images, as training prepared its own.

`Predictor.load(workdir)` reads what `train.py` left there (`config.json`,
`data.json` and a checkpoint: the best by the validation metric where training
kept one, else the newest intact one), and writes nothing there: it
is safe beside a training that is saving. `predict(paths)` decodes each
image as its training images were decoded (`jaxcnn.data.images`: converted to
their channels, centre-cropped and scaled to their size), normalises it with
the training split's statistics and returns the class probabilities.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from jaxcnn.data import DataInfo
from jaxcnn.data.images import Layout, UnreadableImage, read_image
from jaxcnn.errors import CheckpointError, DataError, WorkdirError
from jaxcnn.train import config as config_lib
from jaxcnn.train.checkpoint import Checkpoints
from jaxcnn.train.trainer import Trainer, TrainState, create_trainer

CHECKPOINTS = ("best", "newest")  # which checkpoint `Predictor.load` reads
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclasses.dataclass
class Prediction:
    path: str
    classes: list[str]  # the `top_k` most probable, most probable first
    probabilities: list[float]


class Predictor:
    """A trained model and what it needs to read images as it was trained to; `epochs`: how
    many it had trained when its checkpoint was saved."""

    def __init__(self, trainer: Trainer, state: TrainState, info: DataInfo, epochs: int):
        self.trainer, self.state, self.info, self.epochs = trainer, state, info, epochs
        self._probabilities = jax.jit(self._forward)

    @classmethod
    def load(cls, workdir: str | Path, checkpoint: str = "best") -> Predictor:
        """The model in `workdir`; nothing there is changed (a damaged checkpoint is skipped
        and left as it is, with a line on stderr).

        `checkpoint`: `"best"`, the best epoch's by the validation metric where training
        kept one (a `validation_fraction`), else the newest; `"newest"`, the newest intact one.

        Raises:
          WorkdirError: if `workdir` is not one train.py trained in.
          CheckpointError: if it has no checkpoint yet, they cannot be read, or none is intact.
        """
        if checkpoint not in CHECKPOINTS:
            raise ValueError(f"`checkpoint` must be one of {CHECKPOINTS}, got {checkpoint!r}")
        workdir = Path(workdir).expanduser().resolve()
        for name, made_by in (("config.json", "train.py"), ("data.json", "train.py")):
            if not (workdir / name).is_file():
                raise WorkdirError(
                    f"{workdir} has no {name}: is it a workdir {made_by} trained in?"
                )
        config = config_lib.saved(workdir)
        info = DataInfo.read(workdir)
        config.num_devices = 1
        trainer, state = create_trainer(config, info, steps_per_epoch=1)
        checkpoints = Checkpoints(
            workdir / "checkpoints", config.keep_checkpoints, _to_stderr, read_only=True
        )
        try:
            best = checkpoints.best_step() if checkpoint == "best" else None
            restored = checkpoints.restore_latest(state, lambda record: None, first=best)
        finally:
            checkpoints.close()
        if restored is None:
            raise CheckpointError(
                f"{workdir} has no checkpoint yet: train first, or wait for epoch 1"
            )
        state, record = restored
        state = TrainState(*state)
        state = state._replace(params=trainer.eval_params(state))
        state = trainer.first_seed(state)  # of several seeds trained together, the first's model
        return cls(trainer, state, info, int(record["epochs"]))

    def _forward(self, params, model_state, images):
        trainer = self.trainer
        return jax.nn.softmax(trainer.eval_logits(params, model_state, trainer.normalize(images)))

    def probabilities_of(self, images: jax.Array) -> jax.Array:
        """Class probabilities `(n, classes)` of NHWC `images` in the training layout (uint8,
        or float32 pixel values in [0, 255]): a function of the images alone, the weights
        closed over (what `jaxcnn.export` exports)."""
        return self._forward(self.state.params, self.state.model_state, images)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities `(n, classes)` of uint8 NHWC `images` in the training layout."""
        return np.asarray(self._probabilities(self.state.params, self.state.model_state, images))

    def read(self, path: Path) -> np.ndarray:
        """`path` decoded as the training images were.

        Raises:
          UnreadableImage: (a `DataError`) naming the file and why.
        """
        h, w, c = self.info.image_shape
        return read_image(path, Layout(h, w, c))

    def predict(
        self,
        paths: list[Path],
        top_k: int = 3,
        batch_size: int = 256,
        on_unreadable: Callable[[UnreadableImage], None] | None = None,
    ) -> list[Prediction]:
        """The `top_k` classes of each image, most probable first.

        An unreadable image raises `UnreadableImage`, or with `on_unreadable`
        is passed to it and left out of the predictions.
        """
        top_k = min(top_k, self.info.num_classes)
        predictions = []
        for start in range(0, len(paths), batch_size):
            chunk, images = [], []
            for path in paths[start : start + batch_size]:
                try:
                    images.append(self.read(path))
                except UnreadableImage as e:
                    if on_unreadable is None:
                        raise
                    on_unreadable(e)
                    continue
                chunk.append(path)
            if not chunk:
                continue
            probs = self.probabilities(np.stack(images))
            for path, p in zip(chunk, probs):
                best = np.argsort(-p)[:top_k]
                predictions.append(
                    Prediction(
                        str(path),
                        [self.info.class_names[i] for i in best],
                        [float(p[i]) for i in best],
                    )
                )
        return predictions


def add_checkpoint_flag(parser: argparse.ArgumentParser) -> None:
    """`--checkpoint {best,newest}`, as predict.py, `jaxcnn.show` and `jaxcnn.export` take it."""
    parser.add_argument(
        "--checkpoint",
        choices=CHECKPOINTS,
        default="best",
        help="the best epoch's by the validation metric, where training kept one (default), "
        "or the newest",
    )


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def image_paths(arguments: list[str]) -> tuple[list[Path], list[Path]]:
    """The images the arguments name (files, or folders searched for image files), and the
    files in those folders that were passed over as not images by their suffix.

    Raises:
      DataError: for a path that does not exist, or a folder with no image in it.
    """
    paths, passed_over = [], []
    for argument in arguments:
        path = Path(argument).expanduser()
        if path.is_file():
            paths.append(path)
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
            passed_over += [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
            if not images:
                raise DataError(
                    f"{path} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})"
                )
            paths += images
        else:
            raise DataError(f"{path}: no such file or folder")
    return paths, passed_over
