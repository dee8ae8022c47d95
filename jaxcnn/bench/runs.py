"""`python -m jaxcnn.bench runs`: whole `train.py` runs, timed as a user feels them.

Each config trains in its own process, as the README's command runs it, from
process start to exit. The report keeps the final test accuracy, the whole
process's time, its start-up (from the process's start to its first
training step: imports, data, set-up, compilations) and whether it found its
prepared data and compiled steps on disk (warm) or made them (cold), the time
until the test accuracy first reached each of `--targets` (start-up included),
and the median epoch's img/s. With `--cold`, every run gets empty folders for
both, as a first run on a new machine would.
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
from jaxcnn.train.metrics import METRICS_FILE, read_metrics

TRAIN_SCRIPT = Path("train.py")  # the repository's, run from its root
TARGETS = (0.90, 0.93, 0.94)  # test accuracies whose time is reported
PREPARING = "Preparing "  # how a run that prepares its data says so (`data.prepare.prepared`)


def last_error(stderr: str) -> str:
    """The line of `stderr` that says what failed: its last, or a traceback's exception line
    (JAX adds a note after it)."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if lines and lines[-1].startswith("For simplicity, JAX has removed"):
        lines = [line for line in lines[:-1] if not line.startswith("-----")]
    return lines[-1] if lines else "(nothing printed)"


def run_config(
    config: str,
    workdir: Path,
    overrides: Sequence[str] = (),
    targets: Sequence[float] = TARGETS,
    cold: bool = False,
) -> dict:
    """Trains `config` in a fresh process in `workdir`; its report row.

    `cold`: with empty folders for prepared data and compiled steps in
    `workdir`. Either way the row says what the run found: its data prepared or
    not (it says so when it prepares them), and how many programs XLA compiled
    rather than read from the compile cache (its metrics' `programs`).

    Raises:
      RuntimeError: if the run fails, with the last line it printed.
    """
    fresh = [
        f"--config.tfds_dir={workdir / 'tfds'}",
        f"--config.compile_cache_dir={workdir / 'xla'}",
    ]
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT), "--config", config, "--workdir", str(workdir / "run")]
        + [*overrides, *(fresh if cold else [])],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(
            f"{config}: train.py exited {result.returncode}: {last_error(result.stderr)}"
        )
    rows = read_metrics(workdir / "run" / METRICS_FILE)
    # Outside train_and_evaluate's clock: imports and start-up before it, exit after.
    outside = wall - rows[-1]["elapsed_s"]
    compiled = rows[-1]["programs"]["compiled"]  # by XLA, not read from the compile cache
    return {
        "config": config,
        "overrides": list(overrides),
        "epochs": rows[-1]["epoch"],
        "test_accuracy": rows[-1]["test_accuracy"],
        "wall_s": wall,
        "startup_s": rows[0]["first_step_s"],
        "data": "prepared" if PREPARING in result.stderr else "found",
        "programs": {"compiled": compiled, "all": sum(rows[-1]["programs"].values())},
        "targets": list(targets),
        "time_to_targets_s": [time_to(rows, t, outside) for t in targets],
        "images_per_s": statistics.median(r["images_per_s"] for r in rows),
    }


def time_to(rows: Sequence[dict], target: float, start: float = 0.0) -> float | None:
    """Seconds until the first epoch whose test accuracy reached `target` ended (its
    `elapsed_s`, plus `start`), or None; epochs whose test split was not scored
    (`eval_every_epochs`) count at the next that was."""
    reached = [r["elapsed_s"] for r in rows if r.get("test_accuracy", -1.0) >= target]
    return start + reached[0] if reached else None


def run_torch(
    config: str, workdir: Path, settings: Sequence[str], targets: Sequence[float], compile: bool
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
    import torch

    return {
        "config": f"torch {torch.__version__} {'compile' if compile else 'eager'}",
        "overrides": [rows[0]["recipe"]],
        "epochs": rows[-1]["epoch"],
        "test_accuracy": rows[-1]["test_accuracy"],
        "wall_s": rows[-1]["elapsed_s"],
        "targets": list(targets),
        "time_to_targets_s": [time_to(rows, t) for t in targets],
        "images_per_s": statistics.median(r["images_per_s"] for r in rows),
    }


def bench_runs(
    configs: Sequence[str],
    out: Path,
    settings: Sequence[str] = (),
    targets: Sequence[float] = TARGETS,
    torch: bool = False,
    torch_compile: bool = False,
    cold: bool = False,
) -> dict:
    """One whole run of each config (`settings`, `KEY=VALUE` each, applied), one after
    another (each `cold`, if asked: see `run_config`), and with `torch`, the PyTorch
    twin's after each, trained with the same config (and `torch.compile`'s, with
    `torch_compile`); writes `runs.json` and `runs.md`, which record the commit,
    versions, device and date (`machine.provenance`)."""
    overrides = [f"--config.{s}" for s in settings]
    rows = []
    for config in configs:
        with tempfile.TemporaryDirectory() as workdir:
            rows.append(run_config(config, Path(workdir), overrides, targets, cold))
            if torch:
                rows.append(run_torch(config, Path(workdir), settings, targets, False))
            if torch and torch_compile:
                rows.append(run_torch(config, Path(workdir), settings, targets, True))
    report = {**provenance(), "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "runs.json").write_text(json.dumps(report, indent=2))
    (out / "runs.md").write_text(runs_table(report))
    return report


def compiled_programs(row: dict) -> str:
    """How many of a run's programs XLA compiled rather than read from the compile cache."""
    if "programs" not in row:  # a PyTorch row
        return "-"
    compiled, all_ = row["programs"]["compiled"], row["programs"]["all"]
    return f"{compiled} of {all_}" if compiled else "none: all in the cache"


def runs_table(report: dict) -> str:
    targets = report["rows"][0]["targets"] if report["rows"] else list(TARGETS)
    lines = [
        f"Device: {report['device']}{made_with(report)}",
        "",
        "| config | epochs | test accuracy | whole run s | start-up s | data | compiled | "
        + " | ".join(f"to {t:.0%} s" for t in targets)
        + " | median epoch img/s |",
        "|---|---:|---:|---:|---:|---|---|" + "---:|" * len(targets) + "---:|",
    ]
    for r in report["rows"]:
        config = " ".join([r["config"], *r["overrides"]])
        reached = [f"{s:.1f}" if s is not None else "not reached" for s in r["time_to_targets_s"]]
        startup = f"{r['startup_s']:.1f}" if "startup_s" in r else "-"
        lines.append(
            f"| {config} | {r['epochs']} | {r['test_accuracy']:.2%} | {r['wall_s']:.1f} "
            f"| {startup} | {r.get('data', '-')} | {compiled_programs(r)} | "
            + " | ".join(reached)
            + f" | {r['images_per_s']:,.0f} |"
        )
    return "\n".join(lines) + "\n"
