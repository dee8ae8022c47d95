"""A small MNIST-format IDX dataset with a learnable pattern, written by the tests."""

import gzip
import os
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


def small_config(dataset: tuple[Path, Path], /, **overrides):
    """The default config, shrunk for `dataset` (the `dataset` fixture): trains in seconds."""
    from configs import lenet

    source, tfds_dir = dataset
    config = lenet.get_config()
    config.dataset = "synthetic"
    config.data_dir = str(source)
    config.tfds_dir = str(tfds_dir)
    config.model.channels = (4, 8)
    config.model.hidden = (32, 16)
    config.batch_size = 32
    config.eval_batch_size = 64  # 200 test images: the last batch is partial
    config.num_epochs = 2
    config.learning_rate = 3e-3
    config.compile_cache_dir = os.environ.get("JAXCNN_TEST_COMPILE_CACHE", "")
    for key, value in overrides.items():
        config[key] = value
    return config


def config_flags(dataset: tuple[Path, Path], /, **overrides) -> list[str]:
    """`small_config` as train.py's flags over configs/lenet.py."""
    config = small_config(dataset, **overrides)
    flat = {
        "dataset": config.dataset,
        "data_dir": config.data_dir,
        "tfds_dir": config.tfds_dir,
        "model.channels": tuple(config.model.channels),
        "model.hidden": tuple(config.model.hidden),
        "batch_size": config.batch_size,
        "eval_batch_size": config.eval_batch_size,
        "num_epochs": config.num_epochs,
        "learning_rate": config.learning_rate,
        "compile_cache_dir": config.compile_cache_dir,
        **{k: v for k, v in overrides.items() if k not in ("num_epochs",)},
    }
    return [f"--config.{key}={value}" for key, value in flat.items()]


def write_image_folder(
    root: Path,
    n_train: int = 160,
    n_test: int = 40,
    split: bool = True,
    colour_every: int = 3,
    sizes: tuple[int, ...] = (16, 20, 24),
) -> Path:
    """The synthetic classes as image files: `root/{train,test}/<class>/*` (or `root/<class>/*`).

    Class k is named `class_k`; images are PNG (grayscale) and, every
    `colour_every`-th one, JPEG in colour; their sizes cycle through `sizes`
    (all square, so a centre crop keeps the whole bar pattern).
    """
    from PIL import Image

    for split_name, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        images, labels = make_images(n, seed)
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = root / (split_name if split else "") / f"class_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            picture = Image.fromarray(image)
            size = sizes[i % len(sizes)]
            if size != SIZE:
                picture = picture.resize((size, size), Image.Resampling.NEAREST)
            if colour_every and i % colour_every == 0:
                tinted = Image.merge("RGB", (picture, picture, picture.point(lambda v: v // 2)))
                tinted.save(folder / f"{split_name}_{i}.jpg", quality=95)
            else:
                picture.save(folder / f"{split_name}_{i}.png")
    return root
