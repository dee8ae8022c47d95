import jax
import jax.numpy as jnp
import numpy as np
import pytest
from backends import cpu_only, two_devices
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from jaxcnn import models, parallel


def test_put_replicates_and_splits_over_the_mesh():
    mesh = parallel.data_mesh(2)
    x = np.arange(24.0).reshape(4, 6)
    whole = parallel.put({"x": x}, parallel.replicated(mesh))["x"]
    assert [np.asarray(s.data).shape for s in whole.addressable_shards] == [(4, 6), (4, 6)]
    split = parallel.put(x, parallel.batch_sharded(mesh, axis=1))
    shards = sorted(split.addressable_shards, key=lambda s: s.device.id)
    np.testing.assert_array_equal(shards[0].data, x[:, :3])
    np.testing.assert_array_equal(shards[1].data, x[:, 3:])
    np.testing.assert_array_equal(parallel.fetch(whole), x)


@cpu_only
def test_data_mesh_defaults_to_all_devices():
    assert parallel.data_mesh().size == jax.device_count() == 2
    assert parallel.data_mesh(1).devices.tolist() == [jax.devices()[0]]


@cpu_only
def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="`num_devices` must be an int from 0"):
        parallel.data_mesh(3)
    with pytest.raises(ValueError, match="axis of size 5 does not divide evenly"):
        parallel.put(np.zeros(5), parallel.batch_sharded(parallel.data_mesh(2)))
    with pytest.raises(ValueError, match=r"`cpu_devices` must be an int >= 0 \(0: as JAX has it\)"):
        parallel.use_cpu_devices(-1)
    parallel.use_cpu_devices(0)  # leaves JAX's devices as they are
    with pytest.raises(ValueError, match="before JAX starts its backends"):
        parallel.use_cpu_devices(4)  # the tests' backend is already running


@two_devices
@pytest.mark.skipif(
    tuple(map(int, jax.__version__.split(".")[:2])) < (0, 10),
    reason="before JAX 0.10, explicit sharding cannot type dense layers' gradients",
)
@pytest.mark.parametrize(
    "model",
    [
        models.lenet(conv_impl="auto"),
        models.lenet(conv_impl="lax"),
        models.lenet(conv_impl="patches"),
        models.lenet_d2l(conv_impl="auto"),
        models.lenet(channels=(20, 16), conv_impl="auto"),  # conv2 through lax
    ],
    ids=["lenet-auto", "lenet-lax", "lenet-patches", "lenet_d2l-auto", "lenet-auto-wide"],
)
def test_layers_run_under_explicit_sharding(model):
    # jax.make_mesh's axes are Explicit by default: every reshape must say how
    # its result is laid out, which max pooling and the banded conv now do.
    mesh = jax.make_mesh((2,), ("data",), axis_types=(AxisType.Explicit,))
    _, params = model.init(jax.random.key(0), (1, 28, 28, 1))
    x = np.random.default_rng(0).random((8, 28, 28, 1), np.float32)

    def loss(params, x):
        return jnp.sum(model.apply(params, x) ** 2)

    want_y, want_grads = model.apply(params, x), jax.grad(loss)(params, x)
    with jax.set_mesh(mesh):
        sharded_x = jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))
        y = jax.jit(model.apply)(params, sharded_x)
        grads = jax.jit(jax.grad(loss))(params, sharded_x)
    assert y.sharding.spec == PartitionSpec("data", None)
    np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-6)
    jax.tree.map(
        lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5), grads, want_grads
    )


def test_xla_flags_device_count_is_read_and_conflicts_named(monkeypatch):
    assert parallel.xla_flags_device_count("--xla_force_host_platform_device_count=4 --x=1") == 4
    assert parallel.xla_flags_device_count("--xla_cpu_foo=1") is None
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
    with pytest.raises(
        ValueError, match=r"`cpu_devices` \(2\) and XLA_FLAGS' .*=4 ask for different"
    ):
        parallel.use_cpu_devices(2)
