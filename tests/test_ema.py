"""optim.ema_decay (Lightning's EMAWeightAveraging): the averaged weights are what validation, checkpoints and the
final evaluation see; the trained weights travel in the checkpoint so a resumed run continues both exactly."""

import torch
from conftest import TINY_OD

from slotlab.cli import main


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_ema_checkpoint_holds_the_average_and_resume_continues_it_exactly(tmp_path):
    ema = [*TINY_OD, "optim.ema_decay=0.9", "optim.warmup_steps=2", "trainer.val_every=3", f"run.root={tmp_path}"]
    assert main(["train", *ema, "trainer.max_steps=6", "run.name=straight"]) == 0
    assert main(["train", *ema, "trainer.max_steps=3", "run.name=resumed"]) == 0
    assert main(["train", "--resume", str(tmp_path / "resumed"), "trainer.max_steps=6"]) == 0
    straight = _weights(tmp_path / "straight" / "checkpoints" / "last.ckpt")
    resumed = _weights(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    average, trained = straight["state_dict"], straight["current_model_state"]
    assert average.keys() == trained.keys()
    # The average lags the trained weights (decay 0.9 over 4 updates), so they differ.
    assert any(not torch.equal(average[k], trained[k]) for k in average if average[k].is_floating_point())
    for key in ("state_dict", "current_model_state"):
        for name, value in straight[key].items():
            assert torch.equal(value, resumed[key][name]), (key, name)


def test_ema_off_by_default_in_the_paper_configs():
    from slotlab.config import load_config

    assert load_config("tetrominoes")["optim"]["ema_decay"] is None
    assert load_config("tetrominoes_quick")["optim"]["ema_decay"] == 0.999


def test_ema_before_the_warmup_ends_is_the_trained_weights(tmp_path):
    # A run that stops before the averaging starts (max_steps <= warmup) must evaluate its trained weights,
    # not the initial ones the average was created from.
    run = [*TINY_OD, "optim.ema_decay=0.9", "optim.warmup_steps=5", "trainer.max_steps=3", "trainer.val_every=3"]
    assert main(["train", *run, f"run.root={tmp_path}", "run.name=short"]) == 0
    ckpt = _weights(tmp_path / "short" / "checkpoints" / "last.ckpt")
    for name, value in ckpt["state_dict"].items():
        assert torch.equal(value, ckpt["current_model_state"][name]), name
