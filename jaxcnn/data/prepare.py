"""Preparing a source once, and reading it back in bulk.

A source (IDX files, an `.npz`, image folders) is written once, through a
TFDS builder (`jaxcnn.data.builder`), as ArrayRecord files without
TensorFlow, under `<tfds_dir>/prepared_images/<dataset>-<digest>/`: the
digest covers the source's files and the preparation settings, so other data
or settings are prepared anew, and a rerun reuses what is there. Reading
ArrayRecord back decodes one record at a time, so each split's arrays are
also kept as `.npy` files beside the records, in the records' order (the
builder keeps the order it is given); a rerun loads those at disk speed
without importing TFDS. A file lock lets several
processes share the folder: one prepares, the others wait for it.

The first time, the records are written on a thread while the decoded arrays
go back to the caller, which compiles and trains meanwhile (TFDS writes one
record at a time in Python; XLA compiles without holding the GIL); callers
that exit with `os._exit` wait for it first (`wait_prepared`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import threading
from pathlib import Path

import filelock
import numpy as np
from PIL import Image, ImageOps

from jaxcnn.data.images import Layout, choose_layout, decode, skipped_message
from jaxcnn.data.sources import (
    FASHION_MNIST_CLASSES,
    DataError,
    Source,
    idx_path,
    read_idx,
    read_npz,
)

BUILDER_DIR = "prepared_images"  # under tfds_dir: PreparedImages' name in snake case
BUILDER_VERSION = "2.0.0"  # PreparedImages.VERSION
CLASSES_FILE = "classes.json"


@dataclasses.dataclass(frozen=True)
class Settings:
    """How a source is prepared: `image_size` (0: as it is), `channels` (0: as it is),
    `strict` (an unreadable file stops preparation instead of being skipped) and
    `test_fraction` (of each class, for a single tree of class folders)."""

    image_size: int = 0
    channels: int = 0
    strict: bool = False
    test_fraction: float = 0.2


def prepared(
    dataset: str, source: Source, settings: Settings, tfds_dir: str
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """`({split: (images, labels)}, class names)` of `source`, prepared once under `tfds_dir`.

    The first time, the decoded arrays are returned at once and the records
    are written on a thread (`wait_prepared`), while the caller compiles.
    """
    digest = hashlib.blake2b(f"{source.fingerprint}{settings}".encode(), digest_size=4)
    name = f"{dataset}-{digest.hexdigest()}"
    root = Path(tfds_dir).expanduser()
    folder = root / BUILDER_DIR / name / BUILDER_VERSION
    if name in _writers:  # this process is writing it: wait, rather than lock against itself
        _writers.pop(name).join()
    if not (folder / CLASSES_FILE).exists():
        root.mkdir(parents=True, exist_ok=True)
        # Released by the thread that writes the records, when they are whole.
        lock = filelock.FileLock(str(root / f".{name}.lock"), thread_local=False)
        lock.acquire()
        if (folder / CLASSES_FILE).exists():  # another process prepared it, meanwhile
            lock.release()
        else:
            try:
                classes = class_names(dataset, source)
                splits = {s: bulk(*source_arrays(source, settings, s)) for s in ("train", "test")}
            except BaseException:
                lock.release()
                raise
            writer = threading.Thread(
                target=_write_prepared,
                args=(lock, name, source, splits, classes, root, folder),
                name=f"prepare {name}",
            )
            _writers[name] = writer
            writer.start()
            return splits, classes
    splits = {split: load_arrays(folder, split) for split in ("train", "test")}
    return splits, json.loads((folder / CLASSES_FILE).read_text())


_writers: dict[str, threading.Thread] = {}  # the records being written on threads, by name
_failures: list[str] = []  # what those threads could not write


def _write_prepared(
    lock: filelock.BaseFileLock,
    name: str,
    source: Source,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    classes: list[str],
    root: Path,
    folder: Path,
) -> None:
    """The records through TFDS, the arrays beside them, then the class names: their presence
    says the rest is whole."""
    try:
        from jaxcnn.data import builder as builder_lib

        built = builder_lib.build(name, source, splits, classes, root)
        assert Path(built.data_dir) == folder, (built.data_dir, folder)
        for split, arrays in splits.items():  # the records' order: their copy in bulk
            save_arrays(folder, split, *arrays)
        _write(folder / CLASSES_FILE, json.dumps(classes).encode())
    except Exception as e:
        _failures.append(f"{source.path}: could not write its prepared copy in {root} ({e})")
    finally:
        lock.release()


def wait_prepared() -> list[str]:
    """Waits for the records `prepared` writes on threads; what could not be written, in a
    line each (the arrays returned were whole: what trained on them stands, and the next run
    prepares the data again)."""
    while _writers:
        _writers.popitem()[1].join()
    failures = list(_failures)
    _failures.clear()
    return failures


def catalog(
    dataset: str, tfds_dir: str
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """`({split: (images, labels)}, class names)` of a TFDS catalog dataset, prepared once."""
    from jaxcnn.data import builder as builder_lib

    built = builder_lib.catalog(dataset, tfds_dir)
    folder = Path(built.data_dir)
    with filelock.FileLock(str(folder / ".arrays.lock")):
        for split in ("train", "test"):
            if not (folder / f"{split}-labels.npy").exists():
                save_arrays(folder, split, *builder_lib.records(built, split))
    splits = {split: load_arrays(folder, split) for split in ("train", "test")}
    return splits, list(built.info.features["label"].names)


def bulk(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A split as it is kept: uint8 NHWC images and int32 labels."""
    return images.astype(np.uint8, copy=False), labels.astype(np.int32, copy=False)


