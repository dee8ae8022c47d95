"""Checkpoints that survive kills, full disks and damage: orbax, checked on restore.

Each checkpoint is an orbax step directory holding the training state and a
JSON record: where training stands (epoch, step, the current epoch's
per-step metrics), what made the state (a fingerprint of the model, the
optimizer and the data) and a digest of the state's bytes. Restoring tries
the newest checkpoint first, and tells three failures apart:

- it does not fit (another config, image shape, data; another tree or shape
  of parameters): a `CheckpointError` naming what differs; nothing moves;
- it cannot be reached (permissions, I/O): a `CheckpointError`; nothing moves;
- it is damaged (a record that does not parse, arrays that cannot be read or
  do not match their digest; orbax reads some damaged files back as wrong
  numbers without an error): reported in one line and moved to
  `<workdir>/checkpoints-damaged/`, and the next one is tried. A reader
  (`read_only=True`: predict, show) skips it and moves nothing.
"""

from __future__ import annotations

import contextlib
import errno
import logging as std_logging
import os
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

from jaxcnn import parallel
from jaxcnn.digest import array_digest
from jaxcnn.errors import CheckpointError, SaveError
from jaxcnn.train.position import misfit, shapes

DAMAGED_DIR = "checkpoints-damaged"  # beside the checkpoints, where damaged ones are set aside
TMP_MARKER = ".orbax-checkpoint-tmp"  # in the name of a save orbax has not finished
# Errors that say the files could not be reached, not that they are bad.
ACCESS_ERRNOS = {errno.EACCES, errno.EPERM, errno.EIO, errno.EROFS, errno.ENOSPC, errno.ESTALE}
ACCESS_CODES = ("PERMISSION_DENIED", "UNAVAILABLE", "RESOURCE_EXHAUSTED")  # TensorStore's
READ_ATTEMPTS = 5  # listings a reader tries while a training beside it removes old checkpoints


def digest(tree: Any) -> str:
    """A hash of every array's dtype, shape and bytes, in tree order (this process's copy)."""
    return array_digest(jax.tree.leaves(tree))


def host_copy(tree: Any) -> Any:
    """`tree` with every array copied to this host's memory: its own replica of a replicated
    state (orbax writes host arrays from process 0 alone). A copy, not a view: the training
    step donates the device buffers."""
    return jax.tree.map(
        lambda leaf: np.array(
            leaf.addressable_data(0) if isinstance(leaf, jax.Array) else leaf, copy=True
        ),
        tree,
    )


