"""model.box_attention (video, conditional on boxes; not in SAVi): on a clip's first frame, the corrector's attention
logits of an object's slot are lowered by beta outside its box; checked by hand, in Slot Attention and through SAVi."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_savi_model import tiny as tiny_savi

from slotlab.checks import InputShapeError
from slotlab.config import load_config
from slotlab.errors import ConfigError
from slotlab.modules.box_attention import box_logit_bias, inside_boxes
from slotlab.modules.slot_attention import SlotAttention
from slotlab.tasks import get_task


def test_inside_boxes_by_hand_on_a_4x4_grid():
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.25, 0.5, 1.0, 0.75], [0.0, 0.0, 0.0, 0.0]]])  # [1, 3, 4]
    inside = inside_boxes(boxes, (4, 4)).view(1, 3, 4, 4).numpy()
    want = np.zeros((3, 4, 4), dtype=bool)
    want[0, :2, :2] = True  # rows 0-1, columns 0-1 (centres 0.125, 0.375)
    want[1, 1:, 2] = True  # rows 1-3, column 2 (centre 0.625)
    # the zero box (an absent object) holds no input
    np.testing.assert_array_equal(inside[0], want)


def test_bias_is_zero_inside_minus_beta_outside_and_the_background_is_free():
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 1.0], [0.0, 0.0, 0.0, 0.0]]])  # top half; an absent object
    bias = box_logit_bias(boxes, (2, 2), background=True, beta=3.0)  # [1, K = 3, 4]
    want = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, -3.0, -3.0], [-3.0, -3.0, -3.0, -3.0]]])
    torch.testing.assert_close(bias, want)
    per_frame = torch.stack([boxes, torch.zeros_like(boxes)], dim=1)  # [B, T, M, 4]: frame 0's are used
    torch.testing.assert_close(box_logit_bias(per_frame, (2, 2), background=True, beta=3.0), want)
    assert box_logit_bias(boxes, (2, 2), background=False, beta=3.0).shape == (1, 2, 4)


@pytest.mark.parametrize("eps_placement", ["attn", "denominator"])  # the fused path steps aside for a bias
def test_slot_attention_adds_the_bias_to_its_logits(eps_placement):
    torch.manual_seed(0)
    sa = SlotAttention(3, dim=8, input_dim=6, iters=2, eps_placement=eps_placement)
    inputs, slots = torch.randn(2, 5, 6), torch.randn(2, 3, 8)
    plain = sa(inputs, slots=slots)
    zero = sa(inputs, slots=slots, logit_bias=torch.zeros(2, 3, 5))
    torch.testing.assert_close(zero.attn, plain.attn)
    torch.testing.assert_close(zero.slots, plain.slots)
    bias = torch.randn(2, 3, 5)
    out = sa(inputs, slots=slots, logit_bias=bias)
    # the first iteration's attention, by hand: softmax over the slots of q k^T / sqrt(D) + bias
    x = sa.norm_inputs(inputs)
    q = sa.project_q(sa.norm_slots(slots)) / 8**0.5
    want = (q @ sa.project_k(x).transpose(1, 2) + bias).softmax(dim=1)
    torch.testing.assert_close(out.attn[:, 0], want, rtol=1e-5, atol=1e-6)
    with pytest.raises(InputShapeError, match="logit_bias"):
        sa(inputs, slots=slots, logit_bias=torch.zeros(2, 4, 5))


def test_savi_keeps_first_frame_attention_in_the_boxes_and_leaves_later_frames():
    torch.manual_seed(0)
    biased = tiny_savi(init="boxes", box_attention=30.0)
    plain = tiny_savi(init="boxes")
    plain.load_state_dict(biased.state_dict())
    video = torch.rand(2, 3, 3, 16, 16) * 2 - 1  # [B, T, 3, H, W]
    boxes = torch.zeros(2, 3, 4)
    boxes[:, 0] = torch.tensor([0.0, 0.0, 0.5, 0.5])  # top-left quarter
    boxes[:, 1] = torch.tensor([0.5, 0.25, 1.0, 1.0])  # an absent third object: a zero box
    out, ref = biased(video, boxes), plain(video, boxes)
    inside = inside_boxes(boxes, (16, 16))  # [B, M, N]
    first = out.attn[:, 0, 1:]  # [B, M, N]: the objects' slots (slot 0 is the background's)
    assert first[~inside].max() < 1e-6  # outside its box a slot holds nothing on frame 0, an absent one nowhere
    assert first[inside].min() > 1e-3
    assert not torch.allclose(out.attn[:, 0], ref.attn[:, 0])
    # a clip continuing from a state is not biased: the same as the plain model's
    cont, cont_ref = biased(video, state=out.next_state), plain(video, state=out.next_state)
    torch.testing.assert_close(cont.attn, cont_ref.attn)
    torch.testing.assert_close(cont.recon, cont_ref.recon)


def test_needs_boxes_and_checks_its_range():
    with pytest.raises(ValueError, match="box_attention"):
        tiny_savi(init="points", box_attention=1.0)
    cond = load_config("savi_moving_objects_cond_cpu", ["model.box_attention=5"])
    model = get_task("video").build_model(cond, (32, 32))
    assert model.box_attention == 5
    assert "first-frame attention kept to the boxes" in get_task("video").describe_slots(model, cond)
    off = load_config("savi_moving_objects_cond_cpu", ["model.box_attention=null"])
    assert get_task("video").build_model(off, (32, 32)).box_attention is None
    assert load_config("savi_moving_objects_cond_cpu")["model"]["box_attention"] == 10  # the preset's
    assert load_config(None, ["task=video"])["model"]["box_attention"] is None  # the task's default: SAVi
    for bad in ("-1", "0", "true", "'x'"):
        with pytest.raises(ConfigError, match="model.box_attention"):
            load_config("savi_moving_objects_cond_cpu", [f"model.box_attention={bad}"])
    with pytest.raises(ConfigError, match="model.box_attention"):
        get_task("video").check_config(load_config("savi_moving_objects_cpu", ["model.box_attention=5"]))
