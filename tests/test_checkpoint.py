"""Checkpoints mid-epoch and at epochs' ends; damaged ones set aside; full disks survived."""

import errno
import re
import shutil
from pathlib import Path

import orbax.checkpoint as ocp
import pytest
from synthetic import small_config

from jaxcnn import files
from jaxcnn.errors import CheckpointError, SaveError
from jaxcnn.train import loop
from jaxcnn.train.checkpoint import DAMAGED_DIR, Checkpoints
from jaxcnn.train.metrics import read_metrics

# A damaged checkpoint's failed read leaves orbax coroutines never awaited; they are
# collected later, during this file's next tests, and report as unraisable exceptions.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

# 768 examples in batches of 32: 24 steps an epoch, run 12 to a call.
EVERY_CALL = {"checkpoint_every_steps": 12, "steps_per_call": 12}


def steps(workdir: Path) -> list[int]:
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def record(workdir: Path, step: int) -> dict:
    checkpoints = Checkpoints(workdir / "checkpoints", 3, print)
    try:
        args = ocp.args.Composite(record=ocp.args.JsonRestore())
        return checkpoints.manager.restore(step, args=args)["record"]
    finally:
        checkpoints.close()


def without_times(rows: list[dict]) -> list[dict]:
    """The lines without what depends on the process: times, and the programs it compiled
    rather than read from the compile cache (which earlier tests may have filled)."""
    return [{k: v for k, v in r.items() if not k.endswith("_s") and k != "programs"} for r in rows]


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    """Two epochs of the small config, a checkpoint every call: steps 12, 24, 36, 48, newest 3 kept."""
    workdir = tmp_path_factory.mktemp("trained")
    loop.train_and_evaluate(small_config(dataset, **EVERY_CALL), workdir)
    return workdir


def copy_of(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run"))


def test_checkpoints_mid_epoch_and_at_its_end_keeping_the_newest(trained):
    assert steps(trained) == [24, 36, 48]
    mid = record(trained, 36)
    assert (mid["epochs"], mid["epoch_steps"], mid["steps_per_epoch"]) == (1, 12, 24)
    assert len(mid["losses"]) == len(mid["accuracies"]) == 12 and mid["line"]["epoch"] == 1
    end = record(trained, 48)
    assert (end["epochs"], end["epoch_steps"], end["losses"]) == (2, 0, [])
    assert end["line"] == read_metrics(trained / "metrics.jsonl")[-1]


def test_resume_from_mid_epoch_is_bit_identical(dataset, trained, tmp_path):
    run = copy_of(trained, tmp_path)
    # As if killed after saving step 36: the epoch-end checkpoint and line never written.
    shutil.rmtree(run / "checkpoints" / "48")
    rows = read_metrics(run / "metrics.jsonl")
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text().splitlines()[0] + "\n")
    loop.train_and_evaluate(small_config(dataset, **EVERY_CALL), run)
    assert record(run, 48)["digest"] == record(trained, 48)["digest"]  # the same parameters
    assert without_times(read_metrics(run / "metrics.jsonl")) == without_times(rows)


def test_the_line_a_checkpoint_owes_is_written_once(dataset, trained, tmp_path):
    run = copy_of(trained, tmp_path)
    # As if killed between saving epoch 2's checkpoint and writing its line.
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text(lines[0] + "\n" + lines[1][:20])  # and the line cut short
    final = loop.train_and_evaluate(small_config(dataset, **EVERY_CALL), run)
    assert final["epoch"] == 2  # nothing left to train
    assert (run / "metrics.jsonl").read_text().splitlines() == lines


def damage_truncate(step_dir: Path) -> None:
    for f in step_dir.rglob("*"):
        if f.is_file() and f.stat().st_size > 20:
            f.write_bytes(f.read_bytes()[:10])


def damage_arrays(step_dir: Path) -> None:
    # Garbage in the largest array file: orbax reads some such files back as wrong
    # numbers without an error, and fails on others.
    big = max(
        (f for f in (step_dir / "state").rglob("*") if f.is_file()), key=lambda f: f.stat().st_size
    )
    data = bytearray(big.read_bytes())
    data[100:200] = bytes(b ^ 0xFF for b in data[100:200])
    big.write_bytes(bytes(data))


def damage_digest(step_dir: Path) -> None:
    # Arrays that read back as other numbers than were saved, whatever the cause.
    for f in (step_dir / "record").iterdir():
        f.write_text(re.sub(r'"digest": "[0-9a-f]+"', '"digest": "0000"', f.read_text()))


def damage_missing(step_dir: Path) -> None:
    for f in (step_dir / "state").rglob("*"):
        if f.is_file() and "ocdbt" in str(f.parent):
            f.unlink()


def damage_record(step_dir: Path) -> None:
    for f in (step_dir / "record").iterdir():
        f.write_text("{garbage")


def half_written(step_dir: Path) -> None:
    # A save that did not finish: orbax's temporary folder, never renamed.
    step_dir.rename(step_dir.with_name(f"{step_dir.name}.orbax-checkpoint-tmp-1764626400"))


