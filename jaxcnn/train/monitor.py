"""Early stopping and the best epoch, by a validation metric (`config.monitor`).

After each epoch, `Monitor.update` records the epoch in the `Position` if its
monitored metric beats the best so far (strictly, as Keras' `EarlyStopping`
with `min_delta=0`); the position travels in every checkpoint's record, so a
resumed run knows its best epoch and how long it has waited. With several
seeds trained together, the metric is their mean.
"""

from __future__ import annotations

import numpy as np

from jaxcnn.train.config import MONITORS
from jaxcnn.train.position import Position


class Monitor:
    """Watches `name` (a key of `MONITORS`) with `patience` epochs (0: never stops)."""

    def __init__(self, name: str, patience: int):
        self.name, self.patience = name, patience
        self.higher_is_better = MONITORS[name]

    def value(self, line: dict) -> float | None:
        """The monitored metric in an epoch's metrics `line`; None without a validation split."""
        return float(np.mean(line[self.name])) if self.name in line else None

    def update(self, position: Position, step: int) -> bool | None:
        """Records `position`'s epoch (its `line`, at optimizer `step`) as the best if it is;
        whether it is (None without a validation split: no epoch is ranked)."""
        value = self.value(position.line or {})
        if value is None:
            return None
        best = position.best
        if best is not None and (
            value <= best["value"] if self.higher_is_better else value >= best["value"]
        ):
            return False
        position.best = {"epoch": position.epochs, "step": step, "value": value}
        return True

    def exhausted(self, position: Position) -> bool:
        """Whether `patience` epochs have passed since the best one."""
        best = position.best
        return (
            bool(self.patience)
            and best is not None
            and (position.epochs - best["epoch"] >= self.patience)
        )

    def stop_line(self, position: Position) -> str:
        """Why training stops early, in one line."""
        best = position.best or {}
        return (
            f"Stopping early: {self.name} has not improved for {self.patience} epochs; the best "
            f"was {best['value']:.4f} at epoch {best['epoch']} (step {best['step']}), whose "
            "checkpoint is kept and used by predict.py, jaxcnn.show and jaxcnn.export"
        )
