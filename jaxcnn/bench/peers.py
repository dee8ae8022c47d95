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

import jax
import numpy as np
from tqdm import tqdm

from jaxcnn.bench.timing import Trainee, peer_trainee
from jaxcnn.geometry import Geometry, window_geometry
from jaxcnn.layer import CONV_KINDS, Layer, Shape


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
    """PyTorch's optimizer of kind `name` (a key of `jaxcnn.optim.OPTIMIZERS`) at a constant
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


def layer_geometry(layer: Layer, shape: Shape) -> Geometry:
    """A conv or pool layer's window over NHWC `shape`, from its options, for a twin to copy."""
    o = layer.options
    if layer.kind in CONV_KINDS:
        return window_geometry(
            shape[1:3], o["kernel_size"], o.get("stride", 1), o["padding"], o.get("dilation", 1)
        )
    return window_geometry(shape[1:3], o["window"], o["stride"] or o["window"], o["padding"])


def torch_model(model: Layer, input_shape: Shape):
    """The network `model` describes, as a PyTorch module taking NCHW images.

    Built from each layer's `kind` and `options`, so that a benchmark trains
    the same architecture in both frameworks; the weights are PyTorch's own.

    Args:
      model: a jaxcnn model.
      input_shape: NHWC `(n, h, w, c)` of its input.

    Raises:
      NotImplementedError: for a kind of layer without a twin.
    """
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

    import torch

    activations = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, None: nn.Identity}

    def padded(padding, module):
        (top, bottom), (left, right) = padding
        if top == bottom == left == right == 0:
            return module
        return nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), module)

    def build(layer: Layer, shape: Shape) -> tuple[nn.Module, Shape]:
        """(module, its output's NHWC shape) for `layer` on NHWC `shape`."""
        o, kind = layer.options, layer.kind
        if kind == "sequential":
            modules = {}
            for name, child in layer.children.items():
                modules[name], shape = build(child, shape)
            return nn.Sequential(OrderedDict(modules)), shape
        if kind == "residual":
            body: dict[str, nn.Module] = {}
            out = shape
            for name, child in layer.children.items():
                if name != "shortcut":
                    body[name], out = build(child, out)
            skip = layer.children.get("shortcut")
            shortcut = build(skip, shape)[0] if skip is not None else nn.Identity()
            return Residual(
                nn.Sequential(OrderedDict(body)), shortcut, activations[o["activation"]]()
            ), out
        if kind == "concat":
            built = {name: build(child, shape) for name, child in layer.children.items()}
            outs = [out for _, out in built.values()]
            out = (*outs[0][:-1], sum(s[-1] for s in outs))
            return Concat({name: module for name, (module, _) in built.items()}), out
        out = layer.initialize(jax.random.key(0), shape)[0]
        cin = shape[-1]
        if kind in CONV_KINDS:
            geom = layer_geometry(layer, shape)
            conv = nn.Conv2d(
                cin,
                o["out_channels"],
                geom.window,
                stride=geom.stride,
                dilation=geom.dilation,
                groups=o.get("groups", 1),
                bias=o["use_bias"],
            )
            module = padded(geom.padding, conv)
            if kind == "conv2d_max_pool":
                module = nn.Sequential(module, nn.MaxPool2d(o["window"]))
            if kind == "conv2d_avg_pool":
                module = nn.Sequential(
                    module, activations[o["activation"]](), nn.AvgPool2d(o["window"])
                )
            return module, out
        if kind == "dense":
            return nn.Linear(cin, o["out_features"], bias=o["use_bias"]), out
        if kind == "batch_norm":
            norm = nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d
            return norm(cin, eps=o["eps"], momentum=1 - o["momentum"]), out
        if kind == "dropout":
            return nn.Dropout(o["rate"]), out
        if kind == "max_pool2d":
            geom = layer_geometry(layer, shape)
            (top, bottom), (left, right) = geom.padding
            pad = nn.ConstantPad2d((left, right, top, bottom), float("-inf"))
            return nn.Sequential(pad, nn.MaxPool2d(geom.window, geom.stride)), out
        if kind == "avg_pool2d":
            geom = layer_geometry(layer, shape)
            (top, bottom), (left, right) = geom.padding
            if not top == bottom == left == right:
                raise NotImplementedError("no PyTorch twin for unevenly padded average pools")
            pool = nn.AvgPool2d(
                geom.window, geom.stride, padding=top, count_include_pad=o["count_include_pad"]
            )
            return pool, out
        if kind == "global_avg_pool2d":
            return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), out
        if kind == "adaptive_avg_pool2d":
            return nn.AdaptiveAvgPool2d(o["output_size"]), out
        if kind == "flatten":
            return nn.Flatten(), out
        if kind == "activation" and o["fn"] in activations:
            return activations[o["fn"]](), out
        if kind == "identity":
            return nn.Identity(), out
        raise NotImplementedError(f"no PyTorch twin for a {kind!r} layer ({o})")

    return build(model, tuple(input_shape))[0]
