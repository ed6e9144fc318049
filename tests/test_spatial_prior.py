"""model.eval_spatial_prior / SlotAttention(spatial_prior=...) (not in the paper): from the second iteration on,
each slot's logits get weight x the log-density of an isotropic Gaussian fitted to its previous attention; checked
against numpy by hand, against one biased step of the module, for scale-freeness, and through the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slotlab.config import load_config, task_schema
from slotlab.errors import ConfigError
from slotlab.modules.slot_attention import SlotAttention
from slotlab.modules.slot_frame import centred_grid
from slotlab.modules.spatial_prior import VAR_FLOOR, gaussian_prior
from slotlab.tasks import get_task


def test_prior_is_the_gaussians_log_density_by_hand():
    g = torch.Generator().manual_seed(0)
    attn = torch.rand(2, 3, 20, generator=g, dtype=torch.float64).softmax(1)  # [B, K, N]
    pos = torch.rand(20, 2, generator=g, dtype=torch.float64)  # [N, 2]
    got = gaussian_prior(attn, pos, 0.7).numpy()
    a, p = attn.numpy(), pos.numpy()
    for b in range(2):
        for k in range(3):
            w = a[b, k] / (a[b, k].sum() + 1e-8)
            mu = (w[:, None] * p).sum(0)
            d2 = ((p - mu) ** 2).sum(1)
            var = (w * d2).sum() / 2 + VAR_FLOOR
            np.testing.assert_allclose(got[b, k], 0.7 * (-d2 / (2 * var) - np.log(var)), rtol=1e-5, atol=1e-5)


def _module() -> SlotAttention:
    torch.manual_seed(0)
    return SlotAttention(4, dim=16, iters=3).double().eval()


def _data():
    g = torch.Generator().manual_seed(1)
    inputs = torch.randn(2, 36, 16, generator=g, dtype=torch.float64)  # [B, N, D] on a 6x6 grid
    slots = torch.randn(2, 4, 16, generator=g, dtype=torch.float64)  # [B, K, D]
    return inputs, slots, centred_grid(6, 6).double()


def test_each_iteration_after_the_first_is_a_step_biased_by_the_previous_attention():
    sa = _module()
    inputs, slots, pos = _data()
    with torch.no_grad():
        out = sa(inputs, slots=slots, iters=2, spatial_prior=0.5, positions=pos)
        first = sa(inputs, slots=slots, iters=1)
        second = sa(inputs, slots=first.slots, iters=1, logit_bias=gaussian_prior(first.attn[:, 0], pos, 0.5))
        one = sa(inputs, slots=slots, iters=1, spatial_prior=0.5, positions=pos)
    torch.testing.assert_close(out.attn[:, 0], first.attn[:, 0])  # the first iteration has no prior
    torch.testing.assert_close(one.slots, first.slots)
    torch.testing.assert_close(out.attn[:, 1], second.attn[:, 0])
    torch.testing.assert_close(out.slots, second.slots)
    assert (out.attn[:, 1] - sa(inputs, slots=slots, iters=2).attn[:, 1]).abs().max() > 1e-3  # it does act


def test_the_prior_is_scale_free():
    sa = _module()
    inputs, slots, pos = _data()
    with torch.no_grad():
        a = sa(inputs, slots=slots, spatial_prior=1.0, positions=pos)
        b = sa(inputs, slots=slots, spatial_prior=1.0, positions=3.0 * pos + 5.0)
    torch.testing.assert_close(a.attn, b.attn, rtol=1e-3, atol=1e-4)  # up to the variance floor's scale


def test_bad_arguments_are_refused():
    sa = _module()
    inputs, slots, pos = _data()
    with pytest.raises(ValueError, match="positions"):
        sa(inputs, slots=slots, spatial_prior=1.0)
    with pytest.raises(ValueError, match="positions"):
        sa(inputs, slots=slots, spatial_prior=1.0, positions=pos[:5])
    with pytest.raises(ValueError, match="spatial_prior"):
        sa(inputs, slots=slots, spatial_prior=0.0, positions=pos)


def _model_and_plain_twin(override: str):
    """The quick preset's model with ``override``, the same weights without it, and an image [2, 3, 35, 35]."""
    config = load_config("tetrominoes_quick", [override])
    task = get_task(config["task"])
    torch.manual_seed(0)
    model = task.build_model(config, (35, 35)).float()
    plain = task.build_model(load_config("tetrominoes_quick"), (35, 35)).float()
    plain.load_state_dict(model.state_dict())
    return model, plain, torch.rand(2, 3, 35, 35) * 2 - 1


