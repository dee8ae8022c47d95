"""`python -m jaxcnn.bench runs`: whole `train.py` runs, timed as a user feels them.

Each config trains in its own process, as the README's command runs it, from
process start to exit. The report keeps the final test accuracy, the whole
process's time, its start-up (from the process's start to its first
training step: imports, data, set-up, compilations), the time until the test
accuracy first reached `--target` (start-up included), and the median epoch's
img/s.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from jaxcnn.bench.machine import made_with, provenance
from jaxcnn.metrics import METRICS_FILE, read_metrics

TRAIN_SCRIPT = Path("train.py")  # the repository's, run from its root


def last_error(stderr: str) -> str:
    """The line of `stderr` that says what failed: its last, or a traceback's exception line
    (JAX adds a note after it)."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if lines and lines[-1].startswith("For simplicity, JAX has removed"):
        lines = [line for line in lines[:-1] if not line.startswith("-----")]
    return lines[-1] if lines else "(nothing printed)"


def run_config(
    config: str, workdir: Path, overrides: Sequence[str] = (), target: float = 0.9
) -> dict:
    """Trains `config` in a fresh process in `workdir`; its report row.

    Raises:
      RuntimeError: if the run fails, with the last line it printed.
    """
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT), "--config", config, "--workdir", str(workdir)]
        + list(overrides),
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(
            f"{config}: train.py exited {result.returncode}: {last_error(result.stderr)}"
        )
    rows = read_metrics(workdir / METRICS_FILE)
    # Outside train_and_evaluate's clock: imports and start-up before it, exit after.
    outside = wall - rows[-1]["elapsed_s"]
    reached = [r for r in rows if r["test_accuracy"] >= target]
    return {
        "config": config,
        "overrides": list(overrides),
        "epochs": rows[-1]["epoch"],
        "test_accuracy": rows[-1]["test_accuracy"],
        "wall_s": wall,
        "startup_s": rows[0]["first_step_s"],
        "target": target,
        "time_to_target_s": outside + reached[0]["elapsed_s"] if reached else None,
        "images_per_s": statistics.median(r["images_per_s"] for r in rows),
    }


def run_torch(
    config: str, workdir: Path, settings: Sequence[str], target: float, compile: bool
) -> dict:
    """The PyTorch twin of `config`'s model trained with the config's recipe (and
    `settings`, `KEY=VALUE` each) by `jaxcnn.bench.torch_run` in a process of its own."""
    out = workdir / "torch.jsonl"
    flags = ["--config", config, "--out", str(out)]
    for setting in settings:
        flags += ["--set", setting]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxcnn.bench.torch_run",
            *flags,
            *(["--compile"] if compile else []),
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{config}: the PyTorch run exited {result.returncode}: {last_error(result.stderr)}"
        )
    rows = read_metrics(out)
    reached = [r for r in rows if r["test_accuracy"] >= target]
    import torch

    return {
        "config": f"torch {torch.__version__} {'compile' if compile else 'eager'}",
        "overrides": [rows[0]["recipe"]],
        "epochs": rows[-1]["epoch"],
        "test_accuracy": rows[-1]["test_accuracy"],
        "wall_s": rows[-1]["elapsed_s"],
        "target": target,
        "time_to_target_s": reached[0]["elapsed_s"] if reached else None,
        "images_per_s": statistics.median(r["images_per_s"] for r in rows),
    }


def bench_runs(
    configs: Sequence[str],
    out: Path,
    settings: Sequence[str] = (),
    target: float = 0.9,
    torch: bool = False,
    torch_compile: bool = False,
) -> dict:
    """One whole run of each config (`settings`, `KEY=VALUE` each, applied), one after
    another, and with `torch`, the PyTorch twin's after each, trained with the same config
    (and `torch.compile`'s, with `torch_compile`); writes `runs.json` and `runs.md`, which
    record the commit, versions, device and date (`machine.provenance`)."""
    overrides = [f"--config.{s}" for s in settings]
    rows = []
    for config in configs:
        with tempfile.TemporaryDirectory() as workdir:
            rows.append(run_config(config, Path(workdir), overrides, target))
            if torch:
                rows.append(run_torch(config, Path(workdir), settings, target, False))
            if torch and torch_compile:
                rows.append(run_torch(config, Path(workdir), settings, target, True))
    report = {**provenance(), "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "runs.json").write_text(json.dumps(report, indent=2))
    (out / "runs.md").write_text(runs_table(report))
    return report


def runs_table(report: dict) -> str:
    lines = [
        f"Device: {report['device']}{made_with(report)}",
        "",
        "| config | epochs | test accuracy | whole run s | to target s | median epoch img/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        config = " ".join([r["config"], *r["overrides"]])
        reached = r["time_to_target_s"]
        to_target = (
            f"{reached:.1f} (>= {r['target']:.0%})" if reached is not None else "not reached"
        )
        lines.append(
            f"| {config} | {r['epochs']} | {r['test_accuracy']:.2%} | {r['wall_s']:.1f} "
            f"| {to_target} | {r['images_per_s']:,.0f} |"
        )
    return "\n".join(lines) + "\n"
