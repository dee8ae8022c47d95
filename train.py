"""Train a jaxcnn model: `python train.py --config configs/lenet.py --workdir runs/lenet`.

Any config key can be overridden, e.g. `--config.num_epochs=3`. Rerunning with
the same --workdir resumes from its latest intact checkpoint. Anything a user
can get wrong (a flag, a config value, the data, the workdir) is one line on
stderr and exit status 1, before any data loads where the data is not the
problem. SIGTERM and Ctrl-C save a checkpoint and exit 143 and 130; a
diverging loss exits 3 (`jaxcnn.train.stop`).
"""

from __future__ import annotations

import time

STARTED = time.time()  # the run's start for its phase line: before the imports, which count

import os
import sys
from pathlib import Path

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from jaxcnn import malloc, parallel, xla
from jaxcnn.errors import JaxcnnError
from jaxcnn.train import config as config_lib
from jaxcnn.train import loop
from jaxcnn.train.stop import EXIT_SIGINT, Diverged, Stopped

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
flags.DEFINE_list(
    "local_device_ids",
    None,
    "The devices this process uses, e.g. 0 for one process per GPU (with --distributed; "
    "left empty, JAX's default: all, or what SLURM or Open MPI say).",
)
flags.mark_flags_as_required(["config", "workdir"])


def fail(message: str) -> None:
    sys.exit(f"train.py: {message}")


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, each mistake a user can make reported in one line."""
    path = config_path(argv)
    if path is not None and not Path(path).is_file():
        fail(f"--config {path}: no such file")
    try:
        rest = FLAGS(argv)
        FLAGS.config  # noqa: B018  (applies the --config.KEY overrides, which may raise)
    except Exception as e:  # absl's flag errors, ml_collections' for a key or value
        unknown = path and unknown_key(path, argv)
        if unknown:
            fail(unknown)
        fail(str(e).replace("flag --", "--"))
    return rest


def config_path(argv: list[str]) -> str | None:
    """The `--config` file named in `argv`, if any."""
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.partition("=")[2]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def unknown_key(path: str, argv: list[str]) -> str | None:
    """The first `--config.KEY` in `argv` whose key the config at `path` lacks, said in words."""
    try:
        config = config_lib.load(path)
    except Exception:
        return None
    for arg in argv:
        if not arg.startswith("--config."):
            continue
        key = arg.removeprefix("--config.").partition("=")[0]
        node = config
        *groups, last = key.split(".")
        for group in groups:
            node = node[group] if hasattr(node, "keys") and group in node else None
        if not hasattr(node, "keys") or last not in node:
            where = f"`{'.'.join(groups)}`" if groups else "the config"
            keys = sorted(node.keys()) if hasattr(node, "keys") else []
            return f"--config.{key}: {where} has no key `{last}`; its keys are {keys}"
    return None


def main(argv: list[str]) -> None:
    logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}")
    config = FLAGS.config
    try:
        config_lib.check(config)
        # Before JAX starts: they fix the devices it will see, and where compiles are kept.
        parallel.use_cpu_devices(config.cpu_devices)
        if config.compile_cache_dir:
            xla.use_compilation_cache(config.compile_cache_dir)
    except ValueError as e:
        fail(str(e))
    if FLAGS.distributed:
        # Collectives between CPU devices of different processes; GPUs and TPUs bring their own.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        local = [int(i) for i in FLAGS.local_device_ids] if FLAGS.local_device_ids else None
        jax.distributed.initialize(
            FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id, local_device_ids=local
        )
    malloc.retain_freed_memory_on_cpu()
    code = 0
    try:
        loop.train_and_evaluate(config, FLAGS.workdir, started=STARTED)
    except JaxcnnError as e:
        print(f"train.py: {e}", file=sys.stderr)
        code = 1
    except (Stopped, Diverged) as e:
        print(f"train.py: {e}", file=sys.stderr)
        code = e.exit_code
    except KeyboardInterrupt:  # before the loop takes Ctrl-C over: nothing to save yet
        print("train.py: interrupted before training started; nothing was saved", file=sys.stderr)
        code = EXIT_SIGINT
    if FLAGS.distributed:
        sys.exit(code)  # a job of several processes shuts JAX's distributed runtime down
    # Everything is written and synced (checkpoints waited for, metrics replaced atomically),
    # failed or not: skip tearing down JAX's runtime and orbax's threads, which takes the
    # better part of a second and, after a failed save, prints their tracebacks.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
