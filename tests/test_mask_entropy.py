"""model.mask_entropy (slotlab/modules/mask_entropy.py): the decoder masks' per-pixel entropy over the slots, added
to the loss of the object-discovery model and of SAVi; checked against scipy's entropy and the losses by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_OD_MODEL, twin_od_models
from scipy.stats import entropy as scipy_entropy
from test_savi_model import tiny as tiny_savi

from slotlab.config import load_config
from slotlab.errors import ConfigError
from slotlab.modules.mask_entropy import mask_entropy
from slotlab.tasks import get_task


def test_entropy_equals_scipys_and_its_bounds():
    g = torch.Generator().manual_seed(0)
    masks = torch.randn(3, 5, 1, 7, 6, generator=g, dtype=torch.float64).mul(3).softmax(1)  # [B, K, 1, H, W]
    expected = scipy_entropy(masks.numpy(), axis=1).mean()  # independent: nats over the slot axis
    assert math.isclose(float(mask_entropy(masks)), float(expected), rel_tol=1e-6)
    video = masks.permute(2, 0, 1, 3, 4)  # [1, B, K, H, W]: the slots on axis 2, as SAVi's masks
    assert math.isclose(float(mask_entropy(video, slot_dim=2)), float(expected), rel_tol=1e-6)
    one_hot = F.one_hot(torch.randint(0, 4, (2, 5, 5), generator=g), 4).permute(0, 3, 1, 2).float()  # [B, K, H, W]
    assert float(mask_entropy(one_hot)) == 0.0  # one slot owns every pixel (zeros included: no NaN)
    assert math.isclose(float(mask_entropy(torch.full((2, 6, 4, 4), 1 / 6))), math.log(6), rel_tol=1e-6)


def test_gradient_is_finite_at_zero_masks_and_pushes_a_shared_pixel_to_one_slot():
    logits = torch.tensor([[0.0, 0.1, -80.0]], requires_grad=True)  # [1, K]: a tie, and a slot at ~0 (bf16: 0)
    mask_entropy(logits.softmax(1)[..., None]).backward()
    grad = logits.grad[0]
    assert torch.isfinite(grad).all()
    assert grad[1] < 0 < grad[0]  # descending raises the leading slot, lowers the other: the tie breaks


def test_object_discovery_loss_adds_the_weighted_entropy_and_null_is_the_paper():
    model, plain, out, ref, image, mse = twin_od_models(mask_entropy=0.05)
    masks = ref.masks.detach().double().numpy()
    by_hand = mse + 0.05 * float(scipy_entropy(masks, axis=1).mean())
    torch.testing.assert_close(plain.loss(ref, image), mse)  # null: the MSE alone
    torch.testing.assert_close(model.loss(out, image), by_hand.float(), rtol=1e-5, atol=1e-6)
    model.loss(out, image).backward()
    assert model.slot_attention.slots_mu.grad.abs().sum() > 0


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_savi_loss_adds_the_entropy_reduced_like_the_error(reduction):
    torch.manual_seed(0)
    model, plain = tiny_savi(init="learned", mask_entropy=0.1), tiny_savi(init="learned")
    plain.load_state_dict(model.state_dict())
    video = torch.rand(2, 3, 3, 16, 16) * 2 - 1  # [B, T, 3, H, W]
    out, ref = model(video), plain(video)
    error = plain.loss(ref, video, reduction)
    ent = scipy_entropy(ref.masks.detach().double().numpy(), axis=2)  # [B, T, H, W]
    extra = ent.sum() / 2 if reduction == "sum" else ent.mean()  # per clip, summed like the error; or the mean
    torch.testing.assert_close(model.loss(out, video, reduction), error + 0.1 * float(extra), rtol=1e-5, atol=1e-5)
    assert np.isfinite(float(model.loss(out, video, reduction)))


def test_config_keys_build_the_weight_and_check_their_range():
    cfg = load_config(None, [*TINY_OD_MODEL, "model.mask_entropy=0.01"])
    assert get_task(cfg["task"]).build_model(cfg, (35, 35)).mask_entropy == 0.01
    assert get_task("object_discovery").build_model(load_config(None, TINY_OD_MODEL), (35, 35)).mask_entropy is None
    video = load_config("savi_moving_objects_cpu", ["model.mask_entropy=0.5"])
    assert get_task("video").build_model(video, (32, 32)).mask_entropy == 0.5
    for bad in ("-1", "0", "true", "'x'"):
        with pytest.raises(ConfigError, match="model.mask_entropy"):
            load_config(None, [f"model.mask_entropy={bad}"])
