"""A workdir is the user's: what fits resumes, what does not is refused by name and nothing moves;
readers write nothing; one training holds it at a time; failures surface as they happen."""

import errno
import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import ml_collections
import orbax.checkpoint as ocp
import pytest
import synthetic
from backends import cpu_only
from synthetic import config_flags, small_config
from test_checkpoint import EVERY_CALL, damage_record, half_written, record, steps
from test_stop import finish, train_py, wait_for_checkpoint

from jaxcnn.data import DataInfo, read_idx
from jaxcnn.errors import CheckpointError, SaveError, WorkdirError
from jaxcnn.train import loop
from jaxcnn.train.checkpoint import DAMAGED_DIR, Checkpoints
from jaxcnn.train.metrics import read_metrics
from jaxcnn.train.predict import Predictor
from jaxcnn.train.trainer import create_trainer
from jaxcnn.train.workdir import LOCK_FILE

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

ROOT = Path(__file__).parent.parent


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` (names, bytes), and every folder: what must not change; but
    the lock file, which names the last training that claimed the workdir."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.name == LOCK_FILE:
            continue
        key = str(path.relative_to(folder))
        out[key] = hashlib.md5(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


def cli(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def said(result: subprocess.CompletedProcess) -> list[str]:
    """stderr without JAX's and absl's own log lines."""
    return [
        line
        for line in result.stderr.splitlines()
        if line.strip() and not line.startswith(("W1", "I1", "WARNING:absl"))
    ]


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    """Two epochs of the small config, a checkpoint every call: steps 24, 36, 48 kept."""
    workdir = tmp_path_factory.mktemp("workdir") / "run"
    loop.train_and_evaluate(small_config(dataset, **EVERY_CALL), workdir)
    return workdir


def copy_of(trained: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(trained, tmp_path / "run"))


# --- What does not fit is refused by name, and nothing moves --------------------------------


def other_dataset(root: Path, num_classes: int) -> Path:
    """The synthetic images with their labels folded into `num_classes` classes."""
    folder = synthetic.write_dataset(root)
    for prefix in ("train", "t10k"):
        path = folder / f"{prefix}-labels-idx1-ubyte.gz"
        labels = read_idx(path) % num_classes
        path.unlink()
        synthetic.write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels, compress=True)
    return folder


@pytest.mark.parametrize(
    "change, differs",
    [
        ({"image_size": 20}, "data.image_shape: [16, 16, 1] there, [20, 20, 1] here"),
        ({"channels": 3}, "data.image_shape: [16, 16, 1] there, [16, 16, 3] here"),
        ({"classes": 3}, "data.class_names"),
        ({"seed": 7}, "seed: 0 there, 7 here"),
    ],
)
def test_a_rerun_that_does_not_fit_is_refused_by_name_and_nothing_moves(
    dataset, trained, tmp_path, change, differs
):
    run = copy_of(trained, tmp_path)
    before = tree_digest(run)
    if "classes" in change:
        config = small_config((other_dataset(tmp_path / "idx", change["classes"]), dataset[1]))
        config.update(EVERY_CALL)
    else:
        config = small_config(dataset, **EVERY_CALL, **change)
    with pytest.raises(
        CheckpointError, match="made with another model, optimizer, seed or data"
    ) as e:
        loop.train_and_evaluate(config, run)
    assert differs in str(e.value) and "nothing was moved" in str(e.value)
    assert "\n" not in str(e.value) and "remove" not in str(e.value)
    assert tree_digest(run) == before  # config.json, data.json, checkpoints, metrics: as they were


def test_other_data_of_the_same_shape_is_refused(dataset, trained, tmp_path):
    run = copy_of(trained, tmp_path)
    before = tree_digest(run)
    images = synthetic.write_dataset(tmp_path / "idx", n_train=800)  # 32 more images
    with pytest.raises(CheckpointError, match=r"data.contents: "):
        loop.train_and_evaluate(small_config((images, dataset[1]), **EVERY_CALL), run)
    assert tree_digest(run) == before


def test_the_refusal_through_train_py_is_one_line(dataset, trained, tmp_path):
    run = copy_of(trained, tmp_path)
    before = tree_digest(run)
    flags = config_flags(dataset, **EVERY_CALL, image_size=20)
    result = cli("train.py", "--config", "configs/lenet.py", "--workdir", str(run), *flags)
    assert result.returncode == 1
    # The data at the new size is prepared (a line, unless a test before did it), then refused.
    [line] = [x for x in said(result) if not x.startswith("Preparing ")]
    assert line.startswith("train.py: the checkpoints in ") and "data.image_shape" in line
    assert tree_digest(run) == before


def test_arrays_that_do_not_fit_the_model_are_refused_not_set_aside(trained, tmp_path):
    run = copy_of(trained, tmp_path)
    before = tree_digest(run)
    config = small_config((Path("unused"), Path("unused")))
    config.model.hidden = (32, 24)  # fc2 and fc3 of other shapes
    _, state = create_trainer(config, DataInfo.read(run), steps_per_epoch=24)
    checkpoints = Checkpoints(run / "checkpoints", 3, print)
    try:
        with pytest.raises(CheckpointError, match=r"checkpoint 48 .* does not fit this model: `"):
            checkpoints.restore_latest(state, lambda record: None)  # as a checkpoint of old
    finally:
        checkpoints.close()
    assert tree_digest(run) == before


