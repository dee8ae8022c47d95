import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).parent))
jax.config.update("jax_platforms", "cpu")
# Two CPU devices, so training runs data parallel in the tests (num_devices=0: all).
jax.config.update("jax_num_cpu_devices", 2)
