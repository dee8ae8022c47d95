"""Flax's twin of a config's training: the library a JAX user would otherwise pick.

Flax is no dependency of jaxcnn: this imports it when called, and the
benchmark's `--flax` flag says so in one line where it is missing. The twin is
written as a Flax user would write it: `flax.linen` modules (`nn.Conv`,
`nn.max_pool`, `nn.Dense`, `nn.BatchNorm`), the config's steps per call
scanned in one jitted call off the CPU (one step a call on it), the same optax
optimizer and compiler options.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from jaxcnn import xla
from jaxcnn.bench.timing import Trainee, peer_trainee
from jaxcnn.data import chunk_size
from jaxcnn.nn import layers as L
from jaxcnn.nn.geometry import int_pair
from jaxcnn.nn.network import Layer, Node, Shape, walk
from jaxcnn.train.optim import build_optimizer


def flax_model(model: Layer, input_shape: Shape):
    """The network `model` describes, as a `flax.linen` module on NHWC images.

    Built from `walk(model, input_shape)` like PyTorch's twin
    (`peers.torch_model`): composites as Flax code would write them, leaves
    through `FLAX_LAYERS`. Each submodule is named by its layer's dotted path,
    so its parameters are jaxcnn's: `flax_variables(params, state)` gives the
    twin jaxcnn's weights. `__call__(x, train)` gives the logits.

    Raises:
      NotImplementedError: for a kind of layer without a twin.
    """
    import flax.linen as nn

    nodes = {node.path: node for node in walk(model, tuple(input_shape))}

    def forward(path: tuple[str, ...], layer: Layer, x, train: bool):
        """`layer` on `x`, its submodules made inside the caller's `compact`."""
        if isinstance(layer, L.Sequential):
            for name, child in layer.steps:
                x = forward((*path, name), child, x, train)
            return x
        if isinstance(layer, L.Residual):
            y = forward(path, layer.body, x, train)
            if layer.shortcut is not None:
                x = forward((*path, "shortcut"), layer.shortcut, x, train)
            return _flax_activation(layer.activation)(y + x)
        if isinstance(layer, L.Concat):
            outs = [forward((*path, n), branch, x, train) for n, branch in layer.branches]
            return jnp.concatenate(outs, axis=-1)
        make = FLAX_LAYERS.get(type(layer))
        if make is None:
            raise NotImplementedError(f"no Flax twin for a {layer.kind!r} layer ({layer})")
        return make(layer, nodes[path], ".".join(path), train)(x)

    class Twin(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool):
            return forward((), model, x, train)

    return Twin()


def flax_variables(model: Layer, input_shape: Shape, params, state) -> dict:
    """jaxcnn's `params` and `state` for `model` as its Flax twin's variables."""
    variables: dict = {"params": {}, "batch_stats": {}}
    for node in walk(model, tuple(input_shape)):
        if node.layer.children():
            continue
        name = ".".join(node.path)
        if own := node.subtree(params):
            variables["params"][name] = own
        if kept := node.subtree(state):
            variables["batch_stats"][name] = kept
    return variables


def _flax_activation(fn):
    return (lambda x: x) if fn is None else fn


def _flax_conv(layer: L.ConvLayer, node: Node, name: str, train: bool):
    import flax.linen as nn

    geom = layer.geometry(node.in_shape)
    conv = nn.Conv(
        layer.out_channels,
        geom.window,
        strides=geom.stride,
        padding=geom.padding,
        kernel_dilation=geom.dilation,
        feature_group_count=layer.strides_and_groups[2],
        use_bias=layer.use_bias,
        name=name,
    )
    if isinstance(layer, L.Conv2dMaxPool):
        window = int_pair(layer.window, "window")
        return lambda x: nn.max_pool(conv(x), window, window)
    if isinstance(layer, L.Conv2dAvgPool):
        window = int_pair(layer.window, "window")
        act = _flax_activation(layer.activation)
        return lambda x: nn.avg_pool(act(conv(x)), window, window)
    return conv


def _flax_max_pool(layer: L.MaxPool2d, node: Node, name: str, train: bool):
    import flax.linen as nn

    geom = layer.geometry(node.in_shape)
    return lambda x: nn.max_pool(x, geom.window, geom.stride, geom.padding)


def _flax_avg_pool(layer: L.AvgPool2d, node: Node, name: str, train: bool):
    import flax.linen as nn

    geom = layer.geometry(node.in_shape)
    return lambda x: nn.avg_pool(
        x, geom.window, geom.stride, geom.padding, count_include_pad=layer.count_include_pad
    )


def _flax_dense(layer: L.Dense, node: Node, name: str, train: bool):
    import flax.linen as nn

    return nn.Dense(layer.out_features, use_bias=layer.use_bias, name=name)


def _flax_batch_norm(layer: L.BatchNorm, node: Node, name: str, train: bool):
    import flax.linen as nn

    return nn.BatchNorm(
        use_running_average=not train, momentum=layer.momentum, epsilon=layer.eps, name=name
    )


