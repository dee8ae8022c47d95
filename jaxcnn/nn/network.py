"""The `Layer`: one step of a network, or a network, described by a frozen value.

Each kind of layer is a frozen dataclass whose fields are its options
(`jaxcnn.nn.layers.Conv2d(out_channels=6, kernel_size=5, padding=2)`); it holds
no arrays, so a layer is hashable, compares by its options and can be a
static argument of `jax.jit`. Two methods make it run:

    initialize(key, input_shape) -> (output_shape, params, state)
    forward(params, state, x, *, training, key) -> (y, new_state)

A composite (`jaxcnn.nn.combinators`) declares how its children are wired once,
in `trace`; `walk` follows that to list every layer of a network with its
path and its input and output shapes, without computing anything. The
summary, the pictures and the PyTorch and Flax twins all read a network
through `walk`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from jaxcnn.nn.params import ParamTree as Params

Shape = tuple[int, ...]
State = dict[str, Any]  # a model's state: {layer name: its state}, nested as params are
# How a composite visits a child: (its name, the child, its input shape) -> its output shape.
Visit = Callable[[str, "Layer", Shape], Shape]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Layer:
    """One step of a network, or a network: a frozen description with two pure functions.

    Subclasses set `kind` (what the summary calls it) and their options as
    fields; leaves write `make` and `forward`, composites `children`,
    `initialize`, `forward` and `trace`.

    Attributes:
      name: the name a `sequential` gives this step when it is passed by
        position (params are found under it); None for a name made from
        `kind` (`conv2d_1`, `relu_2`, ...).
    """

    kind: ClassVar[str] = "layer"
    name: str | None = None

    # ---- what a layer is
    def children(self) -> tuple[tuple[str, Layer], ...]:
        """The named sublayers, in order; `()` for a leaf."""
        return ()

    @property
    def has_state(self) -> bool:
        """Whether it keeps state (batch norm's running statistics)."""
        return any(child.has_state for _, child in self.children())

    @property
    def random(self) -> bool:
        """Whether it draws random numbers when training (dropout)."""
        return any(child.random for _, child in self.children())

    @property
    def step_name(self) -> str:
        """What a `sequential` calls this step when it has no `name`, before its count."""
        return self.kind

    def flops(self, in_shape: Shape, out_shape: Shape) -> int:
        """The arithmetic per example this layer stands for, its children's apart
        (a multiply-add is 2): what `summary` counts, not what a kernel runs."""
        return 0

    def runs_as(self, in_shape: Shape, backend: str | None = None) -> str:
        """What runs for an input of NHWC `in_shape` on `backend` (default JAX's)."""
        return self.kind

    # ---- how it runs
    def make(self, key: jax.Array, input_shape: Shape) -> tuple[Params, State]:
        """A leaf's fresh `(params, state)` for `input_shape`; `({}, {})` for none."""
        return {}, {}

    def forward(
        self, params: Params, state: State, x: jax.Array, *, training: bool, key: jax.Array | None
    ) -> tuple[jax.Array, State]:
        """`(y, new_state)`; `training` picks batch statistics and dropout, drawn from `key`."""
        raise NotImplementedError(f"a {type(self).__name__} layer has no forward")

    def initialize(self, key: jax.Array, input_shape: Shape) -> tuple[Shape, Params, State]:
        """`(output_shape, params, state)` for a leaf; the output shape by `jax.eval_shape`."""
        params, state = self.make(key, tuple(input_shape))
        return output_shape(self, params, state, input_shape), params, state

    def trace(self, input_shape: Shape, visit: Visit) -> Shape:
        """A composite calls `visit` on each child with its input shape and returns its own
        output shape; this is where a composite's wiring is written down, once."""
        raise TypeError(f"a {type(self).__name__} layer has no children to trace")

    # ---- the user's forms
    def init(self, key: jax.Array, input_shape: Shape) -> tuple[Shape, Params]:
        """`(output_shape, params)`, for a layer without state (use `init_with_state` else)."""
        if self.has_state:
            raise TypeError(
                "this model keeps state (batch norm): "
                "`out_shape, params, state = model.init_with_state(key, input_shape)`"
            )
        shape, params, _ = self.initialize(key, tuple(input_shape))
        return shape, params

    def init_with_state(self, key: jax.Array, input_shape: Shape) -> tuple[Shape, Params, State]:
        """`(output_shape, params, state)`; `state` is `{}` for a layer without any."""
        return self.initialize(key, tuple(input_shape))

    def apply(self, params: Params, x: jax.Array) -> jax.Array:
        """The output for inference, for a layer without state (dropout is the identity)."""
        if self.has_state:
            raise TypeError(
                "this model keeps state (batch norm): "
                "`y, state = model.apply_with_state(params, state, x, training=False)`"
            )
        return self.forward(params, {}, x, training=False, key=None)[0]

    def apply_with_state(
        self,
        params: Params,
        state: State,
        x: jax.Array,
        *,
        training: bool = False,
        key: jax.Array | None = None,
    ) -> tuple[jax.Array, State]:
        """`(y, new_state)`; `training` picks batch statistics and dropout, which needs `key`."""
        if training and self.random and key is None:
            raise ValueError(
                "`key` must be a PRNG key: this model draws dropout masks when training"
            )
        return self.forward(params, state, x, training=training, key=key)


def output_shape(layer: Layer, params: Params, state: State, input_shape: Shape) -> Shape:
    """The shape `layer` gives for `input_shape`, by `jax.eval_shape` (nothing is computed);
    `params` and `state` may be arrays or `jax.ShapeDtypeStruct`s."""
    x = jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)

    def forward(p, s, x):
        return layer.forward(p, s, x, training=False, key=None)[0]

    return tuple(jax.eval_shape(forward, params, state, x).shape)


