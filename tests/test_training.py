import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from backends import cpu_only, two_devices
from synthetic import small_config

from jaxcnn import data
from jaxcnn.errors import ConfigError, WorkdirError
from jaxcnn.train import loop
from jaxcnn.train import trainer as trainer_lib
from jaxcnn.train.metrics import read_metrics

ROOT = Path(__file__).parent.parent
METRIC_KEYS = {
    "epoch",
    "step",
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "epoch_time_s",
    "images_per_s",
    "elapsed_s",
    "phases_s",
    "first_step_s",
    "programs",
}


def test_trains_well_above_chance_and_writes_results(dataset, tmp_path):
    final = loop.train_and_evaluate(small_config(dataset), tmp_path)
    assert final["test_accuracy"] > 0.9  # chance is 0.25
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(set(r) == METRIC_KEYS for r in rows)
    assert [r["step"] for r in rows] == [24, 48]  # 768 // 32 steps per epoch
    assert rows[1]["test_loss"] < rows[0]["test_loss"]
    phases = rows[0]["phases_s"]
    assert {"start-up", "compile", "data", "train", "eval"} <= set(phases)
    assert phases["start-up"] < rows[0]["first_step_s"] < rows[0]["elapsed_s"] + phases["start-up"]
    assert rows[1]["first_step_s"] == rows[0]["first_step_s"]  # one process, one first step
    assert (tmp_path / "learning_curves.png").stat().st_size > 1000
    # Named by step: one at each epoch's end (the epoch is shorter than checkpoint_every_steps).
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [
        "24",
        "48",
    ]
    assert json.loads((tmp_path / "config.json").read_text())["batch_size"] == 32


def test_the_test_split_is_scored_every_eval_every_epochs_and_after_the_last(
    dataset, tmp_path, capsys
):
    config = small_config(dataset, num_epochs=3, eval_every_epochs=2)
    final = loop.train_and_evaluate(config, tmp_path)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert ["test_accuracy" in r for r in rows] == [False, True, True]
    assert set(rows[0]) == METRIC_KEYS - {"test_loss", "test_accuracy"}
    assert final["test_accuracy"] == rows[2]["test_accuracy"] > 0.9
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert ["test loss" in line for line in printed] == [False, True, True]
    assert (tmp_path / "learning_curves.png").stat().st_size > 1000


def test_resume_continues_where_it_stopped(dataset, tmp_path, monkeypatch):
    straight = loop.train_and_evaluate(small_config(dataset), tmp_path / "straight")

    real_batches = loop.data.epoch_batches
    calls = []

    def interrupted_in_epoch_2(*args):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C in epoch 2
        return real_batches(*args)

    monkeypatch.setattr(loop.data, "epoch_batches", interrupted_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        loop.train_and_evaluate(small_config(dataset), tmp_path / "resumed")
    monkeypatch.setattr(loop.data, "epoch_batches", real_batches)
    assert len(read_metrics(tmp_path / "resumed" / "metrics.jsonl")) == 1

    resumed = loop.train_and_evaluate(small_config(dataset), tmp_path / "resumed")
    rows = read_metrics(tmp_path / "resumed" / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2]  # the first run's line is kept
    # Same seed, same data order, restored optimizer and RNG: the same numbers as one run.
    for key in ("step", "train_loss", "test_loss", "test_accuracy"):
        np.testing.assert_allclose(resumed[key], straight[key], rtol=1e-5)
    again = loop.train_and_evaluate(small_config(dataset), tmp_path / "resumed")
    assert again["epoch"] == 2 and len(read_metrics(tmp_path / "resumed" / "metrics.jsonl")) == 2


def test_compilations_do_not_grow_with_epochs(dataset, tmp_path):
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kw: (
            compiles.append(event)
            if event == "/jax/core/compile/backend_compile_duration"
            else None
        )
    )
    counts = []
    for epochs in (1, 3):
        compiles.clear()
        loop.train_and_evaluate(
            small_config(dataset, num_epochs=epochs, seed=epochs), tmp_path / str(epochs)
        )
        counts.append(len(compiles))
    assert counts[0] > 0 and counts[1] == counts[0]


def test_patches_model_trains(dataset, tmp_path):
    config = small_config(dataset)
    config.model.conv_impl = "patches"
    assert loop.train_and_evaluate(config, tmp_path / "patches")["test_accuracy"] > 0.9


def test_batch_larger_than_the_training_set(dataset, tmp_path):
    with pytest.raises(ConfigError, match="`batch_size` .5000. is larger than the training set"):
        loop.train_and_evaluate(small_config(dataset, batch_size=5000), tmp_path)


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("channels", (8,), r"`channels` must be two widths, got \(8,\)"),
        ("channels", (0, 8), "`out_channels` must be a positive int, got 0"),
        ("hidden", (32, -3), "`out_features` must be a positive int, got -3"),
    ],
)
def test_bad_model_widths(dataset, tmp_path, key, value, match):
    config = small_config(dataset)
    config.model[key] = value
    with pytest.raises(ConfigError, match=f"`model`.*{match}"):
        loop.train_and_evaluate(config, tmp_path)


