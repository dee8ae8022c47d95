"""Honest timing: warm-up, waiting for results, medians, and runs that take turns."""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

TURN_STEPS = 10  # timed steps in each run's turn (`time_in_turns`)


def time_calls(fn: Callable, *args, repeats: int) -> float:
    """Median seconds of `repeats` calls after one untimed call, waiting for each result."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compile_timed(fn: Any, *args) -> tuple[Callable, float]:
    """A `jax.jit` function compiled ahead of time for `args`, and the seconds that took."""
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, time.perf_counter() - start


def sgemm_gflops(n: int = 2048, repeats: int = 10) -> float:
    """This machine's float32 matrix-multiply rate, for scale."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n), np.float32))
    seconds = time_calls(jax.jit(jnp.matmul), a, a, repeats=repeats)
    return 2 * n**3 / seconds / 1e9


@dataclasses.dataclass
class Trainee:
    """A training run ready to time, and what its report row says about it.

    `run(n)` trains `n` or more steps and returns seconds per step, one entry
    per call (a jitted call runs several steps).
    """

    row: dict
    run: Callable[[int], list[float]]
    first_call_s: float  # the first call, `steps_in_first_call` steps and compiling
    steps_in_first_call: int
    steps_per_epoch: int

    def result(self, turn_s: list[float]) -> dict:
        """The report's row, from seconds per step in each turn (`time_in_turns`)."""
        step_s = statistics.median(turn_s)
        images = self.row["batch_size"] * self.row.get("seeds", 1)  # every model's
        return {
            **self.row,
            "images_per_s": images / step_s,
            "median_step_s": step_s,
            "compile_s": self.first_call_s - self.steps_in_first_call * step_s,
            "epoch_s": self.steps_per_epoch * step_s,
            "turn_step_s": turn_s,
        }


def peer_trainee(
    row: dict, run: Callable[[int], list[float]], steps_per_epoch: int, steps_per_call: int = 1
) -> Trainee:
    """A peer framework's run, `steps_per_call` steps a call, after its first call (timed:
    it may compile)."""
    start = time.perf_counter()
    run(steps_per_call)
    return Trainee(row, run, time.perf_counter() - start, steps_per_call, steps_per_epoch)


def time_in_turns(
    runs: Sequence[Callable[[int], list[float]]], steps: int, turn_steps: int = TURN_STEPS
) -> list[list[float]]:
    """Seconds per step of each of `runs` in each turn, the runs taking turns.

    Each first trains `steps` untimed steps (a process's first few dozen steps
    can run 1.5x slower); then they take `ceil(steps / turn_steps)` turns of
    `turn_steps` timed steps each (a run whose calls hold more steps runs
    whole calls), after one untimed step in every turn, since the other runs'
    threads may still be spinning on the cores. A turn's figure is its timed
    steps' total time over their number. The runs' figures for one turn are
    taken within a second of each other, so the shared machine's drifting
    load weighs on all of them alike (see `paired_speedup`).
    """
    for run in runs:
        run(steps)
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(-(-steps // turn_steps)):
        for run, timed in zip(runs, times):
            run(1)
            timed.append(statistics.fmean(run(turn_steps)))
    return times


def turn_ratios(ours: Sequence[float], theirs: Sequence[float]) -> list[float]:
    """How many times faster `ours` ran than `theirs` in each turn: `theirs[i] / ours[i]`,
    seconds per step in turn `i` (`time_in_turns`).

    Raises:
      ValueError: unless both have one time per turn.
    """
    if len(ours) != len(theirs) or not ours:
        raise ValueError(f"need one time per turn for both runs, got {len(ours)} and {len(theirs)}")
    return [b / a for a, b in zip(ours, theirs)]


def paired_speedup(ours: Sequence[float], theirs: Sequence[float]) -> float:
    """How many times faster `ours` ran than `theirs`: the median of `turn_ratios`.

    Each turn's ratio compares runs timed side by side, so a rise in the
    machine's load that lasts a turn or two moves both of its figures and
    leaves the ratio alone; the ratio of the two runs' median step times
    would take each median from whichever turns fell in the middle.
    """
    return statistics.median(turn_ratios(ours, theirs))
