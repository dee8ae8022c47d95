"""Training configs: every key with its default, and every rule a config must keep.

A config is an `ml_collections.ConfigDict`. `defaults()` is the schema: each
key, its type and its default, commented. Config files (`configs/*.py`)
start from it and change what their recipe needs; `train.py` overrides keys
from the command line (`--config.num_epochs=3`). `check(config)` runs every
rule that needs no data, so that `train.py` and the benchmark reject a
mistake before anything loads; the names a config may use come from the
tables that run them (`OPTIMIZERS`, `SCHEDULES`, `MODELS`, `CONV_IMPLS`,
`augment.OPERATIONS`).
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ml_collections

from jaxcnn import models
from jaxcnn.data.sources import FASHION_MNIST_DIR
from jaxcnn.errors import ConfigError
from jaxcnn.nn import layers
from jaxcnn.train import transfer
from jaxcnn.train.augment import parse as parse_augment
from jaxcnn.train.optim import OPTIMIZERS, SCHEDULES
from jaxcnn.train.precision import COMPUTE_DTYPES

# Groups whose keys are free-form: the model's arguments, XLA's options.
OPEN_GROUPS = ("model", "cpu_compiler_options")


def defaults() -> ml_collections.ConfigDict:
    """Every config key with its default: the schema `check` holds configs to."""
    config = ml_collections.ConfigDict()
    # Data
    # A TFDS catalog name ('' data_dir); with IDX files, fashion_mnist names their 10 classes.
    config.dataset = "fashion_mnist"
    # IDX files, an .npz (x_train, y_train, x_test, y_test), train/ and test/ folders of class
    # folders of images, or one tree of class folders; '' -> TFDS's catalog (`dataset`).
    config.data_dir = FASHION_MNIST_DIR
    config.tfds_dir = "~/tensorflow_datasets"  # where datasets are prepared, once
    config.image_size = 0  # resize images to this square (centre crop, then scale); 0: keep
    config.channels = 0  # 1 (grayscale) or 3 (RGB); 0: as the data is (folders: 3 if any colour)
    config.test_fraction = 0.2  # of each class, held out when data_dir is one tree of classes
    config.strict = False  # an unreadable image file stops preparation (else: skipped, counted)
    config.memory_budget_mb = 4096  # a split larger than this streams from disk (0: always)
    # Of the training split, held out to score each epoch on (0: none): each example drawn by a
    # hash of its pixels and label, the same every run. With it, nothing is chosen on the test split.
    config.validation_fraction = 0.0
    # e.g. "crop,flip", "reflect_crop:2,flip,cutout:8", "flip,mixup:0.2" (jaxcnn.train.augment)
    config.augment = ""
    # Model: `name` is a key of jaxcnn.models.MODELS, the other keys its arguments.
    config.model = ml_collections.ConfigDict()
    config.model.name = "lenet"
    # Start from the model trained in this workdir: every parameter and statistic whose path
    # and shape match is loaded (jaxcnn.train.transfer), the rest initialised afresh ('' for none).
    config.init_from = ""
    # Layers kept as loaded or initialised, e.g. "conv1,conv2" (a name or a prefix: "stage1").
    config.freeze = ""
    # Optimisation
    config.optimizer = "adam"  # a key of jaxcnn.train.optim.OPTIMIZERS
    config.learning_rate = 1e-3  # the peak, for schedules that rise and fall
    config.schedule = "constant"  # a key of jaxcnn.train.optim.SCHEDULES
    config.warmup_epochs = 0.0  # for 'cosine' and 'warmup_constant'
    config.momentum = 0.0  # sgd only; > 0 uses Nesterov momentum
    config.weight_decay = 0.0  # adamw only, decoupled
    config.label_smoothing = 0.0
    # Evaluate, checkpoint and export the parameters' moving average, ema = d * ema + (1 - d) *
    # params after each step (0: off; e.g. 0.999); batch norm's statistics are gathered for
    # them on training batches at each epoch's end. Not with schedule-free optimizers.
    config.ema_decay = 0.0
    # Score and predict with the mean of the logits of each image and of its mirror image
    # (test-time augmentation: for data where flipping keeps the class, as `augment`'s flip).
    config.test_time_flip = False
    # And of each image shifted this many pixels down-right and up-left (0: off; training's
    # crops shift images as much).
    config.test_time_shift = 0
    config.batch_size = 256  # global, split over the devices; an epoch drops the last partial one
    config.eval_batch_size = 1000  # global; evaluation sees every test example
    # Score the test split after every this many epochs, and after the last (0: the last only);
    # a validation split is scored after every epoch (early stopping goes by it).
    config.eval_every_epochs = 1
    config.num_epochs = 10  # also the length of the learning-rate schedule
    config.steps_per_call = 12  # steps per jitted call, scanned; rounded down to divide an epoch
    config.compute_dtype = "float32"  # or bfloat16, float16; parameters stay float32
    # Stop once `monitor` has not improved for this many epochs (0: off; needs a validation split).
    config.early_stopping_patience = 0
    # The validation metric that early stopping and the best checkpoint go by: val_loss or
    # val_accuracy. The best epoch's checkpoint is kept beside the newest (with a validation split).
    config.monitor = "val_loss"
    config.max_loss = 0.0  # stop when a step's loss passes this (0: off); NaN or inf always stops
    # Checkpoints
    config.checkpoint_every_steps = 500  # and at every epoch's end; 0: at epochs' ends only
    # Also when this many minutes have passed since the last save (0: off): a cadence that
    # fits any device, where steps take microseconds or seconds.
    config.checkpoint_every_minutes = 0.0
    config.keep_checkpoints = 3  # the newest this many are kept
    # Devices
    config.num_devices = 0  # data parallel over this many devices; 0 = all of the default backend's
    config.cpu_devices = 0  # XLA devices the host CPU is split into; 0: XLA_FLAGS', else 1
    # XLA compile options for the training and evaluation steps, on CPU devices only.
    config.cpu_compiler_options = ml_collections.ConfigDict()
    config.seed = 0
    config.num_seeds = 1  # K > 1: K models, seeds seed..seed+K-1, trained as one vmapped step
    # Compiled programs are kept here across runs ('' for none): a rerun compiles nothing new.
    config.compile_cache_dir = "~/.cache/jaxcnn/xla"
    return config


def _positive_int(minimum: int) -> tuple[Callable[[Any], bool], str]:
    return (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum,
        "a positive int" if minimum == 1 else f"an int >= {minimum}",
    )


def _number(fits: Callable[[float], bool], form: str) -> tuple[Callable[[Any], bool], str]:
    def ok(v):
        return (
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and fits(v)
        )

    return ok, form


def _one_of(names) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in names), f"one of {sorted(names)}"


# The metrics `monitor` can name, and whether higher is better.
MONITORS = {"val_loss": False, "val_accuracy": True}

# key -> (rule, the expected form in words)
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "dataset": ((lambda v: isinstance(v, str) and v != ""), "a non-empty name"),
    "data_dir": ((lambda v: isinstance(v, str)), "a path, or '' for TFDS's catalog"),
    "tfds_dir": ((lambda v: isinstance(v, str)), "a path"),
    "image_size": _positive_int(0),
    "channels": _one_of((0, 1, 3)),
    "test_fraction": _number(lambda v: 0 < v < 1, "a number in (0, 1)"),
    "strict": ((lambda v: isinstance(v, bool)), "True or False"),
    "init_from": ((lambda v: isinstance(v, str)), "a workdir train.py trained in, or ''"),
    "freeze": ((lambda v: isinstance(v, str)), 'comma-separated layer names, e.g. "conv1,conv2"'),
    "validation_fraction": _number(lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "early_stopping_patience": (_positive_int(0)[0], "an int >= 0 (0: off)"),
    "monitor": _one_of(MONITORS),
    "memory_budget_mb": _positive_int(0),
    "optimizer": _one_of(OPTIMIZERS),
    "learning_rate": _number(lambda v: v > 0, "a number > 0"),
    "schedule": _one_of(SCHEDULES),
    "warmup_epochs": _number(lambda v: v >= 0, "a number >= 0"),
    "momentum": _number(lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "weight_decay": _number(lambda v: v >= 0, "a number >= 0"),
    "ema_decay": _number(lambda v: 0 <= v < 1, "a number in [0, 1) (0: off)"),
    "test_time_flip": ((lambda v: isinstance(v, bool)), "True or False"),
    "test_time_shift": _positive_int(0),
    "label_smoothing": _number(lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "batch_size": _positive_int(1),
    "eval_batch_size": _positive_int(1),
    "eval_every_epochs": (_positive_int(0)[0], "an int >= 0 (0: after the last epoch only)"),
    "num_epochs": _positive_int(0),
    "steps_per_call": _positive_int(1),
    "num_devices": (_positive_int(0)[0], "an int >= 0 (0: all)"),
    "cpu_devices": (_positive_int(0)[0], "an int >= 0 (0: as XLA_FLAGS says, else 1)"),
    "seed": _positive_int(0),
    "num_seeds": _positive_int(1),
    "max_loss": _number(lambda v: v >= 0, "a number >= 0 (0: off)"),
    "checkpoint_every_steps": (_positive_int(0)[0], "an int >= 0 (0: at epochs' ends only)"),
    "checkpoint_every_minutes": _number(lambda v: v >= 0, "a number >= 0 (0: off)"),
    "keep_checkpoints": _positive_int(1),
    "compile_cache_dir": ((lambda v: isinstance(v, str)), "a path, or '' for none"),
    "compute_dtype": _one_of(COMPUTE_DTYPES),
}


def check(config: ml_collections.ConfigDict) -> None:
    """Every rule that needs no data: keys, types, ranges and names.

    Raises:
      ConfigError: naming the first key that breaks a rule, what it holds and
        what was expected.
    """
    schema = defaults()
    for key in config:
        if key not in schema:
            raise ConfigError(f"unknown config key `{key}`; the keys are {sorted(schema)}")
    for key in schema:
        if key not in config:
            raise ConfigError(
                f"the config has no `{key}`; start it from jaxcnn.train.config.defaults()"
            )
    for key, (fits, form) in RULES.items():
        if not fits(config[key]):
            raise ConfigError(f"`{key}` must be {form}, got {config[key]!r}")
    try:
        parse_augment(config.augment)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if config.early_stopping_patience and not config.validation_fraction:
        raise ConfigError(
            f"`early_stopping_patience` ({config.early_stopping_patience}) needs a validation "
            "split to watch: set `validation_fraction` (e.g. 0.1); the test split is never used"
        )
    if config.init_from:
        check_init_from(config)
    if config.ema_decay and config.optimizer.startswith("schedule_free"):
        raise ConfigError(
            f"`ema_decay` ({config.ema_decay}) with {config.optimizer!r}, which evaluates an "
            "average of its own: use one of them (adamw, adam, sgd with ema_decay)"
        )
    for group in OPEN_GROUPS:
        if not isinstance(config[group], ml_collections.ConfigDict):
            raise ConfigError(f"`{group}` must be a group of keys, got {config[group]!r}")
    model = check_model(config.model)
    if config.freeze:
        check_freeze(model, config.model.name, config.freeze)


def check_model(model: ml_collections.ConfigDict) -> layers.Layer:
    """`model.name` names a model of `MODELS` whose keyword arguments are the other keys;
    the model they build (for 10 classes: no arrays, only its description)."""
    kwargs = model.to_dict()
    name = kwargs.pop("name", None)
    if name not in models.MODELS:
        raise ConfigError(f"`model.name` must be one of {sorted(models.MODELS)}, got {name!r}")
    if "conv_impl" in kwargs:
        try:
            layers.conv_impl(kwargs["conv_impl"])
        except ValueError:
            raise ConfigError(
                f"`model.conv_impl` must be one of {sorted(layers.CONV_IMPLS)}, "
                f"got {kwargs['conv_impl']!r}"
            ) from None
    try:
        inspect.signature(models.MODELS[name]).bind(10, **kwargs)
    except TypeError:
        accepted = [
            p.name
            for p in inspect.signature(models.MODELS[name]).parameters.values()
            if p.kind == p.KEYWORD_ONLY
        ]
        unknown = sorted(set(kwargs) - set(accepted))
        raise ConfigError(f"`model` {name!r} takes the keys {accepted}, not {unknown}") from None
    try:
        return models.MODELS[name](10, **kwargs)  # no arrays: checks what needs no image size
    except (TypeError, ValueError) as e:
        raise ConfigError(f"`model` keys do not fit {name!r}: {e}") from None


def check_freeze(model: layers.Layer, name: str, freeze: str) -> None:
    """Every name in `freeze` is a layer of `model` (the model called `name`)."""
    unknown = transfer.unknown_prefixes(model, freeze)
    if unknown:
        raise ConfigError(
            f"`freeze` names no layer {unknown[0]!r} of {name!r}; its layers are "
            f"{[n for n in transfer.layer_names(model) if '.' not in n]}, and those inside "
            "them by dotted path (e.g. 'stem.conv')"
        )


def saved(workdir: Path) -> ml_collections.ConfigDict:
    """The config train.py saved in `workdir` (its `config.json`), each key it lacks (a
    workdir trained by an earlier jaxcnn) at its default."""
    config = json.loads((workdir / "config.json").read_text())
    for key, value in defaults().to_dict().items():
        config.setdefault(key, value)
    return ml_collections.ConfigDict(config)


def check_init_from(config: ml_collections.ConfigDict) -> None:
    """`init_from` is a workdir holding a trained model, and one seed trains from it."""
    where = Path(config.init_from).expanduser()
    checkpoints = where / "checkpoints"
    if not (where / "config.json").is_file() or not checkpoints.is_dir():
        raise ConfigError(
            f"`init_from` {str(where)!r} is not a workdir train.py trained in "
            "(no config.json and checkpoints/ there)"
        )
    if not any(p.name.isdigit() for p in checkpoints.iterdir()):
        raise ConfigError(f"`init_from` {str(where)!r} has no checkpoint yet")
    if config.num_seeds > 1:
        raise ConfigError(f"`init_from` needs `num_seeds` 1, got {config.num_seeds}")


def test_scored(config: ml_collections.ConfigDict, epoch: int) -> bool:
    """Whether the test split is scored after `epoch`: every `eval_every_epochs`, and after
    the last of `num_epochs`."""
    every = config.eval_every_epochs
    return epoch == config.num_epochs or bool(every) and epoch % every == 0


def full_batches(config: ml_collections.ConfigDict, num_train: int) -> int:
    """The full batches of `config.batch_size` in `num_train` examples: the rule that needs the data.

    Raises:
      ConfigError: if the batch is larger than the training set.
    """
    if config.batch_size > num_train:
        raise ConfigError(
            f"`batch_size` ({config.batch_size}) is larger than the training set ({num_train})"
        )
    return num_train // config.batch_size


def streams(config: ml_collections.ConfigDict, nbytes: int, gathers: bool = False) -> bool:
    """Whether a training split of `nbytes` streams from disk (over `memory_budget_mb`).
    `gathers`: whether batch norm's statistics are gathered for averaged weights.

    Raises:
      ConfigError: if it does and `num_seeds` > 1 or `gathers`, which need it in memory.
    """
    over = nbytes > config.memory_budget_mb << 20
    key = "num_seeds" if config.num_seeds > 1 else "ema_decay" if gathers else None
    if over and key:
        raise ConfigError(
            f"`{key}` ({config[key]}) needs the training split in memory: it is "
            f"{nbytes >> 20} MB, over `memory_budget_mb` ({config.memory_budget_mb})"
        )
    return over


def with_absolute_paths(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of `config` with its data paths absolute: saved, it means the same from any folder."""
    config = ml_collections.ConfigDict(config.to_dict())
    for key in ("data_dir", "tfds_dir"):
        if config[key]:
            config[key] = str(Path(config[key]).expanduser().resolve())
    return config


