"""A whole PyTorch training run of a config's model, as `train.py` would run it: the peer of `bench runs`.

    python -m jaxcnn.bench.torch_run --config configs/lenet.py --epochs 10 --out run.jsonl

Trains the PyTorch twin of the config's model (`peers.torch_model`, the same
layers built from the same description) on the same prepared data, with the
same normalisation, batch size and optimizer kind at the config's learning
rate (no schedule), evaluating after every epoch; writes one JSON line per
epoch with `test_accuracy` and `elapsed_s`, the seconds since the process
started (less the time spent importing JAX and building the model through
jaxcnn, which a PyTorch script would not spend; loading the prepared arrays
counts), so that time to an accuracy compares with jaxcnn's whole process.
`--compile` trains `torch.compile`'s version of the model.
"""

from __future__ import annotations

import argparse
import json
import time

import psutil


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jaxcnn.bench.torch_run")
    parser.add_argument("--config", required=True)
    parser.add_argument("--epochs", type=int, default=0, help="default: the config's")
    parser.add_argument("--batch-size", type=int, default=0, help="default: the config's")
    parser.add_argument("--learning-rate", type=float, default=0.0, help="default: the config's")
    parser.add_argument("--optimizer", default="", help="sgd, adam or adamw; default: the config's")
    parser.add_argument("--compile", action="store_true", help="train torch.compile's model")
    parser.add_argument("--out", required=True, help="where the JSON lines go")
    args = parser.parse_args(argv)

    import torch
    from torch import nn

    # A PyTorch script would not import JAX, nor build its model through jaxcnn's
    # description: that time is left out of `elapsed_s`.
    borrowed = time.perf_counter()
    from jaxcnn import config as config_lib
    from jaxcnn import data
    from jaxcnn.bench.peers import torch_model, torch_optimizer
    from jaxcnn.trainer import build_model

    config = config_lib.load(args.config)
    train, test, info = data.load(config)
    batch = args.batch_size or config.batch_size
    epochs = args.epochs or config.num_epochs
    lr = args.learning_rate or config.learning_rate
    net = torch_model(build_model(config, info.num_classes), (1, *info.image_shape))
    net = net.to(memory_format=torch.channels_last)
    borrowed = time.perf_counter() - borrowed
    process_start = psutil.Process().create_time() + borrowed
    opt = torch_optimizer(args.optimizer or config.optimizer, net.parameters(), lr, config)
    model = torch.compile(net) if args.compile else net
    mean = torch.tensor(info.mean).view(1, -1, 1, 1)
    std = torch.tensor(info.std).view(1, -1, 1, 1)

    def tensors(split: data.Split):
        x = torch.from_numpy(split.images).permute(0, 3, 1, 2).float().div(255)
        x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
        return x, torch.from_numpy(split.labels).long()

    (x_train, y_train), (x_test, y_test) = tensors(train), tensors(test)
    generator = torch.Generator().manual_seed(config.seed)
    with open(args.out, "w") as out:
        for epoch in range(1, epochs + 1):
            net.train()
            start = time.perf_counter()
            order = torch.randperm(len(x_train), generator=generator)
            for i in range(len(x_train) // batch):
                idx = order[i * batch : (i + 1) * batch]
                opt.zero_grad()
                nn.functional.cross_entropy(model(x_train[idx]), y_train[idx]).backward()
                opt.step()
            epoch_s = time.perf_counter() - start
            net.eval()
            with torch.no_grad():
                correct = sum(
                    int((model(x_test[i : i + 1000]).argmax(1) == y_test[i : i + 1000]).sum())
                    for i in range(0, len(x_test), 1000)
                )
            row = {
                "epoch": epoch,
                "test_accuracy": correct / len(x_test),
                "epoch_time_s": epoch_s,
                "images_per_s": len(x_train) // batch * batch / epoch_s,
                "elapsed_s": time.time() - process_start,
            }
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
