import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcnn


def test_drops_about_rate_and_keeps_the_mean():
    x = jnp.ones((200, 100))
    y = np.asarray(jaxcnn.dropout(x, jax.random.key(0), 0.3, training=True))
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01  # 20,000 draws: 4.5 standard deviations is 0.015
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)  # inverted scaling
    assert abs(y.mean() - 1.0) < 0.02


def test_same_key_same_mask_other_key_other_mask():
    x = jnp.arange(1.0, 1001.0)
    a = jaxcnn.dropout(x, jax.random.key(1), 0.5, training=True)
    b = jaxcnn.dropout(x, jax.random.key(1), 0.5, training=True)
    c = jaxcnn.dropout(x, jax.random.key(2), 0.5, training=True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_identity_when_evaluating_or_at_rate_zero():
    x = jnp.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(jaxcnn.dropout(x, jax.random.key(0), 0.5, training=False), x)
    np.testing.assert_array_equal(jaxcnn.dropout(x, None, 0.0, training=True), x)
    np.testing.assert_array_equal(jaxcnn.dropout(x, None, 0.5, training=False), x)


def test_composes_with_jit_grad_and_vmap():
    x = jnp.ones((4, 8))
    key = jax.random.key(3)
    fn = jax.jit(lambda x: jaxcnn.dropout(x, key, 0.25, training=True))
    y = fn(x)
    grad = jax.grad(lambda x: fn(x).sum())(x)
    np.testing.assert_allclose(grad, np.where(np.asarray(y) != 0, 1 / 0.75, 0), rtol=1e-6)
    keys = jax.random.split(key, 4)
    rows = jax.vmap(lambda k, x: jaxcnn.dropout(x, k, 0.25, training=True))(keys, x)
    for k, row in zip(keys, rows):
        np.testing.assert_array_equal(row, jaxcnn.dropout(x[0], k, 0.25, training=True))


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "0.5", True])
def test_rate_outside_zero_one_is_an_error(rate):
    with pytest.raises(ValueError, match=r"`rate` must be a number in \[0, 1\)"):
        jaxcnn.dropout(jnp.ones(3), jax.random.key(0), rate, training=True)


def test_training_without_a_key_is_an_error():
    with pytest.raises(ValueError, match="`key` must be a PRNG key"):
        jaxcnn.dropout(jnp.ones(3), None, 0.5, training=True)
