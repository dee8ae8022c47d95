"""batch_norm against NumPy written here, finite differences, and one device against two."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from backends import two_devices
from jax.test_util import check_grads

import jaxcnn
from jaxcnn import parallel


def numpy_batch_norm(x, scale, bias, mean, var, training, momentum, eps):
    """The textbook statistics, in float64: biased to normalise, unbiased to keep."""
    x = np.asarray(x, np.float64)
    axes = tuple(range(x.ndim - 1))
    if training:
        batch_mean, batch_var = x.mean(axes), x.var(axes)
        n = x.size // x.shape[-1]
        new_mean = momentum * mean + (1 - momentum) * batch_mean
        new_var = momentum * var + (1 - momentum) * batch_var * n / (n - 1)
        used_mean, used_var = batch_mean, batch_var
    else:
        new_mean, new_var = mean, var
        used_mean, used_var = mean, var
    y = (x - used_mean) / np.sqrt(used_var + eps) * scale + bias
    return y, new_mean, new_var


def random_inputs(shape, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[-1]
    x = (rng.standard_normal(shape) * 3 + 2).astype(np.float32)
    params = {
        "scale": rng.uniform(0.5, 2, c).astype(np.float32),
        "bias": rng.standard_normal(c).astype(np.float32),
    }
    return x, params


def test_init_is_identity_statistics():
    params, state = jaxcnn.init_batch_norm(3)
    np.testing.assert_array_equal(params["scale"], np.ones(3))
    np.testing.assert_array_equal(params["bias"], np.zeros(3))
    np.testing.assert_array_equal(state["mean"], np.zeros(3))
    np.testing.assert_array_equal(state["var"], np.ones(3))


@pytest.mark.parametrize("shape", [(4, 5, 6, 3), (16, 7)])
def test_training_and_running_statistics_match_numpy(shape):
    x, params = random_inputs(shape)
    _, state = jaxcnn.init_batch_norm(shape[-1])
    mean, var = np.zeros(shape[-1]), np.ones(shape[-1])
    step = jax.jit(functools.partial(jaxcnn.batch_norm, training=True, momentum=0.8, eps=1e-3))
    for seed in range(4):  # several updates of the running statistics
        x, _ = random_inputs(shape, seed)
        y, state = step(params, state, x)
        want, mean, var = numpy_batch_norm(
            x, params["scale"], params["bias"], mean, var, True, 0.8, 1e-3
        )
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(state["mean"], mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(state["var"], var, rtol=1e-5, atol=1e-6)
    y, after = jaxcnn.batch_norm(params, state, x, training=False, eps=1e-3)
    want, _, _ = numpy_batch_norm(x, params["scale"], params["bias"], mean, var, False, 0.8, 1e-3)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
    jax.tree.map(np.testing.assert_array_equal, after, state)  # unchanged


def test_pytorch_momentum_is_one_minus_ours():
    # PyTorch: running = (1 - m) * running + m * batch, with m = 0.1 by default.
    x, params = random_inputs((8, 3, 3, 2))
    _, state = jaxcnn.init_batch_norm(2)
    _, state = jaxcnn.batch_norm(params, state, x, training=True, momentum=0.9)
    n = 8 * 3 * 3
    unbiased = x.reshape(-1, 2).var(0, ddof=1)
    np.testing.assert_allclose(state["var"], 0.9 * 1 + 0.1 * unbiased, rtol=1e-5)
    np.testing.assert_allclose(state["mean"], 0.1 * x.reshape(n, 2).mean(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("training", [True, False])
def test_gradients_match_finite_differences(training):
    x, params = random_inputs((3, 2, 2, 2), seed=1)
    state = {"mean": jnp.asarray([0.5, -0.2]), "var": jnp.asarray([1.5, 0.7])}
    x, params = jax.tree.map(lambda a: a.astype(np.float64), (x, params))
    with jax.enable_x64():
        fn = lambda p, x: jaxcnn.batch_norm(p, state, x, training=training)[0]  # noqa: E731
        check_grads(fn, (params, x), order=1, modes=("rev",), atol=1e-4, rtol=1e-4)


def test_composes_with_vmap():
    xs = np.stack([random_inputs((5, 3), seed)[0] for seed in range(3)])
    params, state = jaxcnn.init_batch_norm(3)
    ys, states = jax.vmap(lambda x: jaxcnn.batch_norm(params, state, x, training=True))(xs)
    for x, y, mean in zip(xs, ys, states["mean"]):
        np.testing.assert_allclose(
            y, jaxcnn.batch_norm(params, state, x, training=True)[0], rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(mean, 0.1 * x.mean(0), rtol=1e-5, atol=1e-6)


@two_devices
def test_one_and_two_devices_give_the_global_batch_statistics():
    # The batch sharded over 2 devices inside jit, as train.py runs: no axis name.
    assert jax.device_count() >= 2
    x, params = random_inputs((8, 4, 4, 3), seed=2)
    _, state = jaxcnn.init_batch_norm(3)
    step = jax.jit(functools.partial(jaxcnn.batch_norm, training=True))
    one = step(params, state, x)
    mesh = parallel.data_mesh(2)
    sharded = parallel.put(x, parallel.batch_sharded(mesh))
    assert len(sharded.sharding.device_set) == 2
    two = step(
        parallel.put(params, parallel.replicated(mesh)),
        parallel.put(state, parallel.replicated(mesh)),
        sharded,
    )
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), one, two)
    # Each half's own statistics differ from the whole's: what a per-device norm would use.
    half_mean = x[:4].mean((0, 1, 2))
    assert not np.allclose(0.1 * half_mean, np.asarray(two[1]["mean"]), atol=1e-3)


@pytest.mark.parametrize(
    "args, match",
    [
        (dict(params={"scale": np.ones(3)}), r"`params` must be a dict with \['scale', 'bias'\]"),
        (dict(state={"mean": np.zeros(3)}), r"`state` must be a dict with \['mean', 'var'\]"),
        (
            dict(x=np.ones((2, 3, 3))),
            r"`x` must be NHWC \(n, h, w, c\) or \(n, c\), got shape \(2, 3, 3\)",
        ),
        (
            dict(x=np.ones((2, 4))),
            r"`params\['scale'\]` must have shape \(4,\) for 4 channels, got \(3,\)",
        ),
        (dict(momentum=1.0), r"`momentum` must be in \[0, 1\), got 1.0"),
        (dict(eps=0.0), r"`eps` must be > 0, got 0.0"),
    ],
)
def test_bad_arguments_name_themselves(args, match):
    params, state = jaxcnn.init_batch_norm(3)
    call = dict(params=params, state=state, x=np.ones((2, 3)), momentum=0.9, eps=1e-5) | args
    with pytest.raises(ValueError, match=match):
        jaxcnn.batch_norm(
            call["params"],
            call["state"],
            call["x"],
            training=True,
            momentum=call["momentum"],
            eps=call["eps"],
        )
    with pytest.raises(ValueError, match="`num_features` must be a positive int, got 0"):
        jaxcnn.init_batch_norm(0)


def test_forward_mode_takes_running_statistics_and_names_them_when_training():
    x, params = random_inputs((4, 3, 3, 2), seed=5)
    state = {"mean": jnp.array([0.5, -1.0]), "var": jnp.array([2.0, 0.25])}
    tangent = np.ones_like(x)

    def normalised(x, training):
        return jaxcnn.batch_norm(params, state, x, training=training)[0]

    with pytest.raises(TypeError, match=r"^`batch_norm` has .* reverse mode only.*training=False"):
        jax.jvp(functools.partial(normalised, training=True), (x,), (tangent,))
    # With the running statistics, y is affine in x: its derivative along ones is scale / std.
    _, derivative = jax.jvp(functools.partial(normalised, training=False), (x,), (tangent,))
    expected = params["scale"] / np.sqrt(np.array([2.0, 0.25]) + 1e-5)
    np.testing.assert_allclose(derivative, np.broadcast_to(expected, x.shape), rtol=1e-5)
