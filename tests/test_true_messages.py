"""Messages with wrong facts (issue 25, item 7): each message states what is on disk, checked, not assumed.

- a short TFRecord file: the number of records it has (was ``start + what was read``: "4 usable records" for a
  3-record file);
- a checkpoint write that fails: which earlier checkpoints are intact (was "no earlier checkpoint exists" when
  last.ckpt existed and a new best-*.ckpt failed);
- the report's resume marks: the step the run resumed from (was the first logged row after it: "resumed at
  steps 29" beside "from step 20").
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from conftest import copy_run

import slotlab.train.callbacks as callbacks
from slotlab.cli import main
from slotlab.data.errors import DatasetFileError
from slotlab.data.files import load_tfrecord_split

FIXTURE = Path(__file__).parent / "fixtures" / "tetrominoes_plain.tfrecords"  # 3 records


@pytest.mark.parametrize(("start", "count"), [(0, 5), (2, 2), (3, 1), (4, 2), (32, 8)])
def test_short_tfrecord_file_says_how_many_records_it_has(start, count):
    with pytest.raises(DatasetFileError, match=f"has only 3 usable tetrominoes records; need {start + count} "):
        load_tfrecord_split(FIXTURE, "tetrominoes", start, count)


def test_short_tfrecord_file_through_the_cli(tmp_path, capsys):
    tiny = ["data.train_size=32", "data.eval_size=8", "data.batch_size=8", "trainer.max_steps=1"]
    assert main(["train", *tiny, f"data.path={FIXTURE}", f"run.root={tmp_path}"]) == 2
    assert f"error: {FIXTURE} has only 3 usable tetrominoes records; need 40" in capsys.readouterr().err


def test_records_within_the_file_are_still_read():
    assert len(load_tfrecord_split(FIXTURE, "tetrominoes", 1, 2)["image"]) == 2


def _full_disk(obj, f):
    f.write(b"partial")
    raise OSError(28, "No space left on device")


def test_failed_checkpoint_write_names_the_checkpoints_that_are_intact(tmp_path, monkeypatch):
    io = callbacks.AtomicCheckpointIO()
    folder = tmp_path / "run" / "checkpoints"
    io.save_checkpoint({"state": 1}, folder / "last.ckpt")
    monkeypatch.setattr(callbacks.torch, "save", _full_disk)
    with pytest.raises(callbacks.CheckpointWriteError) as e:
        io.save_checkpoint({"state": 2}, folder / "best-step0000004.ckpt")  # a new name: last.ckpt is still there
    assert "the earlier checkpoint last.ckpt is intact" in str(e.value)
    assert "no earlier checkpoint" not in str(e.value)
    with pytest.raises(callbacks.CheckpointWriteError, match=r"the previous checkpoint is intact \(last.ckpt\)"):
        io.save_checkpoint({"state": 2}, folder / "last.ckpt")
    monkeypatch.undo()
    io.save_checkpoint({"state": 3}, folder / "best-step0000002.ckpt")
    monkeypatch.setattr(callbacks.torch, "save", _full_disk)
    with pytest.raises(callbacks.CheckpointWriteError, match="checkpoints best-step0000002.ckpt, last.ckpt are intact"):
        io.save_checkpoint({"state": 4}, folder / "best-step0000006.ckpt")
    assert torch.load(folder / "last.ckpt", weights_only=True) == {"state": 1}
    empty = tmp_path / "empty" / "checkpoints"
    with pytest.raises(callbacks.CheckpointWriteError, match="no earlier checkpoint exists"):
        io.save_checkpoint({"state": 1}, empty / "best-step0000002.ckpt")


def test_report_marks_the_step_a_run_resumed_from(tiny_od_run, tmp_path):
    """Resumed from the checkpoint of step 6 with a logging interval of 10: the first row the resumed session
    logged is step 15, and the report said "resumed at steps 15" beside "from step 6"."""
    from slotlab.report import write_report

    run = copy_run(tiny_od_run, tmp_path / "run")
    (run / "logs" / "version_1").mkdir()
    with open(run / "logs" / "version_1" / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "step", "train/loss"])
        w.writerows([[0, 15, 0.5], [0, 25, 0.4]])
    resume = {"time": "2026-01-01T00:00:00", "from_step": 6, "checkpoint": "last.ckpt", "changes": {}, "notes": []}
    (run / "resumes.json").write_text(json.dumps([resume]))
    page = write_report(run).read_text()
    assert "from step 6 of last.ckpt" in page
    assert "resumed at steps 6." in page and "resumed at steps 15" not in page
