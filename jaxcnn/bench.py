"""Benchmarks: `python -m jaxcnn.bench conv` and `python -m jaxcnn.bench lenet`.

`conv` times the naive `corr2d` loops, `conv2d_patches`, `conv2d` and
`conv2d_auto`, eager and jitted, over a sweep from the lecture's 3x3 toy to
compute-bound shapes; on CPU, `conv2d` and `conv2d_auto` jitted without XLA's
YNNPACK fusions too (`jaxcnn.xla.YNN_OFF`), and with `--torch` PyTorch's
`conv2d` on the same data as a peer. It reports median time after warm-up, compile time
apart, GFLOP/s, the fraction of this machine's sgemm GFLOP/s (measured just
before and after each case, since the load of a shared machine drifts during a
run, and the higher of the two taken, so that a dip cannot inflate it) and
the speed-up of each over the naive loops, and writes
`conv.json`, `conv.md` and PNG plots to `--out`.

`lenet` measures steady-state training throughput (img/s, batch 256 by
default), compile time and time per epoch for the LeNet configs on their real
data, on each data-parallel device count of `--devices`, and with `--torch`
the same model trained by PyTorch eager in the same run, the runs taking turns
of 10 steps, so the ratio is measured side by side, turn by turn. `--set KEY=VALUE` overrides config keys (a model's
widths or conv implementation) and `--steps-per-call` times several values.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import itertools
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

import jaxcnn
from jaxcnn import malloc, parallel, xla

if TYPE_CHECKING:
    import ml_collections

# (batch, image size, in channels, out channels, kernel size); padding 'SAME', stride 1.
FULL_SWEEP = [
    (1, 3, 1, 1, 2),  # the lecture's example
    (1, 8, 1, 1, 3),
    (1, 16, 1, 1, 3),
    (1, 32, 1, 1, 5),
    (256, 28, 1, 6, 5),  # LeNet conv1
    (256, 14, 6, 16, 5),  # LeNet conv2
    (64, 32, 32, 64, 3),
    (32, 32, 128, 128, 3),  # compute-bound
    (16, 56, 64, 64, 3),
]
QUICK_SWEEP = [(1, 3, 1, 1, 2), (1, 8, 1, 1, 3), (8, 14, 6, 16, 5)]
NAIVE_MAX_SIZE = 16  # eager corr2d dispatches one op per pixel: keep it small
TURN_STEPS = 10  # timed steps in each run's turn (`time_in_turns`)


def time_calls(fn: Callable, *args, repeats: int) -> float:
    """Median seconds of `repeats` calls after one untimed call, waiting for each result."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compile_timed(fn: Callable, *args) -> tuple[Callable, float]:
    """A `jax.jit` function compiled ahead of time for `args`, and the seconds that took."""
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, time.perf_counter() - start


