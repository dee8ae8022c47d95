"""predict.py: a trained model's classes for new images, prepared as training's were."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import synthetic
from synthetic import small_config

from jaxcnn.data import eval_batches
from jaxcnn.errors import CheckpointError
from jaxcnn.train import loop
from jaxcnn.train.predict import Predictor, image_paths

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two epochs on a folder of grayscale PNGs and colour JPEGs, resized to 16x16 RGB."""
    root = tmp_path_factory.mktemp("predict")
    images = synthetic.write_image_folder(root / "images", n_train=192, n_test=48)
    config = small_config((images, root / "tfds"), image_size=16, num_epochs=3)
    loop.train_and_evaluate(config, root / "run")
    # New images the model has not seen: the same classes, written the same ways.
    synthetic.write_image_folder(root / "new", n_train=0, n_test=24, split=False)
    return root


def test_predicts_the_classes_of_new_images(trained):
    paths, passed_over = image_paths([str(trained / "new")])
    assert len(paths) == 24 and not passed_over
    predictor = Predictor.load(trained / "run")
    predictions = predictor.predict(paths, top_k=2)
    right = [p.classes[0] == Path(p.path).parent.name for p in predictions]
    assert np.mean(right) > 0.8  # chance is 0.25
    for p in predictions:
        assert len(p.classes) == 2 and p.probabilities[0] >= p.probabilities[1] > 0
        assert sum(p.probabilities) <= 1 + 1e-6


def test_the_command_prints_top_k_and_json(trained):
    image = next((trained / "new").rglob("*.png"))
    run = [sys.executable, "predict.py", "--workdir", str(trained / "run")]
    text = subprocess.run(
        [*run, str(image), "--top_k", "3"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert text.returncode == 0, text.stderr
    [line] = text.stdout.strip().splitlines()
    assert line.startswith(f"{image}: class_") and line.count("%") == 3
    out = subprocess.run(
        [*run, str(image), "--json", "--top_k", "10"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    record = json.loads(out.stdout)
    assert record["path"] == str(image) and len(record["classes"]) == 4  # no more than there are
    assert abs(sum(record["probabilities"]) - 1) < 1e-5


@pytest.mark.parametrize(
    "args, message",
    [
        (["{run}", "{tmp}/missing.png"], "missing.png: no such file or folder"),
        (["{tmp}", "{image}"], "has no config.json: is it a workdir train.py trained in?"),
    ],
)
def test_mistakes_are_one_line(trained, tmp_path, args, message):
    (tmp_path / "notes.png").write_text("not an image")
    image = next((trained / "new").rglob("*.png"))
    workdir, *images = [a.format(run=trained / "run", tmp=tmp_path, image=image) for a in args]
    result = subprocess.run(
        [sys.executable, "predict.py", "--workdir", workdir, *images],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("predict.py: ") and message in line


def test_unreadable_images_are_a_line_each_and_the_others_are_predicted(trained, tmp_path):
    from PIL import Image

    (tmp_path / "notes.png").write_text("not an image")
    good = next((trained / "new").rglob("*.png"))
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:60])
    Image.new("L", (20000, 20000)).save(tmp_path / "bomb.png")  # 400 M pixels: a few kB
    names = ["notes.png", "cut.png", "bomb.png"]
    result = subprocess.run(
        [sys.executable, "predict.py", "--workdir", str(trained / "run"), str(good),
         *[str(tmp_path / n) for n in names]],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [predicted] = result.stdout.strip().splitlines()
    assert predicted.startswith(f"{good}: class_")
    lines = result.stderr.strip().splitlines()
    assert [line.split(": ")[1].split("/")[-1] for line in lines[:3]] == names
    assert "not an image Pillow can read" in lines[0] and "truncated" in lines[1]
    assert "too large to decode safely" in lines[2]
    assert lines[3] == "predict.py: 3 of 4 images could not be read"


def test_a_workdir_without_a_checkpoint(trained, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "data.json"):
        (run / name).write_text((trained / "run" / name).read_text())
    with pytest.raises(CheckpointError, match="has no checkpoint yet"):
        Predictor.load(run)


def test_test_time_shift_averages_over_shifted_images_and_their_mirrors(trained, tmp_path):
    """`test_time_shift=2` with flips: the mean logits of six views, made here with NumPy
    from normalised images (zeros, the normalised mean, shifted in), each scored by the
    plain model."""
    predictors = {}
    for name, settings in (
        ("plain", {}),
        ("views", {"test_time_flip": True, "test_time_shift": 2}),
    ):
        shutil.copytree(trained / "run", tmp_path / name)
        config = json.loads((tmp_path / name / "config.json").read_text())
        (tmp_path / name / "config.json").write_text(json.dumps({**config, **settings}))
        predictors[name] = Predictor.load(tmp_path / name)
    x = np.random.default_rng(1).standard_normal((5, 16, 16, 3)).astype(np.float32)
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    views = [x, padded[:, :16, :16], padded[:, 4:20, 4:20]]
    views += [v[:, :, ::-1] for v in views]
    assert np.all(views[1][:, 2:, 2:] == x[:, :-2, :-2]) and np.all(views[1][:, :2] == 0)
    plain, both = predictors["plain"], predictors["views"]
    logits = [
        plain.trainer.eval_logits(plain.state.params, plain.state.model_state, v) for v in views
    ]
    got = both.trainer.eval_logits(both.state.params, both.state.model_state, x)
    np.testing.assert_allclose(got, np.mean(logits, axis=0), atol=1e-5)
    assert np.abs(got - logits[0]).max() > 1e-3


def test_test_time_flip_averages_the_logits_of_each_image_and_its_mirror(trained, tmp_path):
    """With `test_time_flip`, predictions and the scores training reports are those of the
    mean logits of an image and its mirror: softmax of the mean of the plain model's log
    probabilities of both (a row's constant cancels), computed here with NumPy."""
    flipped = tmp_path / "run"
    shutil.copytree(trained / "run", flipped)
    config = json.loads((flipped / "config.json").read_text())
    config["test_time_flip"] = True
    (flipped / "config.json").write_text(json.dumps(config))
    # The plain model from a config.json without the key, as an earlier jaxcnn wrote it.
    older = tmp_path / "older"
    shutil.copytree(trained / "run", older)
    del config["test_time_flip"]
    (older / "config.json").write_text(json.dumps(config))
    plain, both = Predictor.load(older), Predictor.load(flipped)
    images = np.random.default_rng(0).integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)

    log_p = np.log(plain.probabilities(images)) + np.log(plain.probabilities(images[:, :, ::-1]))
    expected = np.exp(log_p / 2 - log_p.max(axis=1, keepdims=True) / 2)
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(both.probabilities(images), expected, atol=1e-5)
    assert np.abs(both.probabilities(images) - plain.probabilities(images)).max() > 1e-3

    labels = np.arange(10) % 4
    index, mask = eval_batches(10, 4)
    state = both.state
    scored = jax.device_get(
        both.trainer.evaluate(state.params, state.model_state, images, labels, index, mask)
    )
    assert scored["count"] == 10
    assert scored["correct"] == np.sum(expected.argmax(axis=1) == labels)
    np.testing.assert_allclose(
        scored["loss"], -np.log(expected[np.arange(10), labels]).sum(), rtol=1e-4
    )
