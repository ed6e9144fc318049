"""The Python API checks its inputs and names what it expects (slotlab.checks): SlotAttention, the models and the
metrics given float64 / uint8 / bf16 tensors, numpy arrays or an empty batch; the metrics refuse NaN / Inf (a NaN
score is not a score), and evaluation reports non-finite model outputs as such (NonFiniteOutputError, exit 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import copy_run

from slotlab.checks import InputDtypeError, InputShapeError, InputTypeError, NonFiniteInputError
from slotlab.cli import main
from slotlab.errors import NonFiniteOutputError, UserError
from slotlab.metrics.ari import fg_ari
from slotlab.metrics.average_precision import average_precision
from slotlab.modules.slot_attention import SlotAttention
from slotlab.tasks.common import ValidationContext
from slotlab.tasks.object_discovery import ObjectDiscovery, evaluate_fg_ari
from slotlab.tasks.object_discovery.model import ObjectDiscoveryModel, ObjectDiscoverySlotMLP
from slotlab.tasks.set_prediction import evaluate_model
from slotlab.tasks.set_prediction.model import SetPredictionModel, SetPredictionSlotMLP

SMALL = dict(encoder_channels=(8, 8, 8, 8), slot_dim=16, mlp_hidden=16)


def models() -> list[tuple[str, torch.nn.Module, int]]:
    torch.manual_seed(0)
    return [
        ("object discovery", ObjectDiscoveryModel((35, 35), 3, decoder_channels=8, **SMALL), 35),
        ("set prediction", SetPredictionModel((32, 32), 3, head_hidden=16, **SMALL), 32),
        ("slot mlp od", ObjectDiscoverySlotMLP((35, 35), 3, 16, (8, 8, 8, 8), decoder_channels=8), 35),
        ("slot mlp sp", SetPredictionSlotMLP((32, 32), 3, 16, (8, 8, 8, 8), head_hidden=16), 32),
    ]


def first(out) -> torch.Tensor:
    return out.recon if hasattr(out, "recon") else out.pred


# ---------------------------------------------------------------------------------------------- SlotAttention
def test_slot_attention_casts_float_inputs_to_its_dtype():
    torch.manual_seed(0)
    sa = SlotAttention(3, 8)
    x, noise = torch.randn(2, 5, 8), torch.randn(2, 3, 8)
    ref = sa(x, noise=noise).slots
    for other in (torch.float64, torch.bfloat16):
        out = sa(x.to(other), noise=noise).slots
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, sa(x.to(other).float(), noise=noise).slots)
    torch.testing.assert_close(sa(x.double(), noise=noise).slots, ref)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 under autocast: autocast's precision, as before
        out = sa(x.bfloat16(), noise=noise)
    assert out.slots.dtype == torch.bfloat16 and torch.isfinite(out.slots.float()).all()


def test_slot_attention_names_what_it_expects():
    sa = SlotAttention(3, 8)
    with pytest.raises(InputDtypeError, match=r"inputs must be a floating-point tensor \[B, N, 8\].*torch.uint8"):
        sa(torch.zeros(2, 5, 8, dtype=torch.uint8))
    with pytest.raises(InputTypeError, match=r"torch.Tensor \[B, N, 8\].*numpy.ndarray.*torch.from_numpy"):
        sa(np.zeros((2, 5, 8), np.float32))
    with pytest.raises(InputShapeError, match=r"inputs is empty: shape \(0, 5, 8\) has B = 0"):
        sa(torch.zeros(0, 5, 8))
    with pytest.raises(InputShapeError, match=r"has N = 0"):
        sa(torch.zeros(2, 0, 8))
    with pytest.raises(InputTypeError, match="noise must be a torch.Tensor"):
        sa(torch.zeros(2, 5, 8), noise=np.zeros((2, 3, 8)))
    with pytest.raises(InputDtypeError, match="slots must be a floating-point tensor"):
        sa(torch.zeros(2, 5, 8), slots=torch.zeros(2, 3, 8, dtype=torch.long))
    assert issubclass(InputDtypeError, TypeError) and issubclass(InputDtypeError, ValueError)
    assert not issubclass(InputDtypeError, UserError)  # via the CLI only a bug in slotlab could cause it


# ---------------------------------------------------------------------------------------------- models
@pytest.mark.parametrize("index", range(4))
def test_models_check_their_images(index):
    name, model, size = models()[index]
    image = torch.rand(2, 3, size, size) * 2 - 1
    noise = None if "mlp" in name else torch.randn(2, 3, 16)
    ref = first(model(image, noise=noise))
    torch.testing.assert_close(first(model(image.double(), noise=noise)), ref)  # cast to the model's float32
    assert first(model(image.bfloat16(), noise=noise)).dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(first(model(image.bfloat16(), noise=noise)).float()).all()
    with pytest.raises(InputDtypeError, match=r"scaled to \[-1, 1\], got torch.uint8.*image.float\(\) / 127.5 - 1"):
        model((image * 127.5 + 127.5).to(torch.uint8))
    with pytest.raises(InputTypeError, match=r"image must be a torch.Tensor.*torch.from_numpy\(image\)"):
        model(image.numpy())
    with pytest.raises(InputShapeError, match=rf"image is empty: .*pass \[B, 3, {size}, {size}\] with B >= 1"):
        model(image[:0])
    with pytest.raises(InputShapeError, match=rf"image must be \[B, 3, {size}, {size}\]"):
        model(image[:, :2])


# ---------------------------------------------------------------------------------------------- fg_ari
def test_fg_ari_accepts_numpy_and_refuses_nan():
    torch.manual_seed(0)
    true = torch.randint(0, 3, (2, 6, 6))
    pred = torch.rand(2, 4, 6, 6)
    torch.testing.assert_close(fg_ari(true.numpy(), pred.numpy()), fg_ari(true, pred), equal_nan=True)
    torch.testing.assert_close(fg_ari(true, pred.double()), fg_ari(true, pred), equal_nan=True)
    bad = pred.clone()
    bad[0, 0, :2] = float("nan")
    bad[1, 1, 0, 0] = float("inf")
    with pytest.raises(NonFiniteInputError, match=r"pred_masks holds 13 non-finite entries \(12 NaN, 1 Inf\) of 288"):
        fg_ari(true, bad)
    with pytest.raises(NonFiniteInputError, match="pred_masks holds 288"):
        fg_ari(true, torch.full_like(pred, float("nan")))  # was 0.0 per image
    with pytest.raises(NonFiniteInputError, match="pred_masks"):
        fg_ari(true.numpy(), np.full((2, 4, 6, 6), np.nan))


def test_fg_ari_names_what_it_expects():
    true, pred = torch.randint(0, 3, (2, 6, 6)), torch.rand(2, 4, 6, 6)
    assert fg_ari(true[:0], pred[:0]).shape == (0,)  # no images: no scores
    with pytest.raises(InputShapeError, match=r"true_masks is empty: shape \(2, 0, 6\) has H = 0"):
        fg_ari(true[:, :0], pred[:, :, :0])
    with pytest.raises(InputDtypeError, match=r"true_masks must be int \[B, H, W\].*torch.float32.*long\(\)"):
        fg_ari(true.float(), pred)
    with pytest.raises(InputTypeError, match="true_masks must be a torch.Tensor"):
        fg_ari(true.tolist(), pred)


# ---------------------------------------------------------------------------------------------- AP
def test_average_precision_refuses_non_finite_and_accepts_bf16():
    target = torch.zeros(2, 3, 19)
    target[:, 0, [0, 1, 2, 3, 5, 7, 10, 18]] = torch.tensor([0.5, 0.5, 0.5, 1, 1, 1, 1, 1])
    pred = target.clone()
    assert average_precision(pred.bfloat16(), target, 1.0) == average_precision(pred, target, 1.0) == 1.0
    pred[1, 2, 18] = float("nan")
    with pytest.raises(NonFiniteInputError, match=r"pred holds 1 non-finite entries \(1 NaN, 0 Inf\) of 114"):
        average_precision(pred, target, -1)
    target[0, 0, 0] = float("inf")
    with pytest.raises(NonFiniteInputError, match=r"target holds 1 non-finite entries \(0 NaN, 1 Inf\)"):
        average_precision(target.nan_to_num(posinf=0.5), target, -1)


# ---------------------------------------------------------------------------------------------- evaluation
def nan_weights(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    return model


def test_evaluation_reports_non_finite_outputs_not_a_score():
    od, _, _, _ = (m for _, m, _ in models())
    images, masks = torch.randint(0, 256, (3, 3, 35, 35), dtype=torch.uint8), torch.randint(0, 3, (3, 35, 35))
    assert np.isfinite(evaluate_fg_ari(od, images, masks, batch_size=2, iters=1)).any()
    with pytest.raises(NonFiniteOutputError, match=r"the model's masks for held-out images 0..1 hold 7350 non-fin"):
        evaluate_fg_ari(nan_weights(od), images, masks, batch_size=2)
    torch.manual_seed(0)
    sp = nan_weights(SetPredictionModel((32, 32), 3, head_hidden=16, **SMALL))
    data = {"image": torch.zeros(2, 3, 32, 32, dtype=torch.uint8), "target": torch.ones(2, 3, 19)}
    with pytest.raises(NonFiniteOutputError, match=r"predictions for held-out images 0..1 hold 114 .*another chec"):
        evaluate_model(sp, data)


def test_validation_reports_non_finite_outputs():
    _, model, _ = models()[0]
    ctx = ValidationContext(config={"eval": {"ari_undefined": "nan"}}, step=7, want_figures=True)
    batch = {
        "image": torch.zeros(2, 3, 35, 35, dtype=torch.uint8),
        "mask": torch.zeros(2, 35, 35),
        "index": torch.arange(2),
    }
    with pytest.raises(NonFiniteOutputError, match="masks for validation batch 0 at step 7 .*optim.lr"):
        ObjectDiscovery().validation_step(nan_weights(model), batch, 0, ctx)


def test_cli_eval_of_nan_weights_is_an_error_not_a_score(tmp_path: Path, tiny_od_run, capsys):
    run = copy_run(tiny_od_run, tmp_path / "od")
    for ckpt in (run / "checkpoints").glob("*.ckpt"):
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        state["state_dict"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                               for k, v in state["state_dict"].items()}  # fmt: skip
        torch.save(state, ckpt)
    assert main(["eval", str(run), "--out", str(tmp_path / "e.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the model's masks for held-out images 0..")
    assert not (tmp_path / "e.json").exists()
