"""model.attention_masks (video; not in SAVi): masks = softmax over the slots of the decoder's alpha logits + w x log
of the corrector's attention; checked against numpy by hand and through the SAVi model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_savi_model import tiny as tiny_savi

from slotlab.config import load_config
from slotlab.errors import ConfigError
from slotlab.modules.attention_masks import ATTN_FLOOR, mix_with_attention
from slotlab.tasks import get_task


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("grid", [(4, 6), (2, 3)])  # the frame's grid, and a coarser one (a strided encoder)
def test_mix_is_the_softmax_of_logits_plus_weighted_log_attention_by_hand(grid):
    g = np.random.default_rng(0)
    n, k, c, h, w = 2, 3, 3, 4, 6
    alpha = g.normal(size=(n, k, h, w))
    recons = g.normal(size=(n, k, c, h, w))
    attn = _softmax(g.normal(size=(n, k, grid[0] * grid[1])) * 3, axis=1)
    attn[0, 0, 0] = 0.0  # an input a slot does not attend at all: floored, not -inf
    weight = 0.7
    recon, masks = mix_with_attention(
        torch.from_numpy(alpha), torch.from_numpy(recons), torch.from_numpy(attn), grid, weight
    )
    a = np.maximum(attn.reshape(n, k, *grid), ATTN_FLOOR)
    a = a.repeat(h // grid[0], axis=2).repeat(w // grid[1], axis=3)  # each pixel: the input it lies in
    want = _softmax(alpha + weight * np.log(a), axis=1)
    np.testing.assert_allclose(masks.numpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(recon.numpy(), (recons * want[:, :, None]).sum(1), rtol=1e-5, atol=1e-5)


def test_uniform_attention_leaves_the_decoders_masks_and_peaked_attention_decides():
    g = torch.Generator().manual_seed(1)
    alpha = torch.randn(1, 4, 3, 3, generator=g)
    recons = torch.randn(1, 4, 3, 3, 3, generator=g)
    uniform = torch.full((1, 4, 9), 0.25)
    _, masks = mix_with_attention(alpha, recons, uniform, (3, 3), 5.0)
    torch.testing.assert_close(masks, alpha.softmax(1))  # log attn is the same for every slot
    peaked = torch.full((1, 4, 9), 1e-4)
    peaked[0, 2] = 1 - 3e-4  # every input attends slot 2
    _, masks = mix_with_attention(alpha, recons, peaked, (3, 3), 5.0)
    assert (masks[0, 2] > 0.99).all()


def test_savi_mixes_with_its_attention_and_the_reconstruction_trains_the_attention():
    torch.manual_seed(0)
    model = tiny_savi(init="learned", attention_masks=1.5)
    video = torch.rand(2, 3, 3, 16, 16) * 2 - 1  # [B, T, 3, H, W]
    out = model(video)
    b, t, k = out.masks.shape[:3]
    dec = model.decoder(out.slots.reshape(b * t, k, -1))
    recon, masks = mix_with_attention(dec.alpha_logits, dec.recons, out.attn.reshape(b * t, k, -1), (16, 16), 1.5)
    torch.testing.assert_close(out.masks, masks.view_as(out.masks))
    torch.testing.assert_close(out.recon, recon.view_as(out.recon))
    # The reconstruction's gradient reaches the keys through the masks: with the slots held fixed (detached
    # before the decoder), only the mixing path is left, and it is not zero.
    plain = tiny_savi(init="learned")
    assert plain.attention_masks is None
    model.zero_grad()
    slots = out.slots.detach()
    dec = model.decoder(slots.reshape(b * t, k, -1))
    recon, _ = mix_with_attention(dec.alpha_logits, dec.recons, out.attn.reshape(b * t, k, -1), (16, 16), 1.5)
    (recon - video.reshape(b * t, 3, 16, 16)).square().sum().backward()
    assert model.corrector.project_k.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="attention_masks"):
        tiny_savi(init="learned", attention_masks=0.0)


def test_config_key_reaches_the_model_and_checks_its_range():
    video = load_config("savi_moving_objects_cpu", ["model.attention_masks=1"])
    assert get_task("video").build_model(video, (32, 32)).attention_masks == 1
    assert get_task("video").build_model(load_config("savi_moving_objects_cpu"), (32, 32)).attention_masks is None
    for bad in ("-1", "0", "true", "'x'"):
        with pytest.raises(ConfigError, match="model.attention_masks"):
            load_config("savi_moving_objects_cpu", [f"model.attention_masks={bad}"])


def test_object_discovery_mixes_with_the_last_iterations_attention():
    config = load_config("tetrominoes_quick", ["model.attention_masks=2", "model.num_slots=3"])
    task = get_task(config["task"])
    torch.manual_seed(0)
    model = task.build_model(config, (35, 35)).float().eval()
    assert model.attention_masks == 2
    image = torch.rand(2, 3, 35, 35) * 2 - 1  # [B, 3, H, W]
    with torch.no_grad():
        out = model(image)
        dec = model.decoder(out.slots)
    recon, masks = mix_with_attention(dec.alpha[:, :, 0], dec.recons, out.attn[:, -1], (35, 35), 2.0)
    torch.testing.assert_close(out.masks, masks.unsqueeze(2))
    torch.testing.assert_close(out.recon, recon)
    plain = task.build_model(load_config("tetrominoes_quick"), (35, 35))
    assert plain.attention_masks is None
    for bad in ("-1", "0", "true"):
        with pytest.raises(ConfigError, match="model.attention_masks"):
            load_config("tetrominoes_quick", [f"model.attention_masks={bad}"])
