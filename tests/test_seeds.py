"""Many seeds at once: K models in one vmapped step give what K separate runs give."""

import numpy as np
import pytest
from synthetic import small_config

from jaxcnn.train import loop
from jaxcnn.train.metrics import read_metrics


def test_k_seeds_match_k_separate_runs(dataset, tmp_path):
    together = loop.train_and_evaluate(
        small_config(dataset, num_seeds=2, seed=3, augment="crop,flip"), tmp_path / "two"
    )
    alone = [
        loop.train_and_evaluate(
            small_config(dataset, seed=s, augment="crop,flip"), tmp_path / str(s)
        )
        for s in (3, 4)
    ]
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
        np.testing.assert_allclose(
            together[f"{key}_seeds"], [a[key] for a in alone], rtol=2e-4, atol=1e-5
        )
        # The mean and spread of the seeds, as the separate runs give them.
        separate = [a[key] for a in alone]
        assert together[key] == pytest.approx(np.mean(separate), rel=2e-4, abs=1e-5)
        assert together[f"{key}_std"] == pytest.approx(np.std(separate), abs=2e-4)
    rows = read_metrics(tmp_path / "two" / "metrics.jsonl")
    assert [len(r["test_accuracy_seeds"]) for r in rows] == [2, 2]
    assert together["step"] == alone[0]["step"]


def test_k_seeds_resume_exactly(dataset, tmp_path):
    import shutil

    config = small_config(dataset, num_seeds=3, checkpoint_every_steps=12, steps_per_call=12)
    straight = loop.train_and_evaluate(config, tmp_path / "straight")
    run = tmp_path / "resumed"
    shutil.copytree(tmp_path / "straight", run)
    shutil.rmtree(run / "checkpoints" / "48")
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text().splitlines()[0] + "\n")
    resumed = loop.train_and_evaluate(config, run)
    assert resumed["test_loss_seeds"] == straight["test_loss_seeds"]


def test_predict_uses_the_first_seeds_evaluated_model(dataset, tmp_path):
    # Schedule-free (the default) is evaluated at its averaged parameters: predict.py must
    # take those of seed 0, and so score the test split as training reported for seed 0.
    from jaxcnn import data
    from jaxcnn.train.predict import Predictor

    config = small_config(dataset, num_seeds=2, seed=5)
    assert config.optimizer == "schedule_free_adamw"
    final = loop.train_and_evaluate(config, tmp_path)
    _, test, _ = data.load(config)
    probabilities = Predictor.load(tmp_path).probabilities(np.asarray(test.images))
    right = probabilities[np.arange(len(test.labels)), np.asarray(test.labels)]
    loss = -np.mean(np.log(right.astype(np.float64)))
    first, second = final["test_loss_seeds"]
    assert abs(loss - first) < 1e-5 * first < abs(first - second)
