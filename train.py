"""Train a jaxcnn model: `python train.py --config configs/lenet.py --workdir runs/lenet`.

Any config key can be overridden, e.g. `--config.num_epochs=3`. Rerunning with
the same --workdir resumes from its latest checkpoint.
"""

import os
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from jaxcnn import data, malloc, parallel, training

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Path to a config file with get_config().", lock_config=True
)
flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and plots go.")
flags.DEFINE_bool(
    "distributed",
    False,
    "Run as one process of a multi-host job: jax.distributed.initialize() with the flags below "
    "(left empty, JAX detects them on Cloud TPU, SLURM and Open MPI).",
)
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (with --distributed).")
flags.DEFINE_integer("num_processes", None, "Processes in the job (with --distributed).")
flags.DEFINE_integer("process_id", None, "This process's index (with --distributed).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
    malloc.retain_freed_memory()
    if len(argv) > 1:
        sys.exit(f"train.py: unexpected arguments {argv[1:]}")
    path = config_flags.get_config_filename(FLAGS["config"])
    if not os.path.isfile(path):  # else ml_collections' traceback, on first use of the config
        sys.exit(f"train.py: --config {path}: no such file")
    # Both before JAX starts: they fix the devices it will see.
    try:
        parallel.use_cpu_devices(FLAGS.config.cpu_devices)
    except ValueError as e:
        sys.exit(f"train.py: {e}")
    if FLAGS.distributed:
        # Collectives between CPU devices of different processes; GPUs and TPUs bring their own.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    try:
        training.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except (data.DataError, training.ConfigError) as e:
        sys.exit(f"train.py: {e}")


if __name__ == "__main__":
    app.run(main)
