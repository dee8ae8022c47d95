"""Training and evaluation: `train_and_evaluate(config, workdir)`.

One jitted `train_steps` runs one step (or, with `steps_per_call` > 1, a
`lax.scan` over several), gathering each batch on the devices from the
device-resident split; one jitted `evaluate` scores a whole split. Training is
data parallel over `config.num_devices` devices (see `jaxcnn.parallel`): the
state and the splits are replicated, each batch is split across the devices.
State is a small NamedTuple checkpointed with orbax after every epoch;
rerunning with the same workdir resumes from the latest.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from jax.sharding import Mesh
from tqdm import tqdm

from jaxcnn import data, layers, models, parallel, xla
from jaxcnn.augment import augment
from jaxcnn.config import ConfigError, check, full_batches
from jaxcnn.optim import build_optimizer

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "learning_curves.png"


class TrainState(NamedTuple):
    params: Any  # {layer name: {"kernel": ..., "bias": ...}}
    opt_state: Any
    step: jax.Array  # [] int32, optimizer steps taken
    rng: jax.Array  # [2] uint32 raw key data, split once per step


def build_model(config: ml_collections.ConfigDict, num_classes: int) -> layers.Sequential:
    """The model named by `config.model.name`, with the rest of `config.model` as arguments.

    The names and keys are checked by `jaxcnn.config.check`.
    """
    kwargs = config.model.to_dict()
    return models.MODELS[kwargs.pop("name")](num_classes, **kwargs)


def scores(log_p: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-example cross-entropy and 0/1 correctness from `[B, classes]` log-probabilities."""
    cross_entropy = -jnp.take_along_axis(log_p, labels[:, None], axis=-1)[:, 0]
    return cross_entropy, (jnp.argmax(log_p, -1) == labels).astype(log_p.dtype)


class Trainer:
    """The jitted pieces of training, closed over the model, optimizer, data statistics and mesh."""

    def __init__(
        self,
        config,
        model,
        optimizer,
        mean: float,
        std: float,
        mesh: Mesh,
        compiler_options: dict[str, Any] | None = None,
    ):
        self.config, self.model, self.optimizer = config, model, optimizer
        self.mean, self.std, self.mesh = mean, std, mesh
        options = compiler_options or None
        self.train_steps = jax.jit(self._train_steps, donate_argnums=0, compiler_options=options)
        self.evaluate = jax.jit(self._evaluate, compiler_options=options)

    def replicate(self, tree):
        """`tree`'s arrays (state, a data split) in full on every device of the mesh."""
        return parallel.put(tree, parallel.replicated(self.mesh))

    def shard_batches(self, tree):
        """`[..., batch]` index arrays, split along the last (example) axis over the mesh."""
        return jax.tree.map(
            lambda x: parallel.put(x, parallel.batch_sharded(self.mesh, np.ndim(x) - 1)), tree
        )

    def normalize(self, images: jax.Array) -> jax.Array:
        return (images.astype(jnp.float32) / 255.0 - self.mean) / self.std

    def loss(self, params, x, labels):
        """Label-smoothed cross-entropy to minimise; plain cross-entropy and accuracy to report."""
        log_p = jax.nn.log_softmax(self.model.apply(params, x))
        targets = optax.smooth_labels(
            jax.nn.one_hot(labels, log_p.shape[-1]), self.config.label_smoothing
        )
        loss = -jnp.sum(targets * log_p, axis=-1).mean()
        cross_entropy, correct = scores(log_p, labels)
        return loss, (cross_entropy.mean(), correct.mean())

    def train_step(self, state: TrainState, images, labels) -> tuple[TrainState, dict]:
        rng, aug_key = jax.random.split(jax.random.wrap_key_data(state.rng))
        x = augment(aug_key, self.normalize(images), self.config.augment)
        (_, (loss, accuracy)), grads = jax.value_and_grad(self.loss, has_aux=True)(
            state.params, x, labels
        )
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        state = TrainState(params, opt_state, state.step + 1, jax.random.key_data(rng))
        return state, {"loss": loss, "accuracy": accuracy}

    def _train_steps(
        self, state: TrainState, images, labels, batch_index
    ) -> tuple[TrainState, dict]:
        """`train_steps` (jitted, donating `state`): runs `batch_index.shape[0]` steps;
        returns the state and per-step metrics.

        `batch_index`: `(steps, batch)` indices into `images` and `labels`.
        Several steps run as one `lax.scan`; one is traced on its own.
        """

        def step(state, index):
            return self.train_step(state, images[index], labels[index])

        if batch_index.shape[0] == 1:
            state, metrics = step(state, batch_index[0])
            return state, jax.tree.map(lambda m: m[None], metrics)
        return jax.lax.scan(step, state, batch_index)

    def _evaluate(self, params, images, labels, batch_index, mask) -> dict:
        """`evaluate` (jitted): mean loss and accuracy over the masked examples of `batch_index`."""

        def batch(totals, inputs):
            index, weight = inputs
            log_p = jax.nn.log_softmax(self.model.apply(params, self.normalize(images[index])))
            loss, correct = scores(log_p, labels[index])
            return jax.tree.map(
                jnp.add, totals, (jnp.sum(loss * weight), jnp.sum(correct * weight))
            ), None

        (loss, correct), _ = jax.lax.scan(batch, (0.0, 0.0), (batch_index, mask))
        count = jnp.sum(mask)
        return {"loss": loss / count, "accuracy": correct / count}


