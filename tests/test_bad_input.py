"""Bad input cases of docs/bad_input.md that are not covered next to their module's own tests."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from slotlab.cli import main
from slotlab.data import cache
from slotlab.data.errors import DatasetFileError
from slotlab.data.registry import get_dataset

sys.path.insert(0, str(Path(__file__).parent))
from test_clevr_folder import _make_clevr  # noqa: E402

TINY = [
    "trainer.max_steps=2",
    "trainer.val_every=2",
    "data.train_size=32",
    "data.eval_size=8",
    "data.batch_size=8",
    "data.eval_batch_size=8",
    "trainer.progress_bar=false",
    "model.encoder_channels=[8,8,8,8]",
    "model.decoder_channels=8",
]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    assert main(["train", *TINY, f"run.root={root}", "run.name=r"]) == 0
    return root / "r" / "checkpoints" / "last.ckpt"


def test_checkpoint_of_another_task(ckpt, tmp_path):
    from slotlab.inference.loading import CheckpointError, load_model

    c = torch.load(ckpt, weights_only=False)
    c["hyper_parameters"]["config"]["task"] = "set_prediction"
    torch.save(c, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="holds a 'set_prediction' model, not an object-discovery model"):
        load_model(tmp_path / "other.ckpt", "object_discovery")  # e.g. `slotlab figures` on a set-prediction run


def test_checkpoint_of_another_architecture(ckpt, tmp_path, capsys):
    c = torch.load(ckpt, weights_only=False)
    c["hyper_parameters"]["config"]["model"]["decoder_channels"] = 16  # weights are for 8 channels
    torch.save(c, tmp_path / "mismatch.ckpt")
    assert main(["eval", str(tmp_path / "mismatch.ckpt")]) == 2
    assert "does not match the model its config describes" in capsys.readouterr().err


def test_not_a_lightning_checkpoint(tmp_path, capsys):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "plain.ckpt")
    assert main(["eval", str(tmp_path / "plain.ckpt")]) == 2
    assert "is not a slotlab/Lightning checkpoint" in capsys.readouterr().err


def test_non_writable_output_dir(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")  # run.root below a regular file cannot be created (even as root)
    assert main(["train", *TINY, f"run.root={blocker}/runs"]) == 2
    assert "cannot write the run folder" in capsys.readouterr().err


def test_resume_without_checkpoint(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main(["train", "--resume", str(tmp_path / "run")]) == 2
    assert "config.yaml not found" in capsys.readouterr().err
    # A config but no checkpoint (a start that failed before its first checkpoint): it starts again from step 0
    # (test_resume.py::test_failed_start_resumes_cleanly runs it through the CLI).
    from slotlab.train.resume import plan_resume

    (tmp_path / "run" / "config.yaml").write_text("seed: 0\n")
    plan = plan_resume(tmp_path / "run", ["trainer.max_steps=3"])
    assert plan.checkpoint is None and plan.step == 0 and "from step 0" in plan.notes[-1]
    assert plan.cfg["trainer"]["max_steps"] == 3 and not plan.finished


def test_unknown_dataset_suggests_nearest(capsys):
    with pytest.raises(ValueError, match="Did you mean 'tetrominoes'"):
        get_dataset("tetromino")
    assert main(["train", "data.name=tetromino"]) == 2
    assert "Did you mean 'tetrominoes'" in capsys.readouterr().err


def test_interrupted_generation_is_detected_and_completed(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "SHARD", 16)
    folder = cache.build("tetrominoes", "train", 48, 0, tmp_path, workers=1)
    full = cache.load(folder, 48)
    # Simulate a generation killed mid-way: one shard missing, one half-written temporary file left behind.
    (folder / "shard_000001.npz").unlink()
    (folder / "shard_000002.tmp.npz").write_bytes(b"partial")
    assert cache.missing_shards(folder, 48) == [1]
    with pytest.raises(DatasetFileError, match="cache is incomplete"):
        cache.load(folder, 48)
    calls = []
    cache.build("tetrominoes", "train", 48, 0, tmp_path, workers=1, progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (2, 3) and calls[-1] == (3, 3)  # only the missing shard was generated
    assert not list(folder.glob("*.tmp.npz"))
    again = cache.load(folder, 48)
    for k in full:
        np.testing.assert_array_equal(full[k], again[k])


def test_corrupt_cache_shard(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "SHARD", 16)
    folder = cache.build("tetrominoes", "eval", 16, 0, tmp_path, workers=1)
    (folder / "shard_000000.npz").write_bytes(b"garbage")
    with pytest.raises(DatasetFileError, match="is corrupt"):
        cache.load(folder, 16)


def test_empty_clevr_scene(tmp_path):
    from slotlab.data.clevr_folder import ClevrFolder

    root = _make_clevr(tmp_path, scenes=[[]])
    with pytest.raises(DatasetFileError, match="is empty"):
        ClevrFolder(root, "val")


def test_tfrecord_training_data_too_short(tmp_path, capsys):
    fixture = Path(__file__).parent / "fixtures"
    files = sorted(fixture.glob("tetrominoes*.tfrecords*"))
    assert files
    assert main(["train", *TINY, f"data.path={files[0]}", f"run.root={tmp_path}"]) == 2
    assert "usable tetrominoes records" in capsys.readouterr().err


def test_results_json_is_valid(ckpt):
    res = json.loads((ckpt.parent.parent / "results.json").read_text())
    assert res["num_images"] == 8


def test_checkpoint_of_the_old_format_is_refused_with_the_reason(tiny_od_run, tmp_path, capsys):
    """Checkpoints from before the parity fix (no slotlab_format: symmetric stride-2 padding, LayerNorm eps 1e-5)
    compute another function with this version's layers: eval and resume refuse them, saying why."""
    from conftest import copy_run

    from slotlab.train.checkpoints import CheckpointError, load_checkpoint

    run = copy_run(tiny_od_run, tmp_path / "old")
    ckpt_path = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(ckpt_path, weights_only=False)
    assert ckpt["slotlab_format"] == 2
    del ckpt["slotlab_format"]  # as slotlab 0.1 wrote it
    torch.save(ckpt, ckpt_path)
    for best in (run / "checkpoints").glob("best-*.ckpt"):
        best.unlink()
    with pytest.raises(CheckpointError, match="before checkpoint format 2.*LayerNorm eps 1e-5"):
        load_checkpoint(ckpt_path)
    assert main(["eval", str(run)]) == 2
    assert "before checkpoint format 2" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "trainer.max_steps=8"]) == 2
    assert "before checkpoint format 2" in capsys.readouterr().err
