"""Datasets: your images, NumPy arrays, IDX files or TFDS's catalog, as two in-memory splits.

`load(config)` finds what `config.data_dir` holds (`jaxcnn.data.sources`),
prepares it once through a TFDS builder (`jaxcnn.data.prepare`), and returns
the train and test splits as uint8 NHWC arrays with int32 labels, and a
`DataInfo`: the class names, the image shape, the training split's
per-channel mean and standard deviation (which training normalises with and
`predict.py` applies again), and which data it is (its source and digest).
The arrays are memory-mapped from the prepared files: `np.asarray` reads one
into memory, `jaxcnn.data.stream` reads its batches as training needs them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxcnn.data import prepare as prepare_lib
from jaxcnn.data.batches import chunk_size, epoch_batches, eval_batches
from jaxcnn.data.prepare import Writers
from jaxcnn.data.sources import FASHION_MNIST_DIR, DataError, find_source, read_idx

__all__ = [
    "FASHION_MNIST_DIR",
    "DataError",
    "DataInfo",
    "Split",
    "chunk_size",
    "epoch_batches",
    "eval_batches",
    "load",
    "Writers",
    "read_idx",
]

INFO_FILE = "data.json"  # in a workdir: what predict.py needs to see as training saw


class Split(NamedTuple):
    images: np.ndarray  # [N, H, W, C] uint8
    labels: np.ndarray  # [N] int32

    def subset(self, index: np.ndarray) -> Split:
        """The examples at `index`, in its order."""
        return Split(self.images[index], self.labels[index])


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What a model trained on a dataset needs to know of it.

    Attributes:
      class_names: in label order.
      image_shape: `(height, width, channels)` of every image.
      mean, std: per channel, of the training split's pixels in [0, 1].
      image_size, channels: the preparation settings (0: as the source was).
      source: where the data came from, in words (a path and its kind, or a TFDS name).
      digest: of every image and label of both splits: other data, another digest.
    """

    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: int = 0
    channels: int = 0
    source: str = ""
    digest: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def save(self, workdir: Path) -> None:
        (workdir / INFO_FILE).write_text(json.dumps(dataclasses.asdict(self), indent=2))

    @classmethod
    def read(cls, workdir: Path) -> DataInfo:
        fields = json.loads((workdir / INFO_FILE).read_text())
        return cls(
            class_names=tuple(fields["class_names"]),
            image_shape=tuple(fields["image_shape"]),
            mean=tuple(fields["mean"]),
            std=tuple(fields["std"]),
            image_size=fields["image_size"],
            channels=fields["channels"],
            source=fields.get("source", ""),  # absent from workdirs of before it was recorded
            digest=fields.get("digest", ""),
        )


STATISTICS_BLOCK = 1 << 20  # pixel rows per `np.bincount` in `channel_statistics`


def channel_statistics(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each channel's mean and standard deviation of uint8 `images` scaled to [0, 1].

    From a histogram of the 256 values per channel: exact, and without a
    float copy of the images. Counted a block of rows at a time, as
    `np.bincount` widens its input to int64: a whole split's copy costs more
    in fresh pages (~1 s for Fashion-MNIST) than the counting does.
    """
    flat = images.reshape(-1, images.shape[-1])
    counts = np.zeros((flat.shape[1], 256))
    for start in range(0, len(flat), STATISTICS_BLOCK):
        block = flat[start : start + STATISTICS_BLOCK]
        for c in range(flat.shape[1]):
            counts[c] += np.bincount(block[:, c], minlength=256)
    frequencies = counts / max(len(flat), 1)
    values = np.arange(256, dtype=np.float64) / 255.0
    mean = frequencies @ values
    std = np.sqrt(np.maximum(frequencies @ values**2 - mean**2, 0.0))
    return mean, std


def load(config, writers: Writers | None = None) -> tuple[Split, Split, DataInfo]:
    """The train and test splits `config` names, prepared once, and what they hold.

    `config.data_dir` holds IDX files, an `.npz`, `train/` and `test/` class
    folders, or one tree of class folders (split by `test_fraction`); empty, it
    names a TFDS catalog dataset (`config.dataset`). A first preparation writes
    its records on a thread, kept in `writers` (`Writers.wait`).

    Raises:
      DataError: in one line naming the path, for data that is missing or malformed.
    """
    if config.data_dir:
        source = find_source(config.data_dir, config.test_fraction)
        settings = prepare_lib.Settings(
            config.image_size, config.channels, config.strict, config.test_fraction
        )
        prepared = prepare_lib.prepared(config.dataset, source, settings, config.tfds_dir, writers)
        origin = f"{source.path.resolve()} ({source.kind})"
    else:
        prepared = prepare_lib.catalog(config.dataset, config.tfds_dir)
        origin = f"TFDS {config.dataset}"
    train, test = Split(*prepared.splits["train"]), Split(*prepared.splits["test"])
    if train.images.shape[1:] != test.images.shape[1:]:
        raise DataError(
            f"{config.data_dir}: train images are {train.images.shape[1:]} and test images "
            f"{test.images.shape[1:]}: set --config.image_size and --config.channels"
        )
    mean, std = channel_statistics(train.images)
    info = DataInfo(
        tuple(prepared.classes),
        tuple(int(d) for d in train.images.shape[1:]),  # type: ignore[arg-type]
        tuple(float(m) for m in mean),
        tuple(float(s) for s in np.maximum(std, 1e-6)),
        config.image_size,
        config.channels,
        origin,
        prepared.digest,
    )
    return train, test, info
