import jax
import numpy as np
import pytest

import jaxcnn
from jaxcnn import layers, models


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
    # 10*10 outputs x 16 channels x (5*5*6 multiply-adds = 300 FLOPs) + 1,600 bias adds
    assert "(10, 10, 16)" in conv2 and "2,416" in conv2 and "481,600" in conv2
    assert table.splitlines()[-1].split()[:2] == ["total", "61,706"]


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="`impl` must be one of"):
        layers.conv2d(6, 5, impl="winograd")
    with pytest.raises(TypeError, match="`fc` must be a Layer"):
        layers.sequential(fc=jaxcnn.dense)
