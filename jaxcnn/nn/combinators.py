"""Combinators: layers made of layers, in a chain (`sequential`), beside a shortcut
(`residual`) or side by side (`concat`).

A composite's parameters and state are nested dicts named as its children
are, with empty ones left out; each child draws its random numbers from the
composite's key folded with its index. How a composite wires its children is
written once per kind, in its `trace`, which `jaxcnn.nn.network.walk` follows.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxcnn.nn.network import Layer, Shape, State, Visit, size
from jaxcnn.nn.params import ParamTree as Params

Step = tuple[str, Layer]
Function = Callable[[jax.Array], jax.Array]


def _child_key(key: jax.Array | None, index: int) -> jax.Array | None:
    return None if key is None else jax.random.fold_in(key, index)


def _init_steps(
    key: jax.Array, steps: tuple[Step, ...], input_shape: Shape, chained: bool
) -> tuple[list[Shape], Params, State]:
    """Each step's output shape, and their params and state by name (empty ones left out).

    `chained`: each step takes the one before's output (else all take `input_shape`).
    """
    shapes, params, state = [], {}, {}
    shape = input_shape
    for step_key, (name, step) in zip(jax.random.split(key, len(steps)), steps):
        out, step_params, step_state = step.initialize(step_key, shape if chained else input_shape)
        shapes.append(out)
        if chained:
            shape = out
        if step_params:
            params[name] = step_params
        if step_state:
            state[name] = step_state
    return shapes, params, state


def _run_steps(steps: tuple[Step, ...], params, state, x, training, key, chained: bool):
    """Each step's output (chained or each on `x`) and the new state by name."""
    outputs, new_state = [], {}
    y = x
    for i, (name, step) in enumerate(steps):
        y, step_state = step.forward(
            params.get(name, {}),
            state.get(name, {}),
            y if chained else x,
            training=training,
            key=_child_key(key, i),
        )
        outputs.append(y)
        if step_state:
            new_state[name] = step_state
    return outputs, new_state


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sequential(Layer):
    """Steps run in a chain; parameters are `{step name: its params}`."""

    kind = "sequential"
    steps: tuple[Step, ...]

    def children(self) -> tuple[Step, ...]:
        return self.steps

    def initialize(self, key, input_shape):
        shapes, params, state = _init_steps(key, self.steps, tuple(input_shape), chained=True)
        return (shapes[-1] if shapes else tuple(input_shape)), params, state

    def forward(self, params, state, x, *, training, key):
        outputs, new_state = _run_steps(self.steps, params, state, x, training, key, chained=True)
        return (outputs[-1] if outputs else x), new_state

    def trace(self, input_shape: Shape, visit: Visit) -> Shape:
        shape = input_shape
        for name, step in self.steps:
            shape = visit(name, step, shape)
        return shape


@dataclasses.dataclass(frozen=True, kw_only=True)
class Residual(Layer):
    """`activation(body(x) + shortcut(x))`; the body's steps and `"shortcut"` share one
    namespace of parameters (`params["conv1"]`, `params["shortcut"]`)."""

    kind = "residual"
    body: Sequential
    shortcut: Layer | None = None
    activation: Function | None = None

    def children(self) -> tuple[Step, ...]:
        return (*self.body.steps, *((("shortcut", self.shortcut),) if self.shortcut else ()))

    def initialize(self, key, input_shape):
        input_shape = tuple(input_shape)
        body_key, shortcut_key = jax.random.split(key)
        out, params, state = self.body.initialize(body_key, input_shape)
        skip_shape = input_shape
        if self.shortcut is not None:
            skip_shape, skip_params, skip_state = self.shortcut.initialize(
                shortcut_key, input_shape
            )
            if skip_params:
                params["shortcut"] = skip_params
            if skip_state:
                state["shortcut"] = skip_state
        _check_sum(out, skip_shape)
        return out, params, state

    def forward(self, params, state, x, *, training, key):
        y, new_state = self.body.forward(params, state, x, training=training, key=key)
        skip = x
        if self.shortcut is not None:
            skip, skip_state = self.shortcut.forward(
                params.get("shortcut", {}),
                state.get("shortcut", {}),
                x,
                training=training,
                key=_child_key(key, len(self.body.steps)),
            )
            if skip_state:
                new_state["shortcut"] = skip_state
        y = y + skip
        return (y if self.activation is None else self.activation(y)), new_state

    def trace(self, input_shape: Shape, visit: Visit) -> Shape:
        out = self.body.trace(input_shape, visit)
        skip = visit("shortcut", self.shortcut, input_shape) if self.shortcut else input_shape
        _check_sum(out, skip)
        return out

    def flops(self, in_shape: Shape, out_shape: Shape) -> int:
        return size(out_shape)  # the sum


