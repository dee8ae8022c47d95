import jax
import numpy as np

from jaxcnn.augment import augment


def test_augment_flips_and_shifts():
    x = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4, 1)
    flipped = np.asarray(augment(jax.random.key(0), x, "flip"))
    for image, out in zip(x, flipped):
        assert np.array_equal(out, image) or np.array_equal(out, image[:, ::-1])
    shifted = np.asarray(augment(jax.random.key(0), x, "shift"))
    assert shifted.shape == x.shape and np.all(shifted.sum((1, 2, 3)) <= x.sum((1, 2, 3)))
