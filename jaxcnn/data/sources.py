"""What `data_dir` holds, found and checked before anything is decoded.

Four kinds of source, chosen by what is there:

- `idx`: MNIST-format IDX files (`train-images-idx3-ubyte[.gz]`, `t10k-...`);
- `npz`: a `.npz` file with `x_train, y_train, x_test, y_test`;
- `folders`: `train/<class>/*` and `test/<class>/*` image files;
- `tree`: `<class>/*` image files, split into train and test by `test_fraction`,
  each file by a hash of its path in the tree: adding or removing files never
  moves another file between the splits.

Every problem with the layout (no images, an empty class folder, one class
only, a test class missing from train) is a `DataError` naming the path.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
from pathlib import Path

import numpy as np

from jaxcnn.errors import DataError

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# Where a source's prepared copy lives under `tfds_dir`: builder.PreparedImages' TFDS name (in
# snake case) and version, here so that preparing needs no TFDS to find a copy.
BUILDER_DIR = "prepared_images"
BUILDER_VERSION = "2.0.0"
SPLIT_PREFIXES = {"train": "train", "test": "t10k"}
# Files an image folder may hold besides images: not counted as unreadable.
IGNORED_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}


@dataclasses.dataclass(frozen=True)
class Source:
    """A dataset on disk, listed: what kind, where, and for folders which file is which class.

    Attributes:
      kind: `"idx"`, `"npz"`, `"folders"` or `"tree"`.
      path: the folder, or the `.npz` file.
      classes: class names in label order (folders: the sorted folder names).
      files: for folders, `{"train": [(path, label), ...], "test": [...]}`.
      fingerprint: a digest of everything it is made of (file names, sizes,
        modification times): another fingerprint means other data.
    """

    kind: str
    path: Path
    classes: tuple[str, ...]
    files: dict[str, list[tuple[Path, int]]]
    fingerprint: str

    def description(self) -> str:
        """`<path> (<kind>[, N image files])`, for a line that says what is prepared."""
        count = sum(len(files) for files in self.files.values())
        return f"{self.path} ({self.kind}{f', {count} image files' if count else ''})"


def find_source(data_dir: str, test_fraction: float = 0.2) -> Source:
    """The source `data_dir` holds.

    Raises:
      DataError: if it holds none of the four kinds, or an image folder is
        malformed; the message names the path.
    """
    path = Path(data_dir).expanduser()
    if path.suffix == ".npz":
        if not path.is_file():
            raise DataError(f"`data_dir` {path}: no such .npz file")
        return Source("npz", path, (), {}, _digest([path]))
    if not path.is_dir():
        raise DataError(
            f"`data_dir` {path} does not exist: for Fashion-MNIST install Debian's package "
            f"(sudo apt-get install dataset-fashion-mnist, files in {FASHION_MNIST_DIR}), or "
            "point --config.data_dir at IDX files, an .npz file or a folder of class folders"
        )
    if any(path.glob("train-images-idx3-ubyte*")):
        files = [
            idx_path(path, split, kind) for split in SPLIT_PREFIXES for kind in ("images", "labels")
        ]
        return Source("idx", path, (), {}, _digest(files))
    if (path / "train").is_dir():
        if not (path / "test").is_dir():
            raise DataError(f"{path} has a train/ folder but no test/ folder beside it")
        train_classes = _class_folders(path / "train")
        test_classes = _class_folders(path / "test", at_least=1)
        missing = sorted(set(test_classes) - set(train_classes))
        if missing:
            raise DataError(f"{path / 'test'} has classes that {path / 'train'} lacks: {missing}")
        classes = tuple(train_classes)
        split_files = {
            "train": _labelled(train_classes, classes),
            "test": _labelled(test_classes, classes),
        }
        return Source("folders", path, classes, split_files, _digest(_all(split_files)))
    class_folders = _class_folders(path)
    classes = tuple(class_folders)
    split_files = _split(_labelled(class_folders, classes), test_fraction, path)
    return Source("tree", path, classes, split_files, _digest(_all(split_files)))


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


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """`x_train, y_train, x_test, y_test` from an `.npz` file, checked.

    Raises:
      DataError: naming the file and what is missing or malformed.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is not a readable .npz file: {e}") from None
    wanted = ("x_train", "y_train", "x_test", "y_test")
    missing = [key for key in wanted if key not in arrays]
    if missing:
        raise DataError(f"{path} lacks {missing}: it must hold {list(wanted)}")
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3)):
            raise DataError(
                f"{path}: `x_{split}` must be images (n, h, w) or (n, h, w, 1 or 3), got {x.shape}"
            )
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{path}: `y_{split}` must be {len(x)} integer labels, got {y.shape}")
        if len(y) and y.min() < 0:
            raise DataError(f"{path}: `y_{split}` holds negative labels")
    return arrays


def _class_folders(path: Path, at_least: int = 2) -> dict[str, list[Path]]:
    """`{class name: its files}` for the class folders in `path`, sorted; checked (a
    training set needs two classes at least, a test set one)."""
    folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(
            f"{path} holds no class folders: put each class's images in a folder named "
            "after it (or give IDX files or an .npz file)"
        )
    classes = {}
    for folder in folders:
        files = sorted(
            p
            for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".") and p.name not in IGNORED_NAMES
        )
        if not files:
            raise DataError(f"class folder {folder} is empty")
        classes[folder.name] = files
    if len(classes) < at_least:
        raise DataError(
            f"{path} holds one class folder ({folders[0].name}): a classifier needs two"
        )
    return classes


def _labelled(
    class_files: dict[str, list[Path]], classes: tuple[str, ...]
) -> list[tuple[Path, int]]:
    index = {name: label for label, name in enumerate(classes)}
    return [(f, index[name]) for name, files in class_files.items() for f in files]


def test_share(path: Path, root: Path) -> float:
    """Where in [0, 1) the file at `path` falls, from a hash of its path under `root`: a file
    is a test image if this is below `test_fraction`, whatever else the tree holds."""
    key = path.relative_to(root).as_posix().encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64


def _split(
    files: list[tuple[Path, int]], test_fraction: float, path: Path
) -> dict[str, list[tuple[Path, int]]]:
    """Each file to test or train by `test_share`, in sorted order."""
    split: dict[str, list[tuple[Path, int]]] = {"train": [], "test": []}
    for item in files:
        split["test" if test_share(item[0], path) < test_fraction else "train"].append(item)
    if not split["test"]:
        raise DataError(
            f"`test_fraction` ({test_fraction}) leaves no test images in {path}: raise it, "
            "or give train/ and test/ folders"
        )
    trained = {label for _, label in split["train"]}
    for label in sorted({label for _, label in files} - trained):
        folder = next(path / f.relative_to(path).parts[0] for f, lab in files if lab == label)
        raise DataError(
            f"every image of class folder {folder} fell in the test split (`test_fraction` "
            f"{test_fraction}): add images to it, or give train/ and test/ folders"
        )
    return split


def _all(files: dict[str, list[tuple[Path, int]]]) -> list[Path]:
    return [f for split in ("train", "test") for f, _ in files[split]]


def _digest(paths: list[Path]) -> str:
    """A digest of the files' names, sizes and modification times: cheap, and changes with them."""
    h = hashlib.blake2b(digest_size=6)
    for path in paths:
        stat = path.stat()
        h.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()
