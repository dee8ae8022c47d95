"""jaxcnn.export: a trained model served by JAX alone gives predict.py's probabilities."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import synthetic
from PIL import Image
from synthetic import small_config

from jaxcnn import export
from jaxcnn.errors import WorkdirError
from jaxcnn.train import loop
from jaxcnn.train.predict import Predictor

ROOT = Path(__file__).parent.parent

# The README's loader, word for word but for the paths: it imports jax, numpy and PIL only.
LOADER = """
import json, sys
import jax, numpy as np
from PIL import Image

model = jax.export.deserialize(open(sys.argv[1] + "/model.jax", "rb").read())
meta = json.load(open(sys.argv[1] + "/model.json"))
h, w, c = meta["image_shape"]
image = Image.open(sys.argv[2]).convert("L" if c == 1 else "RGB").resize((w, h))
probabilities = model.call(np.asarray(image, np.float32).reshape(1, h, w, c))[0]
print(meta["class_names"][int(np.argmax(probabilities))], float(np.max(probabilities)))
"""


@pytest.fixture(scope="module", params=["lenet", "lenet_bn"])
def trained(request, tmp_path_factory):
    """A model trained on 16x16 RGB image folders: LeNet, and LeNet with batch norm."""
    root = tmp_path_factory.mktemp(f"export-{request.param}")
    images = synthetic.write_image_folder(root / "images", n_train=96, n_test=32)
    config = small_config((images, root / "tfds"), image_size=16, num_epochs=1)
    if request.param == "lenet_bn":
        config.model = {"name": "lenet_bn", "conv_impl": "auto"}
    loop.train_and_evaluate(config, root / "run")
    return root


def test_the_exported_model_gives_predict_s_probabilities_for_any_batch(trained, tmp_path):
    predictor = Predictor.load(trained / "run")
    path = export.write(predictor, tmp_path / "exported")
    from jax import export as jax_export

    served = jax_export.deserialize(path.read_bytes())
    rng = np.random.default_rng(0)
    for n in (1, 5):  # the batch dimension is symbolic
        images = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
        got = np.asarray(served.call(images.astype(np.float32)))
        want = predictor.probabilities(images)
        assert got.shape == (n, predictor.info.num_classes)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    meta = json.loads((tmp_path / "exported" / export.META_FILE).read_text())
    assert meta["image_shape"] == [16, 16, 3]
    assert meta["class_names"] == list(predictor.info.class_names)
    assert meta["normalisation"]["mean"] == list(predictor.info.mean)


def test_the_readme_loader_runs_without_jaxcnn_and_agrees_with_predict(trained, tmp_path):
    out = tmp_path / "exported"
    done = subprocess.run(
        [sys.executable, "-m", "jaxcnn.export", "--workdir", str(trained / "run"), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # A 16x16 colour image, the training size: the loader's resize and predict.py's crop and
    # scale both leave it as it is.
    image = tmp_path / "new.png"
    pixels = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(image)
    loader = tmp_path / "serve.py"
    loader.write_text(LOADER + "assert not any(m.startswith('jaxcnn') for m in sys.modules)\n")
    served = subprocess.run(
        [sys.executable, str(loader), str(out), str(image)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert served.returncode == 0, served.stderr
    name, probability = served.stdout.split()
    [prediction] = Predictor.load(trained / "run").predict([image], top_k=1)
    assert name == prediction.classes[0]  # the image is 16x16 already: no resize between them
    assert abs(float(probability) - prediction.probabilities[0]) < 1e-5


def test_the_readme_shows_the_loader():
    readme = (ROOT / "README.md").read_text()
    for line in LOADER.strip().splitlines():
        assert line in readme, line


def test_an_export_is_replaced_only_when_asked(trained, tmp_path):
    predictor = Predictor.load(trained / "run")
    path = export.write(predictor, tmp_path)
    before = path.read_bytes()
    with pytest.raises(WorkdirError, match="exists: pass --overwrite"):
        export.write(predictor, tmp_path)
    assert path.read_bytes() == before
    export.write(predictor, tmp_path, overwrite=True)
    with pytest.raises(WorkdirError, match="is a file"):
        export.write(predictor, path)


def test_the_command_s_mistakes_are_one_line(tmp_path):
    for args, says in [
        (["--workdir", str(tmp_path), "--out", str(tmp_path / "o")], "has no config.json"),
        (["--workdir", str(tmp_path), "--out", "o", "--platforms", "gpu"], "--platforms"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "jaxcnn.export", *args],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode != 0 and says in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()


def test_the_onnx_export_gives_predict_s_probabilities(trained, tmp_path):
    # Runs where `jaxcnn[onnx]` is installed: a step of CI's, not the README's test command.
    pytest.importorskip("jax2onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    predictor = Predictor.load(trained / "run")
    export.write(predictor, tmp_path, onnx=True)
    session = onnxruntime.InferenceSession(str(tmp_path / export.ONNX_FILE))
    images = np.random.default_rng(2).integers(0, 256, (7, 16, 16, 3), dtype=np.uint8)
    [got] = session.run(None, {session.get_inputs()[0].name: images.astype(np.float32)})
    np.testing.assert_allclose(got, predictor.probabilities(images), rtol=0, atol=1e-4)