def test_workdir_that_is_a_file(dataset, tmp_path):
    (tmp_path / "runs").write_text("notes")
    with pytest.raises(WorkdirError, match="`workdir` must be a folder, got the file"):
        loop.train_and_evaluate(small_config(dataset), tmp_path / "runs")
    assert (tmp_path / "runs").read_text() == "notes"


@cpu_only
def test_cpu_compiler_options(dataset, capsys):
    config = small_config(dataset)
    mesh = trainer_lib.device_mesh(config)
    # The default config's option reaches the jitted steps where this XLA has it.
    options = trainer_lib.compiler_options(config, mesh)
    ynn = "xla_cpu_experimental_ynn_fusion_type"
    assert options == ({ynn: ""} if ynn not in capsys.readouterr().err else {})
    # One that XLA has always had passes; one it lacks is left out with a warning.
    config.cpu_compiler_options = {"xla_cpu_enable_fast_math": False, "xla_cpu_no_such_flag": 1}
    assert trainer_lib.compiler_options(config, mesh) == {"xla_cpu_enable_fast_math": False}
    assert "`cpu_compiler_options.xla_cpu_no_such_flag` is not an option" in capsys.readouterr().err
    config.cpu_compiler_options = {ynn: "sideways"}
    if ynn in trainer_lib.compiler_options(small_config(dataset), mesh):
        with pytest.raises(ConfigError, match=f"`cpu_compiler_options.{ynn}`"):
            trainer_lib.compiler_options(config, mesh)


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "train.py", "--config", "configs/lenet.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "flag, match",
    [
        ("--config.num_epochs=three", "train.py: --config.num_epochs=three: invalid literal"),
        ("--config.no_such_key=1", "train.py: --config.no_such_key: the config has no key"),
        ("--config.model.bogus=3", "train.py: --config.model.bogus: `model` has no key `bogus`"),
        ("--config.cpu_devices=-1", "train.py: `cpu_devices` must be an int >= 0"),
        ("--config.optimizer=adamx", "train.py: `optimizer` must be one of"),
    ],
)
def test_cli_rejects_bad_overrides_in_one_line_before_the_data(tmp_path, flag, match):
    # The data dir does not exist: a message about it would mean the data loaded first.
    result = run_cli("--workdir", str(tmp_path), flag, f"--config.data_dir={tmp_path / 'none'}")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(match)


def test_cli_workdir_that_cannot_be_written_is_one_line(tmp_path):
    result = run_cli("--workdir", "/proc/jaxcnn-cannot-write")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "train.py: `workdir` /proc/jaxcnn-cannot-write cannot be written: No such file or directory"
    ]


def test_cli_missing_config_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "train.py", "--config", "configs/no_such.py", "--workdir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "train.py: --config configs/no_such.py: no such file"
    ]


def test_cli_missing_data_is_one_line(tmp_path):
    result = run_cli(
        "--workdir",
        str(tmp_path),
        f"--config.data_dir={tmp_path / 'none'}",
        f"--config.tfds_dir={tmp_path}",
    )
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("train.py: `data_dir` ") and "does not exist" in line
    assert "apt-get install dataset-fashion-mnist" in line


def test_train_loss_is_plain_cross_entropy(dataset):
    config = small_config(dataset, label_smoothing=0.2, augment="")
    train, _, info = data.load(config)
    trainer, state = trainer_lib.create_trainer(config, info, steps_per_epoch=24)
    index = np.arange(32)[None]
    logits = trainer.model.apply(state.params, trainer.normalize(train.images[index[0]]))
    log_p = np.asarray(jax.nn.log_softmax(logits))
    expected = -np.mean(np.take_along_axis(log_p, np.asarray(train.labels[index[0]])[:, None], 1))
    _, metrics = trainer.train_steps(state, train.images, train.labels, index)  # donates `state`
    np.testing.assert_allclose(metrics["loss"][0], expected, rtol=1e-5)


@two_devices
@pytest.mark.parametrize(
    "augment", ["shift_flip", "flip,cutmix"]
)  # cutmix: partners across devices
def test_data_parallel_steps_match_one_device(dataset, augment):
    config = small_config(dataset, augment=augment)  # random numbers must not depend on devices
    train, _, info = data.load(config)
    index = np.arange(96).reshape(3, 1, 32)
    results = {}
    for devices in (1, 2):
        config.num_devices = devices
        trainer, state = trainer_lib.create_trainer(config, info, steps_per_epoch=24)
        assert trainer.mesh.size == devices
        images, labels = trainer.replicate(train)
        step = trainer.train_steps.lower(state, images, labels, trainer.shard_batches(index[0]))
        # Partitioned over the batch: each device computes half, gradients are all-reduced.
        assert ("all-reduce" in step.compile().as_text()) == (devices > 1)
        losses = []
        for batch in index:
            state, metrics = trainer.train_steps(
                state, images, labels, trainer.shard_batches(batch)
            )
            losses.append(float(metrics["loss"][0]))
        assert {d.id for d in state.params["conv1"]["kernel"].sharding.device_set} == set(
            range(devices)
        )
        results[devices] = losses, jax.tree.map(np.asarray, state.params)
    np.testing.assert_allclose(results[1][0], results[2][0], rtol=1e-5)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
        results[1][1],
        results[2][1],
    )


