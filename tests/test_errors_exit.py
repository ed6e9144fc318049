"""Errors that tell the truth (issue 25, item 2): input the user must fix is a named UserError, shown as one
``error:`` line with exit status 2; any other exception is a bug in slotlab, shown with its traceback and a
one-line note, exit status 1 (a ValueError or OSError included: they are no longer taken for user errors)."""

from __future__ import annotations

import errno

import pytest
from conftest import copy_run

import slotlab.evaluate
import slotlab.train.fit
from slotlab.atomic import write_text
from slotlab.cli import BUG_NOTE, main
from slotlab.errors import FileAccessError, UserError


def _injected(*args, **kwargs):
    raise ValueError("injected bug")


def assert_bug_report(rc: int, err: str, kind: str = "ValueError") -> None:
    assert rc == 1
    assert "Traceback (most recent call last)" in err and f"{kind}: injected bug" in err
    assert err.rstrip().endswith(BUG_NOTE) and "this is a bug in slotlab" in BUG_NOTE
    assert "error: injected bug" not in err


def test_a_bug_in_eval_shows_its_traceback_and_exits_1(tiny_od_run, monkeypatch, capsys):
    monkeypatch.setattr(slotlab.evaluate, "data_with_path", _injected)  # called by evaluate_settings
    rc = main(["eval", str(tiny_od_run)])
    assert_bug_report(rc, capsys.readouterr().err)


def test_a_bug_in_train_shows_its_traceback_and_exits_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(slotlab.train.fit, "build_trainer", _injected)  # called by train()
    rc = main(["train", "trainer.max_steps=1", f"run.root={tmp_path}"])
    assert_bug_report(rc, capsys.readouterr().err)


def test_an_oserror_from_a_bug_is_not_a_user_error(tiny_od_run, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise PermissionError(errno.EACCES, "injected bug")

    monkeypatch.setattr(slotlab.evaluate, "data_with_path", broken)
    rc = main(["eval", str(tiny_od_run)])
    err = capsys.readouterr().err
    assert rc == 1 and "PermissionError: [Errno 13] injected bug" in err and err.rstrip().endswith(BUG_NOTE)


def test_user_errors_are_one_line_and_debug_shows_where(tmp_path, monkeypatch, capsys):
    assert main(["train", "optim.lrr=1", f"run.root={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown config key 'optim.lrr'") and "Traceback" not in err
    monkeypatch.setenv("SLOTLAB_DEBUG", "1")
    assert main(["train", "optim.lrr=1", f"run.root={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "slotlab.errors.ConfigError" in err
    assert err.rstrip().splitlines()[-1].startswith("error: unknown config key") and BUG_NOTE not in err


def test_every_named_error_is_a_user_error_and_keeps_its_old_base():
    from slotlab.data.errors import DatasetFileError, UnknownDatasetError
    from slotlab.errors import ConfigError
    from slotlab.official import OfficialCheckpointError
    from slotlab.runs import RunDirError
    from slotlab.segment import SegmentInputError, SegmentModelError
    from slotlab.train.callbacks import CheckpointWriteError
    from slotlab.train.failed_seed import FailedSeedError
    from slotlab.train.module import NonFiniteLossError
    from slotlab.train.state import CheckpointFormatError
    from slotlab.validate import UsageError

    for cls, old in [
        (ConfigError, ValueError),
        (DatasetFileError, ValueError),
        (UnknownDatasetError, ValueError),
        (OfficialCheckpointError, ValueError),
        (RunDirError, RuntimeError),
        (SegmentInputError, ValueError),
        (SegmentModelError, ValueError),
        (CheckpointWriteError, OSError),
        (FailedSeedError, RuntimeError),
        (NonFiniteLossError, RuntimeError),
        (CheckpointFormatError, ValueError),
        (UsageError, ValueError),
        (FileAccessError, OSError),
    ]:
        assert issubclass(cls, UserError) and issubclass(cls, old), cls


def test_a_write_that_fails_names_the_path(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileAccessError, match=f"cannot write {tmp_path / 'file' / 'out.json'}: Not a directory") as e:
        write_text(tmp_path / "file" / "out.json", "{}")
    assert e.value.errno == errno.ENOTDIR and not list(tmp_path.glob("**/*.tmp"))


def test_outputs_that_cannot_be_written_are_user_errors(tiny_od_run, tmp_path, capsys):
    """An output path slotlab writes into a folder the user chose, blocked (here by a folder of its name): the
    path and the reason, exit 2 (it was `[Errno 21] ...` before, and would be a bug report without the wrap)."""
    run = copy_run(tiny_od_run, tmp_path / "run")
    (run / "report.html").mkdir()
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {run / 'report.html'}: Is a directory") and "Traceback" not in err
    (run / "evals.jsonl").mkdir()
    assert main(["eval", str(run)]) == 2
    assert f"error: cannot append to {run / 'evals.jsonl'}: Is a directory" in capsys.readouterr().err


def test_objects_that_no_held_out_image_has(tiny_sp_run, tmp_path, capsys):
    """`eval --objects N` on images none of which has N objects: a named usage error (a bare ValueError from the
    metric before: now that would be reported as a bug)."""
    run = copy_run(tiny_sp_run, tmp_path / "run")
    codes = {n: main(["eval", str(run), "--objects", str(n), "--num-images", "1"]) for n in (3, 4, 5, 6)}
    err = capsys.readouterr().err
    assert set(codes.values()) <= {0, 2} and list(codes.values()).count(2) >= 3, codes
    n = next(k for k, rc in codes.items() if rc == 2)
    assert f"error: --objects {n}: none of the first 1 held-out images (eval split) has exactly {n} objects" in err
    assert "Traceback" not in err


def test_clevr_scene_objects_that_are_not_mappings(tmp_path):
    """A scenes file whose objects are numbers: a DatasetFileError naming the file and the object (a TypeError
    traceback before, from indexing the number)."""
    from test_clevr_folder import _make_clevr

    from slotlab.data.clevr_folder import ClevrFolder
    from slotlab.data.errors import DatasetFileError

    root = _make_clevr(tmp_path, scenes=[[1, 2, 3]])
    with pytest.raises(DatasetFileError, match=r"CLEVR_val_scenes.json: scene 0 .*object 0 is int 1, not a mapping"):
        ClevrFolder(root, "val")
