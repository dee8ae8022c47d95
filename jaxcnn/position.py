"""Where training stands, as a checkpoint's JSON record holds it, and whether a run may resume it.

A checkpoint (`jaxcnn.checkpoint`) keeps the training state and a record:
the `Position` (finished epochs, steps into the next, the unfinished epoch's
metrics) and the `fingerprint` of the config that made it. `check_record`
refuses to resume under a config the state cannot fit.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import ml_collections

from jaxcnn.config import ConfigError


def fingerprint(config: ml_collections.ConfigDict) -> dict:
    """What a checkpoint's state depends on: resuming under another of these cannot work."""
    made_by = {
        "model": config.model.to_dict(),
        "optimizer": config.optimizer,
        "num_seeds": config.num_seeds,
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

    def record(self, config: ml_collections.ConfigDict, steps_per_epoch: int) -> dict:
        """The checkpoint's record of this position under `config`."""
        return {
            **dataclasses.asdict(self),
            "steps_per_epoch": steps_per_epoch,
            "fingerprint": fingerprint(config),
        }

    @classmethod
    def from_record(cls, record: dict) -> Position:
        return cls(**{field.name: record[field.name] for field in dataclasses.fields(cls)})


def check_record(
    record: dict, config: ml_collections.ConfigDict, steps_per_epoch: int, directory: Path
) -> None:
    """Raises `ConfigError` if the record of a checkpoint in `directory` does not fit
    `config`, with `steps_per_epoch` steps an epoch."""
    made_by, now = flat(record.get("fingerprint", {})), flat(fingerprint(config))
    if made_by != now:
        differs = sorted(k for k in made_by.keys() | now.keys() if made_by.get(k) != now.get(k))
        raise ConfigError(
            f"the checkpoints in {directory} were made by another config "
            f"(it differs in {', '.join(differs)}); use another --workdir, or the config "
            f"they were made with ({directory.parent / 'config.json'})"
        )
    if record["epoch_steps"] and record["steps_per_epoch"] != steps_per_epoch:
        raise ConfigError(
            f"the newest checkpoint in {directory} stopped mid-epoch with "
            f"{record['steps_per_epoch']} steps per epoch, and this config has "
            f"{steps_per_epoch}: resume with the `batch_size` it was made with"
        )


def flat(tree: dict, prefix: str = "") -> dict:
    """`{"model": {"name": ...}}` as `{"model.name": ...}`."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
