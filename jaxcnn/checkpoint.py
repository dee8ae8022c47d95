"""Checkpoints that survive kills, full disks and damage: orbax, checked on restore.

Each checkpoint is an orbax step directory holding the training state and a
JSON record: where training stands (epoch, step, the current epoch's
per-step metrics), what made the state (a fingerprint of the model and
optimizer) and a digest of the state's bytes. Restoring tries the newest
checkpoint first; one that cannot be read, or whose arrays do not match their
digest (orbax reads some damaged files back as wrong numbers without an
error), is reported in one line and moved to `<workdir>/checkpoints-damaged/`,
and the next one is tried. A checkpoint made by another config is a
`ConfigError`, not damage.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from jaxcnn.config import ConfigError

DAMAGED_DIR = "checkpoints-damaged"  # beside the checkpoints, where damaged ones are set aside
TMP_MARKER = ".orbax-checkpoint-tmp"  # in the name of a save orbax has not finished


class SaveError(OSError):
    """A checkpoint or a metrics line could not be written (a full disk, a lost mount).

    The message says which, and what is still intact.
    """


def digest(tree: Any) -> str:
    """A hash of every array's dtype, shape and bytes, in tree order (this process's copy)."""
    h = hashlib.blake2b(digest_size=16)
    for leaf in jax.tree.leaves(tree):
        if isinstance(leaf, jax.Array):
            leaf = leaf.addressable_data(0)
        array = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{array.dtype}{array.shape}".encode())
        h.update(array.tobytes())
    return h.hexdigest()


class Checkpoints:
    """The checkpoints in `directory`, the newest `keep` kept.

    Args:
      directory: where orbax keeps them (`<workdir>/checkpoints`).
      keep: how many to keep.
      report: prints a line (process 0's `print`, or nothing).
    """

    def __init__(self, directory: Path, keep: int, report: Callable[[str], None]):
        self.directory = directory
        self.report = report
        self._set_aside_unfinished_saves()
        with _quiet():  # orbax logs each unreadable checkpoint it lists; restore_latest says it
            self.manager = ocp.CheckpointManager(
                directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
            )

    def save(self, step: int, state: Any, record: dict) -> None:
        """Starts saving `state` and `record` as checkpoint `step` (orbax saves in the background).

        Raises:
          SaveError: if the save (or the one before it) could not be written.
        """
        record = {**record, "digest": digest(state)}
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state), record=ocp.args.JsonSave(record)
        )
        with self._writing(step):
            self.manager.save(step, args=args, force=True)

    def wait(self) -> None:
        """Waits until every save has been written.

        Raises:
          SaveError: if one could not be.
        """
        with self._writing(self.manager.latest_step()):
            self.manager.wait_until_finished()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.manager.close()

    def restore_latest(
        self, target: Any, check_record: Callable[[dict], None]
    ) -> tuple[Any, dict] | None:
        """The newest intact checkpoint's state (laid out as `target`) and record, or None if none.

        Args:
          target: a state of the right structure and shardings.
          check_record: raises `ConfigError` if a record's config does not fit
            this run's; runs before the state is read.

        Raises:
          ConfigError: from `check_record`, or if every checkpoint is damaged.
        """
        with _quiet():
            steps = sorted(self.manager.all_steps(), reverse=True)
        for step in steps:
            try:
                with _quiet():
                    record = self.manager.restore(
                        step, args=ocp.args.Composite(record=ocp.args.JsonRestore())
                    )["record"]
            except Exception as e:
                self._set_aside(step, f"its record cannot be read ({_short(e)})")
                continue
            check_record(record)
            try:
                with _quiet():
                    state = self.manager.restore(
                        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target))
                    )["state"]
            except Exception as e:
                self._set_aside(step, f"its arrays cannot be read ({_short(e)})")
                continue
            if digest(state) != record.get("digest"):
                self._set_aside(step, "its arrays do not match the digest saved with them")
                continue
            return state, record
        if steps:
            raise ConfigError(
                f"no intact checkpoint in {self.directory}: all {len(steps)} were damaged and "
                f"set aside in {self.directory.parent / DAMAGED_DIR}; "
                "remove them to start again, or use another --workdir"
            )
        return None

    def _set_aside(self, step: int, why: str) -> None:
        where = self._move_aside(self.directory / str(step))
        self.report(f"Checkpoint {self.directory / str(step)} is damaged: {why}; moved to {where}")
        with _quiet():
            self.manager.reload()

    def _set_aside_unfinished_saves(self) -> None:
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.iterdir()):
            if TMP_MARKER in path.name:
                where = self._move_aside(path)
                self.report(f"Checkpoint {path} is a save that did not finish; moved to {where}")

    def _move_aside(self, path: Path) -> Path:
        aside = self.directory.parent / DAMAGED_DIR
        aside.mkdir(exist_ok=True)
        where = aside / f"{path.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        if jax.process_index() == 0:
            shutil.move(str(path), str(where))
        return where

    @contextlib.contextmanager
    def _writing(self, step: int | None) -> Iterator[None]:
        try:
            yield
        except Exception as e:
            kept = [s for s in self.manager.all_steps() if s != step]
            previous = f"checkpoint {max(kept)} is intact" if kept else "no earlier checkpoint"
            raise SaveError(
                f"could not write checkpoint {step} in {self.directory} ({_short(e)}); "
                f"{previous}, and metrics.jsonl is as it was"
            ) from None


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160]}" if text else type(error).__name__


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keeps orbax's and TensorStore's own reports of a failed read off the terminal.

    The failure itself still raises; jaxcnn reports it in one line.
    """
    verbosity = logging.get_verbosity()
    hook = sys.unraisablehook
    logging.set_verbosity(logging.FATAL)
    sys.unraisablehook = lambda unraisable: None
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        sys.unraisablehook = hook
