"""Resume semantics (slotlab.train.resume, README "Reliability"), each for both tasks: SIGKILL + resume gives the
weights of an uninterrupted run; overrides that define the run are refused, safe ones applied AND recorded
(config.yaml, resumes.json, report); a finished run is not re-run; a damaged last.ckpt falls back to the newest
readable checkpoint; a failed start leaves a folder that resumes cleanly; stale *.tmp files are removed; a full
disk says so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_OD, TINY_SP, copy_run, kill_at_checkpoint

from slotlab.cli import main

TASKS = ["od", "sp"]


@pytest.fixture
def run(request, tmp_path, tiny_od_run, tiny_sp_run) -> Path:
    """A private copy of the finished tiny run of the task ``request.param`` (6 steps, checkpoints at 3 and 6)."""
    return copy_run(tiny_od_run if request.param == "od" else tiny_sp_run, tmp_path / request.param)


def snapshot(run_dir: Path) -> dict[str, bytes]:
    """Contents of every file of a run folder (to show that nothing was written)."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def ckpt_step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


def test_kill_and_resume_set_prediction_is_bit_identical(tmp_path, tiny_cache, tiny_sp_run):
    """As test_reliability.py does for object discovery: SIGKILL mid-run, --resume, same weights bit for bit."""
    common = [*TINY_SP, f"data.cache_dir={tiny_cache}", "trainer.max_steps=40", "trainer.val_every=3"]
    common += ["trainer.figure_every_val=false", f"run.root={tmp_path}"]
    assert main(["train", *common, "run.name=full"]) == 0
    p = subprocess.Popen(
        [sys.executable, "-m", "slotlab.cli", "train", *common, "run.name=killed"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    killed_at = kill_at_checkpoint(p, ckpt, 6)
    assert 6 <= killed_at < 40
    assert main(["train", "--resume", str(tmp_path / "killed")]) == 0
    full = torch.load(tmp_path / "full" / "checkpoints" / "last.ckpt", weights_only=True)
    resumed = torch.load(ckpt, weights_only=True)
    assert resumed["global_step"] == full["global_step"] == 40
    for k, v in full["state_dict"].items():
        assert torch.equal(v, resumed["state_dict"][k]), k  # bit-exact
    moments = full["optimizer_states"][0]["state"], resumed["optimizer_states"][0]["state"]
    for a, b in zip(moments[0].values(), moments[1].values(), strict=True):
        assert torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
    res = json.loads((tmp_path / "killed" / "results.json").read_text())
    assert res["ap"] == json.loads((tmp_path / "full" / "results.json").read_text())["ap"]
    assert res["resumed_from_step"] == killed_at
    names = [sorted(p.name for p in (tmp_path / r / "checkpoints").glob("best-*.ckpt")) for r in ("full", "killed")]
    assert names[0] == names[1] and len(names[0]) == 1  # the same one best checkpoint; none left behind


@pytest.mark.parametrize("run", TASKS, indirect=True)
def test_overrides_that_define_the_run_are_refused(run, capsys):
    before = snapshot(run)
    overrides = ["data.batch_size=2", "optim.lr=1e-3", "model.slot_dim=32", "seed=5", "trainer.max_steps=9"]
    if "od" in run.name:
        overrides.append("data.name=multi_dsprites")
    assert main(["train", "--resume", str(run), *overrides]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot change ")
    named = err.split(" on --resume")[0]
    for text in overrides:
        key = text.split("=")[0]
        assert (key in named) == (key != "trainer.max_steps"), key  # every refused key named; the safe one not
    assert "slotlab train --config" in err and "run.name=NEW_NAME" in err  # how to train with them instead
    assert snapshot(run) == before  # nothing written
    # The same through a hand-edited config.yaml.
    cfg = run / "config.yaml"
    cfg.write_text(cfg.read_text().replace("slot_dim: 16", "slot_dim: 32"))
    assert main(["train", "--resume", str(run), "trainer.max_steps=9"]) == 2
    err = capsys.readouterr().err
    assert "model.slot_dim (16 -> 32)" in err and "from an edited config.yaml" in err
    # run.root / run.name name the folder, which --resume already gives.
    assert main(["train", "--resume", str(run), "run.name=other"]) == 2
    assert "cannot change on --resume" in capsys.readouterr().err


@pytest.mark.parametrize("run", TASKS, indirect=True)
def test_safe_overrides_are_applied_and_recorded(run, capsys):
    old = json.loads((run / "results.json").read_text())
    assert main(["train", "--resume", str(run), "trainer.max_steps=8", "trainer.val_every=4"]) == 0
    out = capsys.readouterr().out
    assert "trainer.max_steps: 6 -> 8" in out and "trainer.val_every: 3 -> 4" in out
    text = (run / "config.yaml").read_text()
    assert "max_steps: 8" in text and "val_every: 4" in text
    history = json.loads((run / "resumes.json").read_text())
    assert history[-1]["from_step"] == 6 and history[-1]["changes"]["trainer.max_steps"] == [6, 8]
    new = json.loads((run / "results.json").read_text())
    assert new["global_step"] == 8 and ckpt_step(run / "checkpoints" / "last.ckpt") == 8
    assert json.loads((run / "results-step6.json").read_text()) == old  # the earlier results are kept
    assert new["wall_seconds"] > old["wall_seconds"]  # all sessions, not only the last
    assert new["train_seconds"] > old["train_seconds"]
    from slotlab.report import write_report

    page = write_report(run).read_text()
    assert "8 of 8" in page and "trainer.max_steps 6 -&gt; 8" in page


@pytest.mark.parametrize("run", TASKS, indirect=True)
def test_finished_run_is_not_rerun(run, capsys):
    before = snapshot(run)
    assert main(["train", "--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert "is finished" in out and "trainer.max_steps=12" in out and "Nothing was run" in out
    assert snapshot(run) == before  # results.json, logs, checkpoints: untouched
    assert main(["train", "--resume", str(run), "trainer.max_steps=4"]) == 0  # lower than the checkpoint's step
    assert "is finished" in capsys.readouterr().out and snapshot(run) == before


@pytest.mark.parametrize("run", TASKS, indirect=True)
def test_damaged_last_checkpoint_falls_back_to_newest_readable(run, capsys):
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # truncated (e.g. a copy interrupted)
    (run / "checkpoints" / "last.ckpt.tmp").write_bytes(b"")  # left by a kill during a save
    (run / "results.json.tmp").write_bytes(b"{")
    best = next((run / "checkpoints").glob("best-*.ckpt"))
    assert main(["train", "--resume", str(run), "trainer.max_steps=8"]) == 0
    out = capsys.readouterr().out
    assert "last.ckpt is damaged or unreadable" in out
    assert f"resuming from {best.name} (step {ckpt_step(best)})" in out
    assert "removed" in out and "last.ckpt.tmp" in out
    assert not list(run.rglob("*.tmp"))
    assert ckpt_step(last) == 8  # a good last.ckpt again
    # Every checkpoint damaged: a clear error, no traceback.
    for p in (run / "checkpoints").glob("*.ckpt"):
        p.write_bytes(b"garbage")
    assert main(["train", "--resume", str(run), "trainer.max_steps=9"]) == 2
    assert "no readable checkpoint in" in capsys.readouterr().err


@pytest.mark.parametrize("task", TASKS)
def test_failed_start_resumes_cleanly(task, tmp_path, tiny_cache, capsys):
    # A missing data file or folder is found before the run folder exists: the name stays free.
    if task == "od":
        base = [*TINY_OD, "trainer.max_steps=2", "trainer.val_every=2"]
        missing = [f"data.path={tmp_path / 'missing.tfrecords'}"]
        broken = tmp_path / "broken.tfrecords"
        broken.write_bytes(b"not a tfrecord file")
        failing, fix = [f"data.path={broken}"], ["data.path=null"]
    else:
        base = [*TINY_SP, f"data.cache_dir={tiny_cache}", "trainer.max_steps=2", "trainer.val_every=2"]
        missing = ["data.source=clevr_folder", f"data.path={tmp_path / 'missing'}"]
        (tmp_path / "empty_clevr").mkdir()
        failing, fix = ["data.source=clevr_folder", f"data.path={tmp_path / 'empty_clevr'}"], ["data.source=procedural"]
    root = [f"run.root={tmp_path / 'runs'}", "run.name=r"]
    assert main(["train", *base, *missing, *root]) == 2
    assert "data.path" in capsys.readouterr().err and not (tmp_path / "runs" / "r").exists()
    # A file that exists but fails while loading: the folder exists, has no checkpoint, and resumes cleanly.
    assert main(["train", *base, *failing, *root]) == 2
    capsys.readouterr()
    assert main(["train", *base, *root]) == 2
    err = capsys.readouterr().err
    assert "it has no checkpoint" in err and "--resume" in err
    assert main(["train", "--resume", str(tmp_path / "runs" / "r"), *fix]) == 0  # any override: nothing trained yet
    assert "training it from step 0" in capsys.readouterr().out
    assert ckpt_step(tmp_path / "runs" / "r" / "checkpoints" / "last.ckpt") == 2


@pytest.mark.parametrize("run", TASKS, indirect=True)
def test_full_disk_says_so_and_keeps_the_checkpoint(run, monkeypatch, capsys):
    import slotlab.train.callbacks as callbacks

    last = run / "checkpoints" / "last.ckpt"
    before = last.read_bytes()

    def full_disk(obj, f):  # what torch.save raises when the disk fills up under its zip writer
        f.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 130752 vs 130640")

    monkeypatch.setattr(callbacks.torch, "save", full_disk)
    assert main(["train", "--resume", str(run), "trainer.max_steps=7", "trainer.val_every=1"]) == 2
    err = capsys.readouterr().err
    assert "error: No space left on device while writing the checkpoint" in err
    # The first file written at step 7 is that validation's best-*.ckpt (Lightning's ModelCheckpoint runs before
    # last.ckpt is written); the message names the checkpoints on disk, all intact.
    kept = sorted(p.name for p in (run / "checkpoints").glob("*.ckpt"))
    assert f"the earlier checkpoints {', '.join(kept)} are intact" in err, err
    assert f"slotlab train --resume {run}" in err
    assert "Traceback" not in err and "unexpected pos" not in err
    assert last.read_bytes() == before and not list(run.rglob("*.tmp"))


@pytest.mark.parametrize("run", TASKS, indirect=True)
def test_last_checkpoint_knows_the_best_file_of_its_own_validation(run):
    """last.ckpt, written at a validation, carries the best-checkpoint state of that same validation: the best-*.ckpt
    files it tracks are the ones on disk. (Written before Lightning's ModelCheckpoint had run, it tracked the previous
    validation's best, and a resumed run then left that validation's best file behind, untracked: a stray best-*.ckpt
    of a lower step that could beat the resumed run's "best".)"""
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    state = next(v for k, v in ckpt["callbacks"].items() if k.startswith("ModelCheckpoint"))
    on_disk = sorted(p.name for p in (run / "checkpoints").glob("best-*.ckpt"))
    assert sorted(Path(p).name for p in state["best_k_models"]) == on_disk
    assert Path(state["best_model_path"]).name == on_disk[-1] and len(on_disk) == 1
