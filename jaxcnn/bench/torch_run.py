"""A whole PyTorch training run of a config, as `train.py` would run it: the peer of `bench runs`.

    python -m jaxcnn.bench.torch_run --config configs/resnet.py --out run.jsonl [--set KEY=VALUE]

Trains the PyTorch twin of the config's model (`peers.torch_model`, the same
layers built from the same description) on the same prepared data with the
config's own recipe: normalisation, batch size, epochs, optimizer with its
weight decay and momentum, learning-rate schedule (optax's, step by step),
augmentation (flips and crops, drawn per example), label smoothing and
test-time flips and shifts. What PyTorch lacks is named in the first JSON line's
`recipe` and refused where it would change the result: schedule-free AdamW
runs as AdamW over the config's schedule; mixing, cutout, `ema_decay` and a
`validation_fraction` are refused. It writes one JSON line per epoch with
`elapsed_s`, the seconds since the process started, and `test_accuracy` where
it scored the test split (`eval_every_epochs`, as `train.py`)
(less the time spent importing JAX and building the model through jaxcnn,
which a PyTorch script would not spend; loading the prepared arrays counts),
so that time to an accuracy compares with jaxcnn's whole process.
`--compile` trains `torch.compile`'s version of the model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import psutil

# Augmentation operations the twin draws as jaxcnn does (`jaxcnn.train.augment`), by name.
TORCH_AUGMENT = ("flip", "crop", "reflect_crop")


def recipe(config) -> str:
    """The twin's recipe in words, as its row in a results table says it.

    Raises:
      ValueError: for a part of the config's recipe the twin does not follow.
    """
    from jaxcnn.train.augment import parse

    missing = [name for name, _ in parse(config.augment) if name not in TORCH_AUGMENT]
    unfollowed = [
        *([f"augment {missing}"] if missing else []),
        *([f"ema_decay {config.ema_decay}"] if config.ema_decay else []),
        # It would train on the held-out examples too.
        *(
            [f"validation_fraction {config.validation_fraction}"]
            if config.validation_fraction
            else []
        ),
    ]
    if unfollowed:
        raise ValueError(f"the PyTorch twin does not train with {unfollowed[0]}")
    optimizer = config.optimizer
    if optimizer == "schedule_free_adamw":  # PyTorch has no schedule-free optimizer
        optimizer = "adamw (for schedule_free_adamw)"
    parts = [
        f"{optimizer} {config.learning_rate:g} {config.schedule}",
        f"batch {config.batch_size}",
        f"augment '{config.augment}'" if config.augment else "",
        f"smoothing {config.label_smoothing:g}" if config.label_smoothing else "",
        "test-time flip" if config.test_time_flip else "",
        f"test-time shift {config.test_time_shift}" if config.test_time_shift else "",
    ]
    return "the config's recipe: " + ", ".join(p for p in parts if p)


def augment(x, spec: str, generator):
    """NCHW `x` with `spec`'s flips and crops (`jaxcnn.train.augment`'s), each example its own draw."""
    import torch
    from torch.nn import functional

    from jaxcnn.train.augment import crop_padding, parse

    n, _, h, w = x.shape
    for name, size in parse(spec):
        if name == "flip":
            flip = torch.rand(n, generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        else:  # a shift of up to `pad` pixels, the border zero (the mean) or reflected
            pad = crop_padding(int(size), h)
            mode = "reflect" if name == "reflect_crop" else "constant"
            padded = functional.pad(x, (pad, pad, pad, pad), mode=mode)
            top, left = torch.randint(0, 2 * pad + 1, (2, n), generator=generator)
            rows = (top[:, None] + torch.arange(h))[:, :, None]
            cols = (left[:, None] + torch.arange(w))[:, None, :]
            x = padded[torch.arange(n)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    return x.contiguous(memory_format=torch.channels_last)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jaxcnn.bench.torch_run")
    parser.add_argument("--config", required=True)
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="as train.py's --config.KEY"
    )
    parser.add_argument("--compile", action="store_true", help="train torch.compile's model")
    parser.add_argument("--out", required=True, help="where the JSON lines go")
    args = parser.parse_args(argv)

    import torch
    from torch import nn

    # A PyTorch script would not import JAX, nor build its model through jaxcnn's
    # description, nor ask optax for its schedule: that time is left out of `elapsed_s`.
    borrowed = time.perf_counter()
    import jax
    import jax.numpy as jnp

    from jaxcnn import data
    from jaxcnn.bench.peers import torch_model, torch_optimizer
    from jaxcnn.errors import JaxcnnError
    from jaxcnn.train import config as config_lib
    from jaxcnn.train.optim import learning_rates
    from jaxcnn.train.trainer import build_model

    try:
        config = config_lib.load(args.config)
        for setting in args.set:
            config_lib.override(config, setting)
        config_lib.check(config)
        described = recipe(config)
    except (JaxcnnError, ValueError) as e:
        sys.exit(f"torch_run: {e}")
    train, test, info = data.load(config)
    batch, epochs = config.batch_size, config.num_epochs
    steps_per_epoch = config_lib.full_batches(config, len(train.labels))
    total = epochs * steps_per_epoch
    rates = learning_rates(config, steps_per_epoch)
    rates = np.asarray(jax.vmap(rates)(jnp.arange(total)), np.float64)
    net = torch_model(build_model(config, info.num_classes), (1, *info.image_shape))
    net = net.to(memory_format=torch.channels_last)
    borrowed = time.perf_counter() - borrowed
    process_start = psutil.Process().create_time() + borrowed
    opt = torch_optimizer(config.optimizer, net.parameters(), float(rates[0]), config)
    model = torch.compile(net) if args.compile else net
    mean = torch.tensor(info.mean).view(1, -1, 1, 1)
    std = torch.tensor(info.std).view(1, -1, 1, 1)

    def tensors(split: data.Split):
        # A copy: the prepared images are a read-only memory map, which PyTorch warns about.
        x = torch.from_numpy(np.array(split.images)).permute(0, 3, 1, 2).float().div(255)
        x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
        return x, torch.from_numpy(np.array(split.labels)).long()

    def logits(x):  # as `trainer.test_views`: shifts, then mirror images, zeros shifted in
        views, shift = [x], config.test_time_shift
        if shift:
            h, w = x.shape[2:]
            padded = nn.functional.pad(x, (shift, shift, shift, shift))
            views += [padded[..., :h, :w], padded[..., 2 * shift :, 2 * shift :]]
        if config.test_time_flip:
            views += [v.flip(3) for v in views]
        return sum(model(v) for v in views) / len(views)

    (x_train, y_train), (x_test, y_test) = tensors(train), tensors(test)
    generator = torch.Generator().manual_seed(config.seed)
    step = 0
    with open(args.out, "w") as out:
        for epoch in range(1, epochs + 1):
            net.train()
            start = time.perf_counter()
            order = torch.randperm(len(x_train), generator=generator)
            for i in range(steps_per_epoch):
                idx = order[i * batch : (i + 1) * batch]
                for group in opt.param_groups:
                    group["lr"] = float(rates[step])
                opt.zero_grad()
                x = augment(x_train[idx], config.augment, generator)
                loss = nn.functional.cross_entropy(
                    model(x), y_train[idx], label_smoothing=config.label_smoothing
                )
                loss.backward()
                opt.step()
                step += 1
            epoch_s = time.perf_counter() - start
            scores = {}
            if config_lib.test_scored(config, epoch):  # as train.py scores
                net.eval()
                with torch.no_grad():
                    correct = sum(
                        int((logits(x_test[i : i + 1000]).argmax(1) == y_test[i : i + 1000]).sum())
                        for i in range(0, len(x_test), 1000)
                    )
                scores["test_accuracy"] = correct / len(x_test)
            row = {
                "epoch": epoch,
                **scores,
                "epoch_time_s": epoch_s,
                "images_per_s": steps_per_epoch * batch / epoch_s,
                "elapsed_s": time.time() - process_start,
                **({"recipe": described} if epoch == 1 else {}),
            }
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
