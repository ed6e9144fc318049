"""SlotAttention's evidence_gate / model.corrector_evidence_gate (not in the papers): each iteration's change of a
slot scaled by m / (m + c), m the attention the slot holds; checked against the ungated module by hand."""

from __future__ import annotations

import pytest
import torch
from test_savi_model import tiny as tiny_savi

from slotlab.config import load_config
from slotlab.errors import ConfigError
from slotlab.modules.slot_attention import SlotAttention
from slotlab.tasks import get_task


def _pair(c: float, **kw) -> tuple[SlotAttention, SlotAttention]:
    torch.manual_seed(0)
    gated = SlotAttention(4, dim=16, iters=1, evidence_gate=c, **kw).double()
    plain = SlotAttention(4, dim=16, iters=1, **kw).double()
    plain.load_state_dict(gated.state_dict())
    return gated, plain


@pytest.mark.parametrize("kw", [{}, {"mlp": False}, {"fused": False}])
def test_gated_step_is_the_previous_slot_plus_the_scaled_change(kw):
    gated, plain = _pair(3.0, **kw)
    g = torch.Generator().manual_seed(1)
    inputs = torch.randn(2, 30, 16, generator=g, dtype=torch.float64)
    slots = torch.randn(2, 4, 16, generator=g, dtype=torch.float64)
    ref = plain(inputs, slots=slots)
    out = gated(inputs, slots=slots)
    mass = ref.attn[:, 0].sum(-1, keepdim=True)  # [B, K, 1]: the inputs each slot holds
    by_hand = slots + mass / (mass + 3.0) * (ref.slots - slots)
    torch.testing.assert_close(out.slots, by_hand)
    torch.testing.assert_close(out.attn, ref.attn)  # the gate changes the slots, not the attention


def test_a_slot_holding_no_input_keeps_its_slot_and_a_large_one_is_updated_as_without():
    kw = dict(identity_projections=True, layer_norm=False, temperature=0.1)  # attention set by the vectors alone
    gated, plain = _pair(1.0, **kw)
    g = torch.Generator().manual_seed(2)
    e0 = torch.zeros(16, dtype=torch.float64)
    e0[0] = 5.0
    inputs = e0 + 0.1 * torch.randn(1, 64, 16, generator=g, dtype=torch.float64)  # [1, N, D]: one cluster
    slots = e0.expand(1, 4, 16).clone()  # [1, K, D]: slots 0-2 alike, so they share the inputs evenly
    slots[0, 3] = -e0  # slot 3 points away from every input: it holds none
    ref, out = plain(inputs, slots=slots), gated(inputs, slots=slots)
    mass = ref.attn[0, 0].sum(-1)  # [K]
    assert mass[3] < 1e-6 and (mass[:3] > 15).all()
    assert (ref.slots[0, 3] - slots[0, 3]).abs().max() > 1  # ungated: it moves to the inputs' mean
    torch.testing.assert_close(out.slots[0, 3], slots[0, 3], rtol=0, atol=1e-5)  # gated: it stays
    change, ref_change = out.slots[0, :3] - slots[0, :3], ref.slots[0, :3] - slots[0, :3]
    torch.testing.assert_close(change, ref_change * mass[:3, None] / (mass[:3, None] + 1.0))
    assert (mass[:3] / (mass[:3] + 1.0) > 0.93).all()  # many inputs: nearly the ungated change


def test_savi_passes_the_gate_to_its_corrector_and_null_is_savis():
    model = tiny_savi(init="learned", corrector_evidence_gate=2.0)
    assert model.corrector.evidence_gate == 2.0 and tiny_savi(init="learned").corrector.evidence_gate is None
    out = model(torch.rand(2, 3, 3, 16, 16) * 2 - 1)  # [B, T, 3, H, W]
    assert torch.isfinite(out.slots).all()
    with pytest.raises(ValueError, match="evidence_gate"):
        SlotAttention(4, evidence_gate=0.0)


def test_config_key_reaches_the_corrector_and_checks_its_range():
    video = load_config("savi_moving_objects_cpu", ["model.corrector_evidence_gate=2"])
    assert get_task("video").build_model(video, (32, 32)).corrector.evidence_gate == 2
    assert (
        get_task("video").build_model(load_config("savi_moving_objects_cpu"), (32, 32)).corrector.evidence_gate is None
    )
    for bad in ("-1", "0", "true", "'x'"):
        with pytest.raises(ConfigError, match="model.corrector_evidence_gate"):
            load_config("savi_moving_objects_cpu", [f"model.corrector_evidence_gate={bad}"])
