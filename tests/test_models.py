import math
import shutil

import jax
import ml_collections
import numpy as np
import pytest
from synthetic import small_config
from test_checkpoint import record

import jaxcnn
from jaxcnn import models
from jaxcnn.nn import layers
from jaxcnn.train import loop
from jaxcnn.train.metrics import read_metrics


def test_d2l_lenet_has_the_lecture_shapes():
    model = models.lenet_d2l()
    out_shape, params = model.init(jax.random.key(0), (1, 28, 28, 1))
    assert out_shape == (1, 10)
    assert sum(p.size for p in jax.tree.leaves(params)) == 61_706  # d2l's count
    assert params["conv1"]["kernel"].shape == (5, 5, 1, 6)
    assert params["fc1"]["kernel"].shape == (16 * 5 * 5, 120)


def test_sequential_matches_hand_written_layers():
    model = models.lenet(channels=(4, 8), hidden=(16, 12))
    _, p = model.init(jax.random.key(1), (1, 28, 28, 1))
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    h = jaxcnn.max_pool2d(jaxcnn.relu(jaxcnn.conv2d(p["conv1"], x, padding=2)), 2)
    h = jaxcnn.max_pool2d(jaxcnn.relu(jaxcnn.conv2d(p["conv2"], h)), 2)
    h = jaxcnn.relu(jaxcnn.dense(p["fc1"], jaxcnn.flatten(h)))
    expected = jaxcnn.dense(p["fc3"], jaxcnn.relu(jaxcnn.dense(p["fc2"], h)))
    np.testing.assert_allclose(model.apply(p, x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("impl", ["patches", "auto"])
def test_conv_impls_give_the_same_model(impl):
    x = np.random.default_rng(0).random((2, 28, 28, 1)).astype(np.float32)
    lax_model, other = models.lenet(conv_impl="lax"), models.lenet(conv_impl=impl)
    _, params = lax_model.init(jax.random.key(0), x.shape)
    np.testing.assert_allclose(
        other.apply(params, x), lax_model.apply(params, x), rtol=1e-4, atol=1e-5
    )


def test_summary_counts_parameters_and_flops():
    model = models.lenet_d2l()
    _, params = model.init(jax.random.key(0), (1, 28, 28, 1))
    table = layers.summary(model, params, (1, 28, 28, 1))
    conv2 = next(line for line in table.splitlines() if line.startswith("conv2"))
    # 10*10 conv outputs x 16 channels x (5*5*6 multiply-adds = 300 FLOPs), then on each
    # of those 1,600 outputs a bias add, a sigmoid and a read into the pool's mean
    assert "(5, 5, 16)" in conv2 and "2,416" in conv2 and "484,800" in conv2
    assert table.splitlines()[-1].split()[:2] == ["total", "61,706"]


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="`impl` must be one of"):
        layers.conv2d(6, 5, impl="winograd")
    with pytest.raises(TypeError, match="`fc` must be a Layer"):
        layers.sequential(fc=jaxcnn.dense)


def traced_init(model, input_shape):
    """(output shape, params, state) as shapes, by tracing `initialize` (nothing is computed)."""
    out = []

    def init(key):
        shape, params, state = model.init_with_state(key, input_shape)
        out.append(shape)
        return params, state

    params, state = jax.eval_shape(init, jax.random.key(0))
    return out[0], params, state


def conv(k, cin, cout, bias=True):
    return k * k * cin * cout + (cout if bias else 0)


def bn(c):
    return 2 * c  # scale and bias; the running statistics are state


@pytest.mark.parametrize(
    "name, kwargs, count",
    [
        # d2l 8.5: conv 6@5x5 (24x24), pool, conv 16@5x5 (8x8), pool, 4x4x16 -> 120 -> 84 -> 10.
        ("lenet_bn", {}, conv(5, 1, 6) + bn(6) + conv(5, 6, 16) + bn(16) + 256 * 120 + 120
         + bn(120) + 120 * 84 + 84 + bn(84) + 84 * 10 + 10),
        # stem 16; stage 1 two 3x3 16->16; stage 2: 16->32, 32->32, 1x1 shortcut; stage 3 likewise.
        ("resnet", {}, conv(3, 1, 16, False) + bn(16)
         + 2 * (conv(3, 16, 16, False) + bn(16))
         + conv(3, 16, 32, False) + conv(3, 32, 32, False) + 2 * bn(32) + conv(1, 16, 32, False) + bn(32)
         + conv(3, 32, 64, False) + conv(3, 64, 64, False) + 2 * bn(64) + conv(1, 32, 64, False) + bn(64)
         + 64 * 10 + 10),
        # NiN blocks: a kxk conv then two 1x1, each with a bias; the last block has 10 channels.
        ("nin", {"channels": (8, 16, 24), "batch_norm": False}, conv(5, 1, 8) + 2 * conv(1, 8, 8)
         + conv(3, 8, 16) + 2 * conv(1, 16, 16) + conv(3, 16, 24) + 2 * conv(1, 24, 24)
         + conv(3, 24, 10) + 2 * conv(1, 10, 10)),
        # VGG: 28 -> 14 -> 7; 7x7x16 flattened -> 32 -> 32 -> 10.
        ("vgg", {"blocks": ((1, 8), (2, 16)), "hidden": 32}, conv(3, 1, 8, False) + bn(8)
         + conv(3, 8, 16, False) + conv(3, 16, 16, False) + 2 * bn(16)
         + 7 * 7 * 16 * 32 + 32 + 32 * 32 + 32 + 32 * 10 + 10),
        # DenseNet: stem 8; block of 2 layers growing 4 (8 -> 16), transition to 8; block to 16.
        ("densenet", {"stem": 8, "growth": 4, "layers": (2, 2)}, conv(3, 1, 8, False) + bn(8)
         + bn(8) + conv(3, 8, 4) + bn(12) + conv(3, 12, 4)
         + bn(16) + conv(1, 16, 8)
         + bn(8) + conv(3, 8, 4) + bn(12) + conv(3, 12, 4)
         + bn(16) + 16 * 10 + 10),
    ],
)  # fmt: skip
def test_model_parameter_counts(name, kwargs, count):
    model = models.MODELS[name](10, **kwargs)
    shape, params, _ = traced_init(model, (1, 28, 28, 1))
    assert shape == (1, 10)
    assert sum(math.prod(p.shape) for p in jax.tree.leaves(params)) == count


def test_googlenet_branches_add_up():
    model = models.googlenet(10, width=8)
    shape, params, _ = traced_init(model, (1, 28, 28, 1))
    assert shape == (1, 10)
    # The first Inception block: 8 * (4 + 8 + 2 + 2) / 4 = 32 channels from its four branches.
    block = params["block3a"]
    outs = [
        block["b1"]["conv"]["kernel"].shape[-1],
        block["b2"]["conv"]["conv"]["kernel"].shape[-1],
        block["b3"]["conv"]["conv"]["kernel"].shape[-1],
        block["b4"]["conv"]["conv"]["kernel"].shape[-1],
    ]
    assert outs == [8, 16, 4, 4] and block["b3"]["conv"]["conv"]["kernel"].shape[:2] == (5, 5)
    assert params["block3b"]["b1"]["conv"]["kernel"].shape[2] == sum(outs)


def test_resnet_stem_pool_runs_the_stages_at_a_quarter_of_the_positions():
    from jaxcnn.nn.network import walk

    model = models.resnet(10, stages=(8, 16, 32), stem_pool=True)
    shapes = {n.name: n.out_shape for n in walk(model, (2, 28, 28, 1)) if len(n.path) == 1}
    assert shapes["stem"] == (2, 28, 28, 8) and shapes["stem_pool"] == (2, 14, 14, 8)
    assert [shapes[f"stage{s}_block1"] for s in (1, 2, 3)] == [
        (2, 14, 14, 8),
        (2, 7, 7, 16),
        (2, 4, 4, 32),  # SAME padding: ceil(7 / 2)
    ]
    # The pool has no parameters: the same ones as without it, and the pooled stem's
    # outputs are the 2x2 maxima of the plain stem's.
    _, params, state = model.init_with_state(jax.random.key(0), (2, 28, 28, 1))
    _, plain, _ = traced_init(models.resnet(10, stages=(8, 16, 32)), (2, 28, 28, 1))
    assert jax.tree.map(np.shape, params) == jax.tree.map(lambda p: p.shape, plain)
    x = np.random.default_rng(0).random((2, 28, 28, 1)).astype(np.float32)
    steps = dict(model.steps)
    y, _ = steps["stem"].apply_with_state(params["stem"], state["stem"], x)
    pooled = steps["stem_pool"].apply({}, y)
    expected = np.asarray(y).reshape(2, 14, 2, 14, 2, 8).max(axis=(2, 4))
    np.testing.assert_array_equal(pooled, expected)


def test_resnet18_is_the_cifar_resnet18():
    model = models.resnet18(10)
    _, params, state = traced_init(model, (1, 32, 32, 3))
    assert (
        sum(p.size for p in jax.tree.leaves(params)) == 11_173_962
    )  # torchvision-style, CIFAR stem
    assert len([k for k in params if k.startswith("stage")]) == 8


# Small widths of each modern model, for the tests' 16x16 images (4 classes). The
# branching models run lax's convs here: their many layers' CPU kernels take
# long to compile, and those kernels are tested on their own.
SMALL = {
    "lenet_bn": {"conv_impl": "auto"},
    "nin": {"channels": (8, 16, 16), "conv_impl": "auto"},
    "vgg": {"blocks": ((1, 8), (1, 16)), "hidden": 32, "conv_impl": "auto"},
    "googlenet": {"width": 8, "conv_impl": "lax"},
    "resnet": {"stages": (8, 16), "blocks": 1, "conv_impl": "auto"},
    "densenet": {"stem": 8, "growth": 4, "layers": (2, 2), "conv_impl": "lax"},
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_each_modern_model_learns_the_synthetic_classes(dataset, tmp_path, name):
    config = small_config(dataset, num_epochs=3, augment="", label_smoothing=0.0)
    config.model = ml_collections.ConfigDict({"name": name, **SMALL[name]})
    final = loop.train_and_evaluate(config, tmp_path)
    assert final["test_accuracy"] > 0.8, final  # chance is 0.25


def test_resume_restores_batch_norm_state_exactly(dataset, tmp_path):
    config = small_config(dataset, num_epochs=2, checkpoint_every_steps=12, steps_per_call=12)
    config.model = ml_collections.ConfigDict({"name": "resnet", "stages": (4, 8)})
    loop.train_and_evaluate(config, tmp_path / "straight")
    run = tmp_path / "resumed"
    shutil.copytree(tmp_path / "straight", run)
    shutil.rmtree(run / "checkpoints" / "48")  # as if killed after step 36, mid-epoch 2
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text().splitlines()[0] + "\n")
    final = loop.train_and_evaluate(config, run)
    straight = read_metrics(tmp_path / "straight" / "metrics.jsonl")[-1]
    assert final["test_loss"] == straight["test_loss"]  # evaluated with the running statistics
    if jax.default_backend() == "cpu":
        # Bit for bit on the CPU. On an H200 the digests differed while the test loss matched:
        # GPU convolutions need not sum in one order across compiles (--xla_gpu_deterministic_ops).
        assert record(run, 48)["digest"] == record(tmp_path / "straight", 48)["digest"]