class Checkpoints:
    """The checkpoints in `directory`, the newest `keep` kept.

    Args:
      directory: where orbax keeps them (`<workdir>/checkpoints`); relative,
        `~` and symlinks are fine.
      keep: how many to keep.
      report: prints a line (process 0's `print`, or nothing).
      read_only: for commands that only read: nothing in `directory` is
        created, moved or deleted, and nothing can be saved.
      keep_best: keep, beside the newest `keep`, the newest checkpoint saved
        with `save(best=True)`.
    """

    def __init__(
        self,
        directory: Path,
        keep: int,
        report: Callable[[str], None],
        *,
        read_only: bool = False,
        keep_best: bool = False,
    ):
        self.directory = Path(directory).expanduser().resolve()  # orbax wants it absolute
        self.report = report
        self.read_only = read_only
        self.pending: int | None = None  # the step of the save in the background
        self.failed = False  # a save could not be written
        self._silenced = OrbaxErrorLogs()  # failures are jaxcnn's one-line errors
        _drop_closed_loop_reports()
        if not read_only:
            self._set_aside_unfinished_saves()
        kept: list[ocp.checkpoint_managers.PreservationPolicy] = [
            ocp.checkpoint_managers.LatestN(keep)
        ]
        if keep_best:  # ranked by step among those saved as best: the newest of them
            kept.append(
                ocp.checkpoint_managers.BestN(
                    get_metric_fn=lambda metrics: metrics["best"],
                    n=1,
                    keep_checkpoints_without_metrics=False,
                )
            )
        options = (
            ocp.CheckpointManagerOptions(read_only=True, create=False)
            if read_only
            else ocp.CheckpointManagerOptions(
                create=True, preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(kept)
            )
        )
        handlers = {"state": ocp.StandardCheckpointHandler(), "record": ocp.JsonCheckpointHandler()}
        # orbax lists the steps as it starts; beside a training, one may vanish meanwhile
        # (the oldest, past `keep_checkpoints`): a reader lists them again.
        for attempt in range(READ_ATTEMPTS):
            try:
                with _quiet():  # orbax logs each unreadable checkpoint; restore_latest says it
                    self.manager = ocp.CheckpointManager(
                        self.directory, options=options, item_handlers=handlers
                    )
                break
            except (FileNotFoundError, NotADirectoryError):  # orbax says either, by timing
                if not read_only or attempt == READ_ATTEMPTS - 1:
                    raise

    def steps(self) -> list[int]:
        """The finished checkpoints' steps, newest first."""
        if not self.directory.is_dir():
            return []
        with _quiet():
            return sorted(self.manager.all_steps(), reverse=True)

    def save(self, step: int, state: Any, record: dict, best: bool | None = None) -> None:
        """Starts saving `state` and `record` as checkpoint `step` (orbax saves in the background);
        `best`: whether it is the best so far (None: not ranked, as mid-epoch saves).

        Raises:
          SaveError: if the save before it, or this one, could not be written;
            the message names the step that failed.
        """
        self.wait()
        host = host_copy(state)  # orbax writes it as it is: one copy, digested here
        record = {**record, "digest": digest(host)}
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(host), record=ocp.args.JsonSave(record)
        )
        with self._writing(step):
            metrics = None if best is None else {"best": step if best else -1}
            self.manager.save(step, args=args, metrics=metrics, force=True)
        self.pending = step

    def saving(self) -> bool:
        """Whether a save is still being written in the background; does not wait."""
        return self.pending is not None and self.manager.is_saving_in_progress()

    def check(self) -> None:
        """Raises `SaveError` now if the save in the background has failed; does not wait."""
        if self.pending is not None:
            with self._writing(self.pending):
                self.manager.check_for_errors()

    def wait(self) -> None:
        """Waits until every save has been written.

        Raises:
          SaveError: if one could not be.
        """
        if self.pending is None:
            return
        step, self.pending = self.pending, None
        with self._writing(step):
            self.manager.wait_until_finished()
            self.manager.check_for_errors()

    def finished(self) -> int | None:
        """The newest step whose save has finished, if any."""
        steps = [s for s in self.steps() if s != self.pending]
        return steps[0] if steps else None

    def close(self) -> None:
        """Waits for the save in the background and lets orbax go.

        Raises:
          SaveError: if that save could not be written.
        """
        try:
            self.wait()
        finally:
            # After a failed save, TensorStore's writes may still call back into orbax's event
            # loop: closing it under them prints their tracebacks. It ends with the process.
            if not self.failed:
                with contextlib.suppress(Exception):  # only shuts orbax's threads down
                    self.manager.close()
            self._silenced.close()

    def best_step(self) -> int | None:
        """The step of the best checkpoint, as the newest readable record names it
        (`record["best"]["step"]`), if it is still kept."""
        steps = self.steps()
        args = ocp.args.Composite(record=ocp.args.JsonRestore())
        for step in steps:
            try:
                with _quiet():
                    record = self.manager.restore(step, args=args)["record"]
            except Exception:  # damaged: restore_latest says so
                continue
            best = (record.get("best") or {}).get("step") if isinstance(record, dict) else None
            return best if best in steps else None
        return None

    def restore_latest(
        self, target: Any, check_record: Callable[[dict], None], first: int | None = None
    ) -> tuple[Any, dict] | None:
        """The newest intact checkpoint's state (laid out as `target`) and record, or None if none.

        Args:
          target: a state of the right structure and shardings.
          check_record: raises `CheckpointError` if a record's config or data
            does not fit this run's; runs before the state is read.
          first: a step to try before the newest (the best, for a reader).

        Raises:
          CheckpointError: from `check_record`; if the newest checkpoint's
            arrays do not fit `target`, or it cannot be reached; for a
            reader, if none is intact.
        """
        damaged: list[int] = []
        # Every process of a job tries the steps process 0 sees and takes the same outcome:
        # a checkpoint one of them cannot use is set aside, or refused, for all. A reader
        # beside a training that saves often lists again if all it listed were removed.
        for attempt in range(READ_ATTEMPTS):
            if attempt:  # orbax keeps the steps it listed: list them again
                with _quiet(), contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    self.manager.reload()
            steps, vanished = [s for s in self.steps() if s not in damaged], False
            if first in steps:
                steps = [first] + [s for s in steps if s != first]
            for step in parallel.from_process_0(steps):
                restored, why, error = None, None, None
                try:
                    restored = self.restore(step, target, check_record)
                except Damaged as e:
                    why = str(e)
                except CheckpointError as e:
                    error = e
                any_damaged, any_error = parallel.any_process(why is not None, error is not None)
                if any_error:
                    raise error or CheckpointError(
                        f"checkpoint {step} in {self.directory} cannot be used by another process "
                        "of the job; its own message says why"
                    )
                if any_damaged:
                    if self._set_aside(step, why or "another process of the job cannot read it"):
                        damaged.append(step)
                    else:  # removed by the training that owns it, meanwhile
                        vanished = True
                    continue
                return restored
            if not vanished:
                break
        if damaged and self.read_only:
            raise CheckpointError(
                f"no intact checkpoint in {self.directory}: "
                f"{', '.join(map(str, damaged))} are damaged (left as they are)"
            )
        if damaged:
            self.report(
                f"No intact checkpoint is left in {self.directory} (the damaged ones are in "
                f"{self.directory.parent / DAMAGED_DIR}): training starts from the beginning"
            )
        return None

    def restore(
        self, step: int, target: Any, check_record: Callable[[dict], None]
    ) -> tuple[Any, dict]:
        """Checkpoint `step`'s state and record, checked in the order that reads least first.

        Raises:
          Damaged: if it is (unreadable, or its arrays do not match their digest).
          CheckpointError: if it does not fit, or cannot be reached.
        """
        args = ocp.args.Composite(record=ocp.args.JsonRestore())
        record = self._read(step, "record", lambda: self.manager.restore(step, args=args)["record"])
        if not isinstance(record, dict) or "digest" not in record:
            raise Damaged("its record is incomplete")
        check_record(record)
        stored = self._read(step, "metadata", lambda: self.manager.item_metadata(step)["state"])
        if stored is None:
            raise Damaged("its metadata cannot be read")
        differs = misfit(shapes(stored), shapes(target))
        if differs:
            raise CheckpointError(
                f"checkpoint {step} in {self.directory} does not fit this model: {differs}; "
                "nothing was moved: use another --workdir, or the config it was made with"
            )
        args = ocp.args.Composite(state=ocp.args.StandardRestore(target))
        state = self._read(step, "arrays", lambda: self.manager.restore(step, args=args)["state"])
        if digest(state) != record["digest"]:
            raise Damaged("its arrays do not match the digest saved with them")
        return state, record

    def _read(self, step: int, what: str, read: Callable[[], Any]) -> Any:
        """`read()` of checkpoint `step`'s `what`.

        Raises:
          Damaged: if it cannot be read for what is in the files.
          CheckpointError: if the files cannot be reached (permissions, I/O).
        """
        try:
            with _quiet():
                return read()
        except Exception as e:
            if _is_access_error(e):
                raise CheckpointError(
                    f"checkpoint {step} in {self.directory} cannot be read ({_short(e)}); "
                    "nothing was moved: check the folder's permissions and its disk"
                ) from None
            raise Damaged(f"its {what} cannot be read ({_short(e)})") from None

    def _set_aside(self, step: int, why: str) -> bool:
        """Reports damaged checkpoint `step` and moves it aside (a reader leaves it). False if
        it has vanished meanwhile (removed by the training that owns it): not damage."""
        path = self.directory / str(step)
        if not path.is_dir() and jax.process_count() == 1:
            return False
        if self.read_only:
            self.report(f"Checkpoint {path} is damaged: {why}; skipped, and left as it is")
            return True
        where = self._move_aside(path)
        self.report(f"Checkpoint {path} is damaged: {why}; moved to {where}")
        with _quiet():
            self.manager.reload()
        return True

    def _set_aside_unfinished_saves(self) -> None:
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.iterdir()):
            if TMP_MARKER in path.name:
                where = self._move_aside(path)
                self.report(f"Checkpoint {path} is a save that did not finish; moved to {where}")

    def _move_aside(self, path: Path) -> Path:
        aside = self.directory.parent / DAMAGED_DIR
        where = aside / f"{path.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        if jax.process_index() == 0:
            aside.mkdir(exist_ok=True)
            shutil.move(str(path), str(where))
        return where

    @contextlib.contextmanager
    def _writing(self, step: int | None) -> Iterator[None]:
        try:
            yield
        except Exception as e:
            self.pending, self.failed = None, True
            kept = [s for s in self.steps() if s != step]
            previous = f"checkpoint {kept[0]} is intact" if kept else "no earlier checkpoint"
            raise SaveError(
                f"could not write checkpoint {step} in {self.directory} ({_short(e)}); "
                f"{previous}, and metrics.jsonl is as it was"
            ) from None


