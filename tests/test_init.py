import jax
import numpy as np
import pytest

import jaxcnn


def test_conv_init_shapes_and_groups():
    params = jaxcnn.init_conv2d(jax.random.key(0), 6, 4, (3, 5), groups=2)
    assert params["kernel"].shape == (3, 5, 3, 4)
    np.testing.assert_array_equal(params["bias"], np.zeros(4))
    assert "bias" not in jaxcnn.init_conv2d(jax.random.key(0), 1, 1, 3, use_bias=False)


@pytest.mark.parametrize(
    "name, fan, uniform_limit, normal_std",
    [
        # fan_in = 5 * 5 * 16 = 400, fan_out = 5 * 5 * 32 = 800
        ("glorot_uniform", None, np.sqrt(6 / 1200), None),
        ("he_normal", None, None, np.sqrt(2 / 400)),
        ("lecun_uniform", None, np.sqrt(3 / 400), None),
    ],
)
def test_conv_init_scales_follow_fans(name, fan, uniform_limit, normal_std):
    kernel = jaxcnn.init_conv2d(jax.random.key(1), 16, 32, 5, kernel_init=name)["kernel"]
    if uniform_limit is not None:
        assert np.abs(kernel).max() <= uniform_limit
        np.testing.assert_allclose(kernel.std(), uniform_limit / np.sqrt(3), rtol=0.05)
    else:  # truncated normal: the std is kept by rescaling
        np.testing.assert_allclose(kernel.std(), normal_std, rtol=0.05)


def test_dense_init_and_custom_initializer():
    params = jaxcnn.init_dense(jax.random.key(0), 400, 120, kernel_init="xavier_uniform")
    assert params["kernel"].shape == (400, 120) and params["bias"].shape == (120,)
    assert np.abs(params["kernel"]).max() <= np.sqrt(6 / 520)
    ones = jaxcnn.init_dense(jax.random.key(0), 2, 3, kernel_init=jax.nn.initializers.ones)
    np.testing.assert_array_equal(ones["kernel"], np.ones((2, 3)))


def test_init_is_deterministic_per_key():
    a = jaxcnn.init_dense(jax.random.key(3), 4, 4)["kernel"]
    b = jaxcnn.init_dense(jax.random.key(3), 4, 4)["kernel"]
    c = jaxcnn.init_dense(jax.random.key(4), 4, 4)["kernel"]
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda k: jaxcnn.init_conv2d(k, 3, 4, 3, groups=2),
            r"`in_channels` \(=3\) must be divisible by `groups` \(=2\)",
        ),
        (lambda k: jaxcnn.init_conv2d(k, 0, 4, 3), "`in_channels` must be a positive int"),
        (lambda k: jaxcnn.init_conv2d(k, 2, 4, 0), "`kernel_size` must be >= 1"),
        (
            lambda k: jaxcnn.init_dense(k, 4, 2, kernel_init="glorot"),
            "`kernel_init` must be one of",
        ),
        (lambda k: jaxcnn.init_dense(k, 4, 2, bias_init=3), "`bias_init` must be one of"),
    ],
)
def test_init_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call(jax.random.key(0))
