"""The benchmarks' command line: `python -m jaxcnn.bench {conv,train,runs,summary} ...`."""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import jax

from jaxcnn import parallel
from jaxcnn.bench import conv, finetune, runs, summary, throughput
from jaxcnn.bench.runs import TARGETS
from jaxcnn.errors import JaxcnnError
from jaxcnn.train import config as config_lib

# --set may not touch these: the benchmark sets them itself.
FIXED_KEYS = {"batch_size": "give --batch-size", "augment": "the benchmark trains unaugmented"}


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jaxcnn.bench", description="jaxcnn's benchmarks (benchmarks/README.md)."
    )
    sub = parser.add_subparsers(dest="bench", required=True)
    conv = sub.add_parser("conv", help="jitted against naive convolution")
    conv.add_argument("--quick", action="store_true", help="a small sweep (for tests)")
    conv.add_argument("--repeats", type=int, default=20)
    conv.add_argument(
        "--torch", action="store_true", help="also time PyTorch's conv2d on the same data"
    )
    conv.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    lenet = sub.add_parser(
        "train", aliases=["lenet"], help="training throughput of configs, beside PyTorch's"
    )
    lenet.add_argument("--configs", nargs="+", default=["configs/lenet.py", "configs/lenet_d2l.py"])
    lenet.add_argument("--batch-size", type=int, default=256)
    lenet.add_argument(
        "--steps", type=int, default=50, help="steps to time, run as train.py runs them"
    )
    lenet.add_argument(
        "--torch",
        action="store_true",
        help="also train the same model (built from the same description) with PyTorch eager",
    )
    lenet.add_argument(
        "--torch-compile", action="store_true", help="and with torch.compile, in the same turns"
    )
    lenet.add_argument(
        "--flax",
        action="store_true",
        help="also train the same model written with flax.linen (a plain jit step a call)",
    )
    lenet.add_argument(
        "--devices",
        type=int,
        nargs="+",
        default=[1],
        help="data-parallel device counts to train each config on; on CPU the host is split "
        "into the largest (PyTorch's ratio is taken against the first)",
    )
    lenet.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of every config, e.g. model.conv_impl=lax or "
        "'model.channels=(32, 64)'; repeatable",
    )
    lenet.add_argument(
        "--steps-per-call",
        type=int,
        nargs="+",
        default=[],
        help="steps per jitted call to time, each in turn (default: the config's)",
    )
    lenet.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[],
        help="models per vmapped step (num_seeds) to time, each in turn, e.g. 1 8; "
        "writes seeds.json and seeds.md instead of train.*",
    )
    lenet.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    runs = sub.add_parser("runs", help="whole train.py runs: accuracy, wall time, time to target")
    runs.add_argument("--configs", nargs="+", default=["configs/lenet.py", "configs/lenet_d2l.py"])
    runs.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a --config.KEY=VALUE for every run, e.g. num_epochs=2; repeatable",
    )
    runs.add_argument(
        "--targets",
        type=float,
        nargs="+",
        default=list(TARGETS),
        help="test accuracies to time the first reaching of (default: %(default)s)",
    )
    runs.add_argument(
        "--cold",
        action="store_true",
        help="each run with empty folders for prepared data and compiled steps, as on a new machine",
    )
    runs.add_argument(
        "--torch",
        action="store_true",
        help="also train each config's model in PyTorch eager with the config's own recipe "
        "(and --set), as a whole process",
    )
    runs.add_argument(
        "--torch-compile", action="store_true", help="and with torch.compile (with --torch)"
    )
    runs.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    finetune = sub.add_parser(
        "finetune", help="few images of new classes: from scratch against from a trained model"
    )
    finetune.add_argument("--config", default="configs/lenet.py")
    finetune.add_argument("--per-class", type=int, default=50, help="training images per class")
    finetune.add_argument("--epochs", type=int, default=30, help="epochs on the few images")
    finetune.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    summary = sub.add_parser("summary", help="the README's results table, from --out's files")
    summary.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    summary.add_argument("--readme", type=Path, default=Path("README.md"))
    return parser


