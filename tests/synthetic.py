"""A small MNIST-format IDX dataset with a learnable pattern, written by the tests."""

import gzip
from pathlib import Path

import numpy as np

NUM_CLASSES = 4
SIZE = 16


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def make_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class k is a bright bar in row band k (horizontal for even k, vertical for odd), on noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, n)
    images = rng.integers(0, 60, (n, SIZE, SIZE))
    for image, label in zip(images, labels):
        band = slice(2 + 3 * (label // 2), 5 + 3 * (label // 2))
        if label % 2:
            image[:, band] += 180
        else:
            image[band, :] += 180
    return images.clip(0, 255).astype(np.uint8), labels.astype(np.uint8)


def write_dataset(
    directory: Path, n_train: int = 768, n_test: int = 200, compress: bool = True
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = make_images(n, seed)
        write_idx(directory / f"{prefix}-images-idx3-ubyte", images, compress)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte", labels, compress)
    return directory
