"""The accelerator check's summary: `python benchmarks/check_summary.py OUT WORK`.

Reads what `accelerator_check.sh` has left so far (its steps' status lines in
`OUT/steps.tsv`, the machine in `OUT/machine.json`, each step's files under
`WORK`) and rewrites `OUT/summary.json` and `OUT/summary.md` whole, so that a
check killed half-way still reports every step it finished. Standard library
only: it runs wherever the check does.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def images_per_s(work: Path, name: str) -> float | None:
    """The jax row's img/s of `bench train --out WORK/NAME`."""
    report = read_json(work / name / "train.json")
    rows = [r for r in (report or {}).get("rows", []) if r.get("framework") == "jax"]
    return round(rows[0]["images_per_s"], 1) if rows else None


def tests(work: Path) -> dict | None:
    """Counts from pytest's closing line, e.g. `3 failed, 120 passed, 2 skipped in 80.1s`."""
    try:
        lines = (work / "tests.txt").read_text().strip().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        counts = dict(
            (k, int(n)) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error)", line)
        )
        if counts:
            return counts
    return {"closing line": lines[-1][:200] if lines else ""}


def results(work: Path) -> dict:
    """Every figure measured so far, by what it measures."""
    out: dict = {}
    if (counts := tests(work)) is not None:
        out["tests"] = counts
    for name, key in (
        ("lenet_128", "lenet_images_per_s_batch_128"),
        ("lenet_large", "lenet_images_per_s_large_batch"),
        ("resnet", "resnet_images_per_s_batch_128"),
        ("lenet_float32", "lenet_float32_images_per_s"),
        ("lenet_bfloat16", "lenet_bfloat16_images_per_s"),
    ):
        if (value := images_per_s(work, name)) is not None:
            out[key] = value
    large = read_json(work / "lenet_large" / "train.json")
    if large and large.get("rows"):
        out["large_batch"] = large["rows"][0]["batch_size"]
    runs = read_json(work / "runs" / "runs.json")
    if runs and runs.get("rows"):
        row = runs["rows"][0]
        out["lenet_run"] = {
            key: row.get(key)
            for key in ("test_accuracy", "wall_s", "startup_s", "targets", "time_to_targets_s")
        }
    conv = read_json(work / "conv" / "conv.json")
    if conv and conv.get("results"):
        jitted = [r for r in conv["results"] if r.get("jit") and r.get("gflops")]
        out["conv"] = {
            "cases": len(conv["results"]),
            "matmul_gflops": round(conv.get("sgemm_gflops") or 0, 1),
            "best_jitted_conv_gflops": round(max((r["gflops"] for r in jitted), default=0), 1),
        }
    return out


def steps(out: Path) -> list[dict]:
    rows = []
    if (out / "steps.tsv").exists():
        for line in (out / "steps.tsv").read_text().splitlines():
            name, code, seconds = line.split("\t")
            status = {"0": "ok", "124": "timed out", "137": "timed out"}.get(
                code, f"exit {code}" if code.isdigit() else code
            )
            rows.append({"step": name, "status": status, "seconds": float(seconds)})
    return rows


def markdown(summary: dict) -> str:
    machine = summary["machine"]
    lines = [
        f"# Accelerator check: {machine.get('device_kind', '?')} ({machine.get('platform', '?')})",
        "",
        f"jaxcnn {machine.get('commit', '?')}, jax {machine.get('jax', '?')}, "
        f"{machine.get('date', '?')}; {machine.get('host', '')}",
        "",
        "| step | status | seconds |",
        "|---|---|---:|",
        *(f"| {s['step']} | {s['status']} | {s['seconds']:.0f} |" for s in summary["steps"]),
        "",
        "| measured | value |",
        "|---|---|",
        *(f"| {key} | {json.dumps(value)} |" for key, value in summary["results"].items()),
        "",
    ]
    return "\n".join(lines)


def main(out: Path, work: Path) -> None:
    summary = {
        "machine": read_json(out / "machine.json") or {},
        "steps": steps(out),
        "results": results(work),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(markdown(summary))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