def test_a_checkpoint_that_cannot_be_reached_is_an_error_and_stays(
    dataset, trained, tmp_path, monkeypatch
):
    run = copy_of(trained, tmp_path)
    before = tree_digest(run)
    real = ocp.CheckpointManager.restore

    def denied(self, step, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(run / "checkpoints"))

    monkeypatch.setattr(ocp.CheckpointManager, "restore", denied)
    with pytest.raises(CheckpointError, match="cannot be read .*Permission denied.*nothing was"):
        loop.train_and_evaluate(small_config(dataset, **EVERY_CALL), run)
    monkeypatch.setattr(ocp.CheckpointManager, "restore", real)
    assert tree_digest(run) == before


# --- Readers read: relative paths, nothing written, safe beside a training ------------------


def test_a_reader_skips_damage_and_moves_nothing(trained, tmp_path, monkeypatch, capsys):
    run = copy_of(trained, tmp_path)
    damage_record(run / "checkpoints" / "48")
    half_written(run / "checkpoints" / "36")  # a save in progress, as a training beside it has
    before = tree_digest(run)
    monkeypatch.chdir(run.parent)
    predictor = Predictor.load(Path("run"))  # relative
    assert predictor.epochs == 1  # checkpoint 24: the end of epoch 1
    assert tree_digest(run) == before and not (run / DAMAGED_DIR).exists()
    [line] = [line for line in capsys.readouterr().err.splitlines() if "Checkpoint" in line]
    assert "48 is damaged" in line and "left as it is" in line