class Damaged(Exception):
    """A checkpoint whose content cannot be read or is inconsistent; the message says how."""


class OrbaxErrorLogs(std_logging.Filter):
    """While open, drops orbax's own logged errors: each failed save logs its traceback from
    orbax's threads, and jaxcnn reports the failure in one line (`Checkpoints._writing`)."""

    def __init__(self) -> None:
        super().__init__()
        self.logger = std_logging.getLogger("absl")
        self.logger.addFilter(self)

    def filter(self, record: std_logging.LogRecord) -> bool:
        return f"{os.sep}orbax{os.sep}" not in record.pathname

    def close(self) -> None:
        self.logger.removeFilter(self)


def _drop_closed_loop_reports() -> None:
    """When a save fails, TensorStore's threads may still call back into the event loop orbax
    has closed, and Python reports each `RuntimeError: Event loop is closed` through
    `sys.unraisablehook`, a traceback apiece, even after the process has reported the failure.
    Those reports, and only those, are dropped from the first `Checkpoints` on; the failure
    itself is jaxcnn's one line (`SaveError`)."""
    previous = sys.unraisablehook
    if getattr(previous, "drops_closed_loop_reports", False):
        return

    def hook(unraisable) -> None:
        error = unraisable.exc_value
        if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
            previous(unraisable)

    hook.drops_closed_loop_reports = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def _is_access_error(error: Exception) -> bool:
    if isinstance(error, OSError) and error.errno in ACCESS_ERRNOS:
        return True
    return any(code in str(error) for code in ACCESS_CODES)


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