def _flax_dropout(layer: L.Dropout, node: Node, name: str, train: bool):
    import flax.linen as nn

    return nn.Dropout(layer.rate, deterministic=not train, name=name)


# Each kind of leaf and its Flax twin: `(layer, its Node, name, train) -> function of x`.
FLAX_LAYERS: dict[type, Callable] = {
    L.Conv2d: _flax_conv,
    L.Conv2dMaxPool: _flax_conv,
    L.Conv2dAvgPool: _flax_conv,
    L.Dense: _flax_dense,
    L.BatchNorm: _flax_batch_norm,
    L.Dropout: _flax_dropout,
    L.MaxPool2d: _flax_max_pool,
    L.AvgPool2d: _flax_avg_pool,
    L.GlobalAvgPool2d: lambda layer, node, name, train: lambda x: x.mean(axis=(1, 2)),
    L.Flatten: lambda layer, node, name, train: lambda x: x.reshape(x.shape[0], -1),
    L.Activation: lambda layer, node, name, train: layer.fn,
    L.Identity: lambda layer, node, name, train: lambda x: x,
}


def flax_trainee(config, model: Layer, train, batch_size: int) -> Trainee:
    """`model` built and trained by Flax on the same images, as `config` trains it:
    its optimizer (`build_optimizer`), label smoothing, a permutation of the images.

    Written as a Flax user at their best would, with the config's CPU compiler
    options: off the CPU, `config.steps_per_call` steps to a jitted call, scanned
    (`jax.lax.scan`) as `train.py` runs jaxcnn's; on the CPU one step a call, as
    Flax's examples do, since XLA's CPU convs with autodiff's gradients run 4-40x
    slower inside a loop (jax-ml/jax#12868; docs/performance.md). So the ratio
    measures the layers, not the loop around them.
    """
    import flax

    shape = (batch_size, *train.images.shape[1:])
    net = flax_model(model, shape)
    images = jnp.asarray(np.asarray(train.images))
    labels = jnp.asarray(np.asarray(train.labels))
    steps_per_epoch = len(images) // batch_size
    chunk = chunk_size(steps_per_epoch, config.steps_per_call)  # as train.py runs it
    if jax.default_backend() == "cpu":
        chunk = 1  # no loop: see above
    variables = net.init(jax.random.key(0), jnp.zeros(shape, jnp.float32), train=False)
    params, stats = variables["params"], variables.get("batch_stats", {})
    optimizer = build_optimizer(config, steps_per_epoch)
    opt_state = optimizer.init(params)

    def step(carry, index_and_key):
        params, stats, opt_state = carry
        index, key = index_and_key
        x = images[index].astype(jnp.float32) / 255.0

        def loss(params):
            logits, updates = net.apply(
                {"params": params, "batch_stats": stats},
                x,
                train=True,
                rngs={"dropout": key},
                mutable=["batch_stats"],
            )
            one_hot = jax.nn.one_hot(labels[index], logits.shape[-1])
            targets = optax.smooth_labels(one_hot, config.label_smoothing)
            return optax.softmax_cross_entropy(logits, targets).mean(), updates

        (value, updates), grads = jax.value_and_grad(loss, has_aux=True)(params)
        changes, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, changes)
        return (params, updates.get("batch_stats", stats), opt_state), value

    options = {}
    if jax.default_backend() == "cpu":
        options = xla.available_options(config.cpu_compiler_options)

    @functools.partial(jax.jit, donate_argnums=0, compiler_options=options or None)
    def steps(carry, index, keys):
        if chunk == 1:
            carry, loss = step(carry, (index[0], keys[0]))
            return carry, loss[None]
        return jax.lax.scan(step, carry, (index, keys))

    order = np.asarray(jax.random.permutation(jax.random.key(1), len(images)))
    calls_index = order[: steps_per_epoch * batch_size].reshape(-1, chunk, batch_size)
    calls = itertools.count()

    def run(steps_wanted: int) -> list[float]:
        nonlocal params, stats, opt_state
        times = []
        for _ in tqdm(
            range(-(-steps_wanted // chunk)),
            desc=f"flax {config.model.name}",
            disable=None,
            leave=False,
        ):
            start = time.perf_counter()
            i = next(calls) % len(calls_index)
            keys = jax.random.split(jax.random.key(i), chunk)
            (params, stats, opt_state), losses = steps(
                (params, stats, opt_state), calls_index[i], keys
            )
            jax.block_until_ready(losses)
            times.append((time.perf_counter() - start) / chunk)
        return times

    row = {
        "framework": f"flax {flax.__version__} linen",
        "config": f"same model as {config.model.name}",
        "batch_size": batch_size,
        "steps_per_call": chunk,
    }
    return peer_trainee(row, run, steps_per_epoch, chunk)
