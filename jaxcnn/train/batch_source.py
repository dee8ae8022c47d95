"""Where training's batches come from: the training split on the devices, or read from disk.

A split within `memory_budget_mb` is copied to the devices once, and each
call of the jitted steps takes the indices of its batches; a larger one stays
on disk and each call's batches are read ahead, while the devices train
(`jaxcnn.data.stream`). `BatchSource` hides which: the loop asks it for an
epoch's calls and runs each.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

from jaxcnn import data
from jaxcnn.data import stream
from jaxcnn.train import config as config_lib
from jaxcnn.train.trainer import Trainer, TrainState


class BatchSource:
    """The batches of each epoch's calls, for the examples `index` of `split`.

    Attributes:
      steps_per_epoch: full batches of `config.batch_size` per epoch.
      chunk: steps per call (`config.steps_per_call`, fitted to the epoch).
      images, labels: the split on the devices (None where it streams).
    """

    def __init__(self, config, trainer: Trainer, split: data.Split, index: np.ndarray):
        self.config, self.trainer, self.split, self.index = config, trainer, split, index
        self.steps_per_epoch = config_lib.full_batches(config, len(index))
        self.chunk = data.chunk_size(self.steps_per_epoch, config.steps_per_call)
        self.streams = config_lib.streams(config, split.images.nbytes, trainer.gathers_statistics)
        arrays = (None, None) if self.streams else tuple(map(np.asarray, split))
        self.images, self.labels = trainer.replicate(arrays)

    def orders(self, epoch: int) -> list[np.ndarray]:
        """Each seed's order of the examples in `epoch`, `(steps, batch)` indices into the split."""
        config = self.config
        return [
            self.index[
                data.epoch_batches(config.seed + k, epoch, len(self.index), config.batch_size)
            ]
            for k in range(self.trainer.seeds)
        ]

    def calls(self, orders: list[np.ndarray], first_step: int) -> Iterator[tuple[int, Any]]:
        """`(first step, batches)` for each call of the epoch from `first_step`; `train` runs
        one. Streamed, this process's share of each call is read ahead."""
        order = self.trainer.stack_seeds(orders)
        steps = range(first_step, self.steps_per_epoch, self.chunk)
        if not self.streams:
            for first in steps:
                yield first, self.trainer.shard_batches(order[..., first : first + self.chunk, :])
            return
        process = (jax.process_index(), jax.process_count())
        fed = stream.chunks(*self.split, order, self.chunk, first_step, *process)
        for first in steps:
            yield first, self.trainer.feed(*next(fed))

    def train(self, state: TrainState, batches: Any) -> tuple[TrainState, dict]:
        """One call's steps on `batches` (from `calls`): `(state, per-step metrics)`."""
        if self.streams:
            return self.trainer.train_steps_fed(state, *batches)
        return self.trainer.train_steps(state, self.images, self.labels, batches)
