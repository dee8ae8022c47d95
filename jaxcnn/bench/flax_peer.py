"""Flax's twin of a config's training: the library a JAX user would otherwise pick.

Flax is no dependency of jaxcnn: this imports it when called, and the
benchmark's `--flax` flag says so in one line where it is missing. The twin is
written as a Flax user would write it: `flax.linen` modules (`nn.Conv`,
`nn.max_pool`, `nn.Dense`, `nn.BatchNorm`), a plain `jax.jit` step a call,
the same optax optimizer as the config's.
"""

from __future__ import annotations

import itertools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from jaxcnn.bench.peers import layer_geometry
from jaxcnn.bench.timing import Trainee, peer_trainee
from jaxcnn.layer import CONV_KINDS, POOLED_CONV_KINDS, Layer, Shape
from jaxcnn.optim import build_optimizer


def flax_model(model: Layer, input_shape: Shape):
    """The network `model` describes, as a `flax.linen` module on NHWC images.

    Built from each layer's `kind` and `options`, like PyTorch's twin
    (`peers.torch_model`); its `__call__(x, train)` gives the logits.

    Raises:
      NotImplementedError: for a kind of layer without a twin.
    """
    import flax.linen as nn

    activations = {"relu": nn.relu, "sigmoid": nn.sigmoid, "tanh": nn.tanh, None: lambda x: x}

    def forward(layer: Layer, x, shape: Shape, train: bool):
        """`layer` on `x` (NHWC `shape`), its submodules made inside the caller's `compact`."""
        o, kind = layer.options, layer.kind
        if kind == "sequential":
            for child in layer.children.values():
                x, shape = forward(child, x, shape, train)
            return x, shape
        if kind == "residual":
            y, out = x, shape
            for name, child in layer.children.items():
                if name != "shortcut":
                    y, out = forward(child, y, out, train)
            skip = layer.children.get("shortcut")
            shortcut = forward(skip, x, shape, train)[0] if skip is not None else x
            return activations[o["activation"]](y + shortcut), out
        if kind == "concat":
            outs = [forward(child, x, shape, train) for child in layer.children.values()]
            out = (*outs[0][1][:-1], sum(s[-1] for _, s in outs))
            return jnp.concatenate([y for y, _ in outs], axis=-1), out
        out = layer.initialize(jax.random.key(0), shape)[0]
        if kind in CONV_KINDS:
            geom = layer_geometry(layer, shape)
            x = nn.Conv(
                o["out_channels"],
                geom.window,
                strides=geom.stride,
                padding=geom.padding,
                kernel_dilation=geom.dilation,
                feature_group_count=o.get("groups", 1),
                use_bias=o["use_bias"],
            )(x)
            if kind in POOLED_CONV_KINDS:
                window = (o["window"],) * 2
                if kind == "conv2d_max_pool":
                    x = nn.max_pool(x, window, window)
                else:
                    x = nn.avg_pool(activations[o["activation"]](x), window, window)
            return x, out
        if kind == "dense":
            return nn.Dense(o["out_features"], use_bias=o["use_bias"])(x), out
        if kind == "batch_norm":
            norm = nn.BatchNorm(
                use_running_average=not train, momentum=o["momentum"], epsilon=o["eps"]
            )
            return norm(x), out
        if kind == "dropout":
            return nn.Dropout(o["rate"], deterministic=not train)(x), out
        if kind in ("max_pool2d", "avg_pool2d"):
            geom = layer_geometry(layer, shape)
            if kind == "max_pool2d":
                return nn.max_pool(x, geom.window, geom.stride, geom.padding), out
            pool = nn.avg_pool(
                x, geom.window, geom.stride, geom.padding, count_include_pad=o["count_include_pad"]
            )
            return pool, out
        if kind == "global_avg_pool2d":
            return x.mean(axis=(1, 2)), out
        if kind == "flatten":
            return x.reshape(x.shape[0], -1), out
        if kind == "activation" and o["fn"] in activations:
            return activations[o["fn"]](x), out
        if kind == "identity":
            return x, out
        raise NotImplementedError(f"no Flax twin for a {kind!r} layer ({o})")

    class Twin(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool):
            return forward(model, x, input_shape, train)[0]

    return Twin()


def flax_trainee(config, model: Layer, train, batch_size: int) -> Trainee:
    """`model` built and trained by Flax on the same images, as `config` trains it:
    its optimizer (`build_optimizer`), label smoothing, a permutation of the images."""
    import flax

    shape = (batch_size, *train.images.shape[1:])
    net = flax_model(model, shape)
    images = jnp.asarray(np.asarray(train.images))
    labels = jnp.asarray(np.asarray(train.labels))
    steps_per_epoch = len(images) // batch_size
    variables = net.init(jax.random.key(0), jnp.zeros(shape, jnp.float32), train=False)
    params, stats = variables["params"], variables.get("batch_stats", {})
    optimizer = build_optimizer(config, steps_per_epoch)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, stats, opt_state, index, key):
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

        (_, updates), grads = jax.value_and_grad(loss, has_aux=True)(params)
        changes, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, changes), updates.get("batch_stats", stats), opt_state

    order = np.asarray(jax.random.permutation(jax.random.key(1), len(images)))
    calls = itertools.count()

    def run(steps: int) -> list[float]:
        nonlocal params, stats, opt_state
        times = []
        for _ in tqdm(range(steps), desc=f"flax {config.model.name}", disable=None, leave=False):
            start = time.perf_counter()
            i = next(calls) % steps_per_epoch
            index = order[i * batch_size : (i + 1) * batch_size]
            params, stats, opt_state = step(params, stats, opt_state, index, jax.random.key(i))
            jax.block_until_ready(params)
            times.append(time.perf_counter() - start)
        return times

    row = {
        "framework": f"flax {flax.__version__} linen",
        "config": f"same model as {config.model.name}",
        "batch_size": batch_size,
    }
    return peer_trainee(row, run, steps_per_epoch)
