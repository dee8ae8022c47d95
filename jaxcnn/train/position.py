"""Where training stands, as a checkpoint's JSON record holds it, and whether a run may resume it.

A checkpoint (`jaxcnn.train.checkpoint`) keeps the training state and a record:
the `Position` (finished epochs, steps into the next, the unfinished epoch's
metrics) and the `fingerprint` of what made it: the model and its options,
the optimizer, the seeds, and the data (its digest, image shape and class
names). `check_record` refuses to resume under anything else, by name; the
learning rate, the schedule's length and the like may change on resume.
`misfit` says what differs between a checkpoint's arrays and a model's.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxcnn.data import DataInfo
from jaxcnn.errors import CheckpointError


def fingerprint(config: ml_collections.ConfigDict, info: DataInfo) -> dict:
    """What a checkpoint's state depends on: resuming under another of these would train
    something else than was started."""
    made_by = {
        "model": config.model.to_dict(),
        "optimizer": config.optimizer,
        "ema_decay": config.ema_decay,
        "seed": config.seed,
        "num_seeds": config.num_seeds,
        "data": {
            "validation_fraction": config.validation_fraction,  # which examples it trains on
            "contents": info.digest,
            "image_shape": info.image_shape,
            "class_names": info.class_names,
        },
    }
    return json.loads(json.dumps(made_by))  # tuples as lists, as a JSON record holds them


@dataclasses.dataclass
class Position:
    """Where training stands: finished epochs, and the steps into the next one.

    `losses` and `accuracies` are the per-step metrics of the unfinished
    epoch, and `seconds` the time spent on them, so that a resumed epoch
    reports what an uninterrupted one would.
    """

    epochs: int = 0
    epoch_steps: int = 0
    losses: list[float] = dataclasses.field(default_factory=list)
    accuracies: list[float] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    line: dict | None = None  # the last finished epoch's metrics line
    # The best epoch so far by the monitored validation metric: {"epoch", "step", "value"}.
    best: dict | None = None

    def record(self, steps_per_epoch: int, made_by: dict) -> dict:
        """The checkpoint's record of this position, with the `fingerprint` of what made it."""
        return {
            **dataclasses.asdict(self),
            "steps_per_epoch": steps_per_epoch,
            "fingerprint": made_by,
        }

    @classmethod
    def from_record(cls, record: dict) -> Position:
        """The position a record holds; a field it lacks (older records) keeps its default."""
        return cls(**{f.name: record[f.name] for f in dataclasses.fields(cls) if f.name in record})


def check_record(record: dict, made_by: dict, steps_per_epoch: int, directory: Path) -> None:
    """Raises `CheckpointError` if the record of a checkpoint in `directory` was not made by
    `made_by` (a `fingerprint`), or stopped mid-epoch with other than `steps_per_epoch`.

    A key the record lacks (a checkpoint from before jaxcnn recorded it) is not compared.
    """
    then, now = flat(record.get("fingerprint", {})), flat(made_by)
    differs = sorted(k for k in then.keys() & now.keys() if then[k] != now[k])
    if differs:
        shown = "; ".join(f"{k}: {_brief(then[k])} there, {_brief(now[k])} here" for k in differs)
        raise CheckpointError(
            f"the checkpoints in {directory} were made with another model, optimizer, seed or "
            f"data ({shown}); nothing was moved: use another --workdir, or what they were made "
            f"with ({directory.parent / 'config.json'}, {directory.parent / 'data.json'})"
        )
    if record["epoch_steps"] and record["steps_per_epoch"] != steps_per_epoch:
        raise CheckpointError(
            f"the newest checkpoint in {directory} stopped mid-epoch with "
            f"{record['steps_per_epoch']} steps per epoch, and this config has "
            f"{steps_per_epoch}: resume with the `batch_size` it was made with"
        )


def shapes(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """`{"params.conv1.kernel": (shape, dtype), ...}` of a state or of orbax's metadata of one."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if getattr(leaf, "shape", None) is None or getattr(leaf, "dtype", None) is None:
            leaf = np.asarray(leaf)  # a Python scalar
        out[jax.tree_util.keystr(path, simple=True, separator=".")] = (
            tuple(leaf.shape),
            str(np.dtype(leaf.dtype)),
        )
    return out


def misfit(stored: dict, wanted: dict) -> str | None:
    """What differs between a checkpoint's arrays and a state's (`shapes` of each), in words."""
    missing, extra = sorted(wanted.keys() - stored.keys()), sorted(stored.keys() - wanted.keys())
    if missing or extra:
        return (
            f"its arrays are not this model's (here but not there: {missing[:3]}; "
            f"there but not here: {extra[:3]})"
        )
    for path in sorted(wanted):
        if stored[path] != wanted[path]:
            return f"`{path}` is {stored[path]} there and {wanted[path]} here"
    return None


def _brief(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def flat(tree: dict, prefix: str = "") -> dict:
    """`{"model": {"name": ...}}` as `{"model.name": ...}`."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
