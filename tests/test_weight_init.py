"""``model.weight_init``: the reference implementations' initial weights (slotlab/modules/init.py).

Oracles: the formulas of Keras' ``glorot_uniform`` / ``orthogonal`` / ``zeros`` and Flax's ``lecun_normal``
(variance 1 / fan_in, truncated at 2 standard deviations), checked on the statistics of large layers.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from slotlab.config import load_config
from slotlab.errors import ConfigError
from slotlab.modules.init import reference_init_
from slotlab.modules.predictors import TransformerPredictor
from slotlab.train.module import SlotModule


def _uniform_limit_ok(w: torch.Tensor, limit: float) -> None:
    assert w.abs().max().item() <= limit
    assert w.std().item() == pytest.approx(limit / math.sqrt(3.0), rel=0.03)  # std of U(-l, l)


@pytest.mark.parametrize(
    ("layer", "fan_sum"),
    [
        (nn.Linear(256, 512), 256 + 512),
        (nn.Conv2d(32, 64, 5), (32 + 64) * 25),
        (nn.ConvTranspose2d(64, 16, 5), (64 + 16) * 25),
    ],
)
def test_keras_kernels_are_glorot_uniform_with_zero_bias(layer: nn.Module, fan_sum: int) -> None:
    torch.manual_seed(0)
    reference_init_(nn.Sequential(layer), "keras")
    _uniform_limit_ok(layer.weight, math.sqrt(6.0 / fan_sum))
    assert torch.count_nonzero(layer.bias) == 0


@pytest.mark.parametrize(
    ("layer", "fan_in"),
    [
        (nn.Linear(400, 300), 400),
        (nn.Conv2d(32, 64, 5), 32 * 25),
        (nn.ConvTranspose2d(64, 16, 5), 64 * 25),  # Flax's fan-in is the input channels (torch stores [in, out, ..])
    ],
)
def test_flax_kernels_are_lecun_normal_with_zero_bias(layer: nn.Module, fan_in: int) -> None:
    torch.manual_seed(0)
    reference_init_(nn.Sequential(layer), "flax")
    std = math.sqrt(1.0 / fan_in)
    assert layer.weight.std().item() == pytest.approx(std, rel=0.04)
    assert layer.weight.abs().max().item() <= 2.0 * std / 0.87962566103423978 + 1e-7  # truncated at 2 sigma
    assert torch.count_nonzero(layer.bias) == 0


def test_keras_gru_kernel_glorot_recurrent_orthogonal_over_all_gates() -> None:
    torch.manual_seed(0)
    cell = nn.GRUCell(64, 64)
    reference_init_(cell, "keras")
    _uniform_limit_ok(cell.weight_ih, math.sqrt(6.0 / (64 + 3 * 64)))  # Keras' kernel [64, 192]
    hh = cell.weight_hh  # [192, 64] = Keras' recurrent kernel [64, 192] transposed: orthonormal rows there
    torch.testing.assert_close(hh.T @ hh, torch.eye(64), atol=1e-5, rtol=0)
    gate = hh[:64]
    assert (gate.T @ gate - torch.eye(64)).abs().max() > 0.1  # not per gate
    assert torch.count_nonzero(cell.bias_ih) == 0 and torch.count_nonzero(cell.bias_hh) == 0


def test_flax_gru_orthogonal_per_gate() -> None:
    torch.manual_seed(0)
    cell = nn.GRUCell(128, 64)
    reference_init_(cell, "flax")
    for g in range(3):
        block = cell.weight_hh[g * 64 : (g + 1) * 64]  # [64, 64]
        torch.testing.assert_close(block.T @ block, torch.eye(64), atol=1e-5, rtol=0)
    assert cell.weight_ih.std().item() == pytest.approx(1.0 / math.sqrt(128), rel=0.04)
    assert torch.count_nonzero(cell.bias_ih) == 0 and torch.count_nonzero(cell.bias_hh) == 0


def test_flax_attention_projections_per_head_matrix() -> None:
    torch.manual_seed(0)
    pred = TransformerPredictor(128, num_heads=4)
    reference_init_(pred, "flax")
    attn = pred.block.self_attn
    for i in range(3):
        w = attn.in_proj_weight[i * 128 : (i + 1) * 128]
        assert w.std().item() == pytest.approx(1.0 / math.sqrt(128), rel=0.05)
    assert torch.count_nonzero(attn.in_proj_bias) == 0
    assert torch.count_nonzero(attn.out_proj.bias) == 0


def test_torch_scheme_leaves_the_model_as_built_and_unknown_scheme_fails() -> None:
    torch.manual_seed(3)
    a = nn.Sequential(nn.Linear(8, 8), nn.GRUCell(8, 8))
    before = {k: v.clone() for k, v in a.state_dict().items()}
    reference_init_(a, "torch")
    for k, v in a.state_dict().items():
        assert torch.equal(v, before[k])
    with pytest.raises(ValueError, match="weight_init"):
        reference_init_(a, "jax")


def test_config_key_and_seeded_training_module() -> None:
    with pytest.raises(ConfigError, match="weight_init"):
        load_config("multi_dsprites_cpu", ["model.weight_init=glorot"])
    cfg = load_config("multi_dsprites_cpu", ["model.weight_init=keras"])
    torch.manual_seed(0)
    m1 = SlotModule(cfg, (64, 64)).model
    torch.manual_seed(0)
    m2 = SlotModule(cfg, (64, 64)).model
    for (k, v1), v2 in zip(m1.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.equal(v1, v2), k
    conv = m1.encoder.cnn.net[0]
    assert torch.count_nonzero(conv.bias) == 0
    assert conv.weight.abs().max().item() <= math.sqrt(6.0 / ((3 + 32) * 25))


def test_keras_init_gives_the_encoder_features_more_image_than_position() -> None:
    """Why the option exists: under torch's defaults the image-dependent part of the object-discovery encoder's
    features starts far below the position embedding added to it; Keras' initialisation narrows that gap."""
    from slotlab.data.multi_dsprites import generate

    image = torch.tensor(generate(0, 0, 16)["image"]).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # [16, 3, 64, 64]
    ratios = {}
    for scheme in ("torch", "keras"):
        torch.manual_seed(0)
        cfg = load_config("multi_dsprites_cpu", [f"model.weight_init={scheme}"])
        enc = SlotModule(cfg, (64, 64)).model.encoder
        with torch.no_grad():
            x = enc.cnn(image)  # [16, 32, 64, 64]
            pos = enc.pos.embedding()  # [1, 32, 64, 64]
        image_part = (x - x.mean(0, keepdim=True)).std()
        position_part = (pos - pos.mean((2, 3), keepdim=True)).std()
        ratios[scheme] = (position_part / image_part).item()
    assert ratios["torch"] > 15.0
    assert ratios["keras"] < ratios["torch"] / 3.0


