"""Train a jaxcnn model: `python train.py --config configs/lenet.py --workdir runs/lenet`.

Any config key can be overridden, e.g. `--config.num_epochs=3`. Rerunning with
the same --workdir resumes from its latest checkpoint.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxcnn import data, malloc, training

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Path to a config file with get_config().", lock_config=True
)
flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and plots go.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
    malloc.retain_freed_memory()
    if len(argv) > 1:
        sys.exit(f"train.py: unexpected arguments {argv[1:]}")
    try:
        training.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except (data.DataError, training.ConfigError) as e:
        sys.exit(f"train.py: {e}")


if __name__ == "__main__":
    app.run(main)
