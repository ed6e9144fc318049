"""model.slot_keep (slotlab/modules/slot_keep.py: AdaSlot's keep / drop gate, a dropped slot's mask removed) and
model.init_from (slotlab/train/init_from.py: a new run starts from a trained model's weights)."""

from __future__ import annotations

import csv

import pytest
import torch
from conftest import QUIET, TINY_OD, TINY_OD_MODEL

from slotlab.config import load_config
from slotlab.errors import ConfigError
from slotlab.modules.slot_keep import SlotKeepGate, keep_masks
from slotlab.tasks import get_task
from slotlab.tasks.object_discovery.model import ObjectDiscoveryModel
from slotlab.train.init_from import load_initial_weights


def test_keep_masks_renormalise_over_the_kept_slots():
    g = torch.Generator().manual_seed(0)
    masks = torch.randn(3, 5, 1, 7, 6, generator=g).softmax(1)  # [B, K, 1, H, W]
    keep = torch.tensor([[1, 1, 1, 1, 1], [1, 0, 1, 0, 1], [0, 0, 0, 0, 1]], dtype=torch.float32)
    out = keep_masks(masks, keep)
    torch.testing.assert_close(out[0], masks[0] / (1 + 1e-5))  # all kept: the paper's masks
    assert torch.all(out[1, [1, 3]] == 0) and torch.all(out[2, :4] == 0)  # dropped: no mask anywhere
    expected = masks[1, [0, 2, 4]] / (masks[1, [0, 2, 4]].sum(0) + 1e-5)  # by hand, over the kept three
    torch.testing.assert_close(out[1, [0, 2, 4]], expected)
    torch.testing.assert_close(out[2, 4], masks[2, 4] / (masks[2, 4] + 1e-5))  # one kept slot takes every pixel


def test_gate_is_hard_forward_straight_through_backward_and_deterministic_in_eval():
    torch.manual_seed(0)
    gate = SlotKeepGate(16)
    slots = torch.randn(4, 6, 16, requires_grad=True)
    z = gate.train().decide(slots)
    assert set(z.detach().unique().tolist()) <= {0.0, 1.0}
    assert z.mean() > 0.8  # starts with (almost) every slot kept: sigmoid(3) = 0.95
    (z * torch.arange(6.0)).sum().backward()
    assert slots.grad is not None and slots.grad.abs().sum() > 0  # the relaxed sample's gradient reaches the slots
    gate.eval()
    with torch.no_grad():
        gate.head[-1].bias.fill_(-20.0)
        assert torch.equal(gate.decide(slots), torch.zeros(4, 6))  # keep probability < 1/2: dropped, every time
        gate.head[-1].bias.fill_(20.0)
        assert torch.equal(gate.decide(slots), gate.decide(slots)) and bool(gate.decide(slots).all())


def test_model_removes_dropped_slots_and_prices_the_kept_ones():
    torch.manual_seed(0)
    model = ObjectDiscoveryModel((35, 35), num_slots=4, slot_dim=16, mlp_hidden=16, slot_keep=0.01)
    image = torch.rand(2, 3, 35, 35) * 2 - 1
    model.train()
    out = model(image)
    assert out.keep is not None and out.keep.shape == (2, 4)
    mse = torch.nn.functional.mse_loss((out.masks * out.recons).sum(1), image)
    torch.testing.assert_close(model.loss(out, image), mse + 0.01 * out.keep.mean())
    model.eval()
    with torch.no_grad():
        model.keep_gate.head[-1].bias.fill_(-20.0)
        model.keep_gate.head[-1].weight.zero_()
        dropped = model(image)
    assert torch.all(dropped.masks == 0) and torch.all(dropped.recon == 0)  # nothing kept draws nothing
    plain = ObjectDiscoveryModel((35, 35), num_slots=4, slot_dim=16, mlp_hidden=16)
    assert plain.keep_gate is None and plain(image).keep is None  # the paper's model: no gate, no price