def save_arrays(folder: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """A split's `bulk` arrays as `.npy` files, written whole or not at all."""
    images, labels = bulk(images, labels)
    _write(folder / f"{split}-images.npy", _npy(images))
    _write(folder / f"{split}-labels.npy", _npy(labels))  # last: its presence says both are whole


def load_arrays(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A split's arrays, memory-mapped: read from disk as they are used (or copied to memory)."""
    return (
        np.load(folder / f"{split}-images.npy", mmap_mode="r"),
        np.load(folder / f"{split}-labels.npy", mmap_mode="r"),
    )


def class_names(dataset: str, source: Source) -> list[str]:
    """The classes' names: the folders', Fashion-MNIST's, or the labels as numbers."""
    if source.classes:
        return list(source.classes)
    if source.kind == "idx":
        count = int(read_idx(idx_path(source.path, "train", "labels")).max()) + 1
    else:
        arrays = read_npz(source.path)
        count = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
    if dataset == "fashion_mnist" and count == len(FASHION_MNIST_CLASSES):
        return list(FASHION_MNIST_CLASSES)
    return [str(label) for label in range(count)]


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
        images = arrays[f"x_{split}"]
        if images.ndim == 3:
            images = images[..., None]
        if np.issubdtype(images.dtype, np.floating):  # [0, 1] or [0, 255]
            scale = 255.0 if images.max(initial=0) <= 1.0 else 1.0
            images = np.clip(np.round(images * scale), 0, 255)
        return _convert(images.astype(np.uint8), settings), arrays[f"y_{split}"]
    files = source.files[split]
    layout = choose_layout(
        [p for p, _ in source.files["train"]], settings.image_size, settings.channels
    )
    decoded: list[np.ndarray] = []
    kept: list[int] = []
    skipped: list[Path] = []
    for path, label in files:
        image = decode(path, layout)
        if image is None:
            if settings.strict:
                raise DataError(f"{path} is not a readable image (`strict` is on)")
            skipped.append(path)
            continue
        decoded.append(image)
        kept.append(label)
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


def _write(path: Path, content: bytes) -> None:
    """`content` to `path` through a temporary file and a rename: a reader sees all or nothing."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)
