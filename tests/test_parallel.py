import jax
import numpy as np
import pytest

from jaxcnn import parallel


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


def test_data_mesh_defaults_to_all_devices():
    assert parallel.data_mesh().size == jax.device_count() == 2
    assert parallel.data_mesh(1).devices.tolist() == [jax.devices()[0]]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="`num_devices` must be an int from 0"):
        parallel.data_mesh(3)
    with pytest.raises(ValueError, match="axis of size 5 does not divide evenly"):
        parallel.put(np.zeros(5), parallel.batch_sharded(parallel.data_mesh(2)))
    with pytest.raises(ValueError, match="`cpu_devices` must be a positive int"):
        parallel.use_cpu_devices(0)
    with pytest.raises(ValueError, match="before JAX starts its backends"):
        parallel.use_cpu_devices(4)  # the tests' backend is already running