def test_config_key_builds_the_gate_and_checks_its_range():
    cfg = load_config(None, [*TINY_OD_MODEL, "model.slot_keep=0.001"])
    model = get_task(cfg["task"]).build_model(cfg, (35, 35))
    assert model.keep_gate is not None and model.slot_keep == 0.001
    assert get_task(cfg["task"]).build_model(load_config(None, TINY_OD_MODEL), (35, 35)).keep_gate is None
    with pytest.raises(ConfigError, match="model.slot_keep"):
        load_config(None, ["model.slot_keep=-1"])


def test_init_from_copies_every_trained_tensor_and_keeps_the_new_ones(tiny_od_run):
    from slotlab.inference.checkpoint_io import load_checkpoint, model_weights

    trained = model_weights(load_checkpoint(tiny_od_run / "checkpoints" / "last.ckpt"))
    cfg = load_config(str(tiny_od_run / "config.yaml"), ["model.slot_keep=0.001"])
    model = get_task(cfg["task"]).build_model(cfg, (35, 35))
    gate_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("keep_gate.")}
    own = load_initial_weights(model, str(tiny_od_run))
    assert own == sorted(gate_before)  # exactly the gate's tensors keep their initialisation
    state = model.state_dict()
    for k, v in trained.items():
        assert torch.equal(state[k], v), k
    for k, v in gate_before.items():
        assert torch.equal(state[k], v), k
    wider_cfg = load_config(str(tiny_od_run / "config.yaml"), ["model.slot_dim=24"])
    wider = get_task(cfg["task"]).build_model(wider_cfg, (35, 35))
    with pytest.raises(ConfigError, match="do not fit this model"):
        load_initial_weights(wider, str(tiny_od_run))


def test_train_starts_from_init_from_and_resume_does_not_reload_it(tiny_od_run, tmp_path):
    import shutil

    from slotlab.cli import main
    from slotlab.inference.checkpoint_io import load_checkpoint, model_weights

    source = tmp_path / "source"
    shutil.copytree(tiny_od_run, source)
    args = [*TINY_OD, *QUIET, f"model.init_from={source}", "model.slot_keep=0.001", "optim.lr=1e-12"]
    assert main(["train", *args, "trainer.max_steps=1", "trainer.val_every=1", f"run.root={tmp_path}",
                 "run.name=ft"]) == 0  # fmt: skip
    trained = model_weights(load_checkpoint(source / "checkpoints" / "last.ckpt"))
    first = model_weights(load_checkpoint(tmp_path / "ft" / "checkpoints" / "last.ckpt"))
    assert set(first) - set(trained) == {k for k in first if k.startswith("keep_gate.")}
    for k, v in trained.items():  # one step at lr 1e-12 (Adam's first step moves a weight by ~lr)
        torch.testing.assert_close(first[k], v, atol=1e-9, rtol=0)
    shutil.rmtree(source)  # gone after the run started: a resume continues from its own checkpoint, not from it
    assert main(["train", "--resume", str(tmp_path / "ft"), "trainer.max_steps=2"]) == 0
    second = model_weights(load_checkpoint(tmp_path / "ft" / "checkpoints" / "last.ckpt"))
    assert int(load_checkpoint(tmp_path / "ft" / "checkpoints" / "last.ckpt")["global_step"]) == 2
    assert set(second) == set(first)
    metrics = (tmp_path / "ft" / "logs" / "version_1" / "metrics.csv").read_text().splitlines()
    rows = [r for r in csv.DictReader(metrics) if r["val/kept_slots"]]
    assert rows and float(rows[-1]["val/kept_slots"]) == 4.0  # validated; the new gate keeps every slot (p = 0.95)


def test_train_refuses_a_missing_or_unfitting_init_from_before_any_work(tiny_od_run, tmp_path, capsys):
    from slotlab.cli import main

    args = [*TINY_OD, *QUIET, "trainer.max_steps=1", f"run.root={tmp_path}"]
    assert main(["train", *args, f"model.init_from={tmp_path / 'nowhere.ckpt'}"]) == 2
    assert "nowhere.ckpt does not exist" in capsys.readouterr().err
    assert main(["train", *args, f"model.init_from={tiny_od_run}", "model.slot_dim=24"]) == 2
    assert "do not fit this model" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # no run folder was made