def load_data(config) -> tuple[data.Split, data.Split, int]:
    builder = data.dataset_builder(config.dataset, config.data_dir, config.tfds_dir)
    train, test = data.load_split(builder, "train"), data.load_split(builder, "test")
    num_classes = builder.info.features["label"].num_classes
    return train, test, num_classes


def create_trainer(
    config,
    train: data.Split,
    num_classes: int,
    steps_per_epoch: int,
    mesh: Mesh | None = None,
    options: dict[str, Any] | None = None,
) -> tuple[Trainer, TrainState]:
    """The model, optimizer, normalisation and mesh for `config`, and the initial state.

    The state is replicated over the mesh (default: `device_mesh(config)`);
    `options` are the steps' compile options (default: `compiler_options`).
    """
    mesh = mesh or device_mesh(config)
    options = compiler_options(config, mesh) if options is None else options
    model = build_model(config, num_classes)
    init_key, train_key = jax.random.split(jax.random.key(config.seed))
    input_shape = (1, *train.images.shape[1:])
    # One compiled init rather than many small eager ops, which dispatch one by one.
    try:
        params = jax.jit(lambda key: model.init(key, input_shape)[1])(init_key)
    except ValueError as e:  # a width or a kernel that does not fit, named by the layer
        raise ConfigError(f"`model`: {e}") from None
    optimizer = build_optimizer(config, steps_per_epoch)
    state = TrainState(
        params, optimizer.init(params), jnp.zeros((), jnp.int32), jax.random.key_data(train_key)
    )
    pixels = train.images.astype(np.float32) / 255.0
    trainer = Trainer(
        config,
        model,
        optimizer,
        float(pixels.mean()),
        float(pixels.std()),
        mesh,
        options,
    )
    return trainer, trainer.replicate(state)


def device_mesh(config) -> Mesh:
    """The data-parallel mesh for `config.num_devices`; each batch must split evenly over it."""
    try:
        mesh = parallel.data_mesh(config.num_devices)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    for key in ("batch_size", "eval_batch_size"):
        if config[key] % mesh.size:
            raise ConfigError(
                f"`{key}` ({config[key]}) must be a multiple of the {mesh.size} devices "
                "it is split over (`num_devices`)"
            )
    return mesh


def compiler_options(config, mesh: Mesh) -> dict[str, Any]:
    """`config.cpu_compiler_options` if `mesh` is CPU devices, less those this XLA lacks.

    The options are XLA's, for the CPU compiler of the jitted training and
    evaluation steps; see `jaxcnn.xla.available_options`. A value XLA rejects
    is a ConfigError.
    """
    if any(device.platform != "cpu" for device in mesh.devices.flat):
        return {}
    try:
        return xla.available_options(config.cpu_compiler_options, prefix="cpu_compiler_options.")
    except ValueError as e:
        raise ConfigError(str(e)) from None


def prepare_workdir(workdir: str | Path) -> Path:
    """`workdir` as an absolute path to a folder this process can write, made if need be.

    Raises:
      ConfigError: if it is a file, or cannot be made or written.
    """
    path = Path(workdir).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"`workdir` must be a folder, got the file {path}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"`workdir` {path} cannot be written: {e.strerror or e}") from None
    return path