def test_train_predict_and_show_take_relative_workdirs_and_readers_write_nothing(dataset, tmp_path):
    flags = config_flags(dataset, num_epochs=1)
    result = cli(
        str(ROOT / "train.py"), "--config", str(ROOT / "configs/lenet.py"),
        "--workdir", "runs/small", *flags, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "small"
    before = tree_digest(run)
    synthetic.write_image_folder(tmp_path / "new", n_train=0, n_test=4, split=False)
    image = str(next((tmp_path / "new").rglob("*.png")).relative_to(tmp_path))
    result = cli(str(ROOT / "predict.py"), "--workdir", "runs/small", image, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{image}: ") and result.stdout.count("%") == 3
    result = cli("-m", "jaxcnn.show", "--workdir", "runs/small", "--out", "pics", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "pics" / "kernels.png").is_file()
    result = cli("-m", "jaxcnn.show", "--workdir", "runs/small", cwd=tmp_path)  # default --out
    assert result.returncode == 0 and (tmp_path / "small-pictures" / "confusion.png").is_file()
    assert tree_digest(run) == before  # byte for byte


def test_predict_in_a_loop_beside_a_training_that_saves_often(dataset, tmp_path):
    workdir = tmp_path / "run"
    process = train_py(dataset, workdir)  # a checkpoint every 4 steps, 6 epochs
    wait_for_checkpoint(workdir)
    loaded = []
    while process.poll() is None:
        try:
            loaded.append(Predictor.load(workdir).epochs)
        except CheckpointError as e:  # the first one's folder is there before it is finalized
            if loaded or "no checkpoint yet" not in str(e):
                raise
    code, out, err = finish(process)
    assert code == 0, err
    assert len(loaded) >= 3 and loaded == sorted(loaded)  # it saw training go on
    assert not (workdir / DAMAGED_DIR).exists()
    config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
    config.num_devices = 1
    _, target = create_trainer(config, DataInfo.read(workdir), steps_per_epoch=1)
    checkpoints = Checkpoints(workdir / "checkpoints", 3, print, read_only=True)
    try:
        for step in checkpoints.steps():  # every one intact: its arrays match their digest
            checkpoints.restore(step, target, lambda record: None)
    finally:
        checkpoints.close()
    assert [r["epoch"] for r in read_metrics(workdir / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]


# --- One training per workdir ---------------------------------------------------------------


def test_a_second_training_on_a_workdir_in_use_is_refused_and_sigkill_leaves_no_lock(
    dataset, tmp_path
):
    workdir = tmp_path / "run"
    first = train_py(dataset, workdir)
    wait_for_checkpoint(workdir)
    second = finish(train_py(dataset, workdir))
    assert second[0] == 1
    [line] = [x for x in second[2].splitlines() if not x.startswith(("W1", "I1"))]
    assert f"is in use by a training in process {first.pid}" in line
    code, out, err = finish(first)  # the first finishes, untouched
    assert code == 0, err
    assert [r["epoch"] for r in read_metrics(workdir / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]
    killed = train_py(dataset, tmp_path / "killed")
    wait_for_checkpoint(tmp_path / "killed")
    killed.kill()  # SIGKILL: no chance to clean up, and nothing to clean up after
    killed.communicate()
    code, out, err = finish(train_py(dataset, tmp_path / "killed"))
    assert code == 0, err
    assert "Resuming from epoch" in out


def test_a_claim_is_released_with_its_holder(tmp_path):
    from jaxcnn.train import workdir

    claim = workdir.claim(tmp_path / "run")
    with pytest.raises(WorkdirError, match=f"in use by a training in process {os.getpid()}"):
        workdir.claim(tmp_path / "run")
    claim.release()
    workdir.claim(tmp_path / "run").release()


# --- Failures as they happen ----------------------------------------------------------------


def test_a_save_that_fails_in_the_background_names_its_own_step_and_stops(
    dataset, tmp_path, monkeypatch
):
    real_wait = ocp.CheckpointManager.wait_until_finished
    saved: list[int] = []
    real_save = ocp.CheckpointManager.save

    def save(self, step, *args, **kwargs):
        saved.append(step)
        return real_save(self, step, *args, **kwargs)

    def wait(self):  # the write of step 36 fails on its thread: it surfaces in the wait
        real_wait(self)
        if saved and saved[-1] == 36:
            saved.append(-1)
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ocp.CheckpointManager, "save", save)
    monkeypatch.setattr(ocp.CheckpointManager, "wait_until_finished", wait)
    run = tmp_path / "run"
    with pytest.raises(SaveError, match=r"could not write checkpoint 36 .*checkpoint 24 is intact"):
        loop.train_and_evaluate(small_config(dataset, **EVERY_CALL), run)
    assert max(s for s in saved if s > 0) == 36  # stopped before the next save


def mount_tmpfs(folder: Path, size_kb: int) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)],
        capture_output=True,
    )
    return mounted.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI is root)")
