"""The jitted pieces of training: the model's state, one step, a scan of steps, evaluation.

`create_trainer` builds them for a config: the model, the optimizer, the
normalisation of the pixels and the data-parallel mesh. `Trainer.train_steps`
runs one step, or a `lax.scan` over several, gathering each batch on the
devices from the device-resident split; `Trainer.evaluate` scores a whole
split. The loop that drives them is `jaxcnn.train.loop`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh

from jaxcnn import data, models, parallel, xla
from jaxcnn.errors import ConfigError
from jaxcnn.nn import layers
from jaxcnn.nn.network import walk
from jaxcnn.train import precision, transfer
from jaxcnn.train.augment import augment_and_mix, partner_labels
from jaxcnn.train.optim import build_optimizer, eval_params
from jaxcnn.train.precision import COMPUTE_DTYPES

# Dropout's key is its step's augmentation key folded with this: a stream of its own.
DROPOUT_STREAM = 0x64726F70
# Training batches that batch norm's statistics are gathered over for averaged weights
# (`ema_decay`): with momentum 0.9, what they held before weighs 0.9 ** 50 < 1%.
STATISTICS_BATCHES = 50


class TrainState(NamedTuple):
    params: Any  # {layer name: {"kernel": ..., "bias": ...}}
    opt_state: Any
    model_state: Any  # {layer name: batch norm's running statistics}; {} without
    step: jax.Array  # [] int32, optimizer steps taken
    # With `num_seeds` K > 1, every field has a leading axis of K, one entry per seed.
    rng: jax.Array  # [2] uint32 raw key data, split once per step
    loss_scale: jax.Array  # [] float32; 1 but for float16 (jaxcnn.train.precision)


def build_model(config: ml_collections.ConfigDict, num_classes: int) -> layers.Layer:
    """The model named by `config.model.name`, with the rest of `config.model` as arguments.

    The names and keys are checked by `jaxcnn.train.config.check`.
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
        mean: Sequence[float],
        std: Sequence[float],
        mesh: Mesh,
        compiler_options: dict[str, Any] | None = None,
        frozen: tuple[Any, Any] | None = None,
    ):
        """`frozen`: masks of the parameters and of the model state that `config.freeze`
        keeps fixed (`jaxcnn.train.transfer.frozen_mask`), or None."""
        self.config, self.model, self.optimizer = config, model, optimizer
        self.frozen = frozen
        # Per channel, as constants of the compiled steps.
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.mesh = mesh
        options = compiler_options or None
        # Several seeds train as one program: each step vmapped over the seeds' states
        # and batches, the images shared.
        self.seeds = config.num_seeds
        train_steps = self._train_steps
        evaluate = self._evaluate
        if self.seeds > 1:
            train_steps = jax.vmap(train_steps, in_axes=(0, None, None, 0))
            evaluate = jax.vmap(evaluate, in_axes=(0, 0, None, None, None, None))
        self.train_steps = jax.jit(train_steps, donate_argnums=0, compiler_options=options)
        self.train_steps_fed = jax.jit(
            self._train_steps_fed, donate_argnums=0, compiler_options=options
        )
        self.evaluate = jax.jit(evaluate, compiler_options=options)
        gather = self._gather_statistics
        if self.seeds > 1:
            gather = jax.vmap(gather, in_axes=(0, 0, None, None))
        self._gather = jax.jit(gather, compiler_options=options)
        # Batch norm's statistics follow the training parameters, not their moving average.
        self.gathers_statistics = bool(config.get("ema_decay")) and model.has_state

        def pick(params, opt_state):
            picked = eval_params(config, params, opt_state)
            return picked if frozen is None else transfer.keep_frozen(frozen[0], picked, params)

        self._eval_params = jax.jit(jax.vmap(pick) if self.seeds > 1 else pick)

    def first_seed(self, tree: Any) -> Any:
        """The first seed's part of `tree` (a state, or a part of one): `tree` itself unless
        several seeds train together, whose arrays lead with a seeds axis."""
        return tree if self.seeds == 1 else jax.tree.map(lambda x: x[0], tree)

    def stack_seeds(self, per_seed: list[np.ndarray]) -> np.ndarray:
        """Each seed's array (one per seed) as the step takes them: stacked on a leading seeds
        axis, or the one array alone."""
        return per_seed[0] if self.seeds == 1 else np.stack(per_seed)

    def per_step(self, metric: np.ndarray) -> np.ndarray:
        """A call's metric as one value per step, or one row of the seeds' values per step
        (the vmapped step gives `(seeds, steps)`)."""
        return metric if self.seeds == 1 else metric.T

    def eval_params(self, state: TrainState) -> Any:
        """The parameters to evaluate `state` with (`jaxcnn.train.optim.eval_params`)."""
        return self._eval_params(state.params, state.opt_state)

    def refresh_statistics(self, state: TrainState, images, order: np.ndarray) -> TrainState:
        """`state` with batch norm's running statistics gathered anew for the evaluated
        parameters (`eval_params`) over the first `STATISTICS_BATCHES` batches of `order`
        `(steps, batch)` of the device-resident `images`, as `torch.optim.swa_utils.update_bn`
        does for averaged weights; `state` itself where they need none (`gathers_statistics`)."""
        if not self.gathers_statistics:
            return state
        index = self.shard_batches(np.asarray(order)[:STATISTICS_BATCHES])
        model_state = self._gather(self.eval_params(state), state.model_state, images, index)
        return state._replace(model_state=model_state)

    def _gather_statistics(self, params, model_state, images, batch_index):
        def batch(model_state, index):
            x = self.normalize(images[index])
            key = jax.random.key(0)  # dropout, where there is some: as training draws it
            return self.logits(params, model_state, x, training=True, key=key)[1], None

        return jax.lax.scan(batch, model_state, batch_index)[0]

    def replicate(self, tree):
        """`tree`'s arrays (state, a data split) in full on every device of the mesh."""
        return parallel.put(tree, parallel.replicated(self.mesh))

    def feed(self, images: np.ndarray, labels: np.ndarray) -> tuple[jax.Array, jax.Array]:
        """This process's share of a call's batches, `(steps, local_batch, ...)`, as global
        arrays split along the batch axis (axis 1) over the mesh, every process's share
        in its place."""
        sharding = parallel.batch_sharded(self.mesh, axis=1)
        return tuple(  # type: ignore[return-value]
            jax.make_array_from_process_local_data(sharding, x) for x in (images, labels)
        )

    def shard_batches(self, tree):
        """`[..., batch]` index arrays, split along the last (example) axis over the mesh."""
        return jax.tree.map(
            lambda x: parallel.put(x, parallel.batch_sharded(self.mesh, np.ndim(x) - 1)), tree
        )

    def normalize(self, images: jax.Array) -> jax.Array:
        """uint8 NHWC images to float32, each channel to mean 0 and deviation 1 over the training split."""
        return (images.astype(jnp.float32) / 255.0 - self.mean) / self.std

    def logits(self, params, model_state, x, *, training: bool, key=None):
        """The model's float32 logits and new state, computed in `compute_dtype`."""
        dtype = COMPUTE_DTYPES[self.config.compute_dtype]
        logits, model_state = self.model.apply_with_state(
            precision.cast(params, dtype), model_state, x.astype(dtype), training=training, key=key
        )
        return logits.astype(jnp.float32), model_state

    def eval_logits(self, params, model_state, x: jax.Array) -> jax.Array:
        """The float32 logits `(n, classes)` a trained model is scored and used with, for
        normalised NHWC `x`: batch norm's running statistics, no dropout; the mean of the
        logits of the views `test_views` makes of `x` (itself alone by default)."""
        views = test_views(x, self.config.test_time_flip, self.config.test_time_shift)
        logits = [self.logits(params, model_state, v, training=False)[0] for v in views]
        return sum(logits[1:], logits[0]) / len(logits)

    def loss(self, params, model_state, x, labels, key, scale, own=None):
        """Label-smoothed cross-entropy to minimise (times the loss `scale`); plain
        cross-entropy, accuracy and the model's new state (batch-norm statistics) to report.
        `own`: each example's weight of its own label where augmentation mixed it with its
        partner's (`jaxcnn.train.augment.augment_and_mix`)."""
        logits, model_state = self.logits(params, model_state, x, training=True, key=key)
        log_p = jax.nn.log_softmax(logits)
        classes = log_p.shape[-1]
        targets = jax.nn.one_hot(labels, classes)
        if own is not None:
            partner = jax.nn.one_hot(partner_labels(labels), classes)
            targets = own[:, None] * targets + (1 - own[:, None]) * partner
        targets = optax.smooth_labels(targets, self.config.label_smoothing)
        loss = -jnp.sum(targets * log_p, axis=-1).mean()
        cross_entropy, correct = scores(log_p, labels)
        return loss * scale, (cross_entropy.mean(), correct.mean(), model_state)

    def train_step(self, state: TrainState, images, labels) -> tuple[TrainState, dict]:
        rng, aug_key = jax.random.split(jax.random.wrap_key_data(state.rng))
        x, own = augment_and_mix(aug_key, self.normalize(images), self.config.augment)
        dropout_key = jax.random.fold_in(aug_key, DROPOUT_STREAM)
        (_, (loss, accuracy, model_state)), grads = jax.value_and_grad(self.loss, has_aux=True)(
            state.params, state.model_state, x, labels, dropout_key, state.loss_scale, own
        )
        grads = jax.tree.map(lambda g: g / state.loss_scale, grads)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        if self.config.compute_dtype == "float16":  # an overflowing step changes nothing
            finite = precision.all_finite(grads)
            keep = lambda new, old: jax.tree.map(  # noqa: E731
                lambda n, o: jnp.where(finite, n, o), new, old
            )
            params, opt_state = keep(params, state.params), keep(opt_state, state.opt_state)
            model_state = keep(model_state, state.model_state)
            scale = precision.next_loss_scale(state.loss_scale, finite, state.step)
        else:
            scale = state.loss_scale
        if self.frozen is not None:  # put back as they were, whatever the optimizer did
            params = transfer.keep_frozen(self.frozen[0], params, state.params)
            model_state = transfer.keep_frozen(self.frozen[1], model_state, state.model_state)
        state = TrainState(
            params, opt_state, model_state, state.step + 1, jax.random.key_data(rng), scale
        )
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

    def _train_steps_fed(self, state: TrainState, images, labels) -> tuple[TrainState, dict]:
        """`train_steps_fed` (jitted, donating `state`): one step per batch of `images`
        `(steps, batch, h, w, c)` and `labels` `(steps, batch)`, as a `lax.scan`; the
        batches come from the host (`feed`), not from a split on the devices."""

        def step(state, batch):
            return self.train_step(state, *batch)

        return jax.lax.scan(step, state, (images, labels))

    def _evaluate(self, params, model_state, images, labels, batch_index, mask) -> dict:
        """`evaluate` (jitted): summed loss and correct answers, and the count, over the
        masked examples of `batch_index`, by `eval_logits`."""

        def batch(totals, inputs):
            index, weight = inputs
            x = self.normalize(images[index])
            log_p = jax.nn.log_softmax(self.eval_logits(params, model_state, x))
            loss, correct = scores(log_p, labels[index])
            return jax.tree.map(
                jnp.add, totals, (jnp.sum(loss * weight), jnp.sum(correct * weight))
            ), None

        (loss, correct), _ = jax.lax.scan(batch, (0.0, 0.0), (batch_index, mask))
        return {"loss": loss, "correct": correct, "count": jnp.sum(mask)}


