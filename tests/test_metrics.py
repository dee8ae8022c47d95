"""metrics.jsonl: each epoch once, never half-written, agreeing with the checkpoint resumed."""

import errno
import json

import pytest

from jaxcnn import files
from jaxcnn.errors import WorkdirError
from jaxcnn.train import metrics
from jaxcnn.train.metrics import SUPERSEDED_FILE, read_metrics, reconcile, write_metrics


def line(epoch: int) -> dict:
    return {"epoch": epoch, "test_loss": 1.0 / epoch}


def test_a_line_cut_short_is_left_out(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps(line(1)) + "\n" + json.dumps(line(2))[:9])
    assert read_metrics(path) == [line(1)]
    assert read_metrics(tmp_path / "missing.jsonl") == []


def test_a_bad_line_before_the_last_is_an_error_naming_it(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps(line(1)) + "\n{oops\n" + json.dumps(line(3)) + "\n")
    with pytest.raises(WorkdirError, match=r"metrics.jsonl, line 2, is not a JSON object"):
        read_metrics(path)
    path.write_text(json.dumps(line(1)) + "\n" + json.dumps(line(2))[:9] + "\n")  # a whole line
    with pytest.raises(WorkdirError, match="line 2"):
        read_metrics(path)


def test_reconcile_writes_the_owed_line_once_and_sets_later_ones_aside(tmp_path):
    path = tmp_path / "metrics.jsonl"
    write_metrics(path, [line(1)])
    reconcile(path, 2, line(2))  # killed between epoch 2's checkpoint and its line
    assert read_metrics(path) == [line(1), line(2)]
    reconcile(path, 2, line(2))  # and again: still once
    assert read_metrics(path) == [line(1), line(2)]
    write_metrics(path, [line(1), line(2), line(3)])
    reconcile(path, 1, line(1))  # the checkpoint of epoch 2 and later were damaged
    assert read_metrics(path) == [line(1)]
    assert read_metrics(tmp_path / SUPERSEDED_FILE) == [line(2), line(3)]  # kept, not deleted


def test_a_failed_write_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    write_metrics(path, [line(1)])
    before = path.read_bytes()

    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "replace", disk_full)  # where metrics.jsonl is written whole
    with pytest.raises(OSError, match="No space left"):
        metrics.append_metrics(path, line(2))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]  # no temporary file left
