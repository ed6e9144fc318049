"""``trainer.keep_every`` (slotlab.train.callbacks.kept_step_checkpoints): the checkpoint of every N-th step is kept as
``checkpoints/kept-stepNNNNNNN.ckpt``, holds that step's full state (the weights validation would see), can be
evaluated like any checkpoint, and is a fallback of ``--resume`` when last.ckpt is damaged."""

from __future__ import annotations

from pathlib import Path

import torch
from conftest import TINY_OD

from slotlab.cli import main


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_keep_every_keeps_each_steps_checkpoint(tmp_path, capsys):
    steps = ["trainer.max_steps=8", "trainer.val_every=3", "trainer.keep_every=4"]  # validations at 3 and 6
    args = ["train", *TINY_OD, *steps, f"run.root={tmp_path}", "run.name=od"]
    assert main(args) == 0
    folder = tmp_path / "od" / "checkpoints"
    kept = sorted(p.name for p in folder.glob("kept-*.ckpt"))
    assert kept == ["kept-step0000004.ckpt", "kept-step0000008.ckpt"]
    assert [load(folder / name)["global_step"] for name in kept] == [4, 8]
    # Step 8's kept checkpoint holds the weights of last.ckpt (the same step), step 4's an earlier state.
    k8, last = load(folder / kept[-1])["state_dict"], load(folder / "last.ckpt")["state_dict"]
    assert k8.keys() == last.keys() and all(torch.equal(k8[n], last[n]) for n in k8)
    k4 = load(folder / kept[0])["state_dict"]
    assert any(not torch.equal(k4[n], last[n]) for n in last)
    # Any kept step can be scored like any checkpoint.
    capsys.readouterr()
    assert main(["eval", str(folder / kept[0]), "--split", "eval"]) == 0
    assert "FG-ARI" in capsys.readouterr().out
    # last.ckpt damaged: --resume continues from the readable checkpoint of the highest step, here a kept one (the
    # best is of step 3 or 6).
    (folder / "last.ckpt").write_bytes(b"garbage")
    assert main(["train", "--resume", str(tmp_path / "od"), "trainer.max_steps=10"]) == 0
    assert "resuming from kept-step0000008.ckpt (step 8)" in capsys.readouterr().out
    assert load(folder / "last.ckpt")["global_step"] == 10


def test_no_kept_checkpoints_by_default(tiny_od_run):
    assert not list((tiny_od_run / "checkpoints").glob("kept-*.ckpt"))
