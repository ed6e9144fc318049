"""``model.absent_slots`` of the conditional SAVi init (slotlab.modules.slot_init): SAVi's zero boxes by default,
or one learned slot per box position where the box is all zeros (not in SAVi)."""

from __future__ import annotations

import pytest
import torch
from test_savi_model import boxes, tiny, video

from slotlab.config import load_config
from slotlab.errors import ConfigError
from slotlab.modules.slot_init import ConditioningError, SlotInitializer
from slotlab.tasks import get_task


def with_absent(c: torch.Tensor, absent: list[tuple[int, int]]) -> torch.Tensor:
    c = c.clone()
    for b, i in absent:
        c[b, i] = 0  # SAVi's NOTRACK_BOX
    return c


def test_box_is_savis_and_adds_no_parameter():
    torch.manual_seed(0)
    init = SlotInitializer("boxes", 8, hidden_dim=16)
    assert init.absent == "box" and not any("absent" in n for n, _ in init.named_parameters())
    c = with_absent(boxes(k=4), [(0, 2), (0, 3), (1, 3)])
    slots = init(2, c)  # [2, 5, 8]: background + 4 boxes
    torch.testing.assert_close(slots[0, 3], slots[0, 4])  # absent objects' slots are alike ...
    torch.testing.assert_close(slots[0, 3], slots[0, 0])  # ... and alike the background's


@pytest.mark.parametrize("kind,prepend", [("boxes", True), ("boxes", False), ("points", True)])
def test_learned_replaces_exactly_the_absent_slots(kind, prepend):
    torch.manual_seed(0)
    plain = SlotInitializer(kind, 8, hidden_dim=16, prepend_background=prepend)
    torch.manual_seed(0)
    learned = SlotInitializer(kind, 8, hidden_dim=16, prepend_background=prepend, absent="learned", max_boxes=5)
    learned.encode.load_state_dict(plain.encode.state_dict())
    c = with_absent(boxes(k=4), [(0, 1), (0, 3), (1, 0)])
    if kind == "points":
        c = c[..., :2]  # zero points are absent too
    a, b = plain(2, c), learned(2, c)
    off = 1 if prepend else 0
    absent = torch.zeros(2, 4, dtype=torch.bool)
    absent[0, 1] = absent[0, 3] = absent[1, 0] = True
    for i in range(2):
        for j in range(4):
            want = learned.absent_slots[0, j] if absent[i, j] else a[i, off + j]
            torch.testing.assert_close(b[i, off + j], want)
    if prepend:
        torch.testing.assert_close(b[:, 0], a[:, 0])  # the background slot stays the encoded zero box
    assert not torch.allclose(b[0, off + 1], b[0, off + 3])  # the spare slots differ from each other


def test_learned_slots_learn_and_too_many_boxes_are_refused():
    torch.manual_seed(0)
    model = tiny(init="boxes", absent_slots="learned", max_boxes=3)
    c = with_absent(boxes(k=3), [(0, 2), (1, 1)])
    out = model(video(), c)
    type(model).loss(out, video()).backward()
    g = model.initializer.absent_slots.grad  # [1, 3, D]
    assert g[0, 1].abs().sum() > 0 and g[0, 2].abs().sum() > 0  # used where absent ...
    assert g[0, 0].abs().sum() == 0  # ... and nowhere else
    with pytest.raises(ConditioningError, match="gives 4 boxes; .* at most 3"):
        model(video(), boxes(k=4))
    assert model(video(), boxes(k=2)).slots.shape[2] == 3  # fewer boxes: the first positions' slots


def test_config_key_builds_the_model_and_applies_to_conditional_inits_only():
    task = get_task("video")
    cfg = load_config("savi_moving_objects_cond_cpu", ["model.absent_slots=learned"])
    model = task.build_model(cfg)
    assert model.initializer.absent_slots.shape == (1, cfg["data"]["max_objects"], cfg["model"]["slot_dim"])
    with pytest.raises(ConfigError, match="model.absent_slots learned applies to the conditional inits"):
        load_config("savi_moving_objects_cpu", ["model.absent_slots=learned"])
    with pytest.raises(ValueError, match="applies to the conditional kinds"):
        SlotInitializer("gaussian", 8, absent="learned")
