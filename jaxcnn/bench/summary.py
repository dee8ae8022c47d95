"""`python -m jaxcnn.bench summary`: the README's results table, made from the result files.

The README holds the table between two markers; `write_readme` replaces what
is between them with `results_table`, and a test checks that the README's
table is what the committed result files give, so it is never copied by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

BEGIN = "<!-- results: made by `python -m jaxcnn.bench summary` from benchmarks/results -->"
END = "<!-- results end -->"


def results_table(results: Path) -> str:
    """One row per config of `runs.json`, with its training speed from `train.json` if timed there."""
    runs = json.loads((results / "runs.json").read_text())
    speeds = training_speeds(results / "train.json")
    lines = [
        "| config | test accuracy | whole run | to 90% | img/s, batch 256 | PyTorch eager | jaxcnn / PyTorch |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs["rows"]:
        reached = r["time_to_target_s"]
        jax_rate, torch_rate, ratio = speeds.get(r["config"], (None, None, None))
        lines.append(
            f"| `{r['config']}` | {r['test_accuracy']:.2%} | {r['wall_s']:.1f} s "
            f"| {f'{reached:.1f} s' if reached is not None else '-'} "
            f"| {_rate(jax_rate)} | {_rate(torch_rate)} "
            f"| {f'{ratio:.2f}x' if ratio else '-'} |"
        )
    lines += [
        "",
        f"{runs['device']}; the whole run from process start to exit, with the config's own "
        f"epochs and batch ([runs.md](benchmarks/results/runs.md)); training speed side by side "
        f"with PyTorch in one run ([train.md](benchmarks/results/train.md)).",
    ]
    return "\n".join(lines) + "\n"


def training_speeds(path: Path) -> dict[str, tuple[float, float | None, float | None]]:
    """config -> (jaxcnn img/s, PyTorch img/s, ratio) from a `bench train` report, if there is one."""
    if not path.is_file():
        return {}
    speeds: dict[str, tuple[float, float | None, float | None]] = {}
    last = None
    for row in json.loads(path.read_text())["rows"]:
        if row["framework"] == "jax":
            if row["config"] not in speeds:
                speeds[row["config"]] = (row["images_per_s"], None, None)
            last = row["config"]
        elif last is not None and "jax_speedup" in row:
            speeds[last] = (speeds[last][0], row["images_per_s"], row["jax_speedup"])
    return speeds


def _rate(value: float | None) -> str:
    return f"{value:,.0f}" if value else "-"


def write_readme(readme: Path, results: Path) -> bool:
    """Replaces the table between `BEGIN` and `END` in `readme`; True if it changed."""
    text = readme.read_text()
    head, found, rest = text.partition(BEGIN + "\n")
    _, found_end, tail = rest.partition(END)
    if not (found and found_end):
        raise ValueError(f"{readme} has no {BEGIN!r} ... {END!r} block")
    new = head + BEGIN + "\n" + results_table(results) + END + tail
    readme.write_text(new)
    return new != text


def readme_table(readme: Path) -> str:
    """What the README holds between its markers."""
    return readme.read_text().partition(BEGIN + "\n")[2].partition(END)[0]
