"""A digest of arrays: their dtypes, shapes and bytes, in order. The same arrays give the same
digest, in any process and on any device; other arrays, another one."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import jax
import numpy as np


def array_digest(arrays: Iterable[Any]) -> str:
    """32 hex digits of `arrays` (NumPy or JAX; of a replicated JAX array, this process's copy)."""
    h = hashlib.blake2b(digest_size=16)
    for array in arrays:
        if isinstance(array, jax.Array):
            array = array.addressable_data(0)
        array = np.ascontiguousarray(np.asarray(array))
        h.update(f"{array.dtype}{array.shape}".encode())
        h.update(array.reshape(-1).view(np.uint8).data)
    return h.hexdigest()
