"""The decoder's Fourier position features (option ``model.decoder_fourier_bands``; not in the paper)."""

from __future__ import annotations

import math

import pytest
import torch

from slotlab.config import load_config
from slotlab.errors import ConfigError
from slotlab.models.savi import SAVi
from slotlab.modules.decoders import build_decoder
from slotlab.modules.position import SoftPositionEmbed, build_grid, fourier_grid


def test_zero_bands_is_the_papers_grid_and_layer() -> None:
    assert torch.equal(fourier_grid(5, 7, 0), build_grid(5, 7))
    assert SoftPositionEmbed(16, (5, 7)).dense.in_features == 4


def test_features_are_sin_cos_of_doubling_frequencies_per_axis() -> None:
    h, w, f = 6, 9, 3
    g = fourier_grid(h, w, f)  # [H, W, 4 + 4F]
    assert g.shape == (h, w, 4 + 4 * f)
    y, x = build_grid(h, w)[..., 0], build_grid(h, w)[..., 1]
    # an independent per-band oracle, in the documented order: per axis (y, x), sin of each band, then cos
    expected = []
    for axis in (y, x):
        for fn in (torch.sin, torch.cos):
            for band in range(f):
                expected.append(fn(axis * (2.0**band) * math.pi))
    torch.testing.assert_close(g[..., 4:], torch.stack(expected, dim=-1), rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind, res", [("full_resolution", (11, 13)), ("clevr", (32, 48))])
def test_factorised_first_layer_is_exact_with_fourier_features(kind: str, res: tuple[int, int]) -> None:
    torch.manual_seed(0)
    fact = build_decoder(res, 16, kind, 8, True, "absolute", 4)
    plain = build_decoder(res, 16, kind, 8, False, "absolute", 4)
    plain.load_state_dict(fact.state_dict())
    slots = torch.randn(2, 3, 16)
    torch.testing.assert_close(fact(slots).recon, plain(slots).recon, rtol=1e-5, atol=1e-5)


def test_fourier_features_need_the_absolute_frame() -> None:
    with pytest.raises(ValueError, match="absolute frame"):
        build_decoder((8, 8), 16, "full_resolution", 8, True, "translation", 2)


def test_config_key_reaches_both_tasks_and_checks_its_range() -> None:
    cfg = load_config("tetrominoes_quick", ["model.decoder_fourier_bands=5"])
    assert cfg["model"]["decoder_fourier_bands"] == 5
    assert load_config("tetrominoes_quick")["model"]["decoder_fourier_bands"] == 0
    with pytest.raises(ConfigError, match="decoder_fourier_bands"):
        load_config("tetrominoes_quick", ["model.decoder_fourier_bands=-1"])
    savi = SAVi(resolution=(16, 16), num_slots=3, slot_dim=16, init="learned", decoder_channels=(8, 8),
                decoder_strides=(2, 1), targets={"rgb": 3}, decoder_fourier_bands=3)  # fmt: skip
    assert savi.decoder.pos.dense.in_features == 4 + 4 * 3


def test_encoder_key_extends_the_encoder_grid_only() -> None:
    from slotlab.tasks import get_task

    cfg = load_config("multi_dsprites_cpu", ["model.encoder_fourier_bands=3"])
    task = get_task(cfg["task"])
    model = task.build_model(cfg)
    assert model.encoder.pos.dense.in_features == 4 + 4 * 3
    assert model.decoder.pos.dense.in_features == 4  # the decoder keeps the paper's grid
    paper = task.build_model(load_config("multi_dsprites_cpu"))
    assert paper.encoder.pos.dense.in_features == 4  # default 0: the paper's linear grid
    with pytest.raises(ConfigError, match="position_embedding"):
        task.check_config(load_config("multi_dsprites_cpu", ["model.encoder_fourier_bands=2",
                                                             "model.position_embedding=false"]))  # fmt: skip


def test_fourier_keys_can_pick_a_place_the_linear_grid_cannot() -> None:
    # The reason for the encoder option: with the linear grid a query's score q . g is linear in (y, x), so every
    # query's best location is on the image's border; with Fourier features a query can peak inside the image.
    h = w = 16
    torch.manual_seed(0)
    linear = build_grid(h, w).flatten(0, 1)  # [N, 4]
    for q in torch.randn(200, 4):
        y, x = divmod(int((linear @ q).argmax()), w)
        assert y in (0, h - 1) or x in (0, w - 1)
    centre = (h // 2) * w + w // 2
    fourier = fourier_grid(h, w, 3).flatten(0, 1)[:, 4:]  # [N, 4F] the sin/cos features, of constant norm
    assert int((fourier @ fourier[centre]).argmax()) == centre
