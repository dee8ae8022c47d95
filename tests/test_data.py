"""Data from IDX files, image folders and .npz arrays: prepared once, read back in bulk."""

import subprocess
import sys

import numpy as np
import pytest
import synthetic
from synthetic import small_config

from jaxcnn import data
from jaxcnn.data.sources import FASHION_MNIST_CLASSES


def config_for(tmp_path, data_dir, **overrides):
    return small_config((data_dir, tmp_path / "tfds"), **overrides)


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trip(tmp_path, compress):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    synthetic.write_idx(tmp_path / "x-idx3-ubyte", array, compress)
    name = "x-idx3-ubyte.gz" if compress else "x-idx3-ubyte"
    np.testing.assert_array_equal(data.read_idx(tmp_path / name), array)


def multiset(images, labels):
    return sorted((img.tobytes(), int(label)) for img, label in zip(images, labels))


def test_idx_directory_is_prepared_once_and_read_back_in_bulk(tmp_path):
    source = synthetic.write_dataset(tmp_path / "idx", n_train=64, n_test=16, compress=False)
    writers = data.Writers()
    train, test, info = data.load(config_for(tmp_path, source, dataset="tiny"), writers)
    assert train.images.shape == (64, 16, 16, 1) and train.images.dtype == np.uint8
    assert test.images.shape == (16, 16, 16, 1) and train.labels.dtype == np.int32
    assert info.class_names == ("0", "1", "2", "3") and info.image_shape == (16, 16, 1)
    # TFDS shuffles records; each image must still carry its own label.
    images, labels = synthetic.make_images(64, seed=0)
    assert multiset(train.images[..., 0], train.labels) == multiset(images, labels)
    pixels = train.images / 255.0
    np.testing.assert_allclose(info.mean, [pixels.mean()], rtol=1e-9)
    np.testing.assert_allclose(info.std, [pixels.std()], rtol=1e-9)
    # The arrays kept in bulk are the records, in their order (written on a thread).
    from jaxcnn.data import builder as builder_lib

    assert writers.wait() == []

    [prepared] = (tmp_path / "tfds" / "prepared_images").iterdir()
    records = builder_lib.tfds.builder_from_directory(str(prepared / "2.0.0"))
    images_in_records, labels_in_records = builder_lib.records(records, "train")
    np.testing.assert_array_equal(images_in_records, train.images)
    np.testing.assert_array_equal(labels_in_records, train.labels)
    assert prepared.name.startswith("idx-")  # named after the folder
    assert {p.name for p in (prepared / "2.0.0").glob("*.npy")} == {
        "train-images.npy", "train-labels.npy", "test-images.npy", "test-labels.npy"
    }  # fmt: skip


def test_a_first_load_returns_the_arrays_while_the_records_are_written(tmp_path):
    source = synthetic.write_dataset(tmp_path / "idx", n_train=64, n_test=16)
    config = config_for(tmp_path, source)
    writers = data.Writers()
    first, first_test, _ = data.load(config, writers)
    assert writers.wait() == []
    again, again_test, _ = data.load(config)  # from the prepared copy now
    assert isinstance(again.images, np.memmap)
    for a, b in [(first, again), (first_test, again_test)]:
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)


def test_records_that_cannot_be_written_are_reported_and_prepared_again(tmp_path, monkeypatch):
    from jaxcnn.data import builder as builder_lib

    source = synthetic.write_dataset(tmp_path / "idx", n_train=64, n_test=16)
    config = config_for(tmp_path, source)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(builder_lib, "build", full_disk)
    writers = data.Writers()
    train, _, _ = data.load(config, writers)
    assert train.images.shape == (64, 16, 16, 1)  # this run has its data
    [failure] = writers.wait()
    assert str(source) in failure and "No space left on device" in failure
    assert not list((tmp_path / "tfds").rglob("classes.json"))  # not taken for prepared
    monkeypatch.undo()
    data.load(config, writers)  # the lock was released: the next load prepares it
    assert writers.wait() == []
    assert len(list((tmp_path / "tfds").rglob("classes.json"))) == 1


