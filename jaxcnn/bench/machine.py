"""What a benchmark ran on: the accelerator's kind, or the CPU's model and cores."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

import jax
import jaxlib


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


def provenance() -> dict:
    """What a results file records of how it was made: the device, the commit (with `+` if
    the work tree had changes), the versions of jax and jaxlib (and of PyTorch, where this
    process imported it to run a peer), and the UTC date."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += "+"
    made = {
        "device": device_name(),
        "commit": commit,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
    }
    if (torch := sys.modules.get("torch")) is not None:  # a peer ran: its version too
        made["torch"] = torch.__version__
    return made


def made_with(report: dict) -> str:
    """A results file's provenance in words, e.g. ` (commit ebaa523, jax 0.10.2, date
    2026-12-03)`, or '' for a file written before results recorded it."""
    made = [f"{key} {report[key]}" for key in ("commit", "jax", "torch", "date") if key in report]
    return f" ({', '.join(made)})" if made else ""