def sgemm_gflops(n: int = 2048, repeats: int = 10) -> float:
    """This machine's float32 matrix-multiply rate, for scale."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n), np.float32))
    seconds = time_calls(jax.jit(jnp.matmul), a, a, repeats=repeats)
    return 2 * n**3 / seconds / 1e9


def conv_implementations(
    case, ynn_off: Mapping[str, object] | None = None
) -> dict[str, tuple[Callable, bool]]:
    """name -> (fn(kernel, x), jitted?) for one sweep case.

    With `ynn_off` (`jaxcnn.xla.YNN_OFF` where this XLA has it), `lax` and
    `auto` are also jitted with those compile options.
    """
    batch, size, cin, cout, k = case

    def layer(conv):
        return lambda kernel, x: conv({"kernel": kernel}, x, padding="SAME")

    impls = {}
    if batch == cin == cout == 1 and size <= NAIVE_MAX_SIZE:
        pad = ((k - 1) // 2, k // 2)  # SAME for stride 1, as the layers pad

        def naive(kernel, x):
            return jaxcnn.corr2d(jnp.pad(x[0, :, :, 0], (pad, pad)), kernel[:, :, 0, 0])

        impls["corr2d (naive loops)"] = (naive, False)
        impls["corr2d jit"] = (jax.jit(naive), True)
    for name, conv in (
        ("patches", jaxcnn.conv2d_patches),
        ("lax", jaxcnn.conv2d),
        ("auto", jaxcnn.conv2d_auto),
    ):
        impls[f"{name} eager"] = (layer(conv), False)
        impls[f"{name} jit"] = (jax.jit(layer(conv)), True)
        if ynn_off and name != "patches":  # XLA's conv is what they change
            impls[f"{name} jit, YNN off"] = (jax.jit(layer(conv), compiler_options=ynn_off), True)
    return impls


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


def time_conv_case(
    case: tuple[int, int, int, int, int],
    rng: np.random.Generator,
    repeats: int,
    bar: tqdm,
    ynn_off: Mapping[str, object],
    with_torch: bool = False,
) -> list[dict]:
    """One row per implementation of `conv_implementations(case, ynn_off)`, on random
    data, and with `with_torch` one for `torch_conv` on the same data."""
    batch, size, cin, cout, k = case
    x_np = rng.standard_normal((batch, size, size, cin), np.float32)
    kernel_np = rng.standard_normal((k, k, cin, cout), np.float32)
    x, kernel = jnp.asarray(x_np), jnp.asarray(kernel_np)
    flops = 2 * batch * size * size * cout * k * k * cin
    eager_repeats = max(3, repeats // 4)  # jaxcnn's eager calls dispatch op by op: slow
    timed = {  # name -> (fn, its arguments, jitted?, repeats)
        name: (fn, (kernel, x), jitted, repeats if jitted else eager_repeats)
        for name, (fn, jitted) in conv_implementations(case, ynn_off).items()
    }
    if with_torch:
        import torch

        timed[f"torch {torch.__version__} eager"] = (
            torch_conv(kernel_np, x_np),
            (),
            False,
            repeats,
        )
    rows, naive_s = [], None
    for name, (fn, args, jitted, count) in timed.items():
        compile_s = None
        if jitted:
            fn, compile_s = compile_timed(fn, *args)
        seconds = time_calls(fn, *args, repeats=count)
        if name.startswith("corr2d (naive"):
            naive_s = seconds
        rows.append(
            {
                "batch": batch,
                "size": size,
                "in_channels": cin,
                "out_channels": cout,
                "kernel": k,
                "impl": name,
                "jit": jitted,
                "median_s": seconds,
                "compile_s": compile_s,
                "gflops": flops / seconds / 1e9,
                "speedup_vs_naive": naive_s / seconds if naive_s else None,
            }
        )
        bar.update()
    return rows


def bench_conv(quick: bool, out: Path, repeats: int, with_torch: bool = False) -> dict:
    sweep = QUICK_SWEEP if quick else FULL_SWEEP
    gemm_size = 1024 if quick else 2048
    rng = np.random.default_rng(0)
    results, gemms = [], []
    ynn_off = xla.available_options(xla.YNN_OFF) if jax.default_backend() == "cpu" else {}
    total = sum(len(conv_implementations(case, ynn_off)) + with_torch for case in sweep)
    with tqdm(total=total, desc="conv", disable=None) as bar:
        for case in sweep:
            before = sgemm_gflops(gemm_size)
            rows = time_conv_case(case, rng, repeats, bar, ynn_off, with_torch)
            samples = [before, sgemm_gflops(gemm_size)]
            gemms.append(gemm := max(samples))
            for row in rows:
                row.update(sgemm_gflops=gemm, sgemm_samples=samples)
                row["sgemm_fraction"] = row["gflops"] / row["sgemm_gflops"]
            results.extend(rows)
    report = {
        "device": device_name(),
        "sgemm_gflops": statistics.median(gemms),  # each row has its case's own
        "mode": "quick" if quick else "full",
        "results": results,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "conv.json").write_text(json.dumps(report, indent=2))
    (out / "conv.md").write_text(conv_table(report))
    plot_conv(report, out)
    return report


def conv_table(report: dict) -> str:
    lines = [
        f"Device: {report['device']}; sgemm {_gemm_range(report)} GFLOP/s, measured before and "
        "after each case in the same run (each row's fraction is of the higher of its case's two)",
        "",
        "| batch x size, cin->cout, k | impl | median ms | compile ms | GFLOP/s | of sgemm | vs naive |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        shape = f"{r['batch']}x{r['size']}², {r['in_channels']}->{r['out_channels']}, {r['kernel']}"
        compile_ms = f"{r['compile_s'] * 1e3:.0f}" if r["compile_s"] is not None else ""
        speedup = f"{r['speedup_vs_naive']:.0f}x" if r["speedup_vs_naive"] else ""
        lines.append(
            f"| {shape} | {r['impl']} | {r['median_s'] * 1e3:.3f} | {compile_ms} | {r['gflops']:.2f} | "
            f"{r['sgemm_fraction']:.1%} | {speedup} |"
        )
    return "\n".join(lines) + "\n"


def _gemm_range(report: dict) -> str:
    gemms = [r["sgemm_gflops"] for r in report["results"]]
    low, high = round(min(gemms)), round(max(gemms))
    return f"{low}" if low == high else f"{low}-{high}"


def plot_conv(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    fig, ax = plt.subplots(figsize=(8, 5))
    for impl in impls:
        mine = [r for r in rows if r["impl"] == impl]
        work = [
            2
            * r["batch"]
            * r["size"] ** 2
            * r["out_channels"]
            * r["kernel"] ** 2
            * r["in_channels"]
            for r in mine
        ]
        ax.loglog(work, [r["median_s"] for r in mine], "o-", label=impl)
    ax.set(
        xlabel="FLOPs per call",
        ylabel="median seconds",
        title=f"conv time vs size ({report['device']})",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "conv_time.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 5))
    cases = list(
        dict.fromkeys(
            (r["batch"], r["size"], r["in_channels"], r["out_channels"], r["kernel"]) for r in rows
        )
    )
    width = 0.8 / len(impls)
    for i, impl in enumerate(impls):
        values = {
            (r["batch"], r["size"], r["in_channels"], r["out_channels"], r["kernel"]): r["gflops"]
            for r in rows
            if r["impl"] == impl
        }
        ax.bar(
            [j + i * width for j in range(len(cases))],
            [values.get(c, 0) for c in cases],
            width,
            label=impl,
        )
    ax.axhline(report["sgemm_gflops"], color="k", ls="--", label="sgemm (median)")
    ax.set_xticks(
        [j + 0.4 for j in range(len(cases))],
        [f"{b}x{s}²\n{ci}->{co} k{k}" for b, s, ci, co, k in cases],
        fontsize=7,
    )
    ax.set(ylabel="GFLOP/s", yscale="log", title="conv GFLOP/s per implementation")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "conv_gflops.png", dpi=100)
    plt.close(fig)


def device_name() -> str:
    """What the figures were measured on: the accelerator's kind, or the CPU's model and cores.

    On CPU, e.g. `cpu (AMD EPYC, 2 cores, 1 XLA device(s))`: the cores this
    process may run on, and the XLA devices they are split into.
    """
    device = jax.devices()[0]
    if device.platform != "cpu":
        return f"{device.platform} ({device.device_kind})"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"cpu ({cpu_model()}, {cores} cores, {jax.device_count()} XLA device(s))"


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name as Linux reports it, else what `platform` knows (`x86_64`)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench_lenet(
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
    from jaxcnn import training

    rows = []
    for path, config in configs.items():
        config.batch_size = batch_size
        config.augment = ""  # the same work as PyTorch's peer, which does not augment
        train, _, num_classes = training.load_data(config)  # once for all device counts
        trainees = []
        for num_devices, chunk in itertools.product(
            devices, steps_per_call or (config.steps_per_call,)
        ):
            variant = config.copy_and_resolve_references()
            variant.num_devices, variant.steps_per_call = num_devices, chunk
            trainees.append(jax_lenet(variant, train, num_classes, path))
        if with_torch:
            trainees.append(torch_lenet(config, train, batch_size))
        turn_s = time_in_turns([t.run for t in trainees], steps)
        config_rows = [t.result(turns) for t, turns in zip(trainees, turn_s)]
        if with_torch:
            config_rows[-1]["jax_speedup"] = paired_speedup(turn_s[0], turn_s[-1])
        rows.extend(config_rows)
    report = {"device": device_name(), "overrides": list(overrides), "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "lenet.json").write_text(json.dumps(report, indent=2))
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
    (out / "lenet.md").write_text("\n".join(lines) + "\n")
    return report


@dataclasses.dataclass
class Trainee:
    """A training run ready to time, and what its report row says about it.

    `run(n)` trains `n` or more steps and returns seconds per step, one entry
    per call (a jitted call runs several steps).
    """

    row: dict
    run: Callable[[int], list[float]]
    first_call_s: float  # the first call, `steps_in_first_call` steps and compiling
    steps_in_first_call: int
    steps_per_epoch: int

    def result(self, turn_s: list[float]) -> dict:
        """The report's row, from seconds per step in each turn (`time_in_turns`)."""
        step_s = statistics.median(turn_s)
        return {
            **self.row,
            "images_per_s": self.row["batch_size"] / step_s,
            "median_step_s": step_s,
            "compile_s": self.first_call_s - self.steps_in_first_call * step_s,
            "epoch_s": self.steps_per_epoch * step_s,
            "turn_step_s": turn_s,
        }


