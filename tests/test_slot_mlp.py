"""The Slot MLP baseline (paper Section 4, Table 1 / Figure 5): shapes in both tasks and order dependence."""

from __future__ import annotations

import pytest
import torch

from slotlab.config import defaults_for
from slotlab.models.slot_mlp import SlotMLP
from slotlab.tasks.object_discovery.model import (
    ObjectDiscoveryModel,
    ObjectDiscoveryOutput,
    ObjectDiscoverySlotMLP,
    build_object_discovery_slot_mlp,
)
from slotlab.tasks.set_prediction import build_set_prediction_model
from slotlab.tasks.set_prediction.model import SetPredictionSlotMLP


def test_slot_mlp_shapes_and_grid():
    m = SlotMLP(feature_channels=16, grid=8, num_slots=5, slot_dim=12, hidden=32)
    for hw in [(32, 32), (35, 35), (8, 8)]:
        assert m(torch.randn(3, 16, *hw)).shape == (3, 5, 12)


def test_set_prediction_slot_mlp_shapes():
    torch.manual_seed(0)
    model = SetPredictionSlotMLP(resolution=(64, 64), num_slots=6, encoder_channels=(16,) * 4, hidden=64)
    out = model(torch.rand(2, 3, 64, 64) * 2 - 1)
    assert out.pred.shape == (2, 6, 19) and out.slots.shape == (2, 6, 64)
    assert out.attn.shape == (2, 0, 6, 256)  # no attention: T = 0 (16x16 grid)
    assert ((out.pred >= 0) & (out.pred <= 1)).all()
    loss = model.loss(out, torch.zeros(2, 6, 19))
    loss.backward()
    with pytest.raises(ValueError, match="fixed number of slots"):
        model(torch.zeros(1, 3, 64, 64), num_slots=8)
    with pytest.raises(ValueError, match="iterations"):
        model(torch.zeros(1, 3, 64, 64), iters=5)


def test_build_from_config():
    m = dict(defaults_for("set_prediction")["model"], kind="slot_mlp")
    model = build_set_prediction_model(m, 128)
    assert isinstance(model, SetPredictionSlotMLP)
    assert model.encoder.feature_resolution == (32, 32)
    assert model(torch.zeros(1, 3, 128, 128)).pred.shape == (1, 10, 19)


def test_object_discovery_slot_mlp_shapes_and_loss():
    torch.manual_seed(0)
    model = ObjectDiscoverySlotMLP(resolution=(35, 35), num_slots=4, encoder_channels=(8,) * 4, slot_mlp_hidden=32)
    image = torch.rand(2, 3, 35, 35) * 2 - 1
    out = model(image)
    assert isinstance(out, ObjectDiscoveryOutput)
    assert out.recon.shape == (2, 3, 35, 35) and out.recons.shape == (2, 4, 3, 35, 35)
    assert out.masks.shape == (2, 4, 1, 35, 35) and out.slots.shape == (2, 4, 64)
    assert out.attn.shape == (2, 0, 4, 35 * 35)
    assert torch.allclose(out.masks.sum(1), torch.ones(2, 1, 35, 35), atol=1e-5)
    loss = model.loss(out, image)
    assert torch.isclose(loss, ObjectDiscoveryModel.loss(out, image))
    loss.backward()
    # CLEVR-sized variant with the 8x8-broadcast decoder, built from an object-discovery model config.
    cfg = {
        "num_slots": 3,
        "slot_dim": 16,
        "encoder_channels": [4, 4, 4, 4],
        "decoder": "clevr",
        "decoder_channels": 8,
        "factorize_decoder": True,
        "slot_mlp": {"grid": 4, "hidden": 16},
    }
    clevr = build_object_discovery_slot_mlp(cfg, (64, 64))
    assert clevr(torch.zeros(1, 3, 64, 64)).masks.shape == (1, 3, 1, 64, 64)


def test_slot_mlp_is_not_permutation_equivariant():
    """Slot k is always the k-th output chunk: permuting the last layer's slot chunks changes the output, and
    slots are distinct, ordered functions of the image (unlike Slot Attention's exchangeable slots)."""
    torch.manual_seed(0)
    m = SlotMLP(feature_channels=4, grid=4, num_slots=3, slot_dim=5, hidden=16)
    x = torch.randn(2, 4, 8, 8)
    slots = m(x)  # [2, 3, 5]
    # The same features always give the same slot order (no random initialisation to permute).
    assert torch.equal(slots, m(x))
    # Swapping the weights of slots 0 and 1 in the last layer swaps the output slots: order lives in the weights.
    last = m.mlp[-1]
    perm = torch.tensor([1, 0, 2])
    w = last.weight.detach().view(3, 5, -1)[perm].reshape_as(last.weight)
    b = last.bias.detach().view(3, 5)[perm].reshape_as(last.bias)
    with torch.no_grad():
        last.weight.copy_(w)
        last.bias.copy_(b)
    swapped = m(x)
    assert torch.allclose(swapped, slots[:, perm])
    assert not torch.allclose(swapped, slots)
    # Permuting the input features' spatial order changes the slot set (no invariance to input order either).
    shuffled = x.flatten(2)[..., torch.randperm(64)].view_as(x)
    assert not torch.allclose(m(shuffled).sort(dim=1).values, swapped.sort(dim=1).values)