@dataclasses.dataclass(frozen=True)
class Node:
    """One layer of a network as `walk` finds it.

    Attributes:
      path: the names from the network down to it (`("stage2_block1", "conv1")`),
        as its params and state are nested; `()` for the network itself.
      layer: the layer.
      in_shape, out_shape: its input's and output's shapes (NHWC for images).
    """

    path: tuple[str, ...]
    layer: Layer
    in_shape: Shape
    out_shape: Shape

    @property
    def name(self) -> str:
        """The dotted path, `stage2_block1.conv1`; the layer's kind for the network."""
        return ".".join(self.path) or self.layer.kind

    def subtree(self, tree: Params | State) -> Any:
        """This layer's part of a network's params or state (`{}` where it has none)."""
        for name in self.path:
            tree = tree.get(name, {})
        return tree


def walk(model: Layer, input_shape: Shape) -> list[Node]:
    """Every layer of `model`, each composite before its children, with its input and
    output shapes for `input_shape`. Nothing is computed: a leaf's shapes come
    from `jax.eval_shape` of its `make` and `forward` (a conv with `impl="auto"`
    asks JAX's default backend which kernel it would run).

    Raises:
      ValueError: for a layer that does not fit its input, naming its path.
    """
    nodes: list[Node] = []
    key = jax.eval_shape(jax.random.key, 0)

    def visit(path: tuple[str, ...], layer: Layer, shape: Shape) -> Shape:
        index = len(nodes)
        nodes.append(Node(path, layer, shape, ()))
        if layer.children():
            out = layer.trace(shape, lambda name, child, s: visit((*path, name), child, s))
        else:
            try:
                make = functools.partial(layer.make, input_shape=shape)
                params, state = jax.eval_shape(make, key)
                out = output_shape(layer, params, state, shape)
            except ValueError as e:  # a kernel or width that does not fit: say which layer
                raise ValueError(f"layer {'.'.join(path) or layer.kind} on {shape}: {e}") from None
        nodes[index] = Node(path, layer, shape, out)
        return out

    visit((), model, tuple(input_shape))
    return nodes


def freeze_options(layer: Layer, *names: str) -> None:
    """Sets `layer`'s options `names` with lists made tuples, all the way down: a layer's
    options must hash (for `__post_init__`, where a frozen dataclass may still set them)."""

    def frozen(value: Any) -> Any:
        return tuple(frozen(v) for v in value) if isinstance(value, list | tuple) else value

    for name in names:
        object.__setattr__(layer, name, frozen(getattr(layer, name)))


def size(shape: Shape) -> int:
    """The values per example of a batched `shape`."""
    return math.prod(shape[1:])
