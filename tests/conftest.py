import os
import shutil
import sys
import tempfile
from pathlib import Path

import jax
import pytest
from hypothesis import settings

from jaxcnn import xla

sys.path.insert(0, str(Path(__file__).parent))
# The CPU, unless the accelerator check (benchmarks/accelerator_check.sh) asks for another.
PLATFORM = os.environ.get("JAXCNN_TEST_PLATFORM", "cpu")
jax.config.update("jax_platforms", PLATFORM)
# GPUs multiply float32 in TF32 by default (about 1e-3 relative): the tests check the math
# against float64 NumPy at float32's tolerances, so they ask for full float32 products.
if PLATFORM != "cpu":
    jax.config.update("jax_default_matmul_precision", "highest")
# Two CPU devices, so training runs data parallel in the tests (num_devices=0: all).
jax.config.update("jax_num_cpu_devices", 2)
# One compilation cache for the tests and the train.py processes they start
# (synthetic.config_flags passes it on): each training step compiles once.
# Only slow compiles are kept: the layer tests' thousands of small programs
# would make every new entry slow to add.
# xdist's workers inherit the folder the controller made; the controller removes it at the end.
OWN_CACHE = "JAXCNN_TEST_COMPILE_CACHE" not in os.environ
if OWN_CACHE:
    os.environ["JAXCNN_TEST_COMPILE_CACHE"] = tempfile.mkdtemp(prefix="jaxcnn-tests-xla-")
xla.use_compilation_cache(os.environ["JAXCNN_TEST_COMPILE_CACHE"], min_compile_secs=0.5)


def pytest_sessionfinish(session):
    if OWN_CACHE and not hasattr(session.config, "workerinput"):
        shutil.rmtree(os.environ["JAXCNN_TEST_COMPILE_CACHE"], ignore_errors=True)


# CI draws the same examples every run, so that a landing never depends on the draw; a
# developer's runs keep exploring new ones.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """A small IDX dataset (synthetic.py) and a TFDS folder it is prepared into once."""
    import synthetic

    root = tmp_path_factory.mktemp("data")
    return synthetic.write_dataset(root / "idx"), root / "tfds"