def create_trainer(
    config,
    info: data.DataInfo,
    steps_per_epoch: int,
    mesh: Mesh | None = None,
    options: dict[str, Any] | None = None,
) -> tuple[Trainer, TrainState]:
    """The model, optimizer, normalisation and mesh for `config` on data `info`
    describes, and the initial state.

    The state is replicated over the mesh (default: `device_mesh(config)`);
    `options` are the steps' compile options (default: `compiler_options`).
    """
    mesh = mesh or device_mesh(config)
    options = compiler_options(config, mesh) if options is None else options
    model = build_model(config, info.num_classes)
    optimizer = build_optimizer(config, steps_per_epoch)
    input_shape = (1, *info.image_shape)
    try:
        walk(model, input_shape)  # shapes only: a layer that does not fit, named by its path
    except ValueError as e:
        raise ConfigError(
            f"`model` does not fit the data's {info.image_shape} images: {e}"
        ) from None

    def initial_state(seed: jax.Array) -> TrainState:
        init_key, train_key = jax.random.split(jax.random.key(seed))
        _, params, model_state = model.init_with_state(init_key, input_shape)
        return TrainState(
            params,
            optimizer.init(params),
            model_state,
            jnp.zeros((), jnp.int32),
            jax.random.key_data(train_key),
            precision.initial_loss_scale(config.compute_dtype),
        )

    # One compiled init rather than many small eager ops, which dispatch one by
    # one; compiled without XLA's backend optimisations, which for a program
    # run once cost more than they save (docs/performance.md, "Start-up").
    # Several seeds: one state per seed, stacked, seeds `seed, seed + 1, ...`.
    seeds = jnp.arange(config.num_seeds) + config.seed
    init = jax.jit(
        jax.vmap(initial_state) if config.num_seeds > 1 else lambda s: initial_state(s[0]),
        compiler_options={"xla_backend_optimization_level": 0},
    )
    state = init(seeds)
    frozen = None
    if config.get("freeze"):
        frozen = tuple(
            transfer.frozen_mask(t, config.freeze) for t in (state.params, state.model_state)
        )
    trainer = Trainer(config, model, optimizer, info.mean, info.std, mesh, options, frozen)
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


def test_views(x: jax.Array, flip: bool, shift: int) -> list[jax.Array]:
    """The views of NHWC images `x` that test-time augmentation averages over: `x`; with
    `shift`, `x` moved `shift` pixels down and right and as many up and left (zeros, the
    normalised mean, shifted in, as training's crops pad); with `flip`, each of those and
    its mirror image (flipped along the width)."""
    views = [x]
    if shift:
        h, w = x.shape[1:3]
        padded = jnp.pad(x, ((0, 0), (shift, shift), (shift, shift), (0, 0)))
        views += [
            padded[:, :h, :w],
            padded[:, 2 * shift : 2 * shift + h, 2 * shift : 2 * shift + w],
        ]
    if flip:
        views += [jnp.flip(v, axis=2) for v in views]
    return views


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
