"""Optimizers and learning-rate schedules by name: the tables a config's names come from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import ml_collections
import optax
import optax.contrib

# name -> schedule(peak learning rate, total steps, warm-up steps)
SCHEDULES: dict[str, Callable[[float, int, int], optax.Schedule]] = {
    "constant": lambda lr, total, warmup: optax.constant_schedule(lr),
    "cosine": lambda lr, total, warmup: optax.warmup_cosine_decay_schedule(
        0.0, lr, warmup, max(total, warmup + 1)
    ),
    "onecycle": lambda lr, total, warmup: optax.cosine_onecycle_schedule(max(total, 1), lr),
    "warmup_constant": lambda lr, total, warmup: optax.warmup_constant_schedule(0.0, lr, warmup),
}

# name -> optimizer(schedule, config): the config supplies momentum and weight decay.
OPTIMIZERS: dict[
    str, Callable[[optax.Schedule, ml_collections.ConfigDict], optax.GradientTransformation]
] = {
    "sgd": lambda schedule, config: optax.sgd(
        schedule, momentum=config.momentum or None, nesterov=config.momentum > 0
    ),
    "adam": lambda schedule, config: optax.adam(schedule),
    "adamw": lambda schedule, config: optax.adamw(schedule, weight_decay=config.weight_decay),
    # AdamW without a decaying schedule: it trains at the points `z` and is
    # evaluated at their running average `x` (`eval_params`), which is good from
    # early on and keeps improving (Defazio et al., 2024, "The Road Less Scheduled").
    "schedule_free_adamw": lambda schedule, config: optax.contrib.schedule_free_adamw(
        schedule, weight_decay=config.weight_decay
    ),
}


class ParamsEma(NamedTuple):
    ema: Any  # the parameters' exponential moving average, shaped as they are


def params_ema(decay: float) -> optax.GradientTransformation:
    """Chained last, keeps the exponential moving average of the parameters each update
    gives, `ema = decay * ema + (1 - decay) * params` (from the initial parameters), in its
    state; the updates pass unchanged."""

    def init(params):
        return ParamsEma(jax.tree.map(lambda p: p.copy(), params))

    def update(updates, state, params):
        new = optax.apply_updates(params, updates)
        return updates, ParamsEma(optax.incremental_update(new, state.ema, 1 - decay))

    return optax.GradientTransformation(init, update)


def eval_params(config: ml_collections.ConfigDict, params: Any, opt_state: Any) -> Any:
    """The parameters to evaluate and predict with: `params`, but their moving average with
    `ema_decay`, and for schedule-free optimizers, whose training parameters are not the
    model they converge to, their average.

    Batch norm's running statistics are gathered at the training parameters,
    not at these: the default LeNet has none; a model with batch norm is
    better served by AdamW and a schedule.
    """
    if config.get("ema_decay"):
        return opt_state[-1].ema
    if config.optimizer.startswith("schedule_free"):
        return optax.contrib.schedule_free_eval_params(opt_state, params)
    return params


def learning_rates(config: ml_collections.ConfigDict, steps_per_epoch: int) -> optax.Schedule:
    """`config.schedule` at peak `config.learning_rate`, over `num_epochs * steps_per_epoch`
    steps with `warmup_epochs` of warm-up: the learning rate of each step."""
    total = config.num_epochs * steps_per_epoch
    warmup = int(config.warmup_epochs * steps_per_epoch)
    return SCHEDULES[config.schedule](config.learning_rate, total, warmup)


def build_optimizer(
    config: ml_collections.ConfigDict, steps_per_epoch: int
) -> optax.GradientTransformation:
    """`config.optimizer` over `config.schedule`, which runs `num_epochs * steps_per_epoch` steps.

    The names are checked by `jaxcnn.train.config.check`; here they must be keys of
    `OPTIMIZERS` and `SCHEDULES`.
    """
    optimizer = OPTIMIZERS[config.optimizer](learning_rates(config, steps_per_epoch), config)
    if config.get("ema_decay"):
        optimizer = optax.chain(optimizer, params_ema(config.ema_decay))
    return optimizer
