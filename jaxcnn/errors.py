"""jaxcnn's errors, by what failed: catch `JaxcnnError` for any of them.

Each message is one line that names what is wrong (the key, the path, the
checkpoint) and how to go on; the command-line tools print it as it is.
Arguments of a layer function that do not fit stay `ValueError`/`TypeError`.

    JaxcnnError
    ├── ConfigError      a config value that cannot work (also a ValueError)
    ├── DataError        data that is missing or malformed (also a RuntimeError)
    ├── WorkdirError     a workdir that cannot be used: a file, unwritable, in use
    │   └── SaveError    a checkpoint or metrics line that could not be written (also an OSError)
    └── CheckpointError  checkpoints that cannot be used: made for another model or data,
                         unreadable for want of permission, none intact
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)
JAX_FORWARD_MODE = "can't apply forward-mode autodiff (jvp) to a custom_vjp function"


class JaxcnnError(Exception):
    """The base of every error jaxcnn raises for something a user can fix."""


class ConfigError(JaxcnnError, ValueError):
    """A config value that cannot work; the message names the key."""


class DataError(JaxcnnError, RuntimeError):
    """Data that is missing or malformed; the message names the path and says how to fix it."""


class WorkdirError(JaxcnnError):
    """A workdir that cannot be used as it is; the message names it and why."""


class SaveError(WorkdirError, OSError):
    """A checkpoint or a metrics line could not be written (a full disk, a lost mount).

    The message says which, and what is still intact.
    """


class CheckpointError(JaxcnnError):
    """Checkpoints that cannot be used by this run; nothing of them was moved or changed."""


def reverse_mode_only(instead: str) -> Callable[[F], F]:
    """Marks a function whose gradients are written for reverse mode (a `jax.custom_vjp`
    within): called under forward-mode autodiff (`jax.jvp`, `jax.jacfwd`, `jax.hessian`), it
    raises one TypeError that names it and says what to use `instead`, where JAX's own
    message names neither. Inside a `jax.jit` that forward mode traces, JAX's stays."""

    def mark(fn: F) -> F:
        @functools.wraps(fn)
        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except TypeError as e:
                if JAX_FORWARD_MODE not in str(e):
                    raise
                raise TypeError(
                    f"`{fn.__name__}` has gradients for reverse mode only (jax.grad, jax.vjp), "
                    f"not forward mode (jax.jvp, jax.jacfwd, jax.hessian): {instead}"
                ) from None

        return call  # type: ignore[return-value]

    return mark
