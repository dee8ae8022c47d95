"""Datasets through tensorflow-datasets, read once into host arrays.

`IdxImages` is a TFDS builder for any directory of MNIST-format IDX files
(`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`, `t10k-...`),
such as Debian's `dataset-fashion-mnist`. It prepares them as ArrayRecord
files without TensorFlow, once, in a TFDS data dir; `load_split` reads a split
back into one NHWC uint8 array and one int32 label array.

Training keeps a whole split on its devices and cuts batches there:
`epoch_batches` permutes indices with a PRNG key and drops the last partial
batch (as the Flax examples do), so every training step has the same shape
and nothing recompiles; each epoch's permutation differs, so every example is
still seen.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import tensorflow_datasets as tfds
from absl import logging

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
SPLIT_PREFIXES = {"train": "train", "test": "t10k"}


class DataError(RuntimeError):
    """Data that is missing or malformed; the message says how to get it."""


def read_idx(path: Path) -> np.ndarray:
    """Reads one IDX file (optionally gzipped) as a NumPy array of its dtype."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def idx_path(source_dir: Path, split: str, kind: str) -> Path:
    """`<dir>/<prefix>-<kind>-idx?-ubyte[.gz]` for kind 'images' or 'labels'."""
    rank = 3 if kind == "images" else 1
    stem = f"{SPLIT_PREFIXES[split]}-{kind}-idx{rank}-ubyte"
    for name in (stem + ".gz", stem):
        if (source_dir / name).exists():
            return source_dir / name
    raise DataError(
        f"no {stem}[.gz] in {source_dir}: for Fashion-MNIST install Debian's package "
        f"(sudo apt-get install dataset-fashion-mnist, files in {FASHION_MNIST_DIR}), "
        "or point --config.data_dir at a directory of MNIST-format IDX files"
    )


class IdxImages(tfds.core.GeneratorBasedBuilder):
    """A directory of MNIST-format IDX files as a TFDS dataset (no TensorFlow needed).

    Construct with `source_dir` and a `config` named after the dataset; the
    prepared files live in `<data_dir>/idx_images/<config name>/<version>`.
    """

    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, *, source_dir: str | Path, **kwargs):
        self._source_dir = Path(source_dir)
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        header = read_idx(idx_path(self._source_dir, "train", "images"))
        labels = read_idx(idx_path(self._source_dir, "train", "labels"))
        return self.dataset_info_from_configs(
            description=f"IDX images from {self._source_dir}",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(*header.shape[1:], 1), dtype=np.uint8),
                    "label": tfds.features.ClassLabel(num_classes=int(labels.max()) + 1),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in SPLIT_PREFIXES}

    def _generate_examples(self, split):
        images = read_idx(idx_path(self._source_dir, split, "images"))
        labels = read_idx(idx_path(self._source_dir, split, "labels"))
        if len(images) != len(labels):
            raise DataError(f"{split}: {len(images)} images but {len(labels)} labels")
        for i, (image, label) in enumerate(zip(images, labels)):
            yield i, {"image": image[..., None], "label": int(label)}


class Split(NamedTuple):
    images: np.ndarray  # [N, H, W, C] uint8
    labels: np.ndarray  # [N] int32


def dataset_builder(
    name: str, data_dir: str | None, tfds_dir: str | None
) -> tfds.core.DatasetBuilder:
    """The TFDS builder for `name`: `IdxImages` over `data_dir`, or TFDS's catalog if `data_dir` is empty."""
    tfds_dir = None if not tfds_dir else str(Path(tfds_dir).expanduser())
    if data_dir:
        source = Path(data_dir).expanduser()
        if not source.is_dir():
            idx_path(source, "train", "images")  # raises with instructions
        # TFDS warns that a config made here is "custom": it is, by design.
        verbosity = logging.get_verbosity()
        logging.set_verbosity(logging.ERROR)
        try:
            return IdxImages(
                source_dir=source,
                config=tfds.core.BuilderConfig(name=name),
                data_dir=tfds_dir,
                file_format="array_record",
            )
        finally:
            logging.set_verbosity(verbosity)
    try:
        return tfds.builder(name, data_dir=tfds_dir, file_format="array_record")
    except Exception as e:  # TFDS raises several types for an unknown name
        raise DataError(f"TFDS has no dataset {name!r}: {e}") from None


def load_split(builder: tfds.core.DatasetBuilder, split: str) -> Split:
    """Prepares `builder` if needed and reads `split` into host arrays, once."""
    try:
        builder.download_and_prepare()
    except DataError:
        raise
    except Exception as e:
        raise DataError(
            f"could not prepare {builder.name}: {e}. Catalog datasets need a network and "
            "TensorFlow the first time; offline, use an IDX directory via --config.data_dir"
        ) from None
    source = builder.as_data_source(split)
    records = source.__getitems__(range(len(source)))
    images = np.stack([r["image"] for r in records])
    if images.ndim == 3:
        images = images[..., None]
    labels = np.array([r["label"] for r in records], np.int32)
    return Split(images, labels)


def epoch_batches(key: jax.Array, num_examples: int, batch_size: int) -> jax.Array:
    """Shuffled example indices `[num_examples // batch_size, batch_size]`; the rest is dropped."""
    steps = num_examples // batch_size
    if steps == 0:
        raise ValueError(f"`batch_size` ({batch_size}) is larger than the dataset ({num_examples})")
    return jax.random.permutation(key, num_examples)[: steps * batch_size].reshape(
        steps, batch_size
    )


def eval_batches(num_examples: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """All indices in `[steps, batch_size]` batches, the last padded; with a 0/1 mask of real ones."""
    steps = -(-num_examples // batch_size)
    index = np.arange(steps * batch_size)
    mask = index < num_examples
    return np.where(mask, index, 0).reshape(steps, batch_size), mask.reshape(steps, batch_size)