def load(path: str | Path) -> ml_collections.ConfigDict:
    """Runs `get_config()` from a config file, as train.py's `--config` does.

    A config in a package (a folder with `__init__.py`, as `configs/` is) may
    import its siblings through it, `from configs import lenet_d2l`, whatever
    the working directory: the package's parent joins `sys.path` while the
    file runs, as the script's folder does for train.py.

    Raises:
      ConfigError: if there is no file at `path`.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no config file {path}")
    folder = path.resolve().parent
    parent = str(folder.parent)
    joins = (folder / "__init__.py").is_file() and parent not in sys.path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None  # a .py file that exists
    module = importlib.util.module_from_spec(spec)
    if joins:  # for as long as the config is read, not for the rest of the process
        sys.path.append(parent)
    try:
        spec.loader.exec_module(module)
        return module.get_config()
    finally:
        if joins:
            sys.path.remove(parent)


def override(config: ml_collections.ConfigDict, setting: str) -> None:
    """Sets `KEY=VALUE` in `config`: a dotted key that exists, a Python literal or a bare string.

    Raises:
      ConfigError: if `setting` is not `KEY=VALUE`, the key is not in
        `config`, or the value's type does not fit the key's.
    """
    key, sep, text = setting.partition("=")
    if not sep or not key:
        raise ConfigError(f"`{setting}` is not KEY=VALUE")
    node = config
    for part in key.split("."):
        if not hasattr(node, "keys") or part not in node:
            raise ConfigError(f"`{setting}`: the config has no key {key!r}")
        node = node[part]
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text  # a bare word, such as lax
    try:
        config.update_from_flattened_dict({key: value})
    except TypeError as e:
        raise ConfigError(f"`{setting}`: {e}") from None
