import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).parent))
jax.config.update("jax_platforms", "cpu")
