"""Stopping: SIGTERM, Ctrl-C and SIGKILL at random points, then resuming; divergence."""

import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from backends import cpu_only
from synthetic import config_flags, small_config

from jaxcnn.train import loop, stop
from jaxcnn.train.metrics import read_metrics
from jaxcnn.train.trainer import Trainer

ROOT = Path(__file__).parent.parent
# 24 steps an epoch; a call of 2 steps, a checkpoint every 4: kills land between them.
OFTEN = {"steps_per_call": 2, "checkpoint_every_steps": 4}
EPOCHS = 6


def train_py(dataset, workdir: Path, **overrides) -> subprocess.Popen:
    flags = config_flags(dataset, num_epochs=EPOCHS, **OFTEN, **overrides)
    return subprocess.Popen(
        [sys.executable, "train.py", "--config", "configs/lenet.py", "--workdir", str(workdir)]
        + flags,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def wait_for_checkpoint(workdir: Path, after_step: int = 0, timeout: float = 120) -> None:
    """Until a checkpoint past `after_step` exists: training runs steps by then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        folder = workdir / "checkpoints"
        if folder.is_dir() and any(
            p.name.isdigit() and int(p.name) > after_step for p in folder.iterdir()
        ):
            return
        time.sleep(0.02)
    raise TimeoutError(f"no checkpoint past step {after_step} in {workdir}")


def final_digest(workdir: Path) -> str:
    """The newest checkpoint's digest of the parameters, optimizer state and key."""
    from test_checkpoint import record, steps

    return record(workdir, steps(workdir)[-1])["digest"]


@pytest.fixture(scope="module")
def uninterrupted(dataset, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    code, _, err = finish(train_py(dataset, workdir))
    assert code == 0, err
    return workdir


def test_sigterm_saves_where_it_stopped_and_resumes_bit_identical(dataset, uninterrupted, tmp_path):
    workdir = tmp_path / "run"
    process = train_py(dataset, workdir)
    wait_for_checkpoint(workdir, after_step=24)  # into epoch 2
    process.send_signal(signal.SIGTERM)
    code, out, err = finish(process)
    assert code == stop.EXIT_SIGTERM
    [line] = err.strip().splitlines()
    assert line.startswith("train.py: stopped by SIGTERM at ") and "rerun the same command" in line
    rows = read_metrics(workdir / "metrics.jsonl")
    assert 1 <= len(rows) < EPOCHS  # what was finished is written
    code, out, err = finish(train_py(dataset, workdir))
    assert code == 0, err
    assert "Resuming from epoch" in out
    assert final_digest(workdir) == final_digest(uninterrupted)
    assert [r["epoch"] for r in read_metrics(workdir / "metrics.jsonl")] == list(
        range(1, EPOCHS + 1)
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigkill_at_random_points_then_resume_is_bit_identical(
    dataset, uninterrupted, tmp_path, seed
):
    workdir = tmp_path / "run"
    process = train_py(dataset, workdir)
    wait_for_checkpoint(workdir)
    time.sleep(random.Random(seed).uniform(0.0, 1.5))
    process.kill()
    process.communicate()
    assert process.returncode == -signal.SIGKILL  # killed, not finished
    code, out, err = finish(train_py(dataset, workdir))
    assert code == 0, err
    assert final_digest(workdir) == final_digest(uninterrupted)
    rows = read_metrics(workdir / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))  # none lost, none twice
    expected = read_metrics(uninterrupted / "metrics.jsonl")
    assert [r["test_loss"] for r in rows] == [r["test_loss"] for r in expected]


def test_ctrl_c_saves_and_stops(dataset, tmp_path):
    workdir = tmp_path / "run"
    process = train_py(dataset, workdir)
    wait_for_checkpoint(workdir)
    process.send_signal(signal.SIGINT)
    code, _, err = finish(process)
    assert code == stop.EXIT_SIGINT
    assert err.strip().splitlines()[-1].startswith("train.py: stopped by SIGINT at ")


def test_a_second_ctrl_c_exits_at_once():
    script = (
        "import os, signal, time\n"
        "from jaxcnn.train.stop import StopRequests\n"
        "with StopRequests() as stops:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.1)\n"
        "    print('first:', stops.name(), flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(5)\n"
        "    print('never')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == stop.EXIT_SIGINT
    assert result.stdout.splitlines() == ["first: SIGINT"]


def poison_at(step: int):
    """A train step that makes the parameters NaN at optimizer step `step` (1-based)."""
    real = Trainer.train_step

    def train_step(self, state, images, labels):
        new, metrics = real(self, state, images, labels)
        bad = new.step == step
        poisoned = jax.tree.map(lambda p: jnp.where(bad, jnp.nan, p), new.params)
        loss = jnp.where(bad, jnp.nan, metrics["loss"])
        return new._replace(params=poisoned), {**metrics, "loss": loss}

    return train_step


def test_a_nan_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(
    dataset, tmp_path, monkeypatch
):
    monkeypatch.setattr(Trainer, "train_step", poison_at(30))
    config = small_config(dataset, **OFTEN)
    with pytest.raises(
        stop.Diverged,
        match=r"diverged at epoch 2, step 30: the loss is nan; nothing of it was saved. The checkpoint of step 28 is intact",
    ):
        loop.train_and_evaluate(config, tmp_path)
    assert [r["epoch"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1]
    monkeypatch.undo()
    final = loop.train_and_evaluate(small_config(dataset, learning_rate=1e-3, **OFTEN), tmp_path)
    assert final["epoch"] == 2 and jnp.isfinite(final["test_loss"])


def test_a_loss_past_max_loss_stops(dataset, tmp_path):
    config = small_config(dataset, max_loss=0.5, **OFTEN)
    with pytest.raises(
        stop.Diverged, match=r"diverged at epoch 1, step 1: the loss is .* \(above max_loss 0.5\)"
    ):
        loop.train_and_evaluate(config, tmp_path)


def test_divergence_from_the_command_line_is_one_line_and_exit_3(dataset, tmp_path):
    code, _, err = finish(train_py(dataset, tmp_path / "run", learning_rate=1e12))
    assert code == stop.EXIT_DIVERGED
    [line] = err.strip().splitlines()
    assert line.startswith("train.py: training diverged at epoch ") and ", step " in line


def job(dataset, workdir: Path) -> list[subprocess.Popen]:
    """`train.py --distributed` as two local processes of one CPU device each."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    flags = config_flags(dataset, num_epochs=EPOCHS, **OFTEN)
    return [
        subprocess.Popen(
            [sys.executable, "train.py", "--config", "configs/lenet.py", "--workdir", str(workdir)]
            + [*flags, "--distributed", f"--process_id={i}", "--num_processes=2"]
            + [f"--coordinator_address=localhost:{port}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]


@cpu_only  # processes of CPU devices, gloo collectives
def test_sigterm_to_one_process_of_a_job_stops_all_at_one_step_and_all_resume(dataset, tmp_path):
    workdir = tmp_path / "run"
    workers = job(dataset, workdir)
    wait_for_checkpoint(workdir, after_step=24)
    workers[1].send_signal(signal.SIGTERM)  # process 1 alone
    results = [finish(worker) for worker in workers]
    assert [code for code, _, _ in results] == [stop.EXIT_SIGTERM] * 2, results[0][2][-1500:]
    lines = [err.strip().splitlines()[-1] for _, _, err in results]
    assert "stopped by a signal to another process of the job" in lines[0]
    assert "stopped by SIGTERM" in lines[1]
    where = [
        re.search(r" at (epoch \d+, step \d+|the end of epoch \d+)", line)[1] for line in lines
    ]
    assert where[0] == where[1]  # the same step in both
    # The newest checkpoint damaged: every process sets it aside and resumes from the one before.
    from test_checkpoint import damage_record, steps

    *_, before, newest = steps(workdir)
    damage_record(workdir / "checkpoints" / str(newest))
    results = [finish(worker) for worker in job(dataset, workdir)]
    assert [code for code, _, _ in results] == [0, 0], results[0][2][-1500:]
    assert f"checkpoints/{newest} is damaged" in results[0][1]
    assert "Resuming from epoch" in results[0][1] and f"step {before} " in results[0][1]
    assert [r["epoch"] for r in read_metrics(workdir / "metrics.jsonl")] == list(
        range(1, EPOCHS + 1)
    )
