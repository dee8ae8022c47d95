"""The TFDS builders behind `jaxcnn.data.prepare`: imported only when something is prepared.

Importing TensorFlow Datasets takes a second or two; a run whose data is
already prepared never does.
"""

from __future__ import annotations

from pathlib import Path

import filelock
import numpy as np
import tensorflow_datasets as tfds
from absl import logging

# TFDS modules run `with etils.epy.lazy_imports():` as they are imported, which swaps
# `builtins.__import__` for every thread: any import elsewhere meanwhile (JAX imports inside
# its lowering rules) gets a lazy stand-in that fails. `prepare` imports this module on the
# main thread before its writer thread starts, so that thread imports nothing from TFDS:
# this is the one TFDS module it would otherwise import late.
from tensorflow_datasets.core import dataset_metadata  # noqa: F401

from jaxcnn.data.sources import BUILDER_VERSION, DataError, Source


class PreparedImages(tfds.core.GeneratorBasedBuilder):
    """Decoded images as a TFDS dataset of `image` (uint8 HWC) and `label` features.

    The records keep the order they are given in (TFDS would shuffle them by
    key), so that record `i` is example `i` of the arrays kept beside them.
    """

    VERSION = tfds.core.Version(BUILDER_VERSION)

    def __init__(
        self,
        *,
        source: Source,
        splits: dict[str, tuple[np.ndarray, np.ndarray]],
        classes: list[str],
        **kwargs,
    ):
        self._source, self._splits, self._classes = source, splits, classes
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=f"images from {self._source.path} ({self._source.kind})",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(
                        shape=(None, None, None), dtype=np.uint8, encoding="bytes"
                    ),
                    "label": tfds.features.ClassLabel(names=self._classes),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,
        )

    # jaxcnn says in one line what it prepares: TFDS's banners ("Downloading and preparing
    # dataset Unknown size...", though nothing is downloaded) would only confuse.
    def _log_download_bytes(self) -> None:
        pass

    def _log_download_done(self) -> None:
        pass

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in ("train", "test")}

    def _generate_examples(self, split):
        images, labels = self._splits[split]
        for i, (image, label) in enumerate(zip(images, labels)):
            yield i, {"image": image, "label": int(label)}


def build(
    name: str,
    source: Source,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    classes: list[str],
    root: Path,
) -> tfds.core.DatasetBuilder:
    """`splits`, decoded from `source`, written under `root` as TFDS dataset config `name`."""
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)  # TFDS warns that a config made here is "custom"
    try:
        builder = PreparedImages(
            source=source,
            splits=splits,
            classes=classes,
            config=tfds.core.BuilderConfig(name=name),
            data_dir=str(root),
            file_format="array_record",
        )
    finally:
        logging.set_verbosity(verbosity)
    tfds.display_progress_bar(False)  # on a thread, while training draws its own
    _download_and_prepare(builder, f"The data is read from {source.path}")
    return builder


def catalog(name: str, tfds_dir: str) -> tfds.core.DatasetBuilder:
    """TFDS's own builder for a catalog dataset (`mnist`, `cifar10`...), prepared once."""
    root = str(Path(tfds_dir).expanduser())
    try:
        builder = tfds.builder(name, data_dir=root, file_format="array_record")
    except Exception as e:  # TFDS raises several types for an unknown name
        raise DataError(f"TFDS has no dataset {name!r}: {e}") from None
    Path(root).mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(Path(root) / f".{name}.lock")):
        _download_and_prepare(
            builder,
            "Catalog datasets need a network and TensorFlow the first time; offline, give "
            "--config.data_dir (IDX files, an .npz file or image folders)",
        )
    return builder


def _download_and_prepare(builder: tfds.core.DatasetBuilder, hint: str) -> None:
    """Prepares `builder`'s data; a failure is a one-line `DataError` (ours, if it caused it)."""
    try:
        builder.download_and_prepare()
    except DataError:
        raise
    except Exception as e:
        cause: BaseException = e
        while (inner := cause.__cause__ or cause.__context__) is not None:
            if isinstance(inner, DataError):  # ours, raised while TFDS wrote the records
                raise inner from None
            cause = inner
        first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise DataError(f"could not prepare {builder.name}: {first}. {hint}") from None


def records(builder: tfds.core.DatasetBuilder, split: str) -> tuple[np.ndarray, np.ndarray]:
    """`(images, labels)` of a prepared split, record by record (slow: once per split)."""
    source = builder.as_data_source(split)
    rows = source.__getitems__(range(len(source)))
    images = np.stack([np.asarray(r["image"], np.uint8) for r in rows])
    labels = np.array([r["label"] for r in rows], np.int32)
    return (images[..., None] if images.ndim == 3 else images), labels
