"""The attention-mask FG-ARI that object-discovery evaluations report beside the paper's decoder-mask score: the
last iteration's Slot Attention maps laid out on the image (``attention_masks``), scored like any masks, from the
same forward passes as the main score; absent for the Slot MLP baseline (no attention)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slotlab.metrics.ari import fg_ari
from slotlab.metrics.attention_masks import attention_masks
from slotlab.tasks import get_task
from slotlab.tasks.common import EvalSetting
from slotlab.tasks.object_discovery import build_model


def test_attention_masks_on_the_image_grid_are_the_last_iteration():
    attn = torch.rand(2, 3, 4, 6 * 5).softmax(dim=2)  # [B, T, K, N], N = 6 x 5
    maps = attention_masks(attn, (6, 5), (6, 5))
    assert maps.shape == (2, 4, 6, 5)
    assert torch.equal(maps, attn[:, -1].reshape(2, 4, 6, 5))


def test_attention_masks_of_a_coarser_grid_are_upsampled_nearest():
    attn = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 1, 2, 12)  # K = 2 on a 3x4 grid
    maps = attention_masks(attn, (3, 4), (6, 8))
    assert maps.shape == (1, 2, 6, 8)
    coarse = attn[0, -1].reshape(2, 3, 4)
    assert torch.equal(maps[0], coarse.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2))


def test_attention_masks_refuse_a_grid_that_does_not_fit():
    with pytest.raises(ValueError, match="does not fit"):
        attention_masks(torch.rand(1, 1, 2, 10), (3, 4), (3, 4))


def test_oracle_attention_scores_one_and_a_shuffled_one_scores_less():
    """Attention equal to the true instance masks (one-hot over slots) is a perfect segmentation."""
    rng = np.random.default_rng(0)
    true = torch.from_numpy(rng.integers(0, 4, size=(3, 8, 8)))  # [B, H, W], 0 = background
    onehot = torch.nn.functional.one_hot(true, 4).permute(0, 3, 1, 2).float()  # [B, K, H, W]
    attn = onehot.reshape(3, 1, 4, 64)  # [B, T=1, K, N]
    assert torch.allclose(fg_ari(true, attention_masks(attn, (8, 8), (8, 8))), torch.ones(3, dtype=torch.float64))
    shuffled = attn[..., torch.from_numpy(rng.permutation(64))]
    assert (fg_ari(true, attention_masks(shuffled, (8, 8), (8, 8))) < 0.5).all()


def _tiny(kind: str):
    task = get_task("object_discovery")
    cfg = task.schema.defaults()
    cfg["model"].update(kind=kind, num_slots=3, slot_dim=16, mlp_hidden=16, encoder_channels=[8, 8], decoder_channels=8)
    cfg["model"]["slot_mlp"] = {"grid": 4, "hidden": 16}
    torch.manual_seed(0)
    return task, cfg, build_model(cfg["model"], (16, 16))


def test_evaluate_reports_the_attention_score_beside_the_decoder_score():
    task, cfg, model = _tiny("slot_attention")
    rng = np.random.default_rng(1)
    data = {
        "image": torch.from_numpy(rng.integers(0, 256, size=(5, 3, 16, 16), dtype=np.uint8)),
        "mask": torch.from_numpy(rng.integers(0, 3, size=(5, 16, 16))),
    }
    result = task.evaluate(model, data, cfg, EvalSetting())
    assert result["num_images"] == 5
    assert {"fg_ari_mean", "attn_fg_ari_mean", "attn_fg_ari_std", "attn_fg_ari_median"} <= set(result)
    assert 0.0 <= result["attn_fg_ari_mean"] <= 1.0
    # the same number computed by hand from one forward pass of the same noise
    from slotlab.noise import index_noise
    from slotlab.tasks.common import EVAL_SEED, image_to_model, run_model, slot_shape

    k, d = slot_shape(model, None)
    model.eval()
    with torch.no_grad():
        out = run_model(model, image_to_model(data["image"], False), index_noise(EVAL_SEED, torch.arange(5), k, d))
    by_hand = fg_ari(data["mask"].long(), attention_masks(out.attn, model.encoder.feature_resolution, (16, 16)))
    assert result["attn_fg_ari_mean"] == pytest.approx(float(by_hand[~by_hand.isnan()].mean()))


def test_the_slot_mlp_has_no_attention_score():
    task, cfg, model = _tiny("slot_mlp")
    data = {"image": torch.zeros(2, 3, 16, 16, dtype=torch.uint8), "mask": torch.ones(2, 16, 16, dtype=torch.long)}
    assert "attn_fg_ari_mean" not in task.evaluate(model, data, cfg, EvalSetting())
