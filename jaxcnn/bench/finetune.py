"""`python -m jaxcnn.bench finetune`: what a trained model is worth to a few images of new classes.

Pretrains `--config` on Fashion-MNIST's classes 0-4, then trains the same
model on `--per-class` training images of each of classes 5-9, written as an
image folder as a user's own photos would be: from scratch, from the
pretrained model (`init_from`), and from it with its conv layers frozen
(`freeze`). Each is scored on every test image of classes 5-9. Writes
`finetune.json` (with the commit, versions, CPU and date) and `finetune.md`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from jaxcnn.bench.machine import provenance
from jaxcnn.data.sources import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, idx_path, read_idx
from jaxcnn.train import config as config_lib
from jaxcnn.train import loop

OLD, NEW = range(5), range(5, 10)  # the classes pretrained on, and the new ones


def fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    source = Path(FASHION_MNIST_DIR)
    return read_idx(idx_path(source, split, "images")), read_idx(idx_path(source, split, "labels"))


def write_old_classes(path: Path) -> Path:
    """Classes 0-4, train and test, as an .npz."""
    arrays = {}
    for split, (images, labels) in (
        ("train", fashion_mnist("train")),
        ("test", fashion_mnist("test")),
    ):
        keep = labels < len(OLD)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images[keep], labels[keep]
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def write_new_classes(root: Path, per_class: int) -> Path:
    """`root/train/<class>/`: the first `per_class` training images of each of classes 5-9;
    `root/test/<class>/`: every test image of them; PNG files."""
    for split, (images, labels), limit in (
        ("train", fashion_mnist("train"), per_class),
        ("test", fashion_mnist("test"), None),
    ):
        for label in NEW:
            folder = root / split / FASHION_MNIST_CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            for i, image in enumerate(images[labels == label][:limit]):
                Image.fromarray(image).save(folder / f"{i:05d}.png")
    return root


def bench_finetune(config_path: str, out: Path, per_class: int = 50, epochs: int = 30) -> dict:
    """The three runs; writes `finetune.json` and `finetune.md` into `out`."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pretrain = config_lib.load(config_path)
        pretrain.dataset, pretrain.data_dir = (
            "fashion_mnist_0_4",
            str(write_old_classes(work / "old.npz")),
        )
        pretrain.tfds_dir = str(work / "tfds")
        source = loop.train_and_evaluate(pretrain, work / "pretrained")
        folder = write_new_classes(work / "new", per_class)
        for name, init_from, freeze in (
            ("from scratch", "", ""),
            ("fine-tuned", str(work / "pretrained"), ""),
            ("fine-tuned, conv1 and conv2 frozen", str(work / "pretrained"), "conv1,conv2"),
        ):
            config = config_lib.load(config_path)
            config.dataset, config.data_dir, config.tfds_dir = (
                "few",
                str(folder),
                str(work / "tfds"),
            )
            config.image_size, config.channels = 28, 1
            config.batch_size = min(config.batch_size, per_class)
            config.num_epochs, config.init_from, config.freeze = epochs, init_from, freeze
            last = loop.train_and_evaluate(config, work / name.replace(" ", "_"))
            rows.append({"run": name, "test_accuracy": last["test_accuracy"]})
    report = {
        **provenance(),
        "config": config_path,
        "pretrained": {
            "classes": list(OLD),
            "epochs": pretrain.num_epochs,
            "test_accuracy": source["test_accuracy"],
        },  # fmt: skip
        "new_classes": list(NEW),
        "per_class": per_class,
        "epochs": epochs,
        "rows": rows,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "finetune.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "finetune.md").write_text(finetune_table(report))
    return report


def finetune_table(report: dict) -> str:
    """`finetune.md`: the runs' test accuracy on the new classes."""
    lines = [
        f"{report['config']} pretrained on Fashion-MNIST classes 0-4 ({report['pretrained']['epochs']} "
        f"epochs, {report['pretrained']['test_accuracy']:.2%} on their test images); then "
        f"{report['per_class']} training images of each of classes 5-9, {report['epochs']} epochs, "
        "scored on all 5,000 test images of classes 5-9.",
        "",
        "| run | test accuracy, classes 5-9 |",
        "|---|---:|",
        *(f"| {r['run']} | {r['test_accuracy']:.2%} |" for r in report["rows"]),
        "",
        f"{report['device']}, jax {report['jax']}, commit {report['commit']}, {report['date']}.",
    ]
    return "\n".join(lines) + "\n"