def test_without_tfds_a_load_trains_from_memory_and_says_so(tmp_path, monkeypatch):
    # Accelerator images carry JAX but not TensorFlow Datasets: the arrays still load.
    source = synthetic.write_dataset(tmp_path / "idx", n_train=64, n_test=16)
    monkeypatch.setitem(sys.modules, "jaxcnn.data.builder", None)  # import raises ImportError
    monkeypatch.delattr(data, "builder", raising=False)  # as if never imported
    writers = data.Writers()
    train, test, _ = data.load(config_for(tmp_path, source), writers)
    images, labels = synthetic.make_images(64, seed=0)
    assert multiset(train.images[..., 0], train.labels) == multiset(images, labels)
    assert test.images.shape == (16, 16, 16, 1)
    [failure] = writers.wait()
    assert str(source) in failure and "could not write its prepared copy" in failure
    assert not list((tmp_path / "tfds").rglob("classes.json"))  # nothing taken for prepared
    monkeypatch.undo()
    data.load(config_for(tmp_path, source), writers)  # the lock was released
    assert writers.wait() == []


def test_a_prepared_dataset_loads_without_importing_tfds(tmp_path):
    source = synthetic.write_dataset(tmp_path / "idx", n_train=64, n_test=16)
    config = config_for(tmp_path, source)
    data.load(config)
    printed = in_a_fresh_process(
        "import sys\n",
        source,
        tmp_path,
        "train, test, info = data.load(c)\n"
        "print(train.images.shape, 'tensorflow_datasets' in sys.modules)\n",
    )
    assert printed == "(64, 16, 16, 1) False"


def test_the_writer_thread_never_swaps_the_import_machinery_under_other_threads(tmp_path):
    # TFDS's modules swap builtins.__import__ for every thread while they are imported
    # (etils.epy.lazy_imports); on the writer thread, that broke JAX's imports on the main one.
    source = synthetic.write_dataset(tmp_path / "idx", n_train=64, n_test=16)
    printed = in_a_fresh_process(
        "import contextlib, threading\n"
        "from etils import epy\n"
        "swapped_on, original = [], epy.lazy_imports\n"
        "@contextlib.contextmanager\n"
        "def recorded(*args, **kwargs):\n"
        "    swapped_on.append(threading.current_thread() is threading.main_thread())\n"
        "    with original(*args, **kwargs):\n"
        "        yield\n"
        "epy.lazy_imports = recorded\n",
        source,
        tmp_path,
        "writers = data.Writers()\ndata.load(c, writers)\nassert writers.wait() == []\n"
        "print(len(swapped_on) > 0, all(swapped_on))\n",
    )
    assert printed == "True True"


