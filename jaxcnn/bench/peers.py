"""PyTorch twins of jaxcnn's benchmarks: the same work, on the same data, for a side-by-side ratio.

PyTorch is no dependency of jaxcnn: these import it when called, and the
benchmark's `--torch` flag says so in one line where it is missing.
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from jaxcnn.bench.timing import Trainee


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


def torch_lenet(config, train, batch_size: int) -> Trainee:
    """The same LeNet (layers, widths) trained by PyTorch eager on the same images.

    The optimizer follows the config's kind: SGD at its learning rate for
    `sgd` (the lecture's LeNet), else Adam at 1e-3.
    """
    import torch
    from torch import nn

    m = config.model
    act: type[nn.Module]
    pool: type[nn.Module]
    if m.name == "lenet":
        (c1, c2), (h1, h2), act, pool = m.channels, m.hidden, nn.ReLU, nn.MaxPool2d
    else:
        (c1, c2), (h1, h2), act, pool = (6, 16), (120, 84), nn.Sigmoid, nn.AvgPool2d
    size = train.images.shape[1]
    flat = c2 * ((size // 2 - 4) // 2) ** 2
    net = nn.Sequential(
        nn.Conv2d(train.images.shape[-1], c1, 5, padding=2),
        act(),
        pool(2),
        nn.Conv2d(c1, c2, 5),
        act(),
        pool(2),
        nn.Flatten(),
        nn.Linear(flat, h1),
        act(),
        nn.Linear(h1, h2),
        act(),
        nn.Linear(h2, 10),
    )
    opt = (
        torch.optim.Adam(net.parameters(), lr=1e-3)
        if config.optimizer != "sgd"
        else torch.optim.SGD(net.parameters(), lr=config.learning_rate)
    )
    images = torch.from_numpy(np.asarray(train.images)).permute(0, 3, 1, 2).float().div(255)
    labels = torch.from_numpy(np.asarray(train.labels)).long()
    perm = torch.randperm(len(images))
    calls = itertools.count()

    def run(steps: int) -> list[float]:
        times = []
        for _ in tqdm(range(steps), desc=f"torch {m.name}", disable=None, leave=False):
            start = time.perf_counter()
            idx = perm[(next(calls) * batch_size) % (len(images) - batch_size) :][:batch_size]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(images[idx]), labels[idx])
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - start)
        return times

    start = time.perf_counter()
    run(1)
    row = {
        "framework": f"torch {torch.__version__} eager",
        "config": f"same model as {m.name}",
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
    }
    return Trainee(row, run, time.perf_counter() - start, 1, len(images) // batch_size)
