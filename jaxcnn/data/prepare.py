"""Preparing a source once, and reading it back in bulk.

A source (IDX files, an `.npz`, image folders) is written once, through a
TFDS builder (`jaxcnn.data.builder`), as ArrayRecord files without
TensorFlow, under `<tfds_dir>/prepared_images/<name>-<digest>/`: the name is
the source's folder or file, the digest covers its files and the preparation
settings, so other data or settings are prepared anew, and a rerun reuses
what is there. Preparing says so in one line, with a progress bar while
image files are decoded. Beside the arrays, `digest.json` holds a digest of
their content: the identity of the data a model is trained on. Reading
ArrayRecord back decodes one record at a time, so each split's arrays are
also kept as `.npy` files beside the records, in the records' order (the
builder keeps the order it is given); a rerun loads those at disk speed
without importing TFDS. A file lock lets several
processes share the folder: one prepares, the others wait for it.

The first time, the records are written on a thread while the decoded arrays
go back to the caller, which compiles and trains meanwhile (TFDS writes one
record at a time in Python; XLA compiles without holding the GIL); callers
that exit with `os._exit` wait for it first (`Writers`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
import threading
from pathlib import Path

import filelock
import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from jaxcnn.data.images import Layout, choose_layout, decode, skipped_message
from jaxcnn.data.sources import (
    BUILDER_DIR,
    BUILDER_VERSION,
    FASHION_MNIST_CLASSES,
    DataError,
    Source,
    idx_path,
    read_idx,
    read_npz,
)
from jaxcnn.digest import array_digest
from jaxcnn.files import write_atomically

CLASSES_FILE = "classes.json"
DIGEST_FILE = "digest.json"


@dataclasses.dataclass(frozen=True)
class Settings:
    """How a source is prepared: `image_size` (0: as it is), `channels` (0: as it is),
    `strict` (an unreadable file stops preparation instead of being skipped) and
    `test_fraction` (of each class, for a single tree of class folders)."""

    image_size: int = 0
    channels: int = 0
    strict: bool = False
    test_fraction: float = 0.2


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A source as prepared: `splits` (`{split: (images, labels)}`), `classes` (names in label
    order) and `digest` (of every array of both splits)."""

    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    classes: list[str]
    digest: str


