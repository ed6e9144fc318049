"""model.slot_repulsion (slotlab/modules/slot_repulsion.py): a price on near-copy slots, added to the
object-discovery loss; checked against a numpy loop over the pairs, on copies and distinct slots, and by config."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_OD_MODEL, twin_od_models

from slotlab.config import load_config
from slotlab.errors import ConfigError
from slotlab.modules.slot_repulsion import THRESHOLD, near_copy_price
from slotlab.tasks import get_task


def _by_hand(slots: np.ndarray, threshold: float) -> float:
    total = 0.0
    for s in slots:  # [K, D]
        c = s - s.mean(0)  # centred on the image's mean slot
        for i, j in itertools.combinations(range(len(c)), 2):
            cos = c[i] @ c[j] / (np.linalg.norm(c[i]) * np.linalg.norm(c[j]))
            total += max(0.0, cos - threshold)
    return total / len(slots)


def test_price_equals_a_loop_over_the_pairs():
    g = torch.Generator().manual_seed(0)
    slots = torch.randn(3, 6, 8, generator=g, dtype=torch.float64)
    slots[:, 1] = slots[:, 0] + 0.05 * torch.randn(3, 8, generator=g, dtype=torch.float64)  # a near-copy per image
    expected = _by_hand(slots.numpy(), THRESHOLD)
    assert expected > 0.3  # the copies pay
    torch.testing.assert_close(near_copy_price(slots), torch.tensor(expected, dtype=torch.float32))
    torch.testing.assert_close(near_copy_price(slots, 0.0), torch.tensor(_by_hand(slots.numpy(), 0.0)).float())


def test_distinct_slots_pay_nothing_and_copies_are_pushed_apart():
    distinct = torch.eye(4, 16).mul(3)[None]  # [1, K, D]: centred, every pair's cosine is -1/3
    assert float(near_copy_price(distinct)) == 0.0
    g = torch.Generator().manual_seed(1)
    slots = torch.randn(1, 4, 16, generator=g)
    slots[0, 2] = slots[0, 1] + 0.01 * torch.randn(16, generator=g)
    slots.requires_grad_(True)
    near_copy_price(slots).backward()
    step = slots - 0.5 * slots.grad  # one descent step
    centred = F.normalize(step - step.mean(1, keepdim=True), dim=-1)
    before = F.normalize(slots - slots.mean(1, keepdim=True), dim=-1)
    assert float(centred[0, 1] @ centred[0, 2]) < float(before[0, 1] @ before[0, 2])
    assert torch.isfinite(slots.grad).all()


def test_object_discovery_loss_adds_the_weighted_price_and_null_is_the_paper():
    model, plain, out, ref, image, mse = twin_od_models(slot_repulsion=0.05)
    by_hand = mse + 0.05 * _by_hand(ref.slots.detach().double().numpy(), THRESHOLD)
    torch.testing.assert_close(plain.loss(ref, image), mse)  # null: the MSE alone
    torch.testing.assert_close(model.loss(out, image), by_hand.float(), rtol=1e-5, atol=1e-6)


def test_config_key_builds_the_weight_and_checks_its_range():
    cfg = load_config(None, [*TINY_OD_MODEL, "model.slot_repulsion=0.01"])
    assert get_task(cfg["task"]).build_model(cfg, (35, 35)).slot_repulsion == 0.01
    assert get_task("object_discovery").build_model(load_config(None, TINY_OD_MODEL), (35, 35)).slot_repulsion is None
    for bad in ("-1", "0", "true", "'x'"):
        with pytest.raises(ConfigError, match="model.slot_repulsion"):
            load_config(None, [f"model.slot_repulsion={bad}"])