def in_a_fresh_process(before: str, source, tmp_path, after: str) -> str:
    """What a new Python process prints running `before`, then `c`: the default config on the
    synthetic data at `source` (prepared under `tmp_path`), then `after`."""
    code = (
        before + "from configs import lenet\nfrom jaxcnn import data\n"
        "c = lenet.get_config(); c.dataset = 'synthetic'\n"
        f"c.data_dir, c.tfds_dir = {str(source)!r}, {str(tmp_path / 'tfds')!r}\n" + after
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
        cwd=synthetic.Path(__file__).parents[1],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_fashion_mnist_classes_are_named(tmp_path):
    images, labels = synthetic.make_images(40, seed=0)
    labels = np.arange(40) % 10  # ten classes, as Fashion-MNIST
    (tmp_path / "fm").mkdir()
    for prefix in ("train", "t10k"):
        synthetic.write_idx(tmp_path / "fm" / f"{prefix}-images-idx3-ubyte", images, False)
        synthetic.write_idx(tmp_path / "fm" / f"{prefix}-labels-idx1-ubyte", labels, False)
    _, _, info = data.load(config_for(tmp_path, tmp_path / "fm", dataset="fashion_mnist"))
    assert info.class_names == FASHION_MNIST_CLASSES


def test_image_folders_grayscale_and_colour_of_several_sizes(tmp_path, capsys):
    root = synthetic.write_image_folder(tmp_path / "images", n_train=60, n_test=20, sizes=(16, 20))
    (root / "train" / "class_0" / "notes.txt").write_text("not an image")
    (root / "train" / "class_1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    config = config_for(tmp_path, root, image_size=16)
    train, test, info = data.load(config)
    assert "train: skipped 2 of 62 files that are not readable images" in capsys.readouterr().err
    assert train.images.shape == (60, 16, 16, 3)  # some are colour: all become RGB
    assert test.images.shape == (20, 16, 16, 3)
    assert info.class_names == ("class_0", "class_1", "class_2", "class_3")
    # The grayscale PNGs written at 16x16 come back as they were, in each RGB channel.
    images, labels = synthetic.make_images(60, seed=0)
    png = [i for i in range(60) if i % 2 == 0 and i % 3 != 0]
    got = multiset(train.images[..., 0], train.labels)
    assert len(png) == 20 and all(entry in got for entry in multiset(images[png], labels[png]))
    gray = train.images[(train.images[..., 0] == train.images[..., 2]).all(axis=(1, 2))]
    np.testing.assert_array_equal(gray[..., 0], gray[..., 1])
    # As grayscale, at another size.
    config = config_for(tmp_path, root, image_size=12, channels=1)
    train, _, info = data.load(config)
    assert train.images.shape == (60, 12, 12, 1) and info.image_shape == (12, 12, 1)


def test_one_tree_of_classes_is_split_by_test_fraction(tmp_path):
    root = synthetic.write_image_folder(tmp_path / "tree", n_train=100, n_test=0, split=False)
    config = config_for(tmp_path, root, image_size=16, test_fraction=0.25)
    train, test, _ = data.load(config)
    assert len(train.labels) + len(test.labels) == 100
    assert 15 <= len(test.labels) <= 35  # about a quarter, file by file
    again, _, _ = data.load(config)
    np.testing.assert_array_equal(again.images, train.images)  # the same split every time


def test_strict_stops_at_an_unreadable_file(tmp_path):
    root = synthetic.write_image_folder(tmp_path / "images", n_train=20, n_test=8)
    (root / "train" / "class_0" / "notes.txt").write_text("not an image")
    with pytest.raises(
        data.DataError, match=r"notes.txt is not a readable image \(`strict` is on\)"
    ):
        data.load(config_for(tmp_path, root, image_size=16, strict=True))


def test_image_folders_of_several_sizes_need_image_size(tmp_path):
    root = synthetic.write_image_folder(tmp_path / "images", n_train=20, n_test=8)
    with pytest.raises(data.DataError, match="the images have 3 sizes .*set --config.image_size"):
        data.load(config_for(tmp_path, root))


@pytest.mark.parametrize(
    "layout, match",
    [
        ({"train/a/x.png": 1, "train/b": 0, "test/a/y.png": 1}, "class folder .*train/b is empty"),
        ({"train/a/x.png": 1, "test/a/y.png": 1}, "holds one class folder .a.: a classifier needs two"),
        ({"train/a/x.png": 1, "train/b/x.png": 1, "test/c/y.png": 1}, r"classes that .*train lacks: \['c'\]"),
        ({"notes.txt": 1}, "holds no class folders"),
        ({"train/a/x.png": 1, "train/b/x.png": 1}, "has a train/ folder but no test/ folder"),
    ],
)  # fmt: skip
def test_malformed_image_folders_are_one_line_errors_naming_the_path(tmp_path, layout, match):
    from PIL import Image

    root = tmp_path / "bad"
    for name, is_file in layout.items():
        path = root / name
        if is_file:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".png":
                Image.new("L", (4, 4)).save(path)
            else:
                path.write_text("x")
        else:
            path.mkdir(parents=True)
    with pytest.raises(data.DataError, match=match) as error:
        data.load(config_for(tmp_path, root))
    assert "\n" not in str(error.value)


def test_npz_arrays_uint8_hwc_and_float_hw(tmp_path):
    images, labels = synthetic.make_images(40, seed=0)
    np.savez(tmp_path / "u8.npz", x_train=images[:30, :, :, None], y_train=labels[:30],
             x_test=images[30:, :, :, None], y_test=labels[30:])  # fmt: skip
    np.savez(tmp_path / "f.npz", x_train=images[:30] / 255.0, y_train=labels[:30],
             x_test=images[30:] / 255.0, y_test=labels[30:])  # fmt: skip
    train, test, _ = data.load(config_for(tmp_path, tmp_path / "u8.npz", dataset="u8"))
    assert multiset(train.images[..., 0], train.labels) == multiset(images[:30], labels[:30])
    ftrain, _, _ = data.load(config_for(tmp_path, tmp_path / "f.npz", dataset="f"))
    assert multiset(ftrain.images[..., 0], ftrain.labels) == multiset(images[:30], labels[:30])
    np.savez(tmp_path / "bad.npz", x_train=images, y_train=labels)
    with pytest.raises(data.DataError, match=r"bad.npz lacks \['x_test', 'y_test'\]"):
        data.load(config_for(tmp_path, tmp_path / "bad.npz"))


def test_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(data.DataError, match="apt-get install dataset-fashion-mnist"):
        data.load(config_for(tmp_path, tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataError, match="holds no class folders"):
        data.load(config_for(tmp_path, tmp_path / "empty"))


def test_epoch_batches_permute_and_drop_the_rest():
    index = data.epoch_batches(0, 1, 10, 3)
    assert index.shape == (3, 3)
    assert len(set(index.ravel())) == 9 and set(index.ravel()) <= set(range(10))
    np.testing.assert_array_equal(data.epoch_batches(0, 1, 10, 3), index)  # drawn again: the same
    for seed, epoch in [(1, 1), (0, 2)]:  # another seed, another epoch: another order
        assert not np.array_equal(data.epoch_batches(seed, epoch, 10, 3), index)
    with pytest.raises(ValueError, match="`batch_size` \\(11\\) is larger"):
        data.epoch_batches(0, 1, 10, 11)


@pytest.mark.parametrize("block", [7, 1 << 20])
def test_channel_statistics_match_numpy_over_blocks(monkeypatch, block):
    monkeypatch.setattr(data, "STATISTICS_BLOCK", block)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 4, 3, 3), dtype=np.uint8)
    images[..., 2] = 17  # a constant channel: std 0, not a negative variance's NaN
    mean, std = data.channel_statistics(images)
    scaled = images.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(mean, scaled.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(std, scaled.std(axis=0), atol=1e-12)


def test_eval_batches_cover_every_example_once():
    index, mask = data.eval_batches(10, 4)
    assert index.shape == mask.shape == (3, 4)
    assert sorted(index[mask]) == list(range(10))


def split_of(train_paths_labels, test_paths_labels):
    return {p.name: "train" for p, _ in train_paths_labels} | {
        p.name: "test" for p, _ in test_paths_labels
    }


def test_adding_or_removing_files_never_moves_another_between_the_splits(tmp_path):
    from jaxcnn.data.sources import find_source

    root = synthetic.write_image_folder(tmp_path / "tree", n_train=120, n_test=0, split=False)
    before = find_source(str(root), 0.25).files
    sides = split_of(before["train"], before["test"])
    assert 0.15 < sum(s == "test" for s in sides.values()) / len(sides) < 0.35
    extra = synthetic.write_image_folder(tmp_path / "more", n_train=30, n_test=0, split=False)
    for path in extra.rglob("*.png"):  # 30 new files, one removed
        path.rename(root / path.parent.name / f"new_{path.name}")
    removed = sorted(root.rglob("train_1.*"))[0]
    removed.unlink()
    after = find_source(str(root), 0.25).files
    moved = {
        name: (sides[name], new_side)
        for name, new_side in split_of(after["train"], after["test"]).items()
        if name in sides and sides[name] != new_side
    }
    assert moved == {}
    assert removed.name not in split_of(after["train"], after["test"])


def test_a_class_with_every_image_in_test_is_named(tmp_path):
    from PIL import Image

    from jaxcnn.data.sources import find_source, test_share

    root = tmp_path / "tree"
    names = {"a": [f"{i}.png" for i in range(10)], "b": []}
    # One image in class b, named so that it falls in the test split.
    name = next(f"{i}.png" for i in range(1000) if test_share(root / "b" / f"{i}.png", root) < 0.2)
    names["b"] = [name]
    for folder, files in names.items():
        (root / folder).mkdir(parents=True)
        for file in files:
            Image.new("L", (4, 4)).save(root / folder / file)
    with pytest.raises(data.DataError, match=r"every image of class folder .*tree/b fell in"):
        find_source(str(root), 0.2)


def npz(path, x_train, x_test, y_train=None, y_test=None):
    y_train = np.arange(len(x_train)) % 2 if y_train is None else y_train
    y_test = np.arange(len(x_test)) % 2 if y_test is None else y_test
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


@pytest.mark.parametrize(
    "x_train, x_test, match",
    [
        (np.full((4, 8, 8), 300, np.uint16), np.zeros((2, 8, 8), np.uint16),
         r"`x_train` holds uint16 values from 300 to 300; integer images must lie in \[0, 255\]"),
        (np.zeros((4, 8, 8), np.int64), np.full((2, 8, 8), -1, np.int64),
         r"`x_test` holds int64 values from -1 to -1"),
        (np.linspace(-1, 1, 256).reshape(4, 8, 8), np.zeros((2, 8, 8)),
         r"`x_train` holds float64 values from -1.0 to 1.0; float images must lie in \[0, 1\] or"),
        (np.zeros((4, 8, 8)) + 0.5, np.full((2, 8, 8), 2.0),
         r"`x_test` holds float64 values from 2.0 to 2.0; .* in \[0, 1\], as the training"),
    ],
)  # fmt: skip
def test_npz_images_out_of_range_are_named_not_wrapped(tmp_path, x_train, x_test, match):
    path = npz(tmp_path / "x.npz", x_train, x_test)
    with pytest.raises(data.DataError, match=match) as error:
        data.load(config_for(tmp_path, str(path), batch_size=2))
    assert "\n" not in str(error.value)


def test_npz_wider_integers_in_range_are_kept_exactly(tmp_path):
    x = np.arange(4 * 8 * 8).reshape(4, 8, 8) % 256
    path = npz(tmp_path / "x.npz", x.astype(np.int64), x[:2].astype(np.uint16))
    train, test, _ = data.load(config_for(tmp_path, str(path), batch_size=2))
    x = x.astype(np.uint8)
    assert multiset(train.images[..., 0], train.labels) == multiset(x, np.arange(4) % 2)
    assert multiset(test.images[..., 0], test.labels) == multiset(x[:2], np.arange(2) % 2)


def test_npz_test_labels_outside_the_training_classes_are_named(tmp_path):
    x = np.zeros((4, 8, 8), np.uint8)
    path = npz(tmp_path / "x.npz", x, x[:2], y_test=np.array([0, 5]))
    with pytest.raises(
        data.DataError, match=r"y_test holds label 5, and the training labels name 2"
    ):
        data.load(config_for(tmp_path, str(path), batch_size=2))


def test_preparing_says_what_from_where_into_where_named_after_the_folder(tmp_path, capfd):
    root = synthetic.write_image_folder(tmp_path / "My Photos", n_train=20, n_test=8)
    writers = data.Writers()
    _, _, info = data.load(config_for(tmp_path, str(root), image_size=16), writers)
    writers.wait()
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err  # no TFDS banner, no progress bars off a terminal
    assert lines[0].startswith(f"Preparing {root} (folders, 28 image files) into ")
    prepared = lines[0].split(" into ")[1]
    assert "/prepared_images/my_photos-" in prepared and "fashion" not in prepared
    assert info.source == f"{root} (folders)" and len(info.digest) == 32
    data.load(config_for(tmp_path, str(root), image_size=16))  # prepared: says nothing
    assert capfd.readouterr().err == ""
