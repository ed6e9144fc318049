"""model.merge_slots (slotlab/modules/slot_merge.py): near-copy slots merged at inference, the paper's model
unchanged otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slotlab.config import load_config
from slotlab.errors import ConfigError
from slotlab.modules.slot_merge import merge_duplicate_slots, slot_groups
from slotlab.tasks import get_task


def _groups_by_loop(slots: torch.Tensor, threshold: float) -> list[list[int]]:
    """Connected components of 'mean-centred cosine > threshold', each slot labelled by its component's
    smallest index (an independent union-find)."""
    out = []
    for s in slots.double().numpy():
        f = s - s.mean(-1, keepdims=True)
        f /= np.linalg.norm(f, axis=-1, keepdims=True)
        parent = list(range(len(s)))

        def find(x: int, parent: list[int] = parent) -> int:
            while parent[x] != x:
                x = parent[x]
            return x

        for u in range(len(s)):
            for v in range(len(s)):
                if f[u] @ f[v] > threshold:
                    a, c = sorted((find(u), find(v)))
                    parent[c] = a
        out.append([find(i) for i in range(len(s))])
    return out


def test_groups_are_the_chained_components():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(5, 3, 16, generator=g)
    pick = torch.randint(0, 3, (5, 7), generator=g)
    slots = base[torch.arange(5)[:, None], pick] + 0.05 * torch.randn(5, 7, 16, generator=g)  # [5, 7, 16]
    for threshold in (0.5, 0.9, 0.99):
        assert slot_groups(slots, threshold).tolist() == _groups_by_loop(slots, threshold)
    assert (slot_groups(slots, 0.9) != torch.arange(7)).any()  # the near-copies were grouped
    constant = torch.zeros(1, 3, 16)  # mean-centred to 0: each such slot is its own group
    assert slot_groups(constant, 0.5).tolist() == [[0, 1, 2]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_merge_keeps_the_reconstruction_and_sums_the_masks(dtype):
    g = torch.Generator().manual_seed(1)
    slots = torch.randn(2, 5, 8, generator=g)
    slots[:, 3] = 1.5 * slots[:, 1] + 0.2  # a near-copy of slot 1 (same centred direction)
    masks = torch.randn(2, 5, 1, 6, 6, generator=g).softmax(1).to(dtype)
    recons = torch.randn(2, 5, 3, 6, 6, generator=g).to(dtype)
    merged, rgb = merge_duplicate_slots(slots, masks, recons, 0.99)
    assert merged.shape == masks.shape and rgb.shape == recons.shape
    assert merged.dtype == dtype and rgb.dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 3e-2
    torch.testing.assert_close((merged * rgb).sum(1).float(), (masks * recons).sum(1).float(), atol=tol, rtol=tol)
    torch.testing.assert_close(merged[:, 1].float(), (masks[:, 1] + masks[:, 3]).float(), atol=tol, rtol=tol)
    assert (merged[:, 3] == 0).all()
    others = [0, 2, 4]
    assert torch.equal(merged[:, others], masks[:, others]) and torch.equal(rgb[:, others], recons[:, others])


def _model(merge: float | None):
    cfg = load_config("tetrominoes", [f"model.merge_slots={'null' if merge is None else merge}"])
    torch.manual_seed(0)
    return get_task("object_discovery").build_model(cfg)


def test_the_option_acts_at_evaluation_only():
    paper, merging = _model(None), _model(0.9)
    assert paper.merge_slots is None and merging.merge_slots == 0.9
    image = torch.rand(2, 3, 35, 35) * 2 - 1
    same = torch.randn(2, 1, 64).expand(2, 4, 64).contiguous()  # identical initial slots stay identical
    for model in (paper, merging):
        model.train()
    a, b = paper(image, slots=same), merging(image, slots=same)
    assert torch.equal(a.masks, b.masks)  # training: the paper's model
    paper.eval()
    merging.eval()
    with torch.no_grad():
        a, b = paper(image, slots=same), merging(image, slots=same)
    assert not torch.equal(a.masks, b.masks)
    torch.testing.assert_close(b.masks[:, 0], torch.ones_like(b.masks[:, 0]))  # one group: every pixel in slot 0
    assert (b.masks[:, 1:] == 0).all()
    torch.testing.assert_close(b.recon, a.recon)


def test_the_key_is_checked():
    with pytest.raises(ConfigError, match="merge_slots"):
        load_config("tetrominoes_quick", ["model.merge_slots=1.5"])
    assert load_config("tetrominoes_quick")["model"]["merge_slots"] is None  # the paper's default
