"""`python -m jaxcnn.bench conv`: every convolution, naive to jitted, against this machine's sgemm.

It times the naive `corr2d` loops, `conv2d_patches`, `conv2d` and
`conv2d_auto`, eager and jitted, over a sweep from the lecture's 3x3 toy to
compute-bound shapes; on CPU, `conv2d` and `conv2d_auto` jitted without XLA's
YNNPACK fusions too (`jaxcnn.xla.YNN_OFF`), and with `--torch` PyTorch's
`conv2d` on the same data as a peer. It reports median time after warm-up,
compile time apart, GFLOP/s, the fraction of this machine's sgemm GFLOP/s
(measured just before and after each case, since the load of a shared machine
drifts during a run, and the higher of the two taken, so that a dip cannot
inflate it) and the speed-up of each over the naive loops, and writes
`conv.json`, `conv.md` and PNG plots.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

import jaxcnn
from jaxcnn import xla
from jaxcnn.bench.machine import made_with, provenance
from jaxcnn.bench.peers import torch_conv
from jaxcnn.bench.timing import compile_timed, sgemm_gflops, time_calls

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
            impls[f"{name} jit, YNN off"] = (
                jax.jit(layer(conv), compiler_options=dict(ynn_off)),
                True,
            )
    return impls


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
    # name -> (fn, its arguments, jitted?, repeats)
    timed: dict[str, tuple[Callable, tuple, bool, int]] = {
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
        **provenance(),
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
        f"Device: {report['device']}{made_with(report)}; sgemm {_gemm_range(report)} GFLOP/s, measured before and "
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
