"""Training and evaluation: `train_and_evaluate(config, workdir)`, which never loses a run.

The loop runs `jaxcnn.train.trainer`'s jitted steps, `steps_per_call` to a call, and
scores a validation split after every epoch and the test split every
`eval_every_epochs` and after the last (`jaxcnn.train.evaluation`; early stopping:
`jaxcnn.train.monitor`).
It saves a checkpoint every `checkpoint_every_steps` steps and at each epoch's end;
rerunning in the workdir resumes from the newest intact one with the same data order
and draws, as if uninterrupted, and refuses another model's, optimizer's, seed's or
data's (`jaxcnn.train.position`). One training holds a workdir (`jaxcnn.train.workdir`). SIGTERM
and Ctrl-C stop it after a checkpoint (`jaxcnn.train.stop`); a non-finite loss, or one above
`max_loss`, stops it before anything of it is saved; a failed save, within a call.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from jaxcnn import data, parallel
from jaxcnn.data.holdout import Holdout, holdout
from jaxcnn.errors import JaxcnnError, SaveError
from jaxcnn.nn.summary import summary
from jaxcnn.train import config as config_lib
from jaxcnn.train import metrics as metrics_lib
from jaxcnn.train import transfer
from jaxcnn.train import workdir as workdir_lib
from jaxcnn.train.batch_source import BatchSource
from jaxcnn.train.checkpoint import Checkpoints
from jaxcnn.train.evaluation import Scorer
from jaxcnn.train.monitor import Monitor
from jaxcnn.train.phases import Phases
from jaxcnn.train.position import Position, check_record, fingerprint
from jaxcnn.train.predict import Predictor
from jaxcnn.train.stop import Diverged, Stopped, StopRequests
from jaxcnn.train.trainer import Trainer, TrainState, compiler_options, create_trainer, device_mesh

CHECKPOINT_DIR = "checkpoints"


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str | Path, *, started: float | None = None
) -> dict:
    """Trains `config`'s model, evaluating as `eval_every_epochs` says; resumes from `workdir`.

    Writes `<workdir>/metrics.jsonl` (one JSON line per epoch), `checkpoints/`
    (orbax: the last `keep_checkpoints`), `config.json`, `data.json` and
    `learning_curves.png` (`config.json` and `data.json` once the checkpoints
    fit); every config rule is checked before the data loads. `started`: the
    run's start by `time.time()` (None: now), for the start-up phase.

    Returns:
      The last epoch's metrics (the restored model's test scores if nothing
      was left to train).

    Raises:
      ConfigError, DataError: a config or the data that cannot work.
      WorkdirError: the workdir is a file, unwritable, or in use by another training.
      CheckpointError: its checkpoints were made by another model or data, or
        cannot be read; nothing of them is moved.
      Stopped: SIGTERM or Ctrl-C, after saving a checkpoint.
      Diverged: a non-finite loss, or one above `max_loss`.
      SaveError: a checkpoint could not be written (a full disk).
    """
    start_time, phases, claim = time.perf_counter(), Phases(started), None
    try:
        with phases("set-up"):
            config_lib.check(config)
            mesh = device_mesh(config)
            # Across hosts, process 0 holds the workdir for the job.
            claim = workdir_lib.claim(workdir) if jax.process_index() == 0 else None
            workdir = workdir_lib.resolve(workdir)
            options = compiler_options(config, mesh)
        with phases("data"):
            writers = data.Writers()  # a first run's records, written while it compiles
            train, test, info = data.load(config, writers)
            held = holdout(*train, config.validation_fraction)
        steps_per_epoch = config_lib.full_batches(config, len(held.train))
        with phases("set-up"):
            trainer, state = create_trainer(config, info, steps_per_epoch, mesh, options)
            splits = (train, held, test)
            run = Run(config, workdir, trainer, splits, info, start_time, phases, writers)
        try:
            with StopRequests() as stops:
                result = run.train(state, stops)
        except BaseException as e:
            run.finish(e)
            raise
        run.finish(None)
        return result
    finally:
        phases.close()
        if claim is not None:
            claim.release()


class Run:
    """One `train_and_evaluate` call: its data on the devices, checkpoints and metrics."""

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        workdir: Path,
        trainer: Trainer,
        splits: tuple[data.Split, Holdout, data.Split],
        info: data.DataInfo,
        start_time: float,
        phases: Phases,
        writers: data.Writers | None = None,
    ):
        """`splits`: the training split, the examples of it trained on and held out for
        validation, and the test split; `writers`: the records of its data still being
        written, waited for as it finishes."""
        self.config, self.workdir, self.trainer, self.info = config, workdir, trainer, info
        train, held, test = splits
        self.made_by = fingerprint(config, info)
        self.phases = phases
        self.batches = BatchSource(config, trainer, train, held.train)
        self.steps_per_epoch = self.batches.steps_per_epoch
        self.start_time = start_time
        self.monitor = Monitor(config.monitor, config.early_stopping_patience)
        self.input_shape = (1, *train.images.shape[1:])
        scorer = lambda split: Scorer(  # noqa: E731
            trainer, split, config.eval_batch_size, config.memory_budget_mb << 20
        )
        self.scorers = {"test": scorer(test)}  # and "val", the split held out for validation
        if len(held.validation):
            self.scorers["val"] = scorer(train.subset(held.validation))
        self.lead = jax.process_index() == 0  # across hosts, one process reports and writes
        # XLA's CPU collectives block threads of the pool that queued steps need
        # too: over several CPU devices, steps run one at a time or may deadlock.
        self.one_at_a_time = trainer.mesh.size > 1 and jax.default_backend() == "cpu"
        self.metrics_path = workdir / metrics_lib.METRICS_FILE
        self.last_save = time.monotonic()  # for `checkpoint_every_minutes`
        self.owed: dict | None = None  # the epoch line whose checkpoint is being written
        self.writers = writers or data.Writers()
        keep_best = "val" in self.scorers  # the best epoch's, beside the newest
        self.checkpoints = Checkpoints(
            workdir / CHECKPOINT_DIR, config.keep_checkpoints, self.report, keep_best=keep_best
        )

    def report(self, line: str) -> None:
        if self.lead:
            print(line, flush=True)

    def finish(self, error: BaseException | None) -> None:
        """Waits for the last save and the data's records; prints where the time went, unless
        the run was refused (`error` is jaxcnn's: its one line says it all).

        Raises:
          SaveError: if the last save failed; while another `error` is on its
            way, it is printed instead, so that neither is lost.
        """
        try:
            with self.phases("saving"):
                self.write_owed(wait=True)  # the last epoch's line, whatever stopped the run
                self.checkpoints.close()
        except SaveError as e:
            if error is None:
                raise
            print(f"also: {e}", file=sys.stderr)
        finally:
            with self.phases("data"):  # a first run's records, written while it compiled
                for failure in self.writers.wait():
                    self.report(f"warning: {failure}")
            if not isinstance(error, JaxcnnError):
                self.report(self.phases.line())

    def train(self, state: TrainState, stops: StopRequests) -> dict:
        with self.phases("set-up"):
            state, position = self.resume(state)
        if self.lead:
            # Only now that the checkpoints fit: what predict.py reads stays as it was otherwise.
            self.info.save(self.workdir)
            (self.workdir / "config.json").write_text(
                config_lib.with_absolute_paths(self.config).to_json(indent=2)
            )
        last = None
        for epoch in range(position.epochs + 1, self.config.num_epochs + 1):
            if self.monitor.exhausted(position):
                self.report(self.monitor.stop_line(position))
                break
            state, times = self.train_epoch(state, position, epoch, stops)
            state, position = self.end_epoch(state, position, epoch, stops, times)
            last = position.line
        with self.phases("saving"):
            self.write_owed(wait=True)
            self.checkpoints.wait()
        if last is None:  # nothing left to train: report the restored model
            last = {"epoch": position.epochs, "step": self.step(state), **self.scores(state)}
            self.report(
                f"Nothing to train: epoch {position.epochs} of {self.config.num_epochs} is done "
                f"(or training stopped early); test accuracy {last['test_accuracy']:.4f}"
            )
        if self.lead and self.metrics_path.exists():
            with self.phases("saving"):
                metrics_lib.plot_curves(self.metrics_path, self.workdir / metrics_lib.CURVES_FILE)
        return last

    def resume(self, state: TrainState) -> tuple[TrainState, Position]:
        """The newest intact checkpoint's state and position, or `state` at the start."""
        where = self.checkpoints.directory
        fits = lambda record: check_record(record, self.made_by, self.steps_per_epoch, where)  # noqa: E731
        restored = self.checkpoints.restore_latest(state, fits)
        if restored is None:
            config = self.config
            kept = self.scorers["val"].split.labels.size if "val" in self.scorers else 0
            held = f" ({kept} held out for validation)" if kept else ""
            self.report(
                f"{config.model.name}: {len(self.batches.index)} training images{held}, "
                f"{self.steps_per_epoch} steps of {config.batch_size} per epoch on "
                f"{self.trainer.mesh.size} {jax.default_backend()} device(s)"
            )
            batch_shape = (config.batch_size, *self.input_shape[1:])  # the kernels' choice
            first = self.trainer.first_seed(state)
            self.report(summary(self.trainer.model, first.params, batch_shape, first.model_state))
            if config.init_from:  # a fresh run starts from that model, where it fits
                source = Predictor.load(config.init_from)
                state, line = transfer.start_from(state, source, self.trainer, config.init_from)
                self.report(line)
            self.reconcile(0, None)
            return state, Position()
        state, record = restored
        state = TrainState(*state)
        position = Position.from_record(record)
        self.reconcile(position.epochs, position.line)
        self.report(
            f"Resuming from epoch {position.epochs + 1}, step {self.step(state)} "
            f"({position.epoch_steps} of its {self.steps_per_epoch}) in {self.workdir}"
        )
        return state, position

    def reconcile(self, epochs: int, owed: dict | None) -> None:
        """`metrics.jsonl` made to agree with the state training starts from (`metrics.reconcile`)."""
        if not self.lead:
            return
        try:
            metrics_lib.reconcile(self.metrics_path, epochs, owed)
        except OSError as e:
            raise SaveError(f"could not write {self.metrics_path} ({e.strerror or e})") from None

    def train_epoch(
        self, state: TrainState, position: Position, epoch: int, stops: StopRequests
    ) -> tuple[TrainState, tuple[float, float]]:
        """Trains the rest of `epoch` from `position` (saving when due, stopping when asked);
        the state, and the epoch's seconds and those of its mid-epoch saves.

        The metrics of each call are read back one call late, so that the devices
        need not wait for the host.
        """
        orders, chunk = self.batches.orders(epoch), self.batches.chunk
        start = time.perf_counter() - position.seconds
        pending: list[dict] = []  # metrics of calls not yet read back
        saving = 0.0  # seconds of this epoch's mid-epoch saves, not training
        bar = tqdm(
            total=self.steps_per_epoch,
            initial=position.epoch_steps,
            desc=f"epoch {epoch}/{self.config.num_epochs}",
            unit="step",
            disable=not (self.lead and sys.stderr.isatty()),
            leave=False,
        )
        with self.phases("train"):
            for first, batches in self.batches.calls(orders, position.epoch_steps):
                state, metrics = self.batches.train(state, batches)
                self.phases.first_step()  # compiled and dispatched: the step runs now
                self.write_owed(wait=False)
                self.checkpoints.check()  # a save that failed stops training now
                pending.append(metrics)
                if self.one_at_a_time:
                    jax.block_until_ready(metrics)
                self.read_back(pending[:-1], position, epoch)
                del pending[:-1]
                bar.update(chunk)
                done = first + chunk
                step = (epoch - 1) * self.steps_per_epoch + done
                due, stop = self.due(step, chunk, stops)
                if due and done < self.steps_per_epoch:
                    self.read_back(pending, position, epoch)
                    pending.clear()
                    position.epoch_steps, position.seconds = done, time.perf_counter() - start
                    saving += self.save_within_epoch(state, position, wait=stop)
                    if stop:
                        raise Stopped(
                            f"stopped by {stops.name()} at epoch {epoch}, step {step}; its "
                            "checkpoint is saved: rerun the same command to resume from it",
                            stops.exit_code(),
                        )
            bar.close()
            self.read_back(pending, position, epoch)
        seconds = time.perf_counter() - start
        with self.phases("eval"):
            state = self.trainer.refresh_statistics(state, self.batches.images, orders[0])
        return state, (seconds, saving)

    def end_epoch(
        self, state: TrainState, position: Position, epoch: int, stops: StopRequests, times: tuple
    ) -> tuple[TrainState, Position]:
        """Scores `epoch`, saves its checkpoint and metrics line, and stops if asked."""
        with self.phases("eval"):
            scores = self.scores(state, ("val",))
        ended, step = Position(epochs=epoch, line=scores, best=position.best), self.step(state)
        best = self.monitor.update(ended, step)
        if self.test_due(ended):
            with self.phases("eval"):
                scores |= self.scores(state, ("test",))
        line = self.epoch_line(step, position, epoch, scores, times)
        position = dataclasses.replace(ended, line=line)
        with self.phases("saving"):
            self.save(state, position, best)
        # Written once its checkpoint is (a line without one would be trained again): the
        # devices train on meanwhile.
        self.owed = line
        self.report(metrics_lib.console_line(line))
        if parallel.any_process(stops.requested)[0]:
            stops.join()
            with self.phases("saving"):
                self.write_owed(wait=True)
            raise Stopped(
                f"stopped by {stops.name()} at the end of epoch {epoch}; its checkpoint is "
                "saved: rerun the same command to resume from it",
                stops.exit_code(),
            )
        return state, position

    def save_within_epoch(self, state: TrainState, position: Position, wait: bool) -> float:
        """Saves a checkpoint mid-epoch (waiting for its write, to stop after it); its seconds."""
        saved = time.perf_counter()
        with self.phases("saving"):
            self.save(state, position)
            if wait:
                self.checkpoints.wait()
        return time.perf_counter() - saved

    def epoch_line(
        self, step: int, position: Position, epoch: int, scores: dict, times: tuple
    ) -> dict:
        """The metrics line of `epoch`, ended at `step`: training's means, `scores`, and where
        the time went (`times`: the epoch's seconds and those of its mid-epoch saves)."""
        seconds, saving = times
        means = {
            "train_loss": np.mean(np.asarray(position.losses, np.float32), axis=0),
            "train_accuracy": np.mean(np.asarray(position.accuracies, np.float32), axis=0),
        }
        return {
            "epoch": epoch,
            "step": step,
            **metrics_lib.per_seed(self.trainer.seeds, means),
            **scores,
            "epoch_time_s": seconds,
            "images_per_s": self.steps_per_epoch * self.config.batch_size / (seconds - saving),
            "elapsed_s": time.perf_counter() - self.start_time,
            "phases_s": self.phases.as_dict(),  # so far
            "first_step_s": self.phases.first_step_s,  # this process's, from its start
            "programs": dict(self.phases.programs),  # this process's, so far
        }

    def read_back(self, calls: list[dict], position: Position, epoch: int) -> None:
        """Adds the calls' per-step metrics to `position`, checking each step's loss.

        Raises:
          Diverged: at the first loss that is not finite or is above `max_loss`.
        """
        limit = self.config.max_loss
        for metrics in parallel.fetch(calls):
            # One value per step, or with several seeds one list of the seeds' values per step.
            losses, accuracies = (
                self.trainer.per_step(np.asarray(metrics[k])) for k in ("loss", "accuracy")
            )
            for loss, accuracy in zip(losses.tolist(), accuracies.tolist()):
                worst = np.max(loss) if np.all(np.isfinite(loss)) else np.nan
                if not np.isfinite(worst) or (limit and worst > limit):
                    step = (epoch - 1) * self.steps_per_epoch + len(position.losses) + 1
                    try:  # a checkpoint is called intact once it is written
                        self.write_owed(wait=True)
                        self.checkpoints.wait()
                        failed = None
                    except SaveError as e:
                        failed = e
                    raise Diverged.at(
                        epoch, step, worst, limit, self.checkpoints.finished(), failed
                    )
                position.losses.append(loss)
                position.accuracies.append(accuracy)

    def due(self, step: int, chunk: int, stops: StopRequests) -> tuple[bool, bool]:
        """Whether to save a checkpoint after `step` (`chunk` steps after the last call's) and
        whether to stop there: on `checkpoint_every_steps`, `checkpoint_every_minutes` or a
        signal. Every process of a job decides alike: one signalled stops them all."""
        every, minutes = self.config.checkpoint_every_steps, self.config.checkpoint_every_minutes
        by_steps = bool(every) and step // every > (step - chunk) // every
        by_time = bool(minutes) and time.monotonic() - self.last_save >= 60 * minutes
        save, stop = parallel.any_process(by_steps or by_time, stops.requested)
        if stop:
            stops.join()
        return save or stop, stop

    def write_owed(self, wait: bool) -> None:
        """Writes the metrics line of the last epoch's end once its checkpoint is written:
        `wait`ing for it (every process of a job alike), or only if it is written by now.

        Raises:
          SaveError: if the checkpoint or the line could not be written.
        """
        if self.owed is None or not wait and self.checkpoints.saving():
            return
        line, self.owed = self.owed, None  # owed no more if its checkpoint fails
        if wait:
            self.checkpoints.wait()
        else:
            self.checkpoints.check()
        if self.lead:
            try:
                metrics_lib.append_metrics(self.metrics_path, line)
            except OSError as e:
                raise SaveError(
                    f"could not write {self.metrics_path} ({e.strerror or e}); it is as it was, "
                    f"and epoch {line['epoch']}'s line is saved with its checkpoint: rerun the "
                    "same command to write it and go on"
                ) from None

    def save(self, state: TrainState, position: Position, best: bool | None = None) -> None:
        self.write_owed(wait=True)  # the save before this one is waited for anyway
        record = position.record(self.steps_per_epoch, self.made_by)
        self.checkpoints.save(self.step(state), state, record, best)
        self.last_save = time.monotonic()

    def test_due(self, ended: Position) -> bool:
        """Whether to score the test split after the epoch `ended`: as `config.test_scored`
        says, or when early stopping ends training there."""
        return config_lib.test_scored(self.config, ended.epochs) or self.monitor.exhausted(ended)

    def scores(self, state: TrainState, splits: tuple[str, ...] = ("val", "test")) -> dict:
        """Loss and accuracy on `splits` (validation, if held out, and test), every example once."""
        scored = [(split, self.scorers[split](state)) for split in splits if split in self.scorers]
        scores = {f"{split}_{name}": value for split, s in scored for name, value in s.items()}
        return metrics_lib.per_seed(self.trainer.seeds, scores)

    @staticmethod
    def step(state: TrainState) -> int:
        """Optimizer steps taken (every seed takes the same)."""
        return int(np.ravel(parallel.fetch(state.step))[0])
