"""Fine-tuning: `init_from` loads by path and shape, `freeze` keeps layers bit for bit."""

import jax
import numpy as np
import pytest
import synthetic
from synthetic import small_config

from jaxcnn import models
from jaxcnn.nn import layers as L
from jaxcnn.train import config as config_lib
from jaxcnn.train import loop, transfer
from jaxcnn.train.config import ConfigError
from jaxcnn.train.predict import Predictor


def test_layer_names_and_masks_follow_dotted_paths():
    model = L.sequential(
        stem=L.sequential(conv=L.conv2d(4, 3), act=L.activation(jax.nn.relu)), fc=L.dense(2)
    )
    assert transfer.layer_names(model) == ["stem", "stem.conv", "stem.act", "fc"]
    params = {"stem": {"conv": {"kernel": 1, "bias": 2}}, "fc": {"kernel": 3}, "stem2": {"k": 4}}
    mask = transfer.frozen_mask(params, "stem, fc")
    assert mask == {
        "stem": {"conv": {"kernel": True, "bias": True}},
        "fc": {"kernel": True},
        "stem2": {"k": False},
    }  # fmt: skip  (a prefix is a whole name)
    assert transfer.unknown_prefixes(model, "stem.conv,head") == ["head"]


def test_loading_takes_what_matches_by_path_and_shape_and_says_what_not():
    target = {
        "conv": {"kernel": np.zeros((3, 3)), "bias": np.zeros(3)},
        "fc": {"kernel": np.zeros((3, 10))},
    }
    source = {"conv": {"kernel": np.ones((3, 3)), "bias": np.ones(3)}, "fc": {"kernel": np.ones((3, 5))},
              "extra": {"kernel": np.ones(2)}}  # fmt: skip
    merged, loaded, skipped = transfer.load_matching(target, source)
    assert sorted(loaded) == ["conv.bias", "conv.kernel"]
    np.testing.assert_array_equal(merged["conv"]["kernel"], np.ones((3, 3)))
    np.testing.assert_array_equal(merged["fc"]["kernel"], np.zeros((3, 10)))
    assert skipped == ["fc.kernel: (3, 5) there, (3, 10) here"]


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("init_from", "/no/such/run", "is not a workdir train.py trained in"),
        ("freeze", "conv1,conv9", "`freeze` names no layer 'conv9' of 'lenet'"),
    ],
)
def test_bad_fine_tuning_keys_are_one_line_errors(key, value, match):
    config = config_lib.load("configs/lenet.py")
    config[key] = value
    with pytest.raises(ConfigError, match=match):
        config_lib.check(config)


def three_classes(path):
    """The synthetic images of classes 0-2 only, as an .npz: another head than the source's."""
    arrays = {}
    for split, n, seed in (("train", 600, 5), ("test", 150, 6)):
        images, labels = synthetic.make_images(n, seed)
        keep = labels < 3
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images[keep], labels[keep]
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("model", ["lenet", "lenet_bn"])
def test_fine_tuning_loads_the_body_trains_a_new_head_and_keeps_frozen_layers(
    model, tmp_path, capfd
):
    source_data = synthetic.write_dataset(tmp_path / "idx", n_train=384, n_test=64)
    config = small_config((source_data, tmp_path / "tfds"), num_epochs=2)
    if model == "lenet_bn":
        config.model = {"name": "lenet_bn", "conv_impl": "auto"}
    loop.train_and_evaluate(config, tmp_path / "source")
    source = Predictor.load(tmp_path / "source")

    tuned = config_lib.with_absolute_paths(config)
    tuned.dataset, tuned.data_dir = "three", str(three_classes(tmp_path / "three.npz"))
    tuned.init_from, tuned.freeze = str(tmp_path / "source"), "conv1,conv2"
    if model == "lenet_bn":
        tuned.freeze = "conv1,bn1"
    capfd.readouterr()
    loop.train_and_evaluate(tuned, tmp_path / "tuned")
    out = capfd.readouterr().out
    assert f"init_from {tmp_path / 'source'} (epoch 2): loaded " in out
    assert "fc3.kernel: " in out and ", 3) here" in out  # 4 classes there, 3 here
    after = Predictor.load(tmp_path / "tuned")
    assert after.info.num_classes == 3
    for name in tuned.freeze.split(","):
        for key, value in source.state.params.get(name, {}).items():
            np.testing.assert_array_equal(after.state.params[name][key], value)  # bit for bit
        for key, value in source.state.model_state.get(name, {}).items():
            np.testing.assert_array_equal(after.state.model_state[name][key], value)
    # What was not frozen trained on: the layer after the frozen ones moved.
    moved = "fc1" if model == "lenet" else "conv2"
    assert not np.array_equal(
        after.state.params[moved]["kernel"], source.state.params[moved]["kernel"]
    )


def test_models_build_with_a_freeze_of_their_top_layers():
    for name in ("lenet", "resnet", "densenet"):
        model = models.MODELS[name](10)
        top = [n for n in transfer.layer_names(model) if "." not in n]
        assert transfer.unknown_prefixes(model, ",".join(top)) == []
