"""The validation split: a fraction of the training examples held out to score each epoch on.

Each example is held out when a hash of its pixels and label falls below the
fraction: the same examples every run and every resume, whatever their order,
and adding examples to a dataset moves no other (as `sources.test_share`
splits a tree of files). Copies of one image with one label fall on the same
side, so none is trained on and validated on at once.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np

from jaxcnn.errors import DataError


class Holdout(NamedTuple):
    """The training examples to train on and those held out, as indices into the training split."""

    train: np.ndarray  # int64, ascending
    validation: np.ndarray  # int64, ascending


def share(image: np.ndarray, label: int) -> float:
    """Where in [0, 1) the example falls, from a hash of its pixels and label."""
    key = hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=8)
    key.update(int(label).to_bytes(8, "little", signed=True))
    return int.from_bytes(key.digest(), "big") / 2**64


def holdout(images: np.ndarray, labels: np.ndarray, fraction: float) -> Holdout:
    """The examples of `(images, labels)` (NHWC uint8, `(n,)`) held out by `fraction` in [0, 1).

    Raises:
      DataError: if `fraction` > 0 holds out no example, or every example.
    """
    n = len(labels)
    if fraction == 0:
        return Holdout(np.arange(n), np.arange(0))
    shares = np.fromiter((share(images[i], labels[i]) for i in range(n)), np.float64, count=n)
    held = shares < fraction
    if not held.any() or held.all():
        raise DataError(
            f"`validation_fraction` ({fraction}) holds out {int(held.sum())} of the {n} "
            "training examples: it must leave some on each side"
        )
    return Holdout(np.flatnonzero(~held), np.flatnonzero(held))
