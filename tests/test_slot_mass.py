"""model.slot_mass_penalty (slotlab/modules/slot_mass.py): a concave price on each slot's share of the image, added to
the object-discovery loss; checked against numpy by hand, on a split object, and through the config."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import TINY_OD_MODEL, twin_od_models

from slotlab.config import load_config
from slotlab.errors import ConfigError
from slotlab.modules.slot_mass import EPS, slot_mass_price
from slotlab.tasks import get_task


def test_price_equals_numpy_by_hand_for_images_and_video():
    g = torch.Generator().manual_seed(0)
    masks = torch.randn(3, 5, 1, 7, 6, generator=g, dtype=torch.float64).mul(3).softmax(1)  # [B, K, 1, H, W]
    m = masks.numpy()[:, :, 0]  # [B, K, H, W]
    expected = np.mean([sum(math.sqrt(m[b, k].mean() + EPS) for k in range(5)) for b in range(3)])
    assert math.isclose(float(slot_mass_price(masks)), expected, rel_tol=1e-6)
    video = masks[:, :, 0][None]  # [1, B, K, H, W]: the slots on axis 2, as SAVi's masks
    assert math.isclose(float(slot_mass_price(video, slot_dim=2)), expected, rel_tol=1e-6)


def test_a_split_object_costs_more_than_a_whole_one_soft_or_hard():
    whole = torch.zeros(1, 3, 1, 8, 8)
    whole[:, 0] = 1.0
    whole[:, 0, :, :2, :4], whole[:, 1, :, :2, :4] = 0.0, 1.0  # slot 1 holds an object of 8 pixels; slot 2 nothing
    hard, soft = whole.clone(), whole.clone()
    hard[:, 1, :, :2, :2], hard[:, 2, :, :2, :2] = 0.0, 1.0  # its left half given to slot 2
    soft[:, 1, :, :2, :4], soft[:, 2, :, :2, :4] = 0.5, 0.5  # each pixel shared by slots 1 and 2
    p_whole, p_hard, p_soft = (float(slot_mass_price(x)) for x in (whole, hard, soft))
    assert p_hard > p_whole and math.isclose(p_hard, p_soft, rel_tol=1e-6)  # the same shares: the same price
    share = 8 / 64
    assert math.isclose(
        p_hard - p_whole, 2 * math.sqrt(share / 2 + EPS) - math.sqrt(share + EPS) - math.sqrt(EPS), rel_tol=1e-5
    )


def test_gradient_is_finite_at_an_empty_slot_and_moves_pixels_to_the_larger_slot():
    logits = torch.zeros(1, 3, 1, 4, 4)
    logits[:, 0] = 2.0  # slot 0 holds most of every pixel
    logits[:, 2] = -90.0  # slot 2 is empty (bf16 would round its mask to 0)
    logits.requires_grad_(True)
    slot_mass_price(logits.softmax(1)).backward()
    grad = logits.grad[0, :, 0]  # [K, H, W]
    assert torch.isfinite(grad).all()
    assert (grad[1] > 0).all() and (grad[0] < 0).all()  # descending lowers the smaller slot, raises the larger


def test_object_discovery_loss_adds_the_weighted_price_and_null_is_the_paper():
    model, plain, out, ref, image, mse = twin_od_models(slot_mass_penalty=0.05)
    shares = ref.masks.detach().double().numpy().mean(axis=(2, 3, 4))  # [B, K]
    by_hand = mse + 0.05 * float(np.sqrt(shares + EPS).sum(1).mean())
    torch.testing.assert_close(plain.loss(ref, image), mse)  # null: the MSE alone
    torch.testing.assert_close(model.loss(out, image), by_hand.float(), rtol=1e-5, atol=1e-6)
    model.loss(out, image).backward()
    assert model.slot_attention.slots_mu.grad.abs().sum() > 0


def test_config_key_builds_the_weight_and_checks_its_range():
    cfg = load_config(None, [*TINY_OD_MODEL, "model.slot_mass_penalty=0.01"])
    assert get_task(cfg["task"]).build_model(cfg, (35, 35)).slot_mass_penalty == 0.01
    assert (
        get_task("object_discovery").build_model(load_config(None, TINY_OD_MODEL), (35, 35)).slot_mass_penalty is None
    )
    for bad in ("-1", "0", "true", "'x'"):
        with pytest.raises(ConfigError, match="model.slot_mass_penalty"):
            load_config(None, [f"model.slot_mass_penalty={bad}"])
