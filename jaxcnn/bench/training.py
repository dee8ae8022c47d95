"""`python -m jaxcnn.bench train`: training throughput of configs, side by side with PyTorch.

It measures steady-state training throughput (img/s, batch 256 by default),
compile time and time per epoch for configs on their real data, on each
data-parallel device count of `--devices`, and with `--torch` the same model
trained by PyTorch eager in the same run, the runs taking turns of
`TURN_STEPS` steps, so the ratio is measured side by side, turn by turn.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Mapping
from pathlib import Path

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from jaxcnn import data, training
from jaxcnn import trainer as trainer_lib
from jaxcnn.bench.machine import device_name
from jaxcnn.bench.peers import torch_trainee
from jaxcnn.bench.timing import Trainee, paired_speedup, time_in_turns
from jaxcnn.config import full_batches

RESULT = "train"  # the report's files: train.json, train.md


def bench_training(
    configs: Mapping[str, ml_collections.ConfigDict],
    batch_size: int,
    steps: int,
    with_torch: bool,
    out: Path,
    devices: tuple[int, ...] = (1,),
    overrides: tuple[str, ...] = (),
    steps_per_call: tuple[int, ...] = (),
) -> dict:
    """Training img/s of each config on each data-parallel device count, and PyTorch's.

    `configs` maps each config file to its config, the `KEY=VALUE` settings of
    `overrides` already applied (see `override`; they are recorded in the
    report); `steps_per_call`, if given, replaces the configs' own, each in
    turn. Augmentation is off: the numbers compare the model's training step
    alone. A config's runs (and PyTorch's peer) take turns (`time_in_turns`),
    so that the machine's drifting load weighs on all of them alike: a row's
    step time is the median of its turns', and PyTorch's ratio the median of
    the per-turn ratios against the config's first run (`paired_speedup`).
    """
    rows = []
    for path, config in configs.items():
        config.batch_size = batch_size
        config.augment = ""  # the same work as PyTorch's peer, which does not augment
        train, _, info = data.load(config)  # once for all device counts
        trainees = []
        for num_devices, chunk in itertools.product(
            devices, steps_per_call or (config.steps_per_call,)
        ):
            variant = config.copy_and_resolve_references()
            variant.num_devices, variant.steps_per_call = num_devices, chunk
            trainees.append(jax_trainee(variant, train, info, path))
        if with_torch:
            model = trainer_lib.build_model(config, info.num_classes)
            trainees.append(torch_trainee(config, model, train, batch_size))
        turn_s = time_in_turns([t.run for t in trainees], steps)
        config_rows = [t.result(turns) for t, turns in zip(trainees, turn_s)]
        if with_torch:
            config_rows[-1]["jax_speedup"] = paired_speedup(turn_s[0], turn_s[-1])
        rows.extend(config_rows)
    report = {"device": device_name(), "overrides": list(overrides), "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{RESULT}.json").write_text(json.dumps(report, indent=2))
    lines = [
        f"Device: {report['device']}",
        *([f"Overrides: {', '.join(overrides)}"] if overrides else []),
        "",
        "| framework | config | devices | steps/call | batch | img/s | step ms | compile s | epoch s | jaxcnn / this |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        speedup = f"{r['jax_speedup']:.2f}x" if "jax_speedup" in r else ""
        lines.append(
            f"| {r['framework']} | {r['config']} | {r.get('devices', '')} | {r.get('steps_per_call', '')} | {r['batch_size']} | {r['images_per_s']:,.0f} | {r['median_step_s'] * 1e3:.1f} | {r['compile_s']:.2f} | {r['epoch_s']:.1f} | {speedup} |"
        )
    (out / f"{RESULT}.md").write_text("\n".join(lines) + "\n")
    return report


def jax_trainee(config, train, info: data.DataInfo, name: str) -> Trainee:
    """`config` on its `num_devices`, its steps run as `train.py` runs them.

    `steps_per_call` steps to a jitted call (rounded to divide the epoch); a
    step's time is its call's over the steps in it.
    """
    batch_size = config.batch_size
    steps_per_epoch = full_batches(config, train.images.shape[0])
    chunk = training.chunk_size(steps_per_epoch, config.steps_per_call)  # as train.py runs it
    trainer, state = trainer_lib.create_trainer(config, info, steps_per_epoch)
    images, labels = trainer.replicate(train)
    epoch = np.asarray(data.epoch_batches(jax.random.key(1), train.images.shape[0], batch_size))
    index = [trainer.shard_batches(call) for call in epoch.reshape(-1, chunk, batch_size)]
    calls = itertools.count()

    def run(steps: int) -> list[float]:
        nonlocal state
        times = []
        for _ in tqdm(range(-(-steps // chunk)), desc=f"jax {name}", disable=None, leave=False):
            start = time.perf_counter()
            state, metrics = trainer.train_steps(
                state, images, labels, index[next(calls) % len(index)]
            )
            jax.block_until_ready(metrics)
            times.append((time.perf_counter() - start) / chunk)
        return times

    start = time.perf_counter()
    run(chunk)
    row = {
        "framework": "jax",
        "config": name,
        "model": config.model.to_dict(),
        "augment": config.augment,
        "batch_size": batch_size,
        "steps_per_call": chunk,
        "devices": trainer.mesh.size,
    }
    return Trainee(row, run, time.perf_counter() - start, chunk, steps_per_epoch)
