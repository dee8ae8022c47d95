"""CI: Fashion-MNIST as a folder of PNG files trains as well as the same images as IDX files.

Exports the first 10,000 training and 2,000 test images of Debian's
Fashion-MNIST as `train/<class>/*.png` and `test/<class>/*.png`, and the same
images as IDX files; trains the default config for a few epochs from each;
prints the preparation time of the folder and both accuracies, and fails if
they differ by more than 2 points or either is below 80% (the folders number
the classes in another order, so the two runs draw differently).
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from jaxcnn import data
from jaxcnn.data.sources import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, idx_path, read_idx
from jaxcnn.train import config as config_lib

TRAIN, TEST, EPOCHS = 10_000, 2_000, 3


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def train(data_dir: Path, workdir: Path, tfds_dir: Path) -> tuple[float, float]:
    """(test accuracy, seconds of the whole run) of the default config on `data_dir`."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "train.py", "--config", "configs/lenet.py", f"--workdir={workdir}",
         f"--config.data_dir={data_dir}", f"--config.tfds_dir={tfds_dir}",
         f"--config.num_epochs={EPOCHS}", "--config.dataset=fashion_mnist_part"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return rows[-1]["test_accuracy"], time.perf_counter() - start


def main() -> None:
    source = Path(FASHION_MNIST_DIR)
    root = Path(tempfile.mkdtemp(prefix="jaxcnn-folder-"))
    for split, n in (("train", TRAIN), ("test", TEST)):
        images = read_idx(idx_path(source, split, "images"))[:n]
        labels = read_idx(idx_path(source, split, "labels"))[:n]
        prefix = "train" if split == "train" else "t10k"
        (root / "idx").mkdir(exist_ok=True)
        write_idx(root / "idx" / f"{prefix}-images-idx3-ubyte", images)
        write_idx(root / "idx" / f"{prefix}-labels-idx1-ubyte", labels)
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = root / "png" / split / FASHION_MNIST_CLASSES[label].replace("/", "-")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i:05d}.png")
    config = config_lib.load("configs/lenet.py")
    config.data_dir, config.tfds_dir = str(root / "png"), str(root / "tfds")
    config.dataset = "fashion_mnist_part"
    start = time.perf_counter()
    data.load(config)
    prepared_s = time.perf_counter() - start
    png_accuracy, png_s = train(root / "png", root / "run-png", root / "tfds")
    idx_accuracy, idx_s = train(root / "idx", root / "run-idx", root / "tfds")
    gap = abs(png_accuracy - idx_accuracy)
    print(
        f"folder check: {TRAIN:,} + {TEST:,} PNG files prepared in {prepared_s:.1f} s; after "
        f"{EPOCHS} epochs test accuracy {png_accuracy:.4f} from the folder ({png_s:.0f} s) and "
        f"{idx_accuracy:.4f} from IDX ({idx_s:.0f} s), {gap * 100:.2f} points apart"
    )
    sys.exit(0 if gap <= 0.02 and min(png_accuracy, idx_accuracy) > 0.8 else 1)


if __name__ == "__main__":
    main()
