import jax
import numpy as np
import pytest
import synthetic

from jaxcnn import data


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trip(tmp_path, compress):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    synthetic.write_idx(tmp_path / "x-idx3-ubyte", array, compress)
    name = "x-idx3-ubyte.gz" if compress else "x-idx3-ubyte"
    np.testing.assert_array_equal(data.read_idx(tmp_path / name), array)


def test_builder_prepares_idx_directory(tmp_path):
    source = synthetic.write_dataset(tmp_path / "idx", n_train=64, n_test=16, compress=False)
    builder = data.dataset_builder("tiny", str(source), str(tmp_path / "tfds"))
    train = data.load_split(builder, "train")
    assert train.images.shape == (64, 16, 16, 1) and train.images.dtype == np.uint8
    assert builder.info.features["label"].num_classes == synthetic.NUM_CLASSES
    assert (tmp_path / "tfds" / "idx_images" / "tiny" / "1.0.0").is_dir()
    # TFDS shuffles records; each image must still carry its own label.
    images, labels = synthetic.make_images(64, seed=0)
    expected = sorted((img.tobytes(), int(lbl)) for img, lbl in zip(images, labels))
    got = sorted(
        (img[..., 0].tobytes(), int(lbl))
        for img, lbl in zip(np.asarray(train.images), np.asarray(train.labels))
    )
    assert got == expected
    assert data.load_split(builder, "test").images.shape == (16, 16, 16, 1)


def test_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(data.DataError, match="apt-get install dataset-fashion-mnist"):
        data.dataset_builder("fashion_mnist", str(tmp_path / "nowhere"), str(tmp_path / "tfds"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataError, match="no train-images-idx3-ubyte"):
        data.dataset_builder("fashion_mnist", str(tmp_path / "empty"), str(tmp_path / "tfds"))


def test_epoch_batches_permute_and_drop_the_rest():
    index = np.asarray(data.epoch_batches(jax.random.key(0), 10, 3))
    assert index.shape == (3, 3)
    assert len(set(index.ravel())) == 9 and set(index.ravel()) <= set(range(10))
    other = np.asarray(data.epoch_batches(jax.random.key(1), 10, 3))
    assert not np.array_equal(index, other)
    with pytest.raises(ValueError, match="`batch_size` \\(11\\) is larger"):
        data.epoch_batches(jax.random.key(0), 10, 11)


def test_eval_batches_cover_every_example_once():
    index, mask = data.eval_batches(10, 4)
    assert index.shape == mask.shape == (3, 4)
    assert sorted(index[mask]) == list(range(10))
