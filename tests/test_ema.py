"""Averaged weights (`ema_decay`): evaluated, saved and exported with batch norm's statistics
gathered for them."""

import jax
import numpy as np
import pytest
from synthetic import small_config

import jaxcnn
from jaxcnn import data
from jaxcnn.train import config as config_lib
from jaxcnn.train import loop
from jaxcnn.train import trainer as trainer_lib
from jaxcnn.train.config import ConfigError
from jaxcnn.train.predict import Predictor


def test_ema_is_checked_before_data_loads():
    config = config_lib.load("configs/lenet.py")  # schedule-free AdamW
    config.ema_decay = 0.99
    with pytest.raises(ConfigError, match="`ema_decay` \\(0.99\\) with 'schedule_free_adamw'"):
        config_lib.check(config)
    config.optimizer, config.ema_decay = "adamw", 1.0
    with pytest.raises(ConfigError, match=r"`ema_decay` must be a number in \[0, 1\)"):
        config_lib.check(config)


def bn_config(dataset, **overrides):
    config = small_config(dataset, optimizer="adamw", ema_decay=0.9, **overrides)
    config.model = {"name": "lenet_bn", "conv_impl": "auto"}
    return config


def test_batch_norm_statistics_are_gathered_for_the_averaged_weights(dataset):
    config = bn_config(dataset)
    train, _, info = data.load(config)
    trainer, state = trainer_lib.create_trainer(config, info, steps_per_epoch=24)
    assert trainer.gathers_statistics
    # Averaged weights unlike the training ones, so that using the wrong ones shows.
    chain = state.opt_state
    ema = jax.tree.map(lambda p: p * 1.5, chain[-1].ema)
    state = state._replace(opt_state=(*chain[:-1], chain[-1]._replace(ema=ema)))
    order = np.arange(24 * 32).reshape(24, 32)[::-1]
    images = trainer.replicate(np.asarray(train.images))
    refreshed = trainer.refresh_statistics(state, images, order)
    # bn1's running mean by hand: momentum 0.9 over the batches' channel means of conv1's
    # output under the averaged kernel, from the state's own statistics.
    mean = np.asarray(state.model_state["bn1"]["mean"], np.float64)
    for index in order:
        x = (train.images[index] / 255.0 - info.mean) / info.std
        y = jaxcnn.conv2d(jax.tree.map(np.asarray, ema["conv1"]), x.astype(np.float32))
        mean = 0.9 * mean + 0.1 * np.asarray(y, np.float64).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(refreshed.model_state["bn1"]["mean"], mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(
        refreshed.params["conv1"]["kernel"], state.params["conv1"]["kernel"]
    )


def test_a_run_with_ema_saves_and_predicts_with_the_average(dataset, tmp_path):
    config = bn_config(dataset, num_epochs=2)
    last = loop.train_and_evaluate(config, tmp_path / "run")
    assert last["test_accuracy"] > 0.5  # chance is 0.25
    predictor = Predictor.load(tmp_path / "run")
    # The checkpoint's evaluated parameters are the average kept in the optimizer state.
    trainer, state = trainer_lib.create_trainer(config, predictor.info, steps_per_epoch=24)
    from jaxcnn.train.checkpoint import Checkpoints

    checkpoints = Checkpoints(tmp_path / "run" / "checkpoints", 3, print, read_only=True)
    restored, _ = checkpoints.restore_latest(state, lambda record: None)
    checkpoints.close()
    ema = restored[1][-1].ema
    np.testing.assert_array_equal(predictor.state.params["fc1"]["kernel"], ema["fc1"]["kernel"])
    assert not np.array_equal(ema["fc1"]["kernel"], restored[0]["fc1"]["kernel"])


def test_gathering_statistics_needs_the_training_split_in_memory():
    config = config_lib.defaults()
    config.memory_budget_mb, config.ema_decay, config.optimizer = 1, 0.99, "adamw"
    assert not config_lib.streams(config, 1 << 20, gathers=True)  # within the budget
    with pytest.raises(ConfigError, match=r"`ema_decay` \(0.99\) needs the training split in"):
        config_lib.streams(config, 2 << 20, gathers=True)
    assert config_lib.streams(config, 2 << 20, gathers=False)  # no batch norm: it streams