@two_devices
def test_trains_on_two_devices_like_on_one(dataset, tmp_path):
    final = {
        devices: loop.train_and_evaluate(
            small_config(dataset, num_devices=devices, num_epochs=1), tmp_path / str(devices)
        )
        for devices in (1, 2)
    }
    for key in ("train_loss", "test_loss", "test_accuracy"):
        np.testing.assert_allclose(final[1][key], final[2][key], rtol=1e-4)


@cpu_only
@pytest.mark.parametrize(
    "override, match",
    [
        ({"num_devices": 3}, "`num_devices` must be an int from 0 .all. to the 2 cpu device"),
        ({"num_devices": -1}, "`num_devices` must be an int >= 0"),
        ({"batch_size": 33}, "`batch_size` .33. must be a multiple of the 2 devices"),
        ({"eval_batch_size": 25}, "`eval_batch_size` .25. must be a multiple of the 2 devices"),
        ({"cpu_devices": -1}, "`cpu_devices` must be an int >= 0"),
    ],
)
def test_bad_device_config(dataset, tmp_path, override, match):
    with pytest.raises(ConfigError, match=match):
        loop.train_and_evaluate(small_config(dataset, **override), tmp_path)


@cpu_only  # processes of CPU devices, gloo collectives
def test_two_processes_train_like_one(dataset, tmp_path):
    """`train.py --distributed` as two local processes of two CPU devices each (gloo
    collectives) against one process of four; the workers prepare the data themselves: one
    prepares, the other waits for it."""
    source, _ = dataset
    flags = [
        "--config.dataset=synthetic",
        f"--config.data_dir={source}",
        f"--config.tfds_dir={tmp_path / 'tfds'}",  # not prepared yet
        "--config.batch_size=32",
        "--config.eval_batch_size=40",
        "--config.num_epochs=1",
        f"--config.compile_cache_dir={os.environ['JAXCNN_TEST_COMPILE_CACHE']}",
    ]
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    workers = [
        subprocess.Popen(
            [sys.executable, "train.py", "--config", "configs/lenet.py", *flags]
            + ["--config.cpu_devices=2", "--workdir", str(tmp_path / "two"), "--distributed"]
            + [f"--process_id={i}", f"--coordinator_address=localhost:{port}", "--num_processes=2"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs[0][1][-2000:]
    assert "epoch   1" in outputs[0][0] and "epoch" not in outputs[1][0]  # process 0 reports
    assert "on 4 cpu device(s)" in outputs[0][0]
    assert sum("Preparing " in err for _, err in outputs) == 1  # one prepared, one waited
    one = run_cli("--workdir", str(tmp_path / "one"), "--config.cpu_devices=4", *flags)
    assert one.returncode == 0 and "on 4 cpu device(s)" in one.stdout
    [two] = read_metrics(tmp_path / "two" / "metrics.jsonl")
    [one] = read_metrics(tmp_path / "one" / "metrics.jsonl")
    for key in ("train_loss", "test_loss", "test_accuracy"):
        np.testing.assert_allclose(two[key], one[key], rtol=1e-4)
    assert (tmp_path / "two" / "checkpoints" / "24").is_dir()  # step 24, epoch 1's end


def test_streaming_from_disk_trains_as_the_split_on_the_devices(dataset, tmp_path):
    pytest.importorskip("grain", reason="streamed splits need grain (accelerator images lack it)")
    # A memory budget of 0 streams both splits from the prepared files.
    results = {}
    for budget in (0, 4096):
        config = small_config(dataset, memory_budget_mb=budget)
        results[budget] = loop.train_and_evaluate(config, tmp_path / str(budget))
    for key in ("step", "train_loss", "train_accuracy", "test_loss", "test_accuracy"):
        np.testing.assert_allclose(results[0][key], results[4096][key], rtol=1e-6)


def test_each_process_streams_its_share_of_the_same_batches(dataset):
    pytest.importorskip("grain", reason="streamed splits need grain (accelerator images lack it)")
    from jaxcnn.data import stream

    train, _, _ = data.load(small_config(dataset))
    order = data.epoch_batches(3, 1, len(train.labels), 32)
    shares = [list(stream.chunks(*train, order, 4, 8, p, 2)) for p in range(2)]
    assert len(shares[0]) == (order.shape[0] - 8) // 4
    for call, (a, b) in enumerate(zip(*shares)):
        index = order[8 + 4 * call : 12 + 4 * call]
        np.testing.assert_array_equal(np.concatenate([a[0], b[0]], axis=1), train.images[index])
        np.testing.assert_array_equal(np.concatenate([a[1], b[1]], axis=1), train.labels[index])


def test_mixup_trains_the_easy_classes(dataset, tmp_path):
    config = small_config(dataset, augment="flip,mixup:0.4", num_epochs=3)
    last = loop.train_and_evaluate(config, tmp_path / "run")
    assert last["test_accuracy"] > 0.9  # chance is 0.25
