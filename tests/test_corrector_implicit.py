"""model.corrector_implicit_differentiation (video; not in SAVi): BO-QSA's bi-level gradient in SAVi's corrector.
Values are SAVi's exactly; with one iteration per frame the gradients are too; with a longer first frame only the
gradient changes (the first frame's free iterations carry none)."""

from __future__ import annotations

import pytest
import torch
from test_savi_model import tiny as tiny_savi
from test_savi_model import video

from slotlab.config import load_config
from slotlab.errors import ConfigError
from slotlab.tasks import get_task


def _pair(**kw):
    torch.manual_seed(0)
    bilevel = tiny_savi(init="learned", corrector_implicit_differentiation=True, **kw).double()
    plain = tiny_savi(init="learned", **kw).double()
    plain.load_state_dict(bilevel.state_dict())
    return bilevel, plain


def _grads(model, clip):
    model.zero_grad()
    out = model(clip)
    out.recon.square().mean().backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("first_frame_iters", [None, 3])
def test_values_are_savis_and_one_iteration_per_frame_changes_no_gradient(first_frame_iters):
    bilevel, plain = _pair(first_frame_iters=first_frame_iters)
    assert bilevel.corrector.implicit_differentiation and not plain.corrector.implicit_differentiation
    clip = video().double()  # [B, T, 3, H, W]
    out_b, grads_b = _grads(bilevel, clip)
    out_p, grads_p = _grads(plain, clip)
    torch.testing.assert_close(out_b.slots, out_p.slots, rtol=0, atol=0)
    torch.testing.assert_close(out_b.recon, out_p.recon, rtol=0, atol=0)
    assert grads_b.keys() == grads_p.keys()
    if first_frame_iters is None:  # no free iteration anywhere: the straight-through is the identity
        for name in grads_p:
            torch.testing.assert_close(grads_b[name], grads_p[name], rtol=1e-10, atol=1e-12)
    else:  # frame 0's first two iterations are free: the initial slots get the last iteration's input gradient
        init = [n for n in grads_p if n.startswith("initializer.")]
        assert init and any(not torch.allclose(grads_b[n], grads_p[n]) for n in init)


def test_the_key_defaults_to_savi_and_reaches_the_corrector():
    video_task = get_task("video")
    preset = video_task.build_model(load_config("savi_moving_objects_cpu"), (32, 32))
    assert not preset.corrector.implicit_differentiation
    cfg = load_config("savi_moving_objects_cpu", ["model.corrector_implicit_differentiation=true"])
    assert video_task.build_model(cfg, (32, 32)).corrector.implicit_differentiation
    with pytest.raises(ConfigError, match="model.corrector_implicit_differentiation"):
        load_config("savi_moving_objects_cpu", ["model.corrector_implicit_differentiation=3"])