def test_a_disk_that_really_fills_stops_in_one_line_and_the_rerun_resumes(
    dataset, trained, tmp_path
):
    # Room for the workdir's files and one checkpoint and a half: the second save fills it.
    used = sum(f.stat().st_blocks * 512 for f in (trained / "checkpoints" / "48").rglob("*"))
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, 128 + used * 3 // 2 // 1024):
        pytest.skip("this machine does not let root mount a tmpfs")
    try:
        workdir = disk / "run"
        flags = config_flags(dataset, **EVERY_CALL)
        result = cli("train.py", "--config", "configs/lenet.py", "--workdir", str(workdir), *flags)
        assert result.returncode == 1
        lines = said(result)
        assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
        failed = int(re.search(r"could not write checkpoint (\d+) ", lines[0]).group(1))
        kept = steps(workdir)[-1]
        assert f"checkpoint {kept} is intact" in lines[0] and failed > kept
        assert record(workdir, kept)["epochs"] >= 0  # readable, its digest checked on resume
        # Room again: the rerun resumes from it and finishes.
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
        result = cli("train.py", "--config", "configs/lenet.py", "--workdir", str(workdir), *flags)
        assert result.returncode == 0, result.stderr
        assert f"step {kept} " in result.stdout or "Resuming from" in result.stdout
        assert [r["epoch"] for r in read_metrics(workdir / "metrics.jsonl")] == [1, 2]
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


@cpu_only
def test_ctrl_c_through_the_signal_then_sigkill_on_two_devices_then_resume(dataset, tmp_path):
    workdir = tmp_path / "run"
    process = train_py(dataset, workdir, cpu_devices=2)
    wait_for_checkpoint(workdir)
    process.send_signal(signal.SIGINT)
    code, out, err = finish(process)
    assert code == 130 and "stopped by SIGINT" in err
    assert "on 2 cpu device(s)" in out
    stopped_at = steps(workdir)[-1]
    process = train_py(dataset, workdir, cpu_devices=2)
    wait_for_checkpoint(workdir, after_step=stopped_at)
    process.kill()
    process.communicate()
    code, out, err = finish(train_py(dataset, workdir, cpu_devices=2))
    assert code == 0, err
    assert "Resuming from" in out
    assert [r["epoch"] for r in read_metrics(workdir / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]


def test_the_start_up_phase_counts_from_train_py_not_from_the_shell(dataset, tmp_path):
    flags = " ".join(shlex.quote(flag) for flag in config_flags(dataset, num_epochs=1))
    command = (
        f"sleep 10 && {sys.executable} train.py --config configs/lenet.py "
        f"--workdir {tmp_path / 'run'} {flags}"
    )
    result = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    [line] = [x for x in result.stdout.splitlines() if x.startswith("time: start-up ")]
    start_up = float(line.split()[2])
    assert start_up < 8  # the shell's 10 s are not in it (Python's imports are)
    first_step = read_metrics(tmp_path / "run" / "metrics.jsonl")[0]["first_step_s"]
    assert start_up <= first_step  # from the same start


def test_a_second_run_in_one_process_counts_its_start_up_from_its_call(dataset, tmp_path):
    loop.train_and_evaluate(small_config(dataset, num_epochs=1), tmp_path / "a")
    time.sleep(2)
    loop.train_and_evaluate(small_config(dataset, num_epochs=1), tmp_path / "b")
    [row] = read_metrics(tmp_path / "b" / "metrics.jsonl")
    assert row["phases_s"]["start-up"] < 0.1


# --- An accelerator-sized loop ---------------------------------------------------------------


def test_checkpoints_by_wall_time_and_img_per_s_without_saving(dataset, tmp_path, monkeypatch):
    real_save = Checkpoints.save

    def slow_save(self, step, state, record, best=None):  # a slow disk: 0.3 s a save
        time.sleep(0.3)
        real_save(self, step, state, record, best)

    monkeypatch.setattr(Checkpoints, "save", slow_save)
    # No step cadence; a minute's cadence so short that every call of 12 steps is due.
    config = small_config(
        dataset, checkpoint_every_steps=0, checkpoint_every_minutes=1e-9, steps_per_call=12
    )
    loop.train_and_evaluate(config, tmp_path / "run")
    record_36 = record(tmp_path / "run", 36)  # mid-epoch 2, from the wall-time cadence
    assert (record_36["epochs"], record_36["epoch_steps"]) == (1, 12)
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    for row in rows:  # one mid-epoch save of 0.3 s is in the epoch's time, not in its img/s
        assert row["images_per_s"] > 24 * 32 / (row["epoch_time_s"] - 0.25)
