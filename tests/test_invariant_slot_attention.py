"""Invariant Slot Attention (slotlab.modules.invariant_slot_attention, ``model.slot_attention.frame``) against a
loop over slots written from ISA's ``SlotAttentionTransl(Scale)Equiv`` (float64), its symmetries (a shifted or
scaled grid with shifted or scaled frames gives the same slots), its initial frames, and the model and CLI."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from slotlab.modules.invariant_slot_attention import FRAME_NOISE, InvariantSlotAttention
from slotlab.modules.slot_frame import centred_grid

B, K, N, D = 2, 3, 20, 8


def _module(frame: str, **kwargs) -> InvariantSlotAttention:
    torch.manual_seed(0)
    sa = InvariantSlotAttention(K, dim=D, iters=3, hidden_dim=16, frame=frame, grid_hidden=12, **kwargs).double()
    with torch.no_grad():  # non-trivial LayerNorm affines
        for m in sa.modules():
            if hasattr(m, "weight") and m.weight is not None and m.weight.dim() == 1:
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return sa


def _layer_norm(ln, x):
    return F.layer_norm(x, x.shape[-1:], ln.weight, ln.bias, ln.eps)


def _oracle(sa, inputs, slots, grid, position, scale, iters):
    """ISA per slot and round, written out: the keys and values of slot k are g(W x + W_g rel_k + b_g)."""
    x = _layer_norm(sa.norm_inputs, inputs)  # [B, N, D]
    k_in, v_in = x @ sa.project_k.weight.T, x @ sa.project_v.weight.T
    g = sa.grid_encoder
    attns = []
    for r in range(iters + 1):
        logits, upd = [], []
        for s in range(slots.shape[1]):
            rel = grid[None] - position[:, s, None]  # [B, N, 2]
            if sa.frame == "translation_scale":
                rel = rel / (5.0 * scale[:, s, None])
            e = rel @ sa.grid_proj.weight.T + sa.grid_proj.bias
            keys = g[3](torch.relu(g[1](_layer_norm(g[0], k_in + e))))
            values = g[3](torch.relu(g[1](_layer_norm(g[0], v_in + e))))
            q = _layer_norm(sa.norm_slots, slots[:, s]) @ sa.project_q.weight.T / math.sqrt(D)
            logits.append(torch.einsum("bd,bnd->bn", q, keys))
            upd.append(values)
        attn = torch.stack(logits, 1).softmax(dim=1)  # [B, K, N] over the slots
        w = (attn + sa.eps) / (attn + sa.eps).sum(-1, keepdim=True)
        attns.append(attn)
        pw = attn / attn.sum(-1, keepdim=True)
        position = pw @ grid  # [B, K, 2]
        spread = (grid[None, None] - position[:, :, None]) ** 2
        scale = torch.einsum("bkn,bknc->bkc", pw + 1e-8, spread).sqrt().clamp(0.001, 2.0)
        if r < iters:
            updates = torch.stack([torch.einsum("bn,bnd->bd", w[:, s], upd[s]) for s in range(slots.shape[1])], 1)
            new = sa.gru(updates.reshape(-1, D), slots.reshape(-1, D)).view_as(slots)
            slots = new + sa.mlp(_layer_norm(sa.norm_mlp, new))
    return slots, torch.stack(attns[1:], 1), position, scale


@pytest.mark.parametrize("frame", ["translation", "translation_scale"])
def test_matches_a_loop_over_slots_and_rounds(frame):
    sa = _module(frame)
    inputs = torch.randn(B, N, D, dtype=torch.float64)
    grid = torch.rand(N, 2, dtype=torch.float64) * 2 - 1
    noise = torch.randn(B, K, D + FRAME_NOISE, dtype=torch.float64)
    out = sa(inputs, noise=noise, positions=grid)
    position, scale = sa.initial_frames(B, K, inputs.device, noise, dtype=torch.float64)
    slots0 = sa.initial_slots(B, K, noise=noise)
    want_slots, want_attn, _, _ = _oracle(sa, inputs, slots0, grid, position, scale, 3)
    torch.testing.assert_close(out.init_slots, slots0)
    torch.testing.assert_close(out.slots, want_slots)
    torch.testing.assert_close(out.attn, want_attn)  # rounds 1..T: the last one is the final slots' attention
    assert out.attn.shape == (B, 3, K, N)


def test_initial_frames_come_from_the_noise():
    sa = _module("translation_scale")
    noise = torch.randn(B, K, D + FRAME_NOISE, dtype=torch.float64)
    position, scale = sa.initial_frames(B, K, noise.device, noise, dtype=torch.float64)
    phi = 0.5 * (1 + torch.erf(noise[..., D : D + 2] / math.sqrt(2)))  # the normal CDF
    torch.testing.assert_close(position, 2 * phi - 1)  # uniform in [-1, 1]
    torch.testing.assert_close(scale, (0.1 + 0.1 * noise[..., D + 2 :]).clamp(0.001, 2.0))
    assert sa.noise_dim == D + FRAME_NOISE
    big = torch.randn(100_000, 1, D + FRAME_NOISE)
    p, s = sa.initial_frames(100_000, 1, big.device, big)
    assert p.abs().max() < 1 and abs(float(p.mean())) < 0.01 and abs(float(p.var()) - 1 / 3) < 0.01  # U(-1, 1)
    assert abs(float(s.median()) - 0.1) < 0.005
    with pytest.raises(ValueError, match="noise must be"):
        sa(torch.randn(B, N, D, dtype=torch.float64), noise=torch.randn(B, K, D + 1), positions=centred_grid(4, 5))


@pytest.mark.parametrize("frame", ["translation", "translation_scale"])
def test_a_round_is_invariant_to_moving_the_grid_with_the_frames(frame):
    """ISA's point: inputs and slots moved together (and, with scales, scaled together) give the same slots and
    attention, and frames moved the same way."""
    sa = _module(frame)
    keys, values = torch.randn(B, N, D, dtype=torch.float64), torch.randn(B, N, D, dtype=torch.float64)
    slots = torch.randn(B, K, D, dtype=torch.float64)
    grid = torch.rand(N, 2, dtype=torch.float64) - 0.5
    position, scale = torch.rand(B, K, 2, dtype=torch.float64) - 0.5, 0.05 + torch.rand(B, K, 2, dtype=torch.float64)
    ref_slots, ref_attn, (ref_pos, ref_scale) = sa.round(slots, keys, values, grid, (position, scale))
    shift = torch.tensor([0.3, -0.2], dtype=torch.float64)
    s2, a2, (p2, sc2) = sa.round(slots, keys, values, grid + shift, (position + shift, scale))
    torch.testing.assert_close(s2, ref_slots)
    torch.testing.assert_close(a2, ref_attn)
    torch.testing.assert_close(p2, ref_pos + shift)
    torch.testing.assert_close(sc2, ref_scale)
    if frame == "translation_scale":
        c = 0.6
        s3, a3, (p3, sc3) = sa.round(slots, keys, values, grid * c, (position * c, scale * c))
        torch.testing.assert_close(s3, ref_slots)
        torch.testing.assert_close(a3, ref_attn)
        torch.testing.assert_close(p3, ref_pos * c)
        torch.testing.assert_close(sc3, ref_scale * c)
    else:  # translation only: the slot's scale plays no part
        s4, a4, _ = sa.round(slots, keys, values, grid, (position, scale * 3))
        torch.testing.assert_close(s4, ref_slots)


def test_implicit_differentiation_keeps_the_values_and_trains_the_grid_encoder():
    sa = _module("translation_scale")
    bilevel = _module("translation_scale", implicit_differentiation=True)
    inputs = torch.randn(B, N, D, dtype=torch.float64, requires_grad=True)
    grid = torch.rand(N, 2, dtype=torch.float64) * 2 - 1
    noise = torch.randn(B, K, D + FRAME_NOISE, dtype=torch.float64)
    a, b = sa(inputs, noise=noise, positions=grid), bilevel(inputs, noise=noise, positions=grid)
    torch.testing.assert_close(a.slots, b.slots)
    torch.testing.assert_close(a.attn, b.attn)
    (b.slots.square().sum() + b.attn[:, -1].square().sum()).backward()
    assert bilevel.grid_proj.weight.grad.abs().sum() > 0 and bilevel.grid_encoder[1].weight.grad.abs().sum() > 0
    assert inputs.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="positions"):
        sa(inputs, noise=noise)  # the inputs' grid is needed


def test_object_discovery_model_and_cli(tmp_path):
    from slotlab.cli import main
    from slotlab.config import load_config
    from slotlab.tasks import get_task
    from slotlab.tasks.common import eval_noise

    cfg = load_config("tetrominoes_quick", ["model.slot_attention.frame=translation_scale"])
    model = get_task(cfg["task"]).build_model(cfg, (35, 35)).eval()
    assert isinstance(model.slot_attention, InvariantSlotAttention)
    image = torch.rand(2, 3, 35, 35) * 2 - 1
    noise = eval_noise(model, torch.arange(2), None, 0)
    assert noise.shape == (2, 4, 64 + FRAME_NOISE)
    with torch.no_grad():
        one, two = model(image, noise=noise), model(image, noise=noise)
    torch.testing.assert_close(one.masks, two.masks)  # evaluation is a function of the image and its noise
    default = get_task(cfg["task"]).build_model(load_config("tetrominoes_quick"), (35, 35))
    assert type(default.slot_attention).__name__ == "SlotAttention"  # the paper's by default
    root = tmp_path / "runs"
    args = ["train", "--config", "tetrominoes_quick", "model.slot_attention.frame=translation",
            "model.position_embedding=false", "model.decoder_frame=translation", "trainer.max_steps=2",
            "trainer.val_every=2", "data.train_size=8", "data.eval_size=4", "data.batch_size=4",
            "trainer.compile=false", f"run.root={root}", "run.name=isa"]  # fmt: skip
    assert main(args) == 0
    assert main(["figures", str(root / "isa"), "--num-images", "1", "--out", str(tmp_path / "f")]) == 0
    assert main(["train", "--config", "tetrominoes_quick", "model.slot_attention.frame=rotation"]) == 2
