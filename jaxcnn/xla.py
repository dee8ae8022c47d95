"""XLA compile options (which ones this jaxlib has, and the CPU one jaxcnn's speed relies
on), and the persistent compilation cache.

Pass them to `jax.jit(fn, compiler_options=...)`; `train.py` takes them from
a config's `cpu_compiler_options`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jaxlib

# XLA's YNNPACK fusions off, for XLA's own kernels and loops: on x86 CPUs
# (jaxlib 0.10) XLA's own convolution with 32-64 channels, and the default
# LeNet's training step, run faster without them (docs/performance.md,
# "XLA's CPU options").
YNN_OFF = {"xla_cpu_experimental_ynn_fusion_type": ""}


# Past this, the compilation cache drops its least recently used programs. A
# bounded cache is also a locked one: JAX then reads and writes it under a
# file lock, so several processes can share it.
COMPILATION_CACHE_MAX_BYTES = 2 << 30


def use_compilation_cache(directory: str | Path, min_compile_secs: float = 0.0) -> None:
    """Keeps compiled programs in `directory`, so that a rerun compiles nothing new.

    JAX's persistent compilation cache: a program is looked up by its HLO,
    compile options, backend and versions, so a changed model or option
    compiles afresh. Call it before JAX compiles anything.

    Args:
      directory: where the programs are kept; made if missing.
      min_compile_secs: keep only programs that took at least this long to
        compile. Each new entry scans the folder (to keep it under
        `COMPILATION_CACHE_MAX_BYTES`), so a process that compiles thousands
        of small programs, as the tests do, should not keep them all.
    """
    path = Path(directory).expanduser()
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_secs)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", COMPILATION_CACHE_MAX_BYTES)


def available_options(options: Mapping[str, Any], *, prefix: str = "") -> dict[str, Any]:
    """`options` less those this jaxlib's XLA lacks, each left out with a warning.

    XLA renames and adds experimental options between releases (jaxlib 0.8.0
    has no `xla_cpu_experimental_ynn_fusion_type`), and `jax.jit` rejects an
    option it lacks. Each option is tried by compiling the identity with it.

    Args:
      options: `{option name: value}`.
      prefix: put before each name in messages (where the options came from).

    Raises:
      ValueError: naming the option, for a value XLA rejects.
    """
    kept = {}
    for name, value in options.items():
        try:
            jax.jit(lambda x: x, compiler_options={name: value}).lower(0.0).compile()
        except RuntimeError as e:  # jax.errors.JaxRuntimeError
            if "No such compile option" not in str(e):
                raise ValueError(f"`{prefix}{name}`: {e}") from None
            print(
                f"warning: `{prefix}{name}` is not an option of this XLA "
                f"(jaxlib {jaxlib.__version__}); left out",
                file=sys.stderr,
            )
            continue
        kept[name] = value
    return kept