def time_in_turns(
    runs: Sequence[Callable[[int], list[float]]], steps: int, turn_steps: int = TURN_STEPS
) -> list[list[float]]:
    """Seconds per step of each of `runs` in each turn, the runs taking turns.

    Each first trains `steps` untimed steps (a process's first few dozen steps
    can run 1.5x slower); then they take `ceil(steps / turn_steps)` turns of
    `turn_steps` timed steps each (a run whose calls hold more steps runs
    whole calls), after one untimed step in every turn, since the other runs'
    threads may still be spinning on the cores. A turn's figure is its timed
    steps' total time over their number. The runs' figures for one turn are
    taken within a second of each other, so the shared machine's drifting
    load weighs on all of them alike (see `paired_speedup`).
    """
    for run in runs:
        run(steps)
    times = [[] for _ in runs]
    for _ in range(-(-steps // turn_steps)):
        for run, timed in zip(runs, times):
            run(1)
            timed.append(statistics.fmean(run(turn_steps)))
    return times


def paired_speedup(ours: Sequence[float], theirs: Sequence[float]) -> float:
    """How many times faster `ours` ran than `theirs`: the median over turns of
    `theirs[i] / ours[i]`, seconds per step in turn `i` (`time_in_turns`).

    Each turn's ratio compares runs timed side by side, so a rise in the
    machine's load that lasts a turn or two moves both of its figures and
    leaves the ratio alone; the ratio of the two runs' median step times
    would take each median from whichever turns fell in the middle.
    """
    if len(ours) != len(theirs) or not ours:
        raise ValueError(f"need one time per turn for both runs, got {len(ours)} and {len(theirs)}")
    return statistics.median(b / a for a, b in zip(ours, theirs))


def jax_lenet(config, train, num_classes: int, name: str) -> Trainee:
    """`config` on its `num_devices`, its steps run as `train.py` runs them.

    `steps_per_call` steps to a jitted call (rounded to divide the epoch); a
    step's time is its call's over the steps in it.
    """
    from jaxcnn import data, training

    batch_size = config.batch_size
    steps_per_epoch = training.full_batches(config, train.images.shape[0])
    chunk = training.chunk_size(steps_per_epoch, config.steps_per_call)  # as train.py runs it
    trainer, state = training.create_trainer(config, train, num_classes, steps_per_epoch)
    images, labels = trainer.replicate(train)
    index = np.asarray(data.epoch_batches(jax.random.key(1), train.images.shape[0], batch_size))
    index = [trainer.shard_batches(call) for call in index.reshape(-1, chunk, batch_size)]
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


def torch_lenet(config, train, batch_size: int) -> Trainee:
    """The same LeNet (layers, widths, Adam) trained by PyTorch eager on the same images."""
    import torch
    from torch import nn

    m = config.model
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


def override(config, setting: str) -> None:
    """Sets `KEY=VALUE` in `config`: a dotted key that exists, a Python literal or a bare string.

    Raises:
      ValueError: if `setting` is not `KEY=VALUE` or the key is not in `config`.
      TypeError: if the value's type does not fit the key's.
    """
    key, sep, text = setting.partition("=")
    if not sep or not key:
        raise ValueError(f"`--set` takes KEY=VALUE, got {setting!r}")
    node = config
    for part in key.split("."):
        if not hasattr(node, "keys") or part not in node:
            raise ValueError(f"`--set {setting}`: the config has no key {key!r}")
        node = node[part]
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text  # a bare word, such as lax
    config.update_from_flattened_dict({key: value})


def load_config(path: str):
    """Runs `get_config()` from a config file, as train.py's --config does.

    A config in a package (a folder with `__init__.py`, as `configs/` is) may
    import its siblings through it, `from configs import lenet_d2l`, whatever
    the working directory: the package's parent joins `sys.path`, as the
    script's folder does for train.py.

    Raises:
      FileNotFoundError: if there is no file at `path`.
    """
    import importlib.util

    folder = Path(path).resolve().parent
    if (folder / "__init__.py").is_file() and str(folder.parent) not in sys.path:
        sys.path.append(str(folder.parent))
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m jaxcnn.bench", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="bench", required=True)
    conv = sub.add_parser("conv", help="jitted against naive convolution")
    conv.add_argument("--quick", action="store_true", help="a small sweep (for tests)")
    conv.add_argument("--repeats", type=int, default=20)
    conv.add_argument(
        "--torch", action="store_true", help="also time PyTorch's conv2d on the same data"
    )
    conv.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    lenet = sub.add_parser("lenet", help="LeNet training throughput")
    lenet.add_argument("--configs", nargs="+", default=["configs/lenet.py", "configs/lenet_d2l.py"])
    lenet.add_argument("--batch-size", type=int, default=256)
    lenet.add_argument(
        "--steps", type=int, default=50, help="steps to time, run as train.py runs them"
    )
    lenet.add_argument(
        "--torch", action="store_true", help="also train the same model with PyTorch eager"
    )
    lenet.add_argument(
        "--devices",
        type=int,
        nargs="+",
        default=[1],
        help="data-parallel device counts to train each config on; on CPU the host is split "
        "into the largest (PyTorch's ratio is taken against the first)",
    )
    lenet.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of every config, e.g. model.conv_impl=lax or "
        "'model.channels=(32, 64)'; repeatable",
    )
    lenet.add_argument(
        "--steps-per-call",
        type=int,
        nargs="+",
        default=[],
        help="steps per jitted call to time, each in turn (default: the config's)",
    )
    lenet.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out must be a folder, got the file {args.out}")
    if args.torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            parser.error("--torch needs PyTorch, which is not installed: pip install torch")
    malloc.retain_freed_memory()
    if args.bench == "conv":
        if args.repeats < 1:
            parser.error("--repeats must be >= 1")
        print(conv_table(bench_conv(args.quick, args.out, args.repeats, args.torch)))
    else:
        from jaxcnn import data, training

        if min(args.steps, args.batch_size, *args.devices, *args.steps_per_call) < 1:
            parser.error("--steps, --batch-size, --devices and --steps-per-call must be >= 1")
        missing = [path for path in args.configs if not Path(path).is_file()]
        if missing:
            parser.error(
                f"--configs: no such file {missing[0]} (the default configs/*.py are "
                "the repository's: run from its root, or give their paths)"
            )
        configs = {path: load_config(path) for path in args.configs}
        fixed = {"batch_size": "give --batch-size", "augment": "the benchmark trains unaugmented"}
        for setting in args.set:
            key = setting.partition("=")[0]
            if key in fixed:
                parser.error(f"--set {setting}: {fixed[key]}")
        for (path, config), setting in itertools.product(configs.items(), args.set):
            try:
                override(config, setting)
            except (ValueError, TypeError) as e:
                parser.error(f"{path}: {e}")
        for path, config in configs.items():
            try:
                training.check_config(config)
            except training.ConfigError as e:
                parser.error(f"{path}: {e}")
        try:
            parallel.use_cpu_devices(max(args.devices))
        except ValueError:
            pass  # JAX already running (called from Python): use the devices it has
        try:
            report = bench_lenet(
                configs,
                args.batch_size,
                args.steps,
                args.torch,
                args.out,
                tuple(args.devices),
                tuple(args.set),
                tuple(args.steps_per_call),
            )
        except (training.ConfigError, data.DataError) as e:
            parser.error(str(e))
        print((args.out / "lenet.md").read_text())
        print(
            json.dumps(
                [{k: r[k] for k in ("framework", "config", "images_per_s")} for r in report["rows"]]
            )
        )


if __name__ == "__main__":
    main()
