"""Scoring a held-out split: its mean loss and accuracy, every example counted once.

A split within the memory budget is placed on the devices once and scored in
one call; a larger one is read from disk a batch at a time (every process
reads it whole). The last batch is padded and its padding masked out
(`jaxcnn.data.eval_batches`).
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from jaxcnn import data, parallel
from jaxcnn.train.trainer import Trainer, TrainState


class Scorer:
    """`split`, ready to be scored by `trainer`'s evaluation step in batches of `batch_size`."""

    def __init__(self, trainer: Trainer, split: data.Split, batch_size: int, budget_bytes: int):
        self.trainer, self.split = trainer, split
        self.streams = split.images.nbytes > budget_bytes
        index, mask = data.eval_batches(split.images.shape[0], batch_size)
        if self.streams:
            self.batches = (index, mask)
        else:
            self.images, self.labels = trainer.replicate(tuple(map(np.asarray, split)))
            self.index, self.mask = trainer.shard_batches((index, mask))

    def __call__(self, state: TrainState) -> dict[str, np.ndarray]:
        """`{"loss": ..., "accuracy": ...}` of the model in `state`, as evaluated (its
        `eval_params`); with several seeds, one value per seed."""
        trainer = self.trainer
        evaluate = functools.partial(
            trainer.evaluate, trainer.eval_params(state), state.model_state
        )
        if not self.streams:
            scored = [evaluate(self.images, self.labels, self.index, self.mask)]
        else:
            scored = []
            images, labels = self.split
            for index, mask in zip(*self.batches):
                batch = trainer.replicate((np.asarray(images[index]), np.asarray(labels[index])))
                local = np.arange(len(index))[None]
                scored.append(evaluate(*batch, *trainer.shard_batches((local, mask[None]))))
        # Summed over the calls; with several seeds, one sum per seed.
        sums = jax.tree.map(lambda *s: np.sum(s, axis=0), *parallel.fetch(scored))
        return {"loss": sums["loss"] / sums["count"], "accuracy": sums["correct"] / sums["count"]}