def test_the_model_uses_it_in_eval_mode_only_and_the_key_acts_at_evaluation():
    model, plain, image = _model_and_plain_twin("model.eval_spatial_prior=0.3")
    assert model.eval_spatial_prior == 0.3 and plain.eval_spatial_prior is None
    with torch.no_grad():
        torch.testing.assert_close(model.train()(image).masks, plain.train()(image).masks)  # training: unchanged
        out, ref = model.eval()(image), plain.eval()(image)
        biased = plain.slot_attention(
            plain.encoder(image), spatial_prior=0.3, positions=centred_grid(35, 35)
        )  # the same call by hand
    torch.testing.assert_close(out.attn, biased.attn)
    assert (out.attn[:, -1] - ref.attn[:, -1]).abs().max() > 1e-4
    assert "model.eval_spatial_prior" in task_schema("object_discovery").evaluation_only()
    for bad in ("-1", "0", "true"):
        with pytest.raises(ConfigError, match="model.eval_spatial_prior"):
            load_config("tetrominoes_quick", [f"model.eval_spatial_prior={bad}"])


def test_eval_set_applies_evaluation_keys_only():
    from slotlab.errors import UsageError
    from slotlab.inference.evaluation_keys import set_evaluation_options

    config = load_config("tetrominoes_quick")
    model = get_task(config["task"]).build_model(config, (35, 35))
    new = set_evaluation_options(model, config, ["model.eval_spatial_prior=0.3", "model.eval_iters=5"])
    assert model.eval_spatial_prior == 0.3 and model.eval_iters == 5
    assert new["model"]["eval_spatial_prior"] == 0.3 and new["model"]["eval_iters"] == 5
    assert config["model"]["eval_spatial_prior"] is None  # the caller's config is not changed
    with pytest.raises(UsageError, match="only keys that act at evaluation"):
        set_evaluation_options(model, config, ["model.iters=5"])  # it would describe another model
    with pytest.raises(UsageError, match="model.eval_spatial_prior"):
        set_evaluation_options(model, config, ["model.eval_spatial_prior=-1"])
    with pytest.raises(UsageError, match="only keys"):
        set_evaluation_options(model, config, ["model.eval_spatial_prior"])


def test_the_training_key_acts_in_training_mode_only():
    model, plain, image = _model_and_plain_twin("model.train_spatial_prior=0.5")
    assert model.train_spatial_prior == 0.5 and plain.train_spatial_prior is None
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(image).attn, plain.eval()(image).attn)  # evaluation: unchanged
        out, ref = model.train()(image), plain.train()(image)
        biased = plain.slot_attention(plain.encoder(image), spatial_prior=0.5, positions=centred_grid(35, 35))
    torch.testing.assert_close(out.attn, biased.attn)
    assert (out.attn[:, -1] - ref.attn[:, -1]).abs().max() > 1e-4
    assert "model.train_spatial_prior" not in task_schema("object_discovery").evaluation_only()
    for bad in ("-1", "0", "true", "1e7"):
        with pytest.raises(ConfigError, match="model.train_spatial_prior"):
            load_config("tetrominoes_quick", [f"model.train_spatial_prior={bad}"])
