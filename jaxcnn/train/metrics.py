"""`metrics.jsonl`: one JSON line per finished epoch, never lost or written twice.

The file is rewritten whole through a temporary file and a rename, so that a
kill or a full disk during a write leaves the previous file as it was. On
resume, `reconcile` makes it agree with the checkpoint training resumes from:
the epoch line the checkpoint owes is written, and lines of epochs that will
be trained again are moved to `metrics.superseded.jsonl`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from jaxcnn.errors import WorkdirError
from jaxcnn.files import write_atomically

METRICS_FILE = "metrics.jsonl"
SUPERSEDED_FILE = "metrics.superseded.jsonl"
CURVES_FILE = "learning_curves.png"


def read_metrics(path: str | Path) -> list[dict]:
    """The file's records, in order; a last line cut short (no newline after it) is left out.

    Raises:
      WorkdirError: naming the line, for any other line that is not a JSON object.
    """
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        elif number < len(lines):  # a whole line: not a write cut short
            raise WorkdirError(
                f"{path}, line {number}, is not a JSON object ({line[:40]!r}): mend or remove "
                "that line; jaxcnn writes one object per epoch"
            )
    return rows


def per_seed(seeds: int, metrics: dict) -> dict:
    """Each metric as a float; with several `seeds`, their mean, and each seed's value and
    their standard deviation beside it (`test_accuracy_seeds`, `test_accuracy_std`)."""
    if seeds == 1:
        return {key: float(value) for key, value in metrics.items()}
    out: dict = {}
    for key, value in metrics.items():
        values = np.asarray(value, np.float64)
        out |= {key: float(values.mean()), f"{key}_seeds": values.tolist()}
        out[f"{key}_std"] = float(values.std())
    return out


def write_metrics(path: Path, rows: list[dict]) -> None:
    """Replaces `path` with `rows`, one JSON line each, atomically.

    Raises:
      OSError: if the new file cannot be written; `path` is then as it was.
    """
    write_atomically(path, "".join(json.dumps(row) + "\n" for row in rows).encode())


def append_metrics(path: Path, row: dict) -> None:
    """Adds `row` as the last line (see `write_metrics`)."""
    write_metrics(path, [*read_metrics(path), row])


def reconcile(path: Path, done_epochs: int, owed: dict | None) -> None:
    """Makes `path` hold one line for each of epochs `1..done_epochs`, and no later one.

    Args:
      path: the metrics file.
      done_epochs: the epochs the checkpoint being resumed has finished.
      owed: that checkpoint's line for epoch `done_epochs`, written if the run
        stopped between saving the checkpoint and writing the line.
    """
    rows = read_metrics(path)
    kept = [row for row in rows if row.get("epoch", 0) <= done_epochs]
    later = [row for row in rows if row.get("epoch", 0) > done_epochs]
    if owed is not None and owed["epoch"] == done_epochs and owed["epoch"] not in _epochs(kept):
        kept.append(owed)
    if later:
        superseded = path.with_name(SUPERSEDED_FILE)
        write_metrics(superseded, [*read_metrics(superseded), *later])
    canonical = "".join(json.dumps(row) + "\n" for row in kept)
    if path.exists() and path.read_text() != canonical or not path.exists() and kept:
        write_metrics(path, kept)  # no file until there is a line: it appears with epoch 1


def _epochs(rows: list[dict]) -> set[int]:
    return {row["epoch"] for row in rows}


def console_line(line: dict) -> str:
    """An epoch's metrics line as train.py prints it (validation and test scores where there
    are: the test split is scored every `eval_every_epochs`)."""
    val = (
        f"val loss {line['val_loss']:.4f} acc {line['val_accuracy']:.4f}  "
        if "val_loss" in line
        else ""
    )
    test = (
        f"test loss {line['test_loss']:.4f} acc {line['test_accuracy']:.4f}  "
        if "test_loss" in line
        else ""
    )
    return (
        f"epoch {line['epoch']:3d}  train loss {line['train_loss']:.4f} acc "
        f"{line['train_accuracy']:.4f}  {val}{test}{line['images_per_s']:,.0f} img/s  "
        f"{line['elapsed_s']:.1f} s"
    )


def plot_curves(metrics_path: Path, out_path: Path) -> None:
    """Loss and accuracy per epoch, train, validation (if held out) and test, as a PNG.

    Drawn on a bare Agg canvas: importing `pyplot` would cost each run half a second.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = read_metrics(metrics_path)
    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for split, style in (("train", "-o"), ("val", "-^"), ("test", "-s")):
        scored = [r for r in rows if f"{split}_loss" in r]  # test: every `eval_every_epochs`
        if not scored:  # no validation split
            continue
        epochs = [r["epoch"] for r in scored]
        ax_loss.plot(epochs, [r[f"{split}_loss"] for r in scored], style, label=split)
        ax_acc.plot(epochs, [r[f"{split}_accuracy"] for r in scored], style, label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
