"""The `Layer`: one step of a network, or a network, as a value holding two pure functions.

    initialize(key, input_shape) -> (output_shape, params, state)
    forward(params, state, x, training, key) -> (y, new_state)

`jaxcnn.layers` makes layers of jaxcnn's functions and combines them;
`jaxcnn.summary` describes them. A layer also says what it is (`kind`,
`options`), so that a benchmark can build the same network in another
framework.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxcnn.params import ParamTree as Params

Shape = tuple[int, ...]
State = dict[str, Any]  # a model's state: {layer name: its state}, nested as params are
Forward = Callable[[Params, State, jax.Array, bool, jax.Array | None], tuple[jax.Array, State]]

# The kinds of layer whose parameters are a conv kernel (and bias): a conv
# alone, or with the pool after it.
CONV_KINDS = ("conv2d", "conv2d_max_pool", "conv2d_avg_pool")
POOLED_CONV_KINDS = {"conv2d_max_pool": "max", "conv2d_avg_pool": "average"}


@dataclasses.dataclass(frozen=True)
class Layer:
    """One step of a network, or a network: what it is and its two pure functions.

    Attributes:
      kind: what it computes, e.g. `"conv2d"`, `"sequential"`.
      options: its arguments, e.g. `{"out_channels": 6, "kernel_size": 5}`.
      children: its named sublayers (for `sequential`, `residual`, `concat`).
      initialize: `(key, input_shape) -> (output_shape, params, state)`.
      forward: `(params, state, x, training, key) -> (y, new_state)`.
      has_state: whether it keeps state (batch norm's running statistics).
      random: whether it draws random numbers when training (dropout).
    """

    kind: str
    options: dict[str, Any]
    children: dict[str, Layer]
    initialize: Callable[[jax.Array, Shape], tuple[Shape, Params, State]]
    forward: Forward
    has_state: bool = False
    random: bool = False

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
        return self.forward(params, {}, x, False, None)[0]

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
        return self.forward(params, state, x, training, key)


def output_shape(layer: Layer, params: Params, state: State, input_shape: Shape) -> Shape:
    """The shape `layer` gives for `input_shape`, by `jax.eval_shape` (nothing is computed)."""
    x = jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)
    forward = lambda p, s, x: layer.forward(p, s, x, False, None)[0]  # noqa: E731
    return tuple(jax.eval_shape(forward, params, state, x).shape)


def leaf(
    kind: str,
    options: dict[str, Any],
    make: Callable[[jax.Array, Shape], tuple[Params, State]],
    forward: Forward,
    *,
    has_state: bool = False,
    random: bool = False,
) -> Layer:
    """A layer without sublayers; its output shape is inferred by `jax.eval_shape`."""

    def initialize(key, input_shape):
        params, state = make(key, input_shape)
        layer = Layer(kind, options, {}, initialize, forward, has_state, random)
        return output_shape(layer, params, state, input_shape), params, state

    return Layer(kind, options, {}, initialize, forward, has_state, random)
