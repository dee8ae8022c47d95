"""The one rule for a layer's parameters: `{"kernel": ..., "bias": ...}`, bias optional."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import jax

Params: TypeAlias = Mapping[str, jax.Array]  # one layer's: {"kernel": ..., "bias": ...}
ParamTree: TypeAlias = dict[str, Any]  # a model's: {layer name: Params or a nested ParamTree}


def kernel_and_bias(params: Params, kernel_form: str) -> tuple[jax.Array, jax.Array | None]:
    """Returns `(params["kernel"], params.get("bias"))`, checking that `params` is such a dict.

    Args:
      params: the layer's parameters.
      kernel_form: the kernel's expected shape in words, for the error, e.g.
        `"(in_features, out_features)"`; its number of axes is checked too.
    """
    if not isinstance(params, Mapping) or "kernel" not in params:
        got = sorted(params) if isinstance(params, Mapping) else type(params).__name__
        raise ValueError(
            f"`params` must be a dict with a 'kernel' {kernel_form} and an optional 'bias', got {got}"
        )
    kernel = params["kernel"]
    ndim = kernel_form.count(",") + 1
    if getattr(kernel, "ndim", None) != ndim:
        raise ValueError(
            f"`params['kernel']` must be {ndim}-D {kernel_form}, got shape {getattr(kernel, 'shape', kernel)}"
        )
    return kernel, params.get("bias")
