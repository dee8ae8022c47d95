"""Optimizers by name, and the parameters each is evaluated with."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxcnn.train.optim import OPTIMIZERS, SCHEDULES, build_optimizer, eval_params


def config_for(optimizer, schedule="constant", **overrides):
    config = ml_collections.ConfigDict(
        {
            "optimizer": optimizer,
            "schedule": schedule,
            "learning_rate": 0.1,
            "warmup_epochs": 0.0,
            "num_epochs": 1,
            "weight_decay": 0.0,
            "momentum": 0.0,
        }
    )
    config.update(overrides)
    return config


def run(config, steps, start):
    """`steps` updates of a quadratic's gradient from `start`; the training parameters
    and optimizer state after each."""
    target = jnp.array([1.0, -2.0, 3.0])
    optimizer = build_optimizer(config, steps)
    params = {"w": jnp.asarray(start)}
    state = optimizer.init(params)
    trail = []
    for _ in range(steps):
        grads = jax.grad(lambda p: jnp.sum((p["w"] - target) ** 2))(params)
        updates, state = optimizer.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        trail.append((params, state))
    return trail


@pytest.mark.parametrize("name", sorted(set(OPTIMIZERS) - {"schedule_free_adamw"}))
def test_other_optimizers_are_evaluated_at_their_training_parameters(name):
    [(params, state)] = run(config_for(name), 1, [0.0, 0.0, 0.0])
    assert eval_params(config_for(name), params, state) is params


def test_schedule_free_is_evaluated_at_the_average_of_its_iterates():
    # With a constant rate, x (evaluated) is the plain mean of the iterates z
    # that the base optimizer steps; training runs at y = (1 - b1) z + b1 x.
    config = config_for("schedule_free_adamw")
    trail = run(config, 12, [0.0, 0.0, 0.0])
    z = np.stack([np.asarray(state.z["w"]) for _, state in trail])
    params, state = trail[-1]
    evaluated = np.asarray(eval_params(config, params, state)["w"])
    np.testing.assert_allclose(evaluated, z.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(params["w"]), 0.1 * z[-1] + 0.9 * evaluated, atol=1e-5)


def test_warmup_constant_rises_then_holds():
    schedule = SCHEDULES["warmup_constant"](2e-3, 100, 10)
    rates = [float(schedule(step)) for step in (0, 5, 10, 50, 99)]
    assert rates == pytest.approx([0.0, 1e-3, 2e-3, 2e-3, 2e-3])


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_ema_evaluates_the_moving_average_of_the_training_parameters(name):
    config = config_for(name, ema_decay=0.8)
    trail = run(config, 10, [0.5, 0.5, 0.5])
    average = np.array([0.5, 0.5, 0.5])  # from the initial parameters, in NumPy
    for params, _ in trail:
        average = 0.8 * average + 0.2 * np.asarray(params["w"])
    params, state = trail[-1]
    np.testing.assert_allclose(eval_params(config, params, state)["w"], average, rtol=1e-6)
    # The updates are the optimizer's own: the same trail as without the average.
    plain = run(config_for(name), 10, [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(plain[-1][0]["w"], params["w"])