@pytest.mark.parametrize("config", ["multi_dsprites_cpu", "savi_moving_objects_cpu"])
def test_encoder_init_he_redraws_only_the_encoder_cnn_variance_preserving(config: str) -> None:
    base = load_config(config, [])
    torch.manual_seed(0)
    plain = SlotModule(base, (64, 64) if "dsprites" in config else (32, 32)).model
    torch.manual_seed(0)
    he = SlotModule(load_config(config, ["model.encoder_init=he"]), (64, 64) if "dsprites" in config else (32, 32))
    he = he.model
    cnn_keys = {f"encoder.cnn.{k}" for k in he.encoder.cnn.state_dict()}
    for (k, v1), v2 in zip(plain.state_dict().items(), he.state_dict().values(), strict=True):
        if k not in cnn_keys:
            assert torch.equal(v1, v2), k  # nothing outside the CNN touched
        elif k.endswith("weight"):
            assert not torch.equal(v1, v2), k  # the CNN's kernels re-drawn
    for conv in (m for m in he.encoder.cnn.modules() if isinstance(m, nn.Conv2d)):
        fan_in = conv.weight[0].numel()
        assert conv.weight.std().item() == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.1)  # Kaiming, ReLU gain
        assert torch.count_nonzero(conv.bias) == 0
    with pytest.raises(ConfigError, match="encoder_init"):
        load_config(config, ["model.encoder_init=kaiming"])


def test_encoder_init_he_keeps_the_image_part_of_the_features_at_the_inputs_scale() -> None:
    """Why the option exists: through the 4 ReLU layers torch's and Keras' draws shrink the image-dependent part
    of the features (> 10x under torch's); Kaiming's keeps it within a factor 3 of the input's."""
    from slotlab.data.multi_dsprites import generate

    image = torch.tensor(generate(0, 0, 16)["image"]).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # [16, 3, 64, 64]
    spread = {}
    for option in ("weight_init", "he"):
        torch.manual_seed(0)
        cfg = load_config("multi_dsprites_cpu", ["model.weight_init=torch", f"model.encoder_init={option}"])
        with torch.no_grad():
            x = SlotModule(cfg, (64, 64)).model.encoder.cnn(image)  # [16, 32, 64, 64]
        spread[option] = ((x - x.mean(0, keepdim=True)).std() / (image - image.mean(0, keepdim=True)).std()).item()
    assert spread["weight_init"] < 0.1
    assert 1 / 3 < spread["he"] < 3
