"""Stopping a run cleanly: on SIGTERM or Ctrl-C, and when the loss diverges.

`StopRequests` turns the first SIGTERM or SIGINT into a request that the
training loop honours at the end of the current call of steps (checkpoint
saved, metrics written); a second Ctrl-C exits at once. Both end in an
exception that `train.py` reports in one line with its exit status.
"""

from __future__ import annotations

import math
import os
import signal
import threading
from types import FrameType

# Exit statuses: 128 + the signal's number, as shells report a process killed by it.
EXIT_SIGINT = 130
EXIT_SIGTERM = 143
EXIT_DIVERGED = 3


class Stopped(Exception):
    """Training stopped on request, after saving a checkpoint; the message says where."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class Diverged(Exception):
    """The loss became non-finite or passed `max_loss`; the message names the epoch and step."""

    exit_code = EXIT_DIVERGED

    @classmethod
    def at(
        cls,
        epoch: int,
        step: int,
        loss: float,
        limit: float,
        kept: int | None,
        failed_save: Exception | None,
    ) -> Diverged:
        """The error for `loss` at `step`, with `kept` the newest checkpoint whose save has
        finished (if any) and `failed_save` the error of one that could not be written."""
        where = (
            f"The checkpoint of step {kept} is intact: rerun with a lower "
            "--config.learning_rate to resume from it"
            if kept is not None
            else "Rerun with a lower --config.learning_rate"
        )
        return cls(
            f"training diverged at epoch {epoch}, step {step}: the loss is {loss}"
            + (f" (above max_loss {limit})" if math.isfinite(loss) else "")
            + f"; nothing of it was saved. {where}"
            + (f" ({failed_save})" if failed_save else "")
        )


class StopRequests:
    """While entered, SIGTERM and SIGINT (Ctrl-C) set `signal` instead of killing the process.

    A second SIGINT exits at once with status 130. Outside the main thread
    (where Python cannot install handlers) it does nothing.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self.elsewhere = False  # another process of the job was signalled
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None or self.elsewhere

    def join(self) -> None:
        """Stops with the job: another of its processes was signalled."""
        self.elsewhere = self.signal is None

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            os._exit(EXIT_SIGINT)  # the second Ctrl-C: at once, nothing saved
        if self.signal is None:
            self.signal = signum

    def exit_code(self) -> int:
        return EXIT_SIGINT if self.signal == signal.SIGINT else EXIT_SIGTERM

    def name(self) -> str:
        if self.signal is None:
            return "a signal to another process of the job" if self.elsewhere else ""
        return signal.Signals(self.signal).name
