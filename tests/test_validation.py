"""A validation split, early stopping on it, and the best checkpoint kept and used."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import synthetic
from synthetic import small_config

from jaxcnn.data import DataError
from jaxcnn.data.holdout import holdout
from jaxcnn.train import config as config_lib
from jaxcnn.train import loop
from jaxcnn.train.checkpoint import Checkpoints
from jaxcnn.train.config import ConfigError
from jaxcnn.train.metrics import read_metrics
from jaxcnn.train.monitor import Monitor
from jaxcnn.train.position import Position
from jaxcnn.train.predict import Predictor

ROOT = Path(__file__).parent.parent


def test_the_held_out_examples_are_disjoint_stable_and_follow_the_examples():
    images, labels = synthetic.make_images(600, seed=3)
    held = holdout(images, labels, 0.2)
    assert not set(held.train) & set(held.validation)
    assert sorted([*held.train, *held.validation]) == list(range(600))
    assert 80 < len(held.validation) < 160  # about a fifth
    # Shuffled, or with examples added, the same examples are held out: they follow their
    # pixels and labels, not their positions.
    order = np.random.default_rng(0).permutation(600)
    shuffled = holdout(images[order], labels[order], 0.2)
    assert set(order[shuffled.validation]) == set(held.validation)
    more_images, more_labels = synthetic.make_images(100, seed=4)
    grown = holdout(
        np.concatenate([images, more_images]), np.concatenate([labels, more_labels]), 0.2
    )
    assert set(held.validation) == set(grown.validation[grown.validation < 600])
    assert len(holdout(images, labels, 0.0).validation) == 0
    with pytest.raises(DataError, match=r"`validation_fraction` \(0.0001\) holds out 0 of the 600"):
        holdout(images, labels, 0.0001)


def test_the_monitor_keeps_the_strictly_best_epoch_and_counts_from_it():
    monitor = Monitor("val_loss", patience=2)
    position = Position()
    for epoch, loss in enumerate([0.5, 0.4, 0.4, 0.45], start=1):
        position = Position(epochs=epoch, line={"val_loss": loss}, best=position.best)
        monitor.update(position, step=10 * epoch)
        assert monitor.exhausted(position) == (epoch == 4)
    assert position.best == {"epoch": 2, "step": 20, "value": 0.4}  # a tie is no improvement
    accuracy = Monitor("val_accuracy", patience=0)
    position = Position(epochs=1, line={"val_accuracy": [0.5, 0.7]})  # two seeds: their mean
    accuracy.update(position, step=5)
    assert position.best["value"] == pytest.approx(0.6) and not accuracy.exhausted(position)
    assert Monitor("val_loss", 1).value({"test_loss": 0.3}) is None  # no validation split


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("validation_fraction", 1.0, r"`validation_fraction` must be a number in \[0, 1\)"),
        ("early_stopping_patience", -1, "`early_stopping_patience` must be an int >= 0"),
        ("monitor", "test_accuracy", "`monitor` must be one of"),
        ("early_stopping_patience", 3, "needs a validation split to watch"),
    ],
)
def test_the_new_keys_are_checked_before_data_loads(key, value, match):
    config = config_lib.defaults()
    config[key] = value
    with pytest.raises(ConfigError, match=match):
        config_lib.check(config)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A run on easy data that stops early: validation accuracy reaches its best and stays."""
    root = tmp_path_factory.mktemp("early")
    source = synthetic.write_dataset(root / "idx")
    config = small_config(
        (source, root / "tfds"),
        num_epochs=12,
        validation_fraction=0.25,
        early_stopping_patience=2,
        monitor="val_accuracy",
        keep_checkpoints=1,
        eval_every_epochs=0,  # the test split after the last epoch only
    )
    loop.train_and_evaluate(config, root / "run")
    return root, config


def test_each_epoch_is_scored_on_the_held_out_examples(stopped, capfd):
    root, _ = stopped
    rows = read_metrics(root / "run" / "metrics.jsonl")
    for row in rows:
        assert 0 <= row["val_accuracy"] <= 1 and row["val_loss"] > 0
    # The test split after the last epoch only: the one early stopping ended on, not num_epochs.
    assert ["test_accuracy" in row for row in rows] == [False] * (len(rows) - 1) + [True]
    assert rows[-1]["val_accuracy"] > 0.9 and rows[-1]["test_accuracy"] > 0.9


def test_training_stops_when_patience_runs_out_and_keeps_the_best(stopped):
    root, config = stopped
    rows = read_metrics(root / "run" / "metrics.jsonl")
    accuracies = [r["val_accuracy"] for r in rows]
    best_epoch = 1 + int(np.argmax(accuracies))  # the first of the highest
    assert len(rows) == best_epoch + config.early_stopping_patience < config.num_epochs
    # The newest (keep_checkpoints=1) and the best are both kept; readers take the best.
    checkpoints = Checkpoints(root / "run" / "checkpoints", 1, print, read_only=True)
    steps = sorted(checkpoints.steps())
    best_step = rows[best_epoch - 1]["step"]
    assert steps == sorted({best_step, rows[-1]["step"]})
    assert checkpoints.best_step() == best_step
    checkpoints.close()
    assert Predictor.load(root / "run").epochs == best_epoch
    assert Predictor.load(root / "run", "newest").epochs == len(rows)


def test_a_rerun_of_a_stopped_run_trains_nothing_more(stopped, capfd):
    root, config = stopped
    before = (root / "run" / "metrics.jsonl").read_text()
    capfd.readouterr()
    loop.train_and_evaluate(config, root / "run")
    out = capfd.readouterr().out
    assert "Stopping early: val_accuracy has not improved for 2 epochs" in out
    assert (root / "run" / "metrics.jsonl").read_text() == before


def test_predict_takes_the_newest_checkpoint_when_asked(stopped, tmp_path):
    root, _ = stopped
    image = next((root / "idx").parent.rglob("*.gz"))  # any file: only the flag is at stake
    done = subprocess.run(
        [sys.executable, "predict.py", "--workdir", str(root / "run"), "--checkpoint", "latest",
         str(image)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2 and "invalid choice: 'latest'" in done.stderr
    record = json.loads((root / "run" / "config.json").read_text())
    assert record["validation_fraction"] == 0.25 and record["monitor"] == "val_accuracy"


def test_resuming_under_another_validation_fraction_is_refused(stopped):
    root, config = stopped
    other = config_lib.with_absolute_paths(config)
    other.validation_fraction = 0.1
    with pytest.raises(Exception, match="validation_fraction: 0.25 there, 0.1 here"):
        loop.train_and_evaluate(other, root / "run")
