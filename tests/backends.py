"""Marks for tests that hold on one backend or device count only, so that a run on a GPU or
TPU (benchmarks/accelerator_check.sh) fails only where something is wrong there."""

import jax
import pytest

# Behaviour jaxcnn has on the CPU alone: its own kernels, XLA's CPU options, CPU devices.
cpu_only = pytest.mark.skipif(
    jax.default_backend() != "cpu",
    reason="CPU-only behaviour (jaxcnn's CPU kernels, CPU compiler options or CPU devices)",
)
# Data parallelism needs two devices: the tests' CPU is split in two (conftest.py).
two_devices = pytest.mark.skipif(jax.device_count() < 2, reason="needs two devices")
