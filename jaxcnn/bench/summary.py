"""`python -m jaxcnn.bench summary`: the README's results table, made from the result files.

The README holds the table between two markers; `write_readme` replaces what
is between them with `results_table`, and a test checks that the README's
table is what the committed result files give, so it is never copied by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

from jaxcnn.bench import machine
from jaxcnn.bench.runs import TARGETS
from jaxcnn.bench.throughput import SEEDS_RESULT, seeds_ratio
from jaxcnn.bench.timing import turn_ratios

BEGIN = "<!-- results: made by `python -m jaxcnn.bench summary` from benchmarks/results -->"
END = "<!-- results end -->"


def results_table(results: Path) -> str:
    """One row per config of `runs.json` (then of `train.json`, for configs timed only
    there), with its training speed beside each peer's from `train.json` if timed there."""
    runs = json.loads((results / "runs.json").read_text())
    speeds = training_speeds(results / "train.json")
    targets = runs["rows"][0]["targets"] if runs["rows"] else list(TARGETS)
    lines = [
        "| run | test accuracy | start-up | whole run | "
        + "".join(f"to {t:.0%} | " for t in targets)
        + "img/s, batch 256 | PyTorch eager | torch.compile | Flax |",
        "|---|---:|---:|---:|" + "---:|" * len(targets) + "---:|---:|---:|---:|",
    ]
    configs = [r["config"] for r in runs["rows"]]
    only_timed = [{"config": c} for c in speeds if c not in configs]
    for r in runs["rows"] + only_timed:
        reached = r.get("time_to_targets_s", [None] * len(targets))
        jax_rate, peers = speeds.get(r["config"], (None, {}))
        # A PyTorch run follows its config's: the twin of that model, with the recipe it used.
        twin = r["config"].startswith("torch")
        recipe = " ".join(r.get("overrides", []))
        name = (
            f"↳ its twin, {r['config']}, {r['epochs']} epochs, {recipe}"
            if twin
            else f"`{r['config']}`"
        )
        lines.append(
            f"| {name} | {_figure(r.get('test_accuracy'), '{:.2%}')} "
            f"| {_startup(r)} | {_figure(r.get('wall_s'), '{:.1f} s')} | "
            + "".join(f"{_figure(s, '{:.1f} s')} | " for s in reached)
            + f"{_figure(jax_rate, '{:,.0f}')} "
            f"| {_peer(peers.get('eager'))} | {_peer(peers.get('compile'))} "
            f"| {_peer(peers.get('linen'))} |"
        )
    lines += [
        "",
        f"{runs['device']}{machine.made_with(runs)}. Whole runs from process start to exit, with the config's own "
        f"epochs and batch; start-up is the time from process start to the first training "
        f"step, warm where the run found its prepared data and compiled programs on disk "
        f"([runs.md](benchmarks/results/runs.md)). Training img/s side by side "
        f"with each peer's, turn by turn in one run; in brackets jaxcnn / peer, the median "
        f"of the turns' ratios and their lowest-highest "
        f"([train.md](benchmarks/results/train.md){_elsewhere(results / 'train.json', runs)}).",
    ]
    seeds = results / f"{SEEDS_RESULT}.json"
    if seeds.is_file() and (timed := seeds_ratio(report := json.loads(seeds.read_text()))):
        k, slower = timed
        config = report["rows"][0]["config"]
        lines += [
            "",
            f"{k} seeds of `{config}` as one vmapped step: {slower:.2f}x the time of one seed's "
            f"step, against {k}x for {k} runs one after another "
            f"([{SEEDS_RESULT}.md](benchmarks/results/{SEEDS_RESULT}.md)).",
        ]
    finetune = results / "finetune.json"
    if finetune.is_file():
        report = json.loads(finetune.read_text())
        accuracy = {r["run"]: f"{r['test_accuracy']:.2%}" for r in report["rows"]}
        lines += [
            "",
            f"Fine-tuning, {report['per_class']} images of each of 5 new classes: "
            + ", ".join(f"{run} {a}" for run, a in accuracy.items())
            + " (`init_from`, `freeze`; [finetune.md](benchmarks/results/finetune.md)).",
        ]
    return "\n".join(lines) + "\n"


# A peer's kind, the last word of its framework ("eager", "compile", "linen") -> (img/s,
# jaxcnn / it: the median of the turns' ratios, the lowest and the highest)
Peers = dict[str, tuple[float, float, float, float]]


def training_speeds(path: Path) -> dict[str, tuple[float, Peers]]:
    """config -> (jaxcnn img/s, its peers: PyTorch, Flax) from a `bench train` report, if any.

    A config's first jax row counts; the peer rows after it are its peers.
    """
    if not path.is_file():
        return {}
    speeds: dict[str, tuple[float, Peers]] = {}
    last = ours = None
    for row in json.loads(path.read_text())["rows"]:
        if row["framework"] == "jax":
            if row["config"] not in speeds:
                speeds[row["config"]] = (row["images_per_s"], {})
                ours = row.get("turn_step_s")
            last = row["config"]
        elif last is not None and "jax_speedup" in row:
            kind = row["framework"].rsplit(" ", 1)[-1]
            theirs = row.get("turn_step_s")
            ratios = turn_ratios(ours, theirs) if ours and theirs else [row["jax_speedup"]]
            speeds[last][1][kind] = (
                row["images_per_s"],
                row["jax_speedup"],
                min(ratios),
                max(ratios),
            )
    return speeds


def _elsewhere(path: Path, runs: dict) -> str:
    """`path`'s report's device and provenance, where they are not `runs`' own: a table
    whose columns were measured on two machines or commits says so."""
    if not path.is_file():
        return ""
    report = json.loads(path.read_text())
    made = f"{report.get('device', 'device not recorded')}{machine.made_with(report)}"
    return "" if made == f"{runs['device']}{machine.made_with(runs)}" else f"; measured on {made}"


def _startup(row: dict) -> str:
    """A run's start-up seconds, and what it found ready: warm where its prepared data and
    every compiled program were on disk, else what it made."""
    if row.get("startup_s") is None:
        return "-"
    made = ["data prepared"] if row.get("data") == "prepared" else []
    count = row.get("programs", {}).get("compiled", 0)
    if count:
        made.append(f"{count} program{'s' if count > 1 else ''} compiled")
    return f"{row['startup_s']:.1f} s, " + (f"cold: {', '.join(made)}" if made else "warm")


def _figure(value: float | None, form: str) -> str:
    return form.format(value) if value is not None else "-"


def _peer(peer: tuple[float, float, float, float] | None) -> str:
    """A peer's img/s and jaxcnn's speed-up over it: the median of the turns' ratios and,
    where they differ, their spread."""
    if not peer:
        return "-"
    rate, median, low, high = peer
    spread = f", {low:.2f}-{high:.2f}" if high - low >= 0.005 else ""
    return f"{rate:,.0f} ({median:.2f}x{spread})"


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