def main(argv: list[str] | None = None) -> None:
    cli = parser()
    args = cli.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        cli.error(f"--out must be a folder, got the file {args.out}")
    if getattr(args, "torch", False) or getattr(args, "torch_compile", False):
        try:
            import torch  # noqa: F401
        except ImportError:
            cli.error("--torch needs PyTorch, which is not installed: pip install torch")
    if getattr(args, "flax", False):
        try:
            import flax  # noqa: F401
        except ImportError:
            cli.error("--flax needs Flax, which is not installed: pip install flax")
    if args.bench == "conv":
        if args.repeats < 1:
            cli.error("--repeats must be >= 1")
        print(conv.conv_table(conv.bench_conv(args.quick, args.out, args.repeats, args.torch)))
    elif args.bench in ("train", "lenet"):
        run_training(cli, args)
    elif args.bench == "finetune":
        if min(args.per_class, args.epochs) < 1:
            cli.error("--per-class and --epochs must be >= 1")
        try:
            report = finetune.bench_finetune(args.config, args.out, args.per_class, args.epochs)
        except JaxcnnError as e:
            cli.error(str(e))
        print(finetune.finetune_table(report))
    elif args.bench == "runs":
        if not runs.TRAIN_SCRIPT.is_file():
            cli.error("runs: no train.py here: run from the repository's root")
        try:
            report = runs.bench_runs(
                args.configs,
                args.out,
                args.set,
                args.targets,
                args.torch,
                args.torch_compile,
                args.cold,
            )
        except RuntimeError as e:
            cli.error(str(e))
        print(runs.runs_table(report))
    else:
        try:
            changed = summary.write_readme(args.readme, args.out)
        except (OSError, ValueError) as e:
            cli.error(str(e))
        print(f"{args.readme}: {'updated' if changed else 'already up to date'}")


def run_training(cli: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """`train`: every config loaded, overridden and checked before any data loads."""
    if min(args.steps, args.batch_size, *args.devices, *args.steps_per_call, *args.seeds) < 1:
        cli.error("--steps, --batch-size, --devices, --steps-per-call and --seeds must be >= 1")
    missing = [path for path in args.configs if not Path(path).is_file()]
    if missing:
        cli.error(
            f"--configs: no such file {missing[0]} (the default configs/*.py are "
            "the repository's: run from its root, or give their paths)"
        )
    configs = {path: config_lib.load(path) for path in args.configs}
    for setting in args.set:
        key = setting.partition("=")[0]
        if key in FIXED_KEYS:
            cli.error(f"--set {setting}: {FIXED_KEYS[key]}")
    for (path, config), setting in itertools.product(configs.items(), args.set):
        try:
            config_lib.override(config, setting)
        except config_lib.ConfigError as e:
            cli.error(f"{path}: --set {e}")
    for path, config in configs.items():
        try:
            config_lib.check(config)
        except config_lib.ConfigError as e:
            cli.error(f"{path}: {e}")
    try:
        parallel.use_cpu_devices(max(args.devices))
    except ValueError as e:
        # JAX already running (called from Python) or XLA_FLAGS fixing the count: the devices
        # it has must cover --devices.
        if jax.device_count() < max(args.devices):
            cli.error(f"--devices {max(args.devices)}: {e}")
    try:
        report = throughput.bench_training(
            configs,
            args.batch_size,
            args.steps,
            args.torch,
            args.out,
            tuple(args.devices),
            tuple(args.set),
            tuple(args.steps_per_call),
            tuple(args.seeds),
            args.torch_compile,
            args.flax,
        )
    except JaxcnnError as e:
        cli.error(str(e))
    print(throughput.training_table(report))
    if args.seeds and (ratio := throughput.seeds_ratio(report)):
        k, slower = ratio
        print(
            f"{k} seeds in one vmapped step: {slower:.2f}x one seed's step time ({k}x one after another)"
        )
    rows = [{k: r[k] for k in ("framework", "config", "images_per_s")} for r in report["rows"]]
    print(json.dumps(rows))
