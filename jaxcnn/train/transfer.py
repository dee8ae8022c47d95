"""Starting from another trained model (`init_from`) and keeping layers fixed (`freeze`).

`init_from` names a workdir `train.py` trained in. A new run starts from its
model (the best checkpoint where one was kept, as `predict.py` reads it):
every parameter and batch-norm statistic whose path and shape match is
loaded, the rest keeps its fresh initialisation (a new head for another
number of classes), and one line says which is which. The optimizer starts
afresh. A run that resumes from its own checkpoint loads nothing.

`freeze` names layers (`"conv1,conv2"`, or a prefix such as `"stage1"`, which
holds every layer inside it): after each step their parameters and running
statistics are put back as they were, so they stay bit for bit what was
loaded whatever the optimizer does (weight decay, momentum, schedule-free
averaging); they still normalise with each batch's statistics when training.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxcnn.nn.network import Layer


def layer_names(layer: Layer, prefix: str = "") -> list[str]:
    """Every named layer inside `layer`, as dotted paths (`"stage1.block1.conv1"`)."""
    names = []
    for name, child in layer.children():
        path = f"{prefix}{name}"
        names += [path, *layer_names(child, f"{path}.")]
    return names


def prefixes(freeze: str) -> list[str]:
    """The layer names or prefixes of `freeze`'s comma-separated list."""
    return [p.strip() for p in freeze.split(",") if p.strip()]


def unknown_prefixes(model: Layer, freeze: str) -> list[str]:
    """The names in `freeze` that are no layer of `model`."""
    names = layer_names(model)
    return [p for p in prefixes(freeze) if p not in names]


def path_names(tree: Any) -> Any:
    """`tree` with each leaf replaced by its dotted path (`"conv1.kernel"`)."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: jax.tree_util.keystr(path, simple=True, separator="."), tree
    )


def frozen_mask(tree: Any, freeze: str) -> Any:
    """`tree` (parameters or state) with each leaf True if a layer `freeze` names holds it."""
    held = prefixes(freeze)
    return jax.tree.map(
        lambda path: any(path == p or path.startswith(f"{p}.") for p in held), path_names(tree)
    )


def keep_frozen(mask: Any, new: Any, old: Any) -> Any:
    """`new`, but `old` where `mask` (a tree of Python bools, static under `jit`) is True."""
    return jax.tree.map(lambda frozen, n, o: o if frozen else n, mask, new, old)


def load_matching(target: Any, source: Any) -> tuple[Any, list[str], list[str]]:
    """`target` with each leaf of `source` at the same path and of the same shape in its place.

    Returns:
      The new tree, the paths loaded, and what was not loaded, a line each
      (`"fc3.kernel: (84, 5) there, (84, 10) here"`, `"fc4.bias: not there"`).
    """
    there = dict(zip(jax.tree.leaves(path_names(source)), jax.tree.leaves(source)))
    loaded, skipped = [], []

    def pick(path: str, leaf: Any) -> Any:
        if path not in there:
            skipped.append(f"{path}: not there")
            return leaf
        value = there[path]
        if np.shape(value) != np.shape(leaf):
            skipped.append(f"{path}: {tuple(np.shape(value))} there, {tuple(np.shape(leaf))} here")
            return leaf
        loaded.append(path)
        return np.asarray(value, dtype=np.asarray(leaf).dtype)

    merged = jax.tree.map(pick, path_names(target), target)
    return merged, loaded, skipped


def start_from(state: Any, source: Any, trainer: Any, where: str) -> tuple[Any, str]:
    """`state` (a fresh `TrainState`) with `source`'s matching arrays loaded; a line saying so.

    Args:
      state: the run's initial state, replicated over `trainer`'s mesh.
      source: a loaded model (`jaxcnn.train.predict.Predictor`) of the `init_from` workdir.
      trainer: the run's `Trainer`: its optimizer starts afresh on the loaded parameters.
      where: the `init_from` workdir, for the line.
    """
    host = jax.tree.map(np.asarray, (state.params, state.model_state))
    params, loaded, skipped = load_matching(host[0], source.state.params)
    model_state, loaded_state, skipped_state = load_matching(host[1], source.state.model_state)
    state = state._replace(
        params=params, model_state=model_state, opt_state=trainer.optimizer.init(params)
    )
    loaded, skipped = loaded + loaded_state, skipped + skipped_state
    line = f"init_from {where} (epoch {source.epochs}): loaded {len(loaded)} arrays"
    if skipped:
        line += f"; initialised afresh {len(skipped)}: " + "; ".join(skipped)
    return trainer.replicate(state), line
