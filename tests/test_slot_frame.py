"""The ISA-style slot frames of the decoder (slotlab/modules/slot_frame.py, model.decoder_frame)."""

from __future__ import annotations

import pytest
import torch

from slotlab.modules.decoders import build_decoder
from slotlab.modules.slot_frame import centred_grid, relative_grid, slot_frames
from slotlab.tasks.object_discovery.model import ObjectDiscoveryModel


def test_frames_equal_a_per_slot_loop_oracle() -> None:
    torch.manual_seed(0)
    attn = torch.rand(2, 3, 5 * 7).softmax(dim=1)  # [B, K, N]
    grid = centred_grid(5, 7)
    pos, sc = slot_frames(attn, grid)
    for b in range(2):
        for k in range(3):
            w = attn[b, k] / attn[b, k].sum()
            p = (w[:, None] * grid).sum(0)
            var = ((w + 1e-8)[:, None] * (grid - p) ** 2).sum(0)
            torch.testing.assert_close(pos[b, k], p)
            torch.testing.assert_close(sc[b, k], var.sqrt().clamp(0.001, 2.0))


def test_a_point_mass_sits_at_its_pixel_with_the_minimum_scale() -> None:
    grid = centred_grid(4, 4)
    attn = torch.zeros(1, 1, 16)
    attn[0, 0, 6] = 1.0  # row 1, column 2
    pos, sc = slot_frames(attn, grid)
    torch.testing.assert_close(pos[0, 0], grid[6])
    assert torch.all(sc <= 0.001 + 1e-6)


def test_relative_grid_is_centred_and_scaled() -> None:
    grid = centred_grid(3, 3)
    rel = relative_grid(grid, torch.tensor([[0.5, -0.5]]), torch.tensor([[0.1, 0.2]]))
    torch.testing.assert_close(rel[0, 4], torch.tensor([-0.5 / 0.5, 0.5 / 1.0]))


@pytest.mark.parametrize("frame", ["translation", "translation_scale"])
@pytest.mark.parametrize("kind,res", [("full_resolution", (12, 10)), ("clevr", (32, 32))])
def test_factorised_first_layer_is_exact(frame: str, kind: str, res: tuple[int, int]) -> None:
    torch.manual_seed(1)
    fact = build_decoder(res, 8, kind, 6, factorize=True, frame=frame)
    plain = build_decoder(res, 8, kind, 6, factorize=False, frame=frame)
    plain.load_state_dict(fact.state_dict())
    slots = torch.randn(2, 3, 8)
    pos = torch.rand(2, 3, 2) * 2 - 1
    sc = torch.rand(2, 3, 2) * 0.5 + 0.05
    a, b = fact(slots, pos, sc), plain(slots, pos, sc)
    torch.testing.assert_close(a.recon, b.recon, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(a.masks, b.masks, atol=2e-5, rtol=1e-4)


def test_a_translated_frame_moves_the_decoded_slot_with_it() -> None:
    """Shifting a slot's position by whole pixels shifts its decoded RGB/alpha by the same pixels (away from the
    borders): the decoder draws in the slot's frame."""
    torch.manual_seed(2)
    dec = build_decoder((40, 40), 8, "full_resolution", 6, factorize=True, frame="translation")
    slots = torch.randn(1, 1, 8)
    step = 2.0 / 39  # one pixel in the [-1, 1] grid; the decoder's receptive field reaches 7 pixels
    a = dec(slots, torch.tensor([[[0.0, 0.0]]]), None)
    b = dec(slots, torch.tensor([[[2 * step, 0.0]]]), None)  # two rows down
    torch.testing.assert_close(b.recons[..., 10:32, 8:32], a.recons[..., 8:30, 8:32], atol=1e-5, rtol=1e-4)


def test_model_with_a_slot_frame_runs_and_needs_frames_only_when_asked() -> None:
    torch.manual_seed(3)
    m = ObjectDiscoveryModel(resolution=(16, 16), num_slots=3, decoder_frame="translation_scale")
    out = m(torch.rand(2, 3, 16, 16) * 2 - 1)
    assert out.masks.shape == (2, 3, 1, 16, 16)
    out.recon.sum().backward()
    assert m.decoder.frame_pos.weight.grad is not None
    with pytest.raises(ValueError, match="needs the slots' positions"):
        m.decoder(out.slots)