def _check_sum(body: Shape, skip: Shape) -> None:
    if tuple(body) != tuple(skip):
        raise ValueError(
            f"a residual block's body gives {tuple(body)} and its shortcut "
            f"{tuple(skip)}: give `shortcut` a layer that matches (e.g. a 1x1 conv)"
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Concat(Layer):
    """Branches run on the same input, their outputs joined along the last axis."""

    kind = "concat"
    branches: tuple[Step, ...]

    def children(self) -> tuple[Step, ...]:
        return self.branches

    def initialize(self, key, input_shape):
        input_shape = tuple(input_shape)
        shapes, params, state = _init_steps(key, self.branches, input_shape, chained=False)
        return self._joined(shapes), params, state

    def forward(self, params, state, x, *, training, key):
        outputs, new_state = _run_steps(
            self.branches, params, state, x, training, key, chained=False
        )
        return jnp.concatenate(outputs, axis=-1), new_state

    def trace(self, input_shape: Shape, visit: Visit) -> Shape:
        return self._joined([visit(name, b, input_shape) for name, b in self.branches])

    def _joined(self, shapes: list[Shape]) -> Shape:
        if len({tuple(s[:-1]) for s in shapes}) > 1:
            described = ", ".join(f"{n} {tuple(s)}" for (n, _), s in zip(self.branches, shapes))
            raise ValueError(
                f"`concat`'s branches must agree but for the last axis, got {described}"
            )
        return (*shapes[0][:-1], sum(s[-1] for s in shapes))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Activation(Layer):
    """An elementwise function as a layer: `jax.nn.relu`, `jax.nn.sigmoid`, ..."""

    kind = "activation"
    fn: Function

    @property
    def step_name(self) -> str:
        return getattr(self.fn, "__name__", self.kind)

    def forward(self, params, state, x, *, training, key):
        return self.fn(x), {}

    def flops(self, in_shape: Shape, out_shape: Shape) -> int:
        return size(in_shape)

    def runs_as(self, in_shape: Shape, backend: str | None = None) -> str:
        return self.step_name


def named_steps(layers: tuple, named: dict[str, Layer], what: str) -> tuple[Step, ...]:
    """`layers` (by position) then `named` (by keyword) as `(name, layer)` steps.

    A positional step is named by its `name`, else by its `step_name` and a
    count (`conv2d_1`, `relu_1`, `conv2d_2`); a plain function becomes an
    `Activation`. Raises TypeError for anything else, ValueError for a name
    given twice.
    """
    steps: list[Step] = []
    counts: Counter[str] = Counter()
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer) and callable(layer):
            layer = Activation(fn=layer)
        if not isinstance(layer, Layer):
            raise TypeError(f"{what}'s step {i} must be a Layer, got {type(layer).__name__}")
        if layer.name is None:
            counts[layer.step_name] += 1
            steps.append((f"{layer.step_name}_{counts[layer.step_name]}", layer))
        else:
            steps.append((layer.name, layer))
    for name, layer in named.items():
        if not isinstance(layer, Layer):
            raise TypeError(f"`{name}` must be a Layer, got {type(layer).__name__}")
        steps.append((name, layer))
    seen = Counter(name for name, _ in steps)
    if twice := sorted(name for name, n in seen.items() if n > 1):
        raise ValueError(f"{what}'s step names must differ, got {twice} more than once")
    return tuple(steps)


def sequential(*layers: Layer | Function, **named_layers: Layer) -> Sequential:
    """Chains layers in order: by position, then by keyword name.

        sequential(conv2d(6, 5, name="conv1"), jax.nn.relu, max_pool2d(2), flatten(), dense(10))

    Parameters are `{step name: its params}`; a step passed by position is
    named by its `name=`, else as its kind and a count (`relu_1`, `dense_1`);
    a plain function is an elementwise activation.
    """
    return Sequential(steps=named_steps(layers, named_layers, "`sequential`"))


def residual(
    *body: Layer | Function,
    shortcut: Layer | None = None,
    activation: Function | None = None,
) -> Residual:
    """`activation(body(x) + shortcut(x))`: a residual block (d2l 8.6).

    Args:
      *body: the body: one `sequential`, or its steps (chained, named as
        `sequential` names them).
      shortcut: a layer for the skip path (e.g. a 1x1 conv with a stride, to
        match the body's output shape); None passes `x` on unchanged.
      activation: applied after the sum (ResNet's ReLU); None for none.

    The body's parameters sit beside the shortcut's (`params["conv1"]`,
    `params["shortcut"]`), so a body step may not be called `"shortcut"`.
    """
    if len(body) == 1 and isinstance(body[0], Sequential) and body[0].name is None:
        chain = body[0]
    else:
        chain = sequential(*body)
    if shortcut is not None and not isinstance(shortcut, Layer):
        raise TypeError(f"`shortcut` must be a Layer or None, got {type(shortcut).__name__}")
    if activation is not None and not callable(activation):
        raise TypeError(f"`activation` must be a function or None, got {activation!r}")
    if shortcut is not None and "shortcut" in dict(chain.steps):
        raise ValueError("a residual body's step may not be called 'shortcut': rename it")
    return Residual(body=chain, shortcut=shortcut, activation=activation)


def concat(*branches: Layer, **named_branches: Layer) -> Concat:
    """Runs each branch on the same input and concatenates their outputs along the last axis.

    Inception blocks (d2l 8.4) and DenseNet's dense layers (with an `identity`
    branch) are made of it; every branch must give the same leading shape.
    Branches are named as `sequential` names its steps.
    """
    steps = named_steps(branches, named_branches, "`concat`")
    if not steps:
        raise ValueError("`concat` needs at least one branch")
    return Concat(branches=steps)