@pytest.mark.parametrize(
    "damage, why",
    [
        (damage_truncate, "its record cannot be read"),
        (damage_arrays, "its arrays"),
        (damage_digest, "its arrays do not match the digest saved with them"),
        (damage_missing, "its arrays cannot be read"),
        (damage_record, "its record cannot be read"),
        (half_written, "a save that did not finish"),
    ],
)
def test_damaged_checkpoint_is_set_aside_and_training_resumes(
    dataset, trained, tmp_path, capsys, damage, why
):
    run = copy_of(trained, tmp_path)
    damage(run / "checkpoints" / "48")
    capsys.readouterr()
    loop.train_and_evaluate(small_config(dataset, **EVERY_CALL), run)
    out = capsys.readouterr().out
    said = [line for line in out.splitlines() if "Checkpoint" in line]
    assert len(said) == 1 and str(run / "checkpoints" / "48") in said[0] and why in said[0]
    assert "Resuming from epoch 2, step 36 (12 of its 24)" in out
    (aside,) = (run / DAMAGED_DIR).iterdir()  # set aside, not deleted
    assert aside.name.startswith("48") and any(aside.rglob("*"))
    rows = read_metrics(run / "metrics.jsonl")
    # Epoch 2, trained again from step 36, is what it was.
    assert without_times(rows) == without_times(read_metrics(trained / "metrics.jsonl"))


def test_every_checkpoint_damaged_sets_them_aside_and_starts_again(
    dataset, trained, tmp_path, capsys
):
    run = copy_of(trained, tmp_path)
    for step in steps(run):
        damage_record(run / "checkpoints" / str(step))
    capsys.readouterr()
    loop.train_and_evaluate(small_config(dataset, **EVERY_CALL), run)
    out = capsys.readouterr().out
    assert "No intact checkpoint is left in" in out and "training starts from the beginning" in out
    assert "remove" not in out.lower()
    assert len(list((run / DAMAGED_DIR).iterdir())) == 3  # kept, beside the new ones
    assert steps(run) == [24, 36, 48]
    assert record(run, 48)["digest"] == record(trained, 48)["digest"]  # trained again, the same
    assert without_times(read_metrics(run / "metrics.jsonl")) == without_times(
        read_metrics(trained / "metrics.jsonl")
    )


def test_checkpoints_of_another_config_are_named_as_such(dataset, trained, tmp_path):
    run = copy_of(trained, tmp_path)
    config = small_config(dataset, **EVERY_CALL)
    config.model.channels = (4, 12)
    with pytest.raises(
        CheckpointError, match=r"made with another model.*\(model.channels: \[4, 8\] there, "
    ):
        loop.train_and_evaluate(config, run)
    assert steps(run) == [24, 36, 48] and not (run / DAMAGED_DIR).exists()
    # A lower learning rate is not another config: resuming with it is allowed.
    final = loop.train_and_evaluate(small_config(dataset, learning_rate=1e-3, **EVERY_CALL), run)
    assert final["epoch"] == 2


def test_a_full_disk_keeps_the_last_checkpoint_and_the_metrics(
    dataset, trained, tmp_path, monkeypatch
):
    real_save = ocp.CheckpointManager.save

    def disk_full_after_step_24(self, step, *args, **kwargs):
        if step > 24:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", disk_full_after_step_24)
    run = tmp_path / "run"
    with pytest.raises(
        SaveError,
        match=r"could not write checkpoint 36 .*No space left on device.*checkpoint 24 is intact",
    ):
        loop.train_and_evaluate(small_config(dataset, **EVERY_CALL), run)
    assert steps(run) == [12, 24] and [r["epoch"] for r in read_metrics(run / "metrics.jsonl")] == [
        1
    ]
    monkeypatch.setattr(ocp.CheckpointManager, "save", real_save)
    loop.train_and_evaluate(small_config(dataset, **EVERY_CALL), run)
    assert record(run, 48)["digest"] == record(trained, 48)["digest"]


def test_a_metrics_file_that_cannot_be_written_is_left_as_it_was(
    dataset, trained, tmp_path, monkeypatch
):

    run = tmp_path / "run"
    real_replace = files.os.replace
    calls = []

    def fail_on_epoch_2(src, dst):
        calls.append(dst)
        if len([c for c in calls if str(c).endswith("metrics.jsonl")]) == 2:  # epoch 1, epoch 2
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", fail_on_epoch_2)
    with pytest.raises(
        SaveError,
        match="could not write .*metrics.jsonl .No space left on device.; it is as it was",
    ):
        loop.train_and_evaluate(small_config(dataset, **EVERY_CALL), run)
    assert [r["epoch"] for r in read_metrics(run / "metrics.jsonl")] == [1]
    monkeypatch.setattr(files.os, "replace", real_replace)
    loop.train_and_evaluate(small_config(dataset, **EVERY_CALL), run)  # writes what it owes
    assert without_times(read_metrics(run / "metrics.jsonl")) == without_times(
        read_metrics(trained / "metrics.jsonl")
    )


def test_a_reader_lists_again_when_the_training_removed_all_it_listed(
    trained, tmp_path, monkeypatch
):
    from jaxcnn.train.predict import Predictor

    run = copy_of(trained, tmp_path)
    folder = run / "checkpoints"
    restore = Checkpoints.restore

    def removed_meanwhile(self, step, target, check_record):
        # A training beside it saved step 60 and removed the older ones past keep_checkpoints,
        # while the reader was about to read them.
        if step != 60:
            if not (folder / "60").exists():
                shutil.copytree(folder / "48", folder / "60")
            shutil.rmtree(folder / str(step))
        return restore(self, step, target, check_record)

    monkeypatch.setattr(Checkpoints, "restore", removed_meanwhile)
    predictor = Predictor.load(run)  # not "no checkpoint yet": 60 is there
    assert predictor.epochs == 2 and steps(run) == [60]  # its record: after epoch 2
    assert not (run / DAMAGED_DIR).exists()  # removal is not damage
