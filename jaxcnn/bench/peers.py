"""PyTorch twins of jaxcnn's benchmarks: the same work, on the same data, for a side-by-side ratio.

PyTorch is no dependency of jaxcnn: these import it when called, and the
benchmark's `--torch` flag says so in one line where it is missing.
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from jaxcnn.bench.timing import Trainee, peer_trainee
from jaxcnn.nn import layers as L
from jaxcnn.nn.network import Layer, Node, Shape, walk


def torch_conv(kernel: np.ndarray, x: np.ndarray) -> Callable[[], object]:
    """PyTorch's `conv2d` (eager, no autograd) of NHWC `x` with HWIO `kernel`, SAME padding.

    The tensors are made once, here, in channels-last memory (NHWC, as
    jaxcnn's), so that a call times the convolution alone: on x86 CPUs that is
    oneDNN's kernel. A call returns the `(n, c, h, w)`-shaped, channels-last
    tensor; `.permute(0, 2, 3, 1)` views it as NHWC.
    """
    import torch

    # For an even kernel PyTorch pads a copy of the input, and says so once; that is timed.
    warnings.filterwarnings("ignore", "Using padding='same' with even kernel", UserWarning)
    images = torch.from_numpy(x).permute(0, 3, 1, 2)  # a view: NHWC memory
    weights = (
        torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
    )

    def call():
        with torch.no_grad():
            return torch.nn.functional.conv2d(images, weights, padding="same")

    return call


def torch_optimizer(name: str, parameters, lr: float, config):
    """PyTorch's optimizer of kind `name` (a key of `jaxcnn.train.optim.OPTIMIZERS`) at a constant
    `lr`, with `config`'s momentum and weight decay. Schedule-free AdamW, which PyTorch
    lacks, is its AdamW: the same work per step, less two updates of averaged weights."""
    import torch

    kinds = {
        "sgd": lambda: torch.optim.SGD(
            parameters, lr=lr, momentum=config.momentum, nesterov=config.momentum > 0
        ),
        "adam": lambda: torch.optim.Adam(parameters, lr=lr),
        "adamw": lambda: torch.optim.AdamW(parameters, lr=lr, weight_decay=config.weight_decay),
    }
    kinds["schedule_free_adamw"] = kinds["adamw"]
    return kinds[name]()


def torch_trainee(config, model: Layer, train, batch_size: int, compile: bool = False) -> Trainee:
    """`model` built and trained by PyTorch on the same images, as `config` trains it:
    eager, or with `compile` through `torch.compile` (its first step compiles).

    The network is `torch_model(model, ...)`, in channels-last memory as
    PyTorch advises for CPUs; the optimizer is the config's kind at its
    learning rate (schedules cost nothing measurable and are left out), with
    its momentum, weight decay and label smoothing. Steps draw batches from
    one permutation of the training images, as jaxcnn's do.
    """
    import torch
    from torch import nn

    net = torch_model(model, (1, *train.images.shape[1:])).to(memory_format=torch.channels_last)
    forward = torch.compile(net) if compile else net
    opt = torch_optimizer(config.optimizer, net.parameters(), config.learning_rate, config)
    # A copy: the prepared images are a read-only memory map, which PyTorch warns about.
    images = torch.from_numpy(np.array(train.images)).permute(0, 3, 1, 2).float().div(255)
    images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.from_numpy(np.array(train.labels)).long()
    perm = torch.randperm(len(images))
    calls = itertools.count()
    net.train()

    def run(steps: int) -> list[float]:
        times = []
        for _ in tqdm(range(steps), desc=f"torch {config.model.name}", disable=None, leave=False):
            start = time.perf_counter()
            idx = perm[(next(calls) * batch_size) % (len(images) - batch_size) :][:batch_size]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(
                forward(images[idx]), labels[idx], label_smoothing=config.label_smoothing
            )
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - start)
        return times

    row = {
        "framework": f"torch {torch.__version__} {'compile' if compile else 'eager'}",
        "config": f"same model as {config.model.name}",
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
    }
    return peer_trainee(row, run, len(images) // batch_size)


def torch_model(model: Layer, input_shape: Shape, params=None, state=None):
    """The network `model` describes, as a PyTorch module taking NCHW images.

    Built from `walk(model, input_shape)`: each composite as PyTorch would
    write it, each leaf through `TORCH_LAYERS`, so that a benchmark trains
    the same architecture in both frameworks. With `params` (and `state`,
    for batch norm) the twin holds jaxcnn's weights and computes the same
    function; else its weights are PyTorch's own. A flatten reads the
    channels last, as jaxcnn's does.

    Args:
      model: a jaxcnn model.
      input_shape: NHWC `(n, h, w, c)` of its input.
      params, state: jaxcnn's parameters and state for `model`, or None.

    Raises:
      NotImplementedError: for a kind of layer without a twin.
    """
    import torch
    from torch import nn

    class Residual(nn.Module):
        def __init__(self, body, shortcut, activation):
            super().__init__()
            self.body, self.shortcut, self.activation = body, shortcut, activation

        def forward(self, x):
            return self.activation(self.body(x) + self.shortcut(x))

    class Concat(nn.Module):
        def __init__(self, branches):
            super().__init__()
            self.branches = nn.ModuleDict(branches)

        def forward(self, x):
            return torch.cat([branch(x) for branch in self.branches.values()], dim=1)

    nodes = {node.path: node for node in walk(model, tuple(input_shape))}
    leaves: dict[tuple[str, ...], nn.Module] = {}

    def chain(path, steps) -> nn.Module:
        return nn.Sequential(OrderedDict((n, build((*path, n), c)) for n, c in steps))

    def build(path: tuple[str, ...], layer: Layer) -> nn.Module:
        if isinstance(layer, L.Sequential):
            return chain(path, layer.steps)
        if isinstance(layer, L.Residual):
            shortcut = build((*path, "shortcut"), layer.shortcut) if layer.shortcut else None
            activation = _torch_activation(layer.activation)
            return Residual(chain(path, layer.body.steps), shortcut or nn.Identity(), activation)
        if isinstance(layer, L.Concat):
            return Concat({n: build((*path, n), c) for n, c in layer.branches})
        make = TORCH_LAYERS.get(type(layer))
        if make is None:
            raise NotImplementedError(f"no PyTorch twin for a {layer.kind!r} layer ({layer})")
        leaves[path] = make(layer, nodes[path])
        return leaves[path]

    net = build((), model)
    if params is not None:
        for path, module in leaves.items():
            _load_torch(module, nodes[path].subtree(params), nodes[path].subtree(state or {}))
    return net


def _torch_activation(fn):
    from torch import nn

    name = getattr(fn, "__name__", None) if fn is not None else None
    kinds = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, None: nn.Identity}
    if name not in kinds:
        raise NotImplementedError(f"no PyTorch twin for the activation {name!r}")
    return kinds[name]()


def _padded(padding, module, value: float = 0.0):
    from torch import nn

    (top, bottom), (left, right) = padding
    if top == bottom == left == right == 0:
        return module
    return nn.Sequential(nn.ConstantPad2d((left, right, top, bottom), value), module)


def _torch_conv(layer: L.ConvLayer, node: Node):
    from torch import nn

    geom = layer.geometry(node.in_shape)
    conv = nn.Conv2d(
        node.in_shape[-1],
        layer.out_channels,
        geom.window,
        stride=geom.stride,
        dilation=geom.dilation,
        groups=layer.strides_and_groups[2],
        bias=layer.use_bias,
    )
    module = _padded(geom.padding, conv)
    if isinstance(layer, L.Conv2dMaxPool):
        return nn.Sequential(module, nn.MaxPool2d(layer.window))
    if isinstance(layer, L.Conv2dAvgPool):
        return nn.Sequential(
            module, _torch_activation(layer.activation), nn.AvgPool2d(layer.window)
        )
    return module


def _torch_max_pool(layer: L.MaxPool2d, node: Node):
    from torch import nn

    geom = layer.geometry(node.in_shape)
    return _padded(geom.padding, nn.MaxPool2d(geom.window, geom.stride), float("-inf"))


def _torch_avg_pool(layer: L.AvgPool2d, node: Node):
    from torch import nn

    geom = layer.geometry(node.in_shape)
    (top, bottom), (left, right) = geom.padding
    if not top == bottom == left == right:
        raise NotImplementedError("no PyTorch twin for unevenly padded average pools")
    return nn.AvgPool2d(
        geom.window, geom.stride, padding=top, count_include_pad=layer.count_include_pad
    )


def _torch_batch_norm(layer: L.BatchNorm, node: Node):
    from torch import nn

    norm = nn.BatchNorm2d if len(node.in_shape) == 4 else nn.BatchNorm1d
    return norm(node.in_shape[-1], eps=layer.eps, momentum=1 - layer.momentum)


def _torch_flatten(layer: L.Flatten, node: Node):
    from torch import nn

    class ChannelsLastFlatten(nn.Module):
        """jaxcnn's flatten: NHWC order, so a dense layer after it reads the same weights."""

        def forward(self, x):
            return x.permute(0, 2, 3, 1).flatten(1) if x.dim() == 4 else x.flatten(1)

    return ChannelsLastFlatten()


def _torch_dense(layer: L.Dense, node: Node):
    from torch import nn

    return nn.Linear(node.in_shape[-1], layer.out_features, bias=layer.use_bias)


def _torch_dropout(layer: L.Dropout, node: Node):
    from torch import nn

    return nn.Dropout(layer.rate)


def _torch_global_avg_pool(layer: L.GlobalAvgPool2d, node: Node):
    from torch import nn

    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


def _torch_adaptive_avg_pool(layer: L.AdaptiveAvgPool2d, node: Node):
    from torch import nn

    return nn.AdaptiveAvgPool2d(layer.output_size)


def _torch_identity(layer: L.Identity, node: Node):
    from torch import nn

    return nn.Identity()


# Each kind of leaf and its PyTorch twin: `(layer, its Node) -> torch module`.
TORCH_LAYERS: dict[type, Callable] = {
    L.Conv2d: _torch_conv,
    L.Conv2dMaxPool: _torch_conv,
    L.Conv2dAvgPool: _torch_conv,
    L.Dense: _torch_dense,
    L.BatchNorm: _torch_batch_norm,
    L.Dropout: _torch_dropout,
    L.MaxPool2d: _torch_max_pool,
    L.AvgPool2d: _torch_avg_pool,
    L.GlobalAvgPool2d: _torch_global_avg_pool,
    L.AdaptiveAvgPool2d: _torch_adaptive_avg_pool,
    L.Flatten: _torch_flatten,
    L.Activation: lambda layer, node: _torch_activation(layer.fn),
    L.Identity: _torch_identity,
}


def _load_torch(module, params, state) -> None:
    """Copies a leaf's jaxcnn weights into its twin (HWIO -> OIHW, (in, out) -> (out, in))."""
    import torch
    from torch import nn

    def tensor(a, *perm):
        t = torch.from_numpy(np.array(a, np.float32))
        return t.permute(*perm).contiguous() if perm else t

    with torch.no_grad():
        for part in module.modules():
            if isinstance(part, nn.Conv2d):
                part.weight.copy_(tensor(params["kernel"], 3, 2, 0, 1))
            elif isinstance(part, nn.Linear):
                part.weight.copy_(tensor(params["kernel"], 1, 0))
            elif isinstance(part, nn.BatchNorm1d | nn.BatchNorm2d):
                part.weight.copy_(tensor(params["scale"]))
                part.running_mean.copy_(tensor(state["mean"]))
                part.running_var.copy_(tensor(state["var"]))
            else:
                continue
            if "bias" in params:
                part.bias.copy_(tensor(params["bias"]))