def chunk_size(steps_per_epoch: int, wanted: int) -> int:
    """The largest divisor of `steps_per_epoch` not above `wanted`: every chunk has one shape."""
    return max(
        d for d in range(1, max(1, min(wanted, steps_per_epoch)) + 1) if steps_per_epoch % d == 0
    )


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
    """Trains `config`'s model, evaluating after every epoch; resumes from `workdir`.

    Writes `<workdir>/metrics.jsonl` (one JSON line per epoch, appended),
    `<workdir>/checkpoints/` (orbax, one per epoch), `<workdir>/config.json`
    and `<workdir>/learning_curves.png`.

    Returns:
      The last epoch's metrics (the restored one if nothing was left to train).
    """
    start_time = time.perf_counter()
    check(config)
    workdir = prepare_workdir(workdir)
    mesh = device_mesh(config)
    options = compiler_options(config, mesh)
    train, test, num_classes = load_data(config)
    n_train = train.images.shape[0]
    steps_per_epoch = full_batches(config, n_train)

    trainer, state = create_trainer(config, train, num_classes, steps_per_epoch, mesh, options)
    model, input_shape = trainer.model, (1, *train.images.shape[1:])
    train_images, train_labels, test_images, test_labels = trainer.replicate((*train, *test))
    lead = jax.process_index() == 0  # across hosts, one process reports
    # XLA's CPU collectives block threads of the pool that queued steps need
    # too: over several CPU devices, steps run one at a time or may deadlock.
    one_at_a_time = trainer.mesh.size > 1 and jax.default_backend() == "cpu"
    report = print if lead else lambda *args, **kwargs: None

    checkpoints = ocp.CheckpointManager(
        workdir / "checkpoints", options=ocp.CheckpointManagerOptions(max_to_keep=3, create=True)
    )
    start_epoch = 0
    if checkpoints.latest_step() is not None:
        start_epoch = checkpoints.latest_step()
        try:
            state = checkpoints.restore(start_epoch, args=ocp.args.StandardRestore(state))
        except Exception as e:
            raise ConfigError(
                f"the checkpoints in {workdir / 'checkpoints'} do not fit this config ({type(e).__name__}); "
                "use another --workdir"
            ) from None
        state = TrainState(*state)
        report(
            f"Resuming from epoch {start_epoch} (step {parallel.fetch(state.step)}) in {workdir}"
        )
    else:
        report(
            f"{config.model.name}: {n_train} training images, {steps_per_epoch} steps of "
            f"{config.batch_size} per epoch on {trainer.mesh.size} {jax.default_backend()} device(s)"
        )
        report(layers.summary(model, state.params, input_shape))
    if lead:
        (workdir / "config.json").write_text(config.to_json(indent=2))

    eval_index, eval_mask = trainer.shard_batches(
        data.eval_batches(test.images.shape[0], config.eval_batch_size)
    )

    def test_scores(params) -> dict:
        scored = trainer.evaluate(params, test_images, test_labels, eval_index, eval_mask)
        return {f"test_{k}": float(v) for k, v in parallel.fetch(scored).items()}

    chunk = chunk_size(steps_per_epoch, config.steps_per_call)
    metrics_path = workdir / METRICS_FILE
    last = None
    for epoch in range(start_epoch + 1, config.num_epochs + 1):
        epoch_start = time.perf_counter()
        perm_key = jax.random.fold_in(jax.random.key(config.seed), epoch)
        batch_index = np.asarray(data.epoch_batches(perm_key, n_train, config.batch_size))
        train_metrics = []
        bar = tqdm(
            total=steps_per_epoch,
            desc=f"epoch {epoch}/{config.num_epochs}",
            unit="step",
            disable=not (lead and sys.stderr.isatty()),
            leave=False,
        )
        for index in batch_index.reshape(-1, chunk, config.batch_size):
            index = trainer.shard_batches(index)
            state, metrics = trainer.train_steps(state, train_images, train_labels, index)
            if one_at_a_time:
                jax.block_until_ready(metrics)
            train_metrics.append(metrics)
            bar.update(chunk)
        bar.close()
        train_metrics = jax.tree.map(
            lambda *m: float(np.mean(np.concatenate(m))), *parallel.fetch(train_metrics)
        )
        epoch_time = time.perf_counter() - epoch_start
        test_metrics = test_scores(state.params)
        checkpoints.save(epoch, args=ocp.args.StandardSave(state))
        last = {
            "epoch": epoch,
            "step": int(parallel.fetch(state.step)),
            "train_loss": train_metrics["loss"],
            "train_accuracy": train_metrics["accuracy"],
            **test_metrics,
            "epoch_time_s": epoch_time,
            "images_per_s": steps_per_epoch * config.batch_size / epoch_time,
            "elapsed_s": time.perf_counter() - start_time,
        }
        if lead:
            with metrics_path.open("a") as f:
                f.write(json.dumps(last) + "\n")
        report(
            f"epoch {epoch:3d}  train loss {last['train_loss']:.4f} acc {last['train_accuracy']:.4f}  "
            f"test loss {last['test_loss']:.4f} acc {last['test_accuracy']:.4f}  "
            f"{last['images_per_s']:,.0f} img/s  {last['elapsed_s']:.1f} s",
            flush=True,
        )
    checkpoints.wait_until_finished()
    checkpoints.close()
    if last is None:  # nothing left to train: report the restored model
        last = {
            "epoch": start_epoch,
            "step": int(parallel.fetch(state.step)),
            **test_scores(state.params),
        }
        report(
            f"Nothing to train: epoch {start_epoch} of {config.num_epochs} is done; test accuracy {last['test_accuracy']:.4f}"
        )
    if lead and metrics_path.exists():
        plot_curves(metrics_path, workdir / CURVES_FILE)
    return last


def read_metrics(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_curves(metrics_path: Path, out_path: Path) -> None:
    """Loss and accuracy per epoch, train and test, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for split, style in (("train", "-o"), ("test", "-s")):
        ax_loss.plot(epochs, [r[f"{split}_loss"] for r in rows], style, label=split)
        ax_acc.plot(epochs, [r[f"{split}_accuracy"] for r in rows], style, label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
