"""Combinators: layers made of layers, in a chain (`sequential`), beside a shortcut
(`residual`) or side by side (`concat`).

Each child is a `jaxcnn.layer.Layer`; the composite's parameters and state are
nested dicts named as its children are, with empty ones left out, and each
child draws its random numbers from the composite's key folded with its index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxcnn.layer import Forward, Layer, Shape, State
from jaxcnn.params import ParamTree as Params


def _check_children(layers: dict[str, Layer]) -> None:
    for name, layer in layers.items():
        if not isinstance(layer, Layer):
            raise TypeError(f"`{name}` must be a Layer, got {type(layer).__name__}")


def _child_key(key: jax.Array | None, index: int) -> jax.Array | None:
    return None if key is None else jax.random.fold_in(key, index)


def _init_children(
    key: jax.Array, children: dict[str, Layer], input_shape: Shape, chained: bool
) -> tuple[list[Shape], Params, State]:
    """Each child's output shape, and their params and state by name (empty ones left out).

    `chained`: each child takes the one before's output (else all take `input_shape`).
    """
    shapes, params, state = [], {}, {}
    shape = input_shape
    for child_key, (name, child) in zip(jax.random.split(key, len(children)), children.items()):
        out, child_params, child_state = child.initialize(
            child_key, shape if chained else input_shape
        )
        shapes.append(out)
        if chained:
            shape = out
        if child_params:
            params[name] = child_params
        if child_state:
            state[name] = child_state
    return shapes, params, state


def _run_chain(children: dict[str, Layer], params, state, x, training, key):
    new_state = {}
    for i, (name, child) in enumerate(children.items()):
        x, child_state = child.forward(
            params.get(name, {}), state.get(name, {}), x, training, _child_key(key, i)
        )
        if child_state:
            new_state[name] = child_state
    return x, new_state


def _composite(
    kind: str,
    children: dict[str, Layer],
    initialize: Callable[[jax.Array, Shape], tuple[Shape, Params, State]],
    forward: Forward,
    options: dict[str, Any] | None = None,
) -> Layer:
    return Layer(
        kind,
        options or {},
        children,
        initialize,
        forward,
        any(c.has_state for c in children.values()),
        any(c.random for c in children.values()),
    )


def sequential(**layers: Layer) -> Layer:
    """Chains layers by keyword name, in order; parameters are `{name: layer_params}`."""
    _check_children(layers)

    def initialize(key, input_shape):
        shapes, params, state = _init_children(key, layers, input_shape, chained=True)
        return (shapes[-1] if shapes else input_shape), params, state

    def forward(params, state, x, training, key):
        return _run_chain(layers, params, state, x, training, key)

    return _composite("sequential", layers, initialize, forward)


def residual(
    *,
    shortcut: Layer | None = None,
    activation: Callable[[jax.Array], jax.Array] | None = None,
    **body: Layer,
) -> Layer:
    """`activation(body(x) + shortcut(x))`: a residual block (d2l 8.6).

    Args:
      shortcut: a layer for the skip path (e.g. a 1x1 conv with a stride, to
        match the body's output shape); None passes `x` on unchanged.
      activation: applied after the sum (ResNet's ReLU); None for none.
      **body: the body's layers, chained in order; their parameters sit
        beside the shortcut's (`params["conv1"]`, `params["shortcut"]`).
    """
    _check_children(body)
    children = {**body, **({"shortcut": shortcut} if shortcut is not None else {})}
    _check_children(children)

    def initialize(key, input_shape):
        body_key, shortcut_key = jax.random.split(key)
        shapes, params, state = _init_children(body_key, body, input_shape, chained=True)
        skip_shape = input_shape
        if shortcut is not None:
            skip_shape, skip_params, skip_state = shortcut.initialize(shortcut_key, input_shape)
            if skip_params:
                params["shortcut"] = skip_params
            if skip_state:
                state["shortcut"] = skip_state
        out = shapes[-1] if shapes else input_shape
        if tuple(skip_shape) != tuple(out):
            raise ValueError(
                f"a residual block's body gives {tuple(out)} and its shortcut "
                f"{tuple(skip_shape)}: give `shortcut` a layer that matches (e.g. a 1x1 conv)"
            )
        return out, params, state

    def forward(params, state, x, training, key):
        y, new_state = _run_chain(body, params, state, x, training, key)
        skip = x
        if shortcut is not None:
            skip, skip_state = shortcut.forward(
                params.get("shortcut", {}),
                state.get("shortcut", {}),
                x,
                training,
                _child_key(key, len(body)),
            )
            if skip_state:
                new_state["shortcut"] = skip_state
        y = y + skip
        return (y if activation is None else activation(y)), new_state

    name = getattr(activation, "__name__", None) if activation else None
    return _composite("residual", children, initialize, forward, {"activation": name})


def concat(**branches: Layer) -> Layer:
    """Runs each branch on the same input and concatenates their outputs along the last axis.

    Inception blocks (d2l 8.4) and DenseNet's dense layers (with an `identity`
    branch) are made of it; every branch must give the same leading shape.
    """
    _check_children(branches)
    if not branches:
        raise ValueError("`concat` needs at least one branch")

    def initialize(key, input_shape):
        shapes, params, state = _init_children(key, branches, input_shape, chained=False)
        leading = {tuple(s[:-1]) for s in shapes}
        if len(leading) > 1:
            described = ", ".join(f"{n} {tuple(s)}" for n, s in zip(branches, shapes))
            raise ValueError(
                f"`concat`'s branches must agree but for the last axis, got {described}"
            )
        return (*shapes[0][:-1], sum(s[-1] for s in shapes)), params, state

    def forward(params, state, x, training, key):
        outputs, new_state = [], {}
        for i, (name, branch) in enumerate(branches.items()):
            y, branch_state = branch.forward(
                params.get(name, {}), state.get(name, {}), x, training, _child_key(key, i)
            )
            outputs.append(y)
            if branch_state:
                new_state[name] = branch_state
        return jnp.concatenate(outputs, axis=-1), new_state

    return _composite("concat", branches, initialize, forward)
