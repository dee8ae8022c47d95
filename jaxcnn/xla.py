"""XLA compile options: which ones this jaxlib has, and the CPU one jaxcnn's speed relies on.

Pass them to `jax.jit(fn, compiler_options=...)`; `train.py` takes them from
a config's `cpu_compiler_options`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import jax
import jaxlib

# XLA's YNNPACK fusions off, for XLA's own kernels and loops: on x86 CPUs
# (jaxlib 0.10) XLA's own convolution with 32-64 channels, and the default
# LeNet's training step, run faster without them (docs/performance.md,
# "XLA's CPU options").
YNN_OFF = {"xla_cpu_experimental_ynn_fusion_type": ""}


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
