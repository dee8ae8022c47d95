"""jaxcnn.show: the pictures of a trained model, each written with the expected grid."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic import small_config

from jaxcnn import show
from jaxcnn.train import loop

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("show") / "run"
    loop.train_and_evaluate(small_config(dataset), workdir)
    return workdir


def test_writes_every_picture(trained, tmp_path):
    paths = show.show(trained, tmp_path, [0, 5])
    names = {p.name for p in paths}
    assert names == {
        "kernels.png", "features_0.png", "features_5.png", "confusion.png", "mistakes.png",
        "learning_curves.png",
    }  # fmt: skip
    for path in paths:
        assert path.stat().st_size > 2000
        with Image.open(path) as picture:
            assert picture.size[0] > 100


def test_kernel_grid_has_a_cell_per_kernel(trained, tmp_path):
    from jaxcnn.train.predict import Predictor

    predictor = Predictor.load(trained)
    path, kernel = show.first_conv_kernel(predictor.state.params, predictor.trainer.model)
    assert path == "conv1" and kernel.shape == (5, 5, 1, 4)  # the small config's 4 channels
    assert show.draw_kernels(path, kernel, tmp_path / "k.png") == 4


def test_feature_maps_of_every_conv_and_pool_layer(trained):
    from jaxcnn.train.predict import Predictor

    predictor = Predictor.load(trained)
    x = predictor.trainer.normalize(predictor.read(_image(trained))[None])
    maps = show.feature_maps(
        predictor.trainer.model, predictor.state.params, predictor.state.model_state, x
    )
    assert [name for name, _ in maps] == ["conv1", "conv2"]  # conv2d_max_pool layers
    assert [m.shape[-1] for _, m in maps] == [4, 8]


def _image(trained):
    path = trained.parent / "one.png"
    Image.new("L", (16, 16), 128).save(path)
    return path


@pytest.mark.parametrize(
    "args, message",
    [
        (["--workdir", "{tmp}/none"], "--workdir {tmp}/none: no such folder"),
        (["--workdir", "{run}", "--image", "999999"], "--image 999999 is out of range: the test split has 200 images"),
        (["--workdir", "{tmp}"], "has no config.json"),
    ],
)  # fmt: skip
def test_mistakes_are_one_line(trained, tmp_path, args, message):
    args = [a.format(tmp=tmp_path, run=trained) for a in args]
    result = subprocess.run(
        [sys.executable, "-m", "jaxcnn.show", *args, "--out", str(tmp_path / "pics")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert (
        line == f"jaxcnn.show: {message.format(tmp=tmp_path)}"
        or message.format(tmp=tmp_path) in line
    )


def test_the_lecture_edge_example_learns_the_kernel_back(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "edge_detection.py"), "--out", str(tmp_path / "e.png")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("learned kernel:")]
    learned = eval(line.partition(":")[2])  # a printed list of lists
    np.testing.assert_allclose(learned, [[1.0, -1.0]], atol=1e-2)
    assert (tmp_path / "e.png").stat().st_size > 2000
