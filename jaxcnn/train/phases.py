"""Where a run's time goes: start-up, data, set-up, compilation, training, evaluation, saving.

`Phases` adds up the wall time spent in each named phase of a run, and takes
the time JAX spent tracing, lowering and compiling (its monitoring events)
out of the phase it happened in, into `compile`. `start-up` is the time from
the run's start to its first phase: `train.py` starts the clock at its first
line, so that the interpreter's imports count, however Python was launched
(`bash -c "... && python train.py"` execs Python in the shell's process, whose
creation time is the shell's); a run started from Python starts it at the call.
`first_step_s` is the time from that start to the first training step's;
`programs` counts the programs XLA compiled and those the persistent compile
cache held (a warm start compiles none).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import jax

# JAX's events for the work a compilation does; the last, XLA's, is short for a program
# the persistent compile cache holds.
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
BACKEND_COMPILE = COMPILE_EVENTS[-1]  # one per program, compiled or read from the cache
CACHE_HIT = "/jax/compilation_cache/cache_hits"  # one per program read from the cache


class Phases:
    """Seconds per phase of one run; `with phases("data"): ...` adds to a phase.

    Phases nest: time spent in an inner phase (saving a checkpoint in the
    middle of training) counts for it alone. It listens to JAX's compile events
    from its making to `close()` (or the end of a `with Phases() as phases:`).
    """

    def __init__(self, started: float | None = None) -> None:
        """`started`: the run's start, as `time.time()` gave it (None: now)."""
        self.process_start = time.time() if started is None else started
        self.seconds: dict[str, float] = {"start-up": max(0.0, time.time() - self.process_start)}
        self.first_step_s: float | None = None
        self.seconds["compile"] = 0.0
        self._claimed: list[list[float]] = []  # per open phase: inner phases' (wall, compile)
        self._compile_seconds = 0.0  # JAX's, while this listens
        # Programs XLA compiled, and programs read from the persistent compile cache instead.
        self.programs = {"compiled": 0, "cached": 0}
        jax.monitoring.register_event_duration_secs_listener(self._count_compile)
        jax.monitoring.register_event_listener(self._count_cached)

    def _count_compile(self, event: str, duration_secs: float, **kwargs: str | int) -> None:
        if event in COMPILE_EVENTS:
            self._compile_seconds += duration_secs
        if event == BACKEND_COMPILE:
            self.programs["compiled"] += 1

    def _count_cached(self, event: str, **kwargs: str | int) -> None:
        if event == CACHE_HIT:  # inside a BACKEND_COMPILE event, which counts it as compiled
            self.programs["cached"] += 1
            self.programs["compiled"] -= 1

    def close(self) -> None:
        """Stops listening to JAX's compile events."""
        jax.monitoring.unregister_event_duration_listener(self._count_compile)
        jax.monitoring.unregister_event_listener(self._count_cached)

    def __enter__(self) -> Phases:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start, compiled = time.perf_counter(), self._compile_seconds
        self._claimed.append([0.0, 0.0])
        try:
            yield
        finally:
            inner_wall, inner_compile = self._claimed.pop()
            wall = time.perf_counter() - start
            compile_s = self._compile_seconds - compiled
            own_compile = compile_s - inner_compile
            own = wall - inner_wall - own_compile
            self.seconds[name] = self.seconds.get(name, 0.0) + max(0.0, own)
            self.seconds["compile"] += own_compile
            if self._claimed:
                self._claimed[-1][0] += wall
                self._claimed[-1][1] += compile_s

    def first_step(self) -> None:
        """Notes, once, that the first training step has started (its program compiled)."""
        if self.first_step_s is None:
            self.first_step_s = time.time() - self.process_start

    def as_dict(self) -> dict[str, float]:
        return {name: round(s, 3) for name, s in self.seconds.items()}

    def line(self) -> str:
        """`time: start-up 2.1 s, data 0.3 s, ... (total 46.0 s); first step at 2.8 s`."""
        parts = ", ".join(f"{name} {s:.1f} s" for name, s in self.seconds.items())
        line = f"time: {parts} (total {sum(self.seconds.values()):.1f} s)"
        if self.first_step_s is not None:
            line += f"; first step at {self.first_step_s:.1f} s"
        return line
