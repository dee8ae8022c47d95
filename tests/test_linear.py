import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcnn


def test_dense_is_affine_map():
    params = {
        "kernel": np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
        "bias": np.array([0.5, -1.0]),
    }
    y = jaxcnn.dense(params, np.array([[1.0, 0.0, -1.0]]))
    np.testing.assert_allclose(y, [[1 - 5 + 0.5, 2 - 6 - 1.0]])
    y = jaxcnn.dense({"kernel": params["kernel"]}, np.array([[1.0, 1.0, 1.0]]))
    np.testing.assert_allclose(y, [[9.0, 12.0]])


def test_flatten_keeps_batch():
    x = np.arange(24).reshape(2, 2, 3, 2)
    np.testing.assert_array_equal(jaxcnn.flatten(x), x.reshape(2, 12))


def test_dense_composes_with_jit_grad_vmap():
    params = jaxcnn.init_dense(jax.random.key(0), 12, 3)
    x = np.random.default_rng(0).standard_normal((4, 5, 2, 3, 2)).astype(np.float32)
    f = jax.jit(jax.vmap(lambda x: jaxcnn.dense(params, jaxcnn.flatten(x))))
    np.testing.assert_allclose(
        f(x), x.reshape(4, 5, 12) @ params["kernel"] + params["bias"], rtol=1e-5
    )
    g = jax.grad(lambda p: jaxcnn.dense(p, x[0].reshape(5, 12)).sum())(params)
    np.testing.assert_allclose(
        g["kernel"], np.repeat(x[0].reshape(5, 12).sum(0)[:, None], 3, 1), rtol=1e-5
    )
    np.testing.assert_allclose(g["bias"], np.full(3, 5.0))


@pytest.mark.parametrize(
    "params, x, match",
    [
        ({"w": jnp.ones((3, 2))}, jnp.ones((1, 3)), "`params` must be a dict with a 'kernel'"),
        ({"kernel": jnp.ones((3,))}, jnp.ones((1, 3)), "must be 2-D"),
        ({"kernel": jnp.ones((3, 2))}, jnp.ones((1, 4)), "`x` must end in 3 features"),
        (
            {"kernel": jnp.ones((3, 2)), "bias": jnp.ones(3)},
            jnp.ones((1, 3)),
            r"must have shape \(2,\)",
        ),
    ],
)
def test_dense_bad_input(params, x, match):
    with pytest.raises(ValueError, match=match):
        jax.jit(jaxcnn.dense)(params, x)