def content_digest(splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """A hash of both splits' images and labels: the same data, the same digest."""
    return array_digest([array for split in ("train", "test") for array in splits[split]])


def prepared_name(source: Source) -> str:
    """`<the source's folder or file name>-<digest>`, in the characters TFDS allows."""
    stem = source.path.stem if source.kind == "npz" else source.path.resolve().name
    stem = re.sub(r"[^a-z0-9_]+", "_", stem.lower()).strip("_") or "images"
    return f"{stem}-{source.fingerprint}"


class Writers:
    """The prepared copies a caller's loads write on threads, and what could not be written.

    A caller that exits with `os._exit` (train.py) waits for them first; one
    that passes none to `prepared` leaves its threads to Python, which waits
    for them at a normal exit.
    """

    def __init__(self) -> None:
        self.threads: dict[str, threading.Thread] = {}
        self.failures: list[str] = []

    def wait(self) -> list[str]:
        """Waits for every thread; what could not be written, a line each (the arrays
        returned were whole: what trained on them stands, and the next run prepares the
        data again)."""
        while self.threads:
            self.threads.popitem()[1].join()
        failures, self.failures = self.failures, []
        return failures


def prepared(
    dataset: str, source: Source, settings: Settings, tfds_dir: str, writers: Writers | None = None
) -> Prepared:
    """`source` prepared once under `tfds_dir`.

    The first time, the decoded arrays are returned at once and the records
    are written on a thread (kept in `writers`), while the caller compiles.
    """
    writers = writers or Writers()
    key = hashlib.blake2b(f"{settings}".encode(), digest_size=3).hexdigest()
    name = f"{prepared_name(source)}{key}"
    root = Path(tfds_dir).expanduser()
    folder = root / BUILDER_DIR / name / BUILDER_VERSION
    for thread in threading.enumerate():  # this process is writing it: wait, not lock again
        if thread.name == f"prepare {name}":
            thread.join()
    if not (folder / CLASSES_FILE).exists():
        root.mkdir(parents=True, exist_ok=True)
        # Released by the thread that writes the records, when they are whole.
        lock = filelock.FileLock(str(root / f".{name}.lock"), thread_local=False)
        lock.acquire()
        if (folder / CLASSES_FILE).exists():  # another process prepared it, meanwhile
            lock.release()
        else:
            try:
                print(f"Preparing {source.description()} into {folder}", file=sys.stderr)
                classes = class_names(dataset, source)
                splits = {s: bulk(*source_arrays(source, settings, s)) for s in ("train", "test")}
                check_labels(source, splits, classes)
                digest = content_digest(splits)
            except BaseException:
                lock.release()
                raise
            try:  # here, not on the thread: see builder
                from jaxcnn.data import builder  # noqa: F401
            except ImportError as e:  # an accelerator image without TFDS: train from memory
                lock.release()
                writers.failures.append(not_written(source, root, e))
                return Prepared(splits, classes, digest)
            writer = threading.Thread(
                target=_write_prepared,
                args=(lock, source, splits, classes, digest, root, folder, writers.failures),
                name=f"prepare {name}",
            )
            writers.threads[name] = writer
            writer.start()
            return Prepared(splits, classes, digest)
    return read_prepared(folder)


def read_prepared(folder: Path) -> Prepared:
    """What `prepared` or `catalog` left in `folder`; its digest computed if it lacks one."""
    splits = {split: load_arrays(folder, split) for split in ("train", "test")}
    classes = json.loads((folder / CLASSES_FILE).read_text())
    if (folder / DIGEST_FILE).exists():
        digest = json.loads((folder / DIGEST_FILE).read_text())
    else:  # prepared before digests were kept
        digest = content_digest(splits)
    return Prepared(splits, classes, digest)


def _write_prepared(
    lock: filelock.BaseFileLock,
    source: Source,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    classes: list[str],
    digest: str,
    root: Path,
    folder: Path,
    failures: list[str],
) -> None:
    """The records through TFDS, the arrays and digest beside them, then the class names: their
    presence says the rest is whole."""
    try:
        from jaxcnn.data import builder as builder_lib

        built = builder_lib.build(folder.parent.name, source, splits, classes, root)
        assert Path(built.data_dir) == folder, (built.data_dir, folder)
        for split, arrays in splits.items():  # the records' order: their copy in bulk
            save_arrays(folder, split, *arrays)
        write_atomically(folder / DIGEST_FILE, json.dumps(digest).encode(), sync=False)
        write_atomically(folder / CLASSES_FILE, json.dumps(classes).encode(), sync=False)
    except Exception as e:
        failures.append(not_written(source, root, e))
    finally:
        lock.release()


def not_written(source: Source, root: Path, error: Exception) -> str:
    """The line `Writers.wait` gives for a prepared copy that could not be written."""
    return f"{source.path}: could not write its prepared copy in {root} ({error})"


def catalog(dataset: str, tfds_dir: str) -> Prepared:
    """A TFDS catalog dataset, prepared once."""
    from jaxcnn.data import builder as builder_lib

    built = builder_lib.catalog(dataset, tfds_dir)
    folder = Path(built.data_dir)
    with filelock.FileLock(str(folder / ".arrays.lock")):
        if not (folder / CLASSES_FILE).exists():
            splits = {split: builder_lib.records(built, split) for split in ("train", "test")}
            for split, arrays in splits.items():
                save_arrays(folder, split, *arrays)
            write_atomically(
                folder / DIGEST_FILE, json.dumps(content_digest(splits)).encode(), sync=False
            )
            names = list(built.info.features["label"].names)
            write_atomically(folder / CLASSES_FILE, json.dumps(names).encode(), sync=False)
    return read_prepared(folder)


def bulk(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A split as it is kept: uint8 NHWC images and int32 labels."""
    return images.astype(np.uint8, copy=False), labels.astype(np.int32, copy=False)


def save_arrays(folder: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """A split's `bulk` arrays as `.npy` files, written whole or not at all."""
    images, labels = bulk(images, labels)
    write_atomically(folder / f"{split}-images.npy", _npy(images), sync=False)
    write_atomically(
        folder / f"{split}-labels.npy", _npy(labels), sync=False
    )  # last: its presence says both are whole


def load_arrays(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A split's arrays, memory-mapped: read from disk as they are used (or copied to memory)."""
    return (
        np.load(folder / f"{split}-images.npy", mmap_mode="r"),
        np.load(folder / f"{split}-labels.npy", mmap_mode="r"),
    )


def class_names(dataset: str, source: Source) -> list[str]:
    """The classes' names: the folders', Fashion-MNIST's, or the training labels as numbers."""
    if source.classes:
        return list(source.classes)
    if source.kind == "idx":
        count = int(read_idx(idx_path(source.path, "train", "labels")).max()) + 1
    else:
        count = int(read_npz(source.path)["y_train"].max()) + 1
    if dataset == "fashion_mnist" and count == len(FASHION_MNIST_CLASSES):
        return list(FASHION_MNIST_CLASSES)
    return [str(label) for label in range(count)]


def check_labels(
    source: Source, splits: dict[str, tuple[np.ndarray, np.ndarray]], classes: list[str]
) -> None:
    """Raises `DataError` if a test label names no class of the training split."""
    labels = np.asarray(splits["test"][1])
    if len(labels) and labels.max() >= len(classes):
        array = "y_test" if source.kind == "npz" else "the test labels"
        raise DataError(
            f"{source.path}: {array} holds label {int(labels.max())}, and the training labels "
            f"name {len(classes)} classes (0 to {len(classes) - 1})"
        )


def npz_images(path: Path, arrays: dict[str, np.ndarray], split: str) -> np.ndarray:
    """`x_<split>` of an `.npz` as uint8 NHWC, its values kept as they are.

    Integer images must hold values in [0, 255]; float images are scaled by
    255 if the training images lie in [0, 1], and taken as they are if in
    [0, 255] (rounded): the training split decides, for both splits.

    Raises:
      DataError: naming the array and the values found, for any other range.
    """
    images = arrays[f"x_{split}"]
    images = images[..., None] if images.ndim == 3 else images
    low, high = (images.min(), images.max()) if images.size else (0, 0)
    found = f"`x_{split}` holds {images.dtype} values from {low} to {high}"
    if np.issubdtype(images.dtype, np.integer):
        if low < 0 or high > 255:
            raise DataError(f"{path}: {found}; integer images must lie in [0, 255] (8 bits)")
        return images.astype(np.uint8)
    if not np.issubdtype(images.dtype, np.floating) or not np.isfinite([low, high]).all():
        raise DataError(f"{path}: {found}; images must be integers in [0, 255] or finite floats")
    train = arrays["x_train"]
    scale = 255.0 if train.size and 0 <= train.min() and train.max() <= 1 else 1.0
    if low < 0 or high * scale > 255:
        expected = "[0, 1], as the training images are" if scale > 1 else "[0, 1] or [0, 255]"
        raise DataError(f"{path}: {found}; float images must lie in {expected}")
    return np.round(images * scale).astype(np.uint8)


def source_arrays(source: Source, settings: Settings, split: str) -> tuple[np.ndarray, np.ndarray]:
    """`split` of `source` decoded and converted to the settings' layout."""
    if source.kind == "idx":
        images = read_idx(idx_path(source.path, split, "images"))
        labels = read_idx(idx_path(source.path, split, "labels"))
        if len(images) != len(labels):
            raise DataError(
                f"{source.path}: {split} has {len(images)} images but {len(labels)} labels"
            )
        return _convert(images[..., None], settings), labels
    if source.kind == "npz":
        arrays = read_npz(source.path)
        images = npz_images(source.path, arrays, split)
        return _convert(images, settings), arrays[f"y_{split}"]
    files = source.files[split]
    layout = choose_layout(
        [p for p, _ in source.files["train"]], settings.image_size, settings.channels
    )
    decoded: list[np.ndarray] = []
    kept: list[int] = []
    skipped: list[Path] = []
    bar = tqdm(
        files, desc=f"decoding {split}", unit="image", leave=False, disable=not sys.stderr.isatty()
    )
    for path, label in bar:
        image = decode(path, layout)
        if image is None:
            if settings.strict:
                raise DataError(f"{path} is not a readable image (`strict` is on)")
            skipped.append(path)
            continue
        decoded.append(image)
        kept.append(label)
    bar.close()
    if skipped:
        print(f"{split}: {skipped_message(skipped, len(files))}", file=sys.stderr)
    if not decoded:
        raise DataError(f"no readable images in the {split} split of {source.path}")
    return np.stack(decoded), np.asarray(kept, np.int32)


def _convert(images: np.ndarray, settings: Settings) -> np.ndarray:
    """uint8 NHWC `images` at the settings' size and channel count (unchanged where 0)."""
    n, h, w, c = images.shape
    size = settings.image_size
    channels = settings.channels or c
    if (not size or (size, size) == (h, w)) and channels == c:
        return images
    layout = Layout(size or h, size or w, channels)
    out = np.empty((n, layout.height, layout.width, channels), np.uint8)
    for i, image in enumerate(images):
        picture = Image.fromarray(image[..., 0] if c == 1 else image)
        picture = picture.convert("L" if channels == 1 else "RGB")
        if picture.size != (layout.width, layout.height):
            picture = ImageOps.fit(
                picture, (layout.width, layout.height), Image.Resampling.BILINEAR
            )
        array = np.asarray(picture, np.uint8)
        out[i] = array[..., None] if array.ndim == 2 else array
    return out


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
