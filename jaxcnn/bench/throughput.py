"""`python -m jaxcnn.bench train`: training throughput of configs, side by side with PyTorch.

It measures steady-state training throughput (img/s, batch 256 by default),
compile time and time per epoch for configs on their real data, on each
data-parallel device count of `--devices`, and with `--torch` the same model
trained by PyTorch eager in the same run, the runs taking turns of
`TURN_STEPS` steps, so the ratio is measured side by side, turn by turn;
`--torch-compile` and `--flax` add `torch.compile`'s and Flax's twins. With
`--seeds`, it times K models trained as one vmapped step against one (report
`seeds.json`; `seeds_ratio`).
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from jaxcnn import data
from jaxcnn.bench.flax_peer import flax_trainee
from jaxcnn.bench.machine import made_with, provenance
from jaxcnn.bench.peers import torch_trainee
from jaxcnn.bench.timing import Trainee, paired_speedup, time_in_turns
from jaxcnn.train import trainer as trainer_lib
from jaxcnn.train.config import full_batches

RESULT = "train"  # the report's files: train.json, train.md
SEEDS_RESULT = "seeds"  # with several seed counts: seeds.json, seeds.md


def bench_training(
    configs: Mapping[str, ml_collections.ConfigDict],
    batch_size: int,
    steps: int,
    with_torch: bool,
    out: Path,
    devices: tuple[int, ...] = (1,),
    overrides: tuple[str, ...] = (),
    steps_per_call: tuple[int, ...] = (),
    seeds: tuple[int, ...] = (),
    with_torch_compile: bool = False,
    with_flax: bool = False,
) -> dict:
    """Training img/s of each config on each data-parallel device count, and its peers'.

    `configs` maps each config file to its config, the `KEY=VALUE` settings of
    `overrides` already applied (see `override`; they are recorded in the
    report); `steps_per_call` and `seeds` (`num_seeds`), if given, replace the
    configs' own, each in turn, and with `seeds` the report is `SEEDS_RESULT`'s.
    A row's img/s counts every seed's images. Augmentation is off: the numbers
    compare the model's training step alone. A config's runs and its peers
    take turns (`time_in_turns`), so that the machine's drifting load weighs on
    all of them alike: a row's step time is the median of its turns', and a
    peer's ratio the median of the per-turn ratios against the config's first
    run (`paired_speedup`).
    """
    rows = []
    for path, config in configs.items():
        began = time.perf_counter()
        config.batch_size = batch_size
        config.augment = ""  # the same work as PyTorch's peer, which does not augment
        train, _, info = data.load(config)  # once for all device counts
        trainees = []
        for num_devices, chunk, num_seeds in itertools.product(
            devices, steps_per_call or (config.steps_per_call,), seeds or (config.num_seeds,)
        ):
            variant = config.copy_and_resolve_references()
            variant.num_devices, variant.steps_per_call = num_devices, chunk
            variant.num_seeds = num_seeds
            trainees.append(jax_trainee(variant, train, info, path))
        model = trainer_lib.build_model(config, info.num_classes)
        compiled = [c for c, wanted in ((False, with_torch), (True, with_torch_compile)) if wanted]
        peers = [torch_trainee(config, model, train, batch_size, c) for c in compiled]
        if with_flax:
            peers.append(flax_trainee(config, model, train, batch_size))
        turn_s = time_in_turns([t.run for t in trainees + peers], steps)
        config_rows = [t.result(turns) for t, turns in zip(trainees + peers, turn_s)]
        for i in range(len(trainees), len(config_rows)):  # each peer against jaxcnn's first
            config_rows[i]["jax_speedup"] = paired_speedup(turn_s[0], turn_s[i])
        rows.extend(config_rows)
        timed = ", ".join(f"{r['framework']} {r['images_per_s']:,.0f}" for r in config_rows)
        # A long benchmark says how far it has come (on stderr: stdout is the report).
        print(f"{path}: {timed} img/s ({time.perf_counter() - began:.0f} s)", file=sys.stderr)
    report = {**provenance(), "overrides": list(overrides), "rows": rows}
    name = SEEDS_RESULT if seeds else RESULT
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=2))
    (out / f"{name}.md").write_text(training_table(report))
    return report


def training_table(report: dict) -> str:
    """A `bench train` report as a Markdown table."""
    overrides = report["overrides"]
    lines = [
        f"Device: {report['device']}{made_with(report)}",
        *([f"Overrides: {', '.join(overrides)}"] if overrides else []),
        "",
        "| framework | config | devices | seeds | steps/call | batch | img/s | step ms | compile s | epoch s | jaxcnn / this |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        speedup = f"{r['jax_speedup']:.2f}x" if "jax_speedup" in r else ""
        lines.append(
            f"| {r['framework']} | {r['config']} | {r.get('devices', '')} | {r.get('seeds', '')} | {r.get('steps_per_call', '')} | {r['batch_size']} | {r['images_per_s']:,.0f} | {r['median_step_s'] * 1e3:.1f} | {r['compile_s']:.2f} | {r['epoch_s']:.1f} | {speedup} |"
        )
    return "\n".join(lines) + "\n"


def seeds_ratio(report: dict) -> tuple[int, float] | None:
    """`(K, ratio)`: how many times longer a step of K seeds took than one seed's,
    from a `--seeds 1 K` report's first two rows, the median over their turns
    (K runs one after another would take K times as long)."""
    rows = [r for r in report["rows"] if r["framework"] == "jax"]
    if len(rows) < 2 or rows[0].get("seeds") != 1:
        return None
    return rows[1]["seeds"], paired_speedup(rows[0]["turn_step_s"], rows[1]["turn_step_s"])


def jax_trainee(config, train, info: data.DataInfo, name: str) -> Trainee:
    """`config` on its `num_devices`, its steps run as `train.py` runs them.

    `steps_per_call` steps to a jitted call (rounded to divide the epoch); a
    step's time is its call's over the steps in it.
    """
    batch_size = config.batch_size
    steps_per_epoch = full_batches(config, train.images.shape[0])
    chunk = data.chunk_size(steps_per_epoch, config.steps_per_call)  # as train.py runs it
    trainer, state = trainer_lib.create_trainer(config, info, steps_per_epoch)
    images, labels = trainer.replicate(train)
    seeds = config.num_seeds
    orders = np.stack(  # each seed's own order, (seeds, calls, chunk, batch)
        [data.epoch_batches(1 + k, 1, train.images.shape[0], batch_size) for k in range(seeds)]
    ).reshape(seeds, -1, chunk, batch_size)
    calls_index = orders[0] if seeds == 1 else orders.swapaxes(0, 1)
    index = [trainer.shard_batches(call) for call in calls_index]
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
        "seeds": seeds,
    }
    return Trainee(row, run, time.perf_counter() - start, chunk, steps_per_epoch)
