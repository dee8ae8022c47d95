"""Mixed precision: bfloat16 and float16 steps run, learn, and keep float32 parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from synthetic import small_config

from jaxcnn import data
from jaxcnn.train import loop, precision
from jaxcnn.train.trainer import create_trainer


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_training_learns_with_float32_parameters(dataset, tmp_path, dtype):
    config = small_config(dataset, compute_dtype=dtype)
    final = loop.train_and_evaluate(config, tmp_path)
    assert final["test_accuracy"] > 0.9  # chance is 0.25


def test_the_step_computes_in_the_compute_dtype(dataset):
    config = small_config(dataset, compute_dtype="bfloat16")
    _, _, info = data.load(config)
    trainer, state = create_trainer(config, info, steps_per_epoch=24)
    images = np.zeros((32, *info.image_shape), np.uint8)
    jaxpr = str(jax.make_jaxpr(trainer.train_step)(state, images, np.zeros(32, np.int32)))
    assert "bf16" in jaxpr
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(state.params))
    assert float(state.loss_scale) == 1.0


def test_loss_scale_halves_on_overflow_and_grows_after_good_steps():
    scale = jnp.float32(1024.0)
    assert float(precision.next_loss_scale(scale, jnp.bool_(False), jnp.int32(5))) == 512.0
    assert float(precision.next_loss_scale(scale, jnp.bool_(True), jnp.int32(5))) == 1024.0
    grown = precision.next_loss_scale(
        scale, jnp.bool_(True), jnp.int32(precision.GROWTH_INTERVAL - 1)
    )
    assert float(grown) == 2048.0
    assert float(precision.next_loss_scale(jnp.float32(1.0), jnp.bool_(False), jnp.int32(0))) == 1.0
    assert bool(precision.all_finite({"a": jnp.ones(3), "b": jnp.zeros(2)}))
    assert not bool(precision.all_finite({"a": jnp.array([1.0, jnp.inf])}))
