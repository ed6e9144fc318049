"""SAVi (slotlab.models.savi): shapes for every initialisation and predictor, the conditional init reads the boxes,
masks and attention are distributions over the slots, gradients reach every parameter, seeded runs repeat, clips
continue from ``next_state``, the corrector computes SAVi's step, SAVi-S's sizes are the defaults, bad inputs are
named, and a few Adam steps lower the loss of a tiny model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from slotlab.checks import InputDtypeError, InputShapeError
from slotlab.models.savi import SAVi
from slotlab.modules.predictors import TransformerPredictor
from slotlab.modules.slot_init import ConditioningError
from slotlab.modules.video_decoder import savi_decoder_strides

INITS = ("boxes", "points", "learned", "gaussian", "standard_normal")
PREDICTORS = ("transformer", "mlp", "identity")
B, T, H = 2, 3, 16


def tiny(**kwargs) -> SAVi:
    options = dict(
        resolution=(H, H),
        num_slots=4,
        slot_dim=32,
        init_hidden=32,
        encoder_channels=(8, 8),
        encoder_strides=(1, 1),
        encoder_hidden=16,
        predictor_heads=2,
        predictor_mlp=32,
        decoder_channels=(16, 16),
        targets={"rgb": 3},
    )
    options.update(kwargs)
    return SAVi(**options)


def video(seed: int = 0, b: int = B, t: int = T) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, t, 3, H, H, generator=g) * 2 - 1


def boxes(seed: int = 1, b: int = B, k: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    lo = torch.rand(b, k, 2, generator=g) * 0.5
    return torch.cat([lo, lo + 0.4], dim=-1)  # [B, K, 4] (ymin, xmin, ymax, xmax)


def conditioning_for(init: str) -> torch.Tensor | None:
    if init == "boxes":
        return boxes()
    if init == "points":
        return boxes()[..., :2] + 0.2  # [B, K, 2]
    return None


@pytest.mark.parametrize("predictor", PREDICTORS)
@pytest.mark.parametrize("init", INITS)
def test_shapes_for_every_init_and_predictor(init: str, predictor: str) -> None:
    torch.manual_seed(0)
    model = tiny(init=init, predictor=predictor)
    out = model(video(), conditioning_for(init))
    k = 4  # 3 boxes + the background slot, or num_slots=4
    n = H * H
    assert out.slots.shape == (B, T, k, 32)
    assert out.predicted.shape == (B, T, k, 32)
    assert out.init_slots.shape == (B, k, 32)
    assert out.recon.shape == (B, T, 3, H, H)
    assert out.recons.shape == (B, T, k, 3, H, H)
    assert out.masks.shape == (B, T, k, H, H)
    assert out.attn.shape == (B, T, k, n)
    assert out.next_state.shape == (B, k, 32)
    assert torch.isfinite(out.recon).all()


def test_points_init_takes_box_centres() -> None:
    torch.manual_seed(0)
    model = tiny(init="points")
    bx = boxes()
    centres = torch.stack([(bx[..., 0] + bx[..., 2]) / 2, (bx[..., 1] + bx[..., 3]) / 2], dim=-1)
    from_boxes = model(video(), bx).init_slots
    from_points = model(video(), centres).init_slots
    torch.testing.assert_close(from_boxes, from_points)


def test_conditional_init_uses_the_boxes() -> None:
    torch.manual_seed(0)
    model = tiny(init="boxes")
    x = video()
    a = model(x, boxes(1))
    moved = boxes(1).clone()
    moved[1] += 0.05  # only video 1's boxes move
    b = model(x, moved)
    assert not torch.allclose(a.init_slots[1], b.init_slots[1])
    assert not torch.allclose(a.slots[1, 0], b.slots[1, 0])  # the corrected slots of frame 0 follow
    torch.testing.assert_close(a.slots[0], b.slots[0])  # video 0 is unaffected
    # The background slot (a zero box, prepended) does not depend on the boxes; per-frame boxes use frame 0's.
    torch.testing.assert_close(a.init_slots[:, 0], b.init_slots[:, 0])
    per_frame = torch.stack([boxes(1), boxes(5)], dim=1)  # [B, T=2, K, 4]
    torch.testing.assert_close(model(x, per_frame).init_slots, a.init_slots)


def test_masks_and_attention_are_distributions_over_slots() -> None:
    torch.manual_seed(0)
    out = tiny(init="gaussian")(video())
    torch.testing.assert_close(out.masks.sum(dim=2), torch.ones(B, T, H, H))
    torch.testing.assert_close(out.attn.sum(dim=2), torch.ones(B, T, H * H))
    assert (out.masks >= 0).all()
    mixed = (out.recons * out.masks.unsqueeze(3)).sum(dim=2)
    torch.testing.assert_close(out.recon, mixed)


def test_several_targets_in_order() -> None:
    torch.manual_seed(0)
    out = tiny(init="learned", targets={"rgb": 3, "flow": 2})(video())
    assert out.recon.shape == (B, T, 5, H, H)
    torch.testing.assert_close(out.target("rgb"), out.recon[:, :, :3])
    torch.testing.assert_close(out.target("flow"), out.recon[:, :, 3:])
    with pytest.raises(KeyError, match="depth"):
        out.target("depth")


@pytest.mark.parametrize("init", ["boxes", "gaussian"])
def test_gradients_reach_every_trainable_parameter(init: str) -> None:
    torch.manual_seed(0)
    model = tiny(init=init, corrector_mlp=16)
    out = model(video(), conditioning_for(init))
    SAVi.loss(out, video()).backward()
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    missing = [name for name, p in trainable.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient: {missing}"
    assert all(torch.isfinite(p.grad).all() for p in trainable.values())
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    assert frozen == ["corrector.slots_mu"]  # the corrector's unused initial slot only


def test_seeded_runs_repeat_and_seeds_differ() -> None:
    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        model = tiny(init="gaussian")
        return model(video()).recon

    torch.testing.assert_close(run(0), run(0), rtol=0, atol=0)
    assert not torch.allclose(run(0), run(1))
    torch.manual_seed(0)
    model = tiny(init="standard_normal")
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    torch.testing.assert_close(model(video(), generator=g1).slots, model(video(), generator=g2).slots)


def test_clips_continue_from_next_state() -> None:
    torch.manual_seed(0)
    model = tiny(init="boxes")
    x = video(t=4)
    whole = model(x, boxes())
    first = model(x[:, :2], boxes())
    second = model(x[:, 2:], state=first.next_state)
    torch.testing.assert_close(torch.cat([first.slots, second.slots], dim=1), whole.slots)
    torch.testing.assert_close(torch.cat([first.recon, second.recon], dim=1), whole.recon)


def test_first_frame_iters_correct_only_a_fresh_clips_first_frame_longer() -> None:
    """first_frame_iters=3: frame 0 of a clip started from the initial slots is corrected 3 times, every later
    frame (and every frame of a clip continued from a state) corrector_iters times, by hand from the parts."""
    torch.manual_seed(0)
    model = tiny(init="learned", first_frame_iters=3).double()
    x = video(t=3).double()
    inputs = model.encoder(x.flatten(0, 1)).view(B, 3, -1, model.encoder.out_dim)  # [B, T, N, D_in]
    slots = model.initializer(B, None, None, None, None, device=x.device, dtype=torch.float64)  # [B, K, D]
    expected = []
    for i, iters in enumerate((3, 1, 1)):
        slots = model.corrector(inputs[:, i], slots=slots, iters=iters).slots
        expected.append(slots)
        slots = model.predictor(slots)
    out = model(x)
    torch.testing.assert_close(out.slots, torch.stack(expected, dim=1))
    plain = tiny(init="learned").double()
    plain.load_state_dict(model.state_dict())
    assert not torch.allclose(plain(x).slots[:, 0], out.slots[:, 0])  # the option changes frame 0
    continued = model(x[:, 1:], state=out.predicted[:, 0])  # a continued clip: no extra iterations
    torch.testing.assert_close(continued.slots, out.slots[:, 1:])
    with pytest.raises(ValueError, match="first_frame_iters"):
        tiny(first_frame_iters=0)


@pytest.mark.parametrize("predictor", PREDICTORS)
def test_a_double_precision_model_runs_in_double(predictor: str) -> None:
    """model.double() tracks its slots in float64 with every predictor (the transformer's fp32 workaround leaves
    float64 alone; the decoder's outputs are fp32 by design)."""
    torch.manual_seed(0)
    out = tiny(init="learned", predictor=predictor).double()(video().double())
    assert out.slots.dtype == out.predicted.dtype == torch.float64


def test_corrector_is_savis_slot_attention_step() -> None:
    """One corrector step as the official SlotAttention computes it: LayerNorm inputs and slots, bias-free q/k/v,
    softmax over slots of q k^T / sqrt(D), attn / (sum_N attn + 1e-8), GRU(carry=slots, inputs=updates), no MLP."""
    torch.manual_seed(0)
    model = tiny(init="learned").double()
    sa = model.corrector
    inputs = torch.randn(B, 20, model.encoder.out_dim, dtype=torch.float64)
    slots = torch.randn(B, 4, 32, dtype=torch.float64)
    x = F.layer_norm(inputs, (inputs.shape[-1],), sa.norm_inputs.weight, sa.norm_inputs.bias, 1e-6)
    k, v = x @ sa.project_k.weight.T, x @ sa.project_v.weight.T
    q = F.layer_norm(slots, (32,), sa.norm_slots.weight, sa.norm_slots.bias, 1e-6) @ sa.project_q.weight.T
    attn = (q @ k.transpose(1, 2) / 32**0.5).softmax(dim=1)  # [B, K, N]
    updates = (attn / (attn.sum(dim=-1, keepdim=True) + 1e-8)) @ v
    expected = sa.gru(updates.reshape(-1, 32), slots.reshape(-1, 32)).view_as(slots)
    got = sa(inputs, slots=slots)
    torch.testing.assert_close(got.slots, expected)
    torch.testing.assert_close(got.attn[:, -1], attn)


def test_savi_s_sizes_are_the_defaults() -> None:
    model = SAVi()
    assert model.resolution == (64, 64) and model.slot_dim == 128 and model.targets == (("flow", 3),)
    assert model.initializer.kind == "boxes" and model.initializer.prepend_background
    assert [m.out_channels for m in model.encoder.cnn.net if hasattr(m, "out_channels")] == [32, 32, 32, 32]
    assert model.encoder.out_dim == 32 and model.encoder.mlp[0].out_features == 64
    sa = model.corrector
    assert sa.iters == 1 and sa.mlp is None and sa.eps_placement == "denominator" and sa.dim == 128
    assert isinstance(model.predictor, TransformerPredictor)
    block = model.predictor.block
    assert block.self_attn.num_heads == 4 and block.linear1.out_features == 256 and not block.norm_first
    assert block.norm1.eps == 1e-6
    assert model.decoder.broadcast_resolution == (8, 8)
    assert savi_decoder_strides((64, 64)) == (2, 2, 2, 1) and savi_decoder_strides((128, 128)) == (2, 2, 2, 2)


def test_bad_inputs_are_named() -> None:
    model = tiny(init="boxes")
    with pytest.raises(ConditioningError, match="pass conditioning"):
        model(video())
    with pytest.raises(ConditioningError, match=r"\[2, K, 4"):
        model(video(), boxes()[..., :2])
    with pytest.raises(ConditioningError, match="takes no conditioning"):
        tiny(init="gaussian")(video(), boxes())
    with pytest.raises(InputShapeError, match=r"video must be \[B, T, 3, 16, 16\]"):
        model(video()[:, 0], boxes())
    with pytest.raises(InputDtypeError, match="127.5"):
        model((video() * 127).to(torch.uint8), boxes())
    with pytest.raises(InputShapeError, match="state must be"):
        model(video(), state=torch.zeros(B, 4, 7))
    with pytest.raises(ValueError, match="exactly 4 slots"):
        tiny(init="learned")(video(), num_slots=5)


def test_loss_reductions() -> None:
    torch.manual_seed(0)
    out = tiny(init="learned")(video())
    target = video(7)
    summed = SAVi.loss(out, target)
    torch.testing.assert_close(summed, SAVi.loss(out, target, "mean") * T * 3 * H * H)


def test_channels_last_is_the_same_function() -> None:
    torch.manual_seed(0)
    model = tiny(init="boxes")
    ref = model(video(), boxes()).recon
    model = model.to(memory_format=torch.channels_last)
    torch.testing.assert_close(model(video(), boxes()).recon, ref, rtol=1e-4, atol=1e-5)


def test_a_few_adam_steps_lower_the_loss() -> None:
    torch.manual_seed(0)
    model = tiny(init="boxes")
    x, bx = video(), boxes()
    opt = torch.optim.Adam((p for p in model.parameters() if p.requires_grad), lr=2e-3)
    losses = []
    for _ in range(6):
        loss = SAVi.loss(model(x, bx), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.95 * losses[0], losses
    assert all(b < a for a, b in zip(losses[:-1], losses[1:], strict=True)), losses


def test_bf16_autocast_keeps_masks_and_state_in_fp32() -> None:
    torch.manual_seed(0)
    model = tiny(init="boxes")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(video(), boxes())
    assert out.masks.dtype == out.recon.dtype == out.attn.dtype == torch.float32
    assert out.next_state.dtype == torch.float32  # the recurrent state is carried in the parameters' dtype
    torch.testing.assert_close(out.masks.sum(dim=2), torch.ones(B, T, H, H))
    torch.testing.assert_close(out.recon, model(video(), boxes()).recon, rtol=0.1, atol=0.1)


def test_transformer_predictor_runs_compiled_under_cpu_bf16_autocast_in_inference() -> None:
    """Workaround 7 (slotlab/torch_workarounds.py): a compiled predictor in eval mode under CPU bf16 autocast
    (the validation of a compiled bf16 run) runs, in fp32, and gives the eager fp32 result."""
    import torch

    from slotlab.modules.predictors import TransformerPredictor
    from slotlab.train.runtime import compile_support

    if compile_support("cpu") is not None:
        pytest.skip(compile_support("cpu"))
    torch.manual_seed(0)
    pred = TransformerPredictor(16, num_heads=4, mlp_size=32).eval()
    lin = torch.nn.Linear(16, 16)
    slots = torch.randn(2, 5, 16)
    torch._dynamo.reset()
    compiled = torch.compile(lambda x: pred(lin(x)))
    with torch.no_grad():
        ref = pred(lin(slots))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = compiled(slots)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=3e-2, rtol=3e-2)
