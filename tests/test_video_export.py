"""``slotlab export`` of a video (SAVi) model: the exported program takes clips [B, T, 3, H, W] (and first-frame
boxes / points or slot-init noise, as the model's initialisation needs) and gives the eager model's recon, masks,
slots and attn of every frame (max abs difference <= 1e-5) at another batch size; T is fixed; ONNX exports too."""

from __future__ import annotations

import pytest
import torch

from slotlab.cli import main
from slotlab.models.savi import SAVi
from slotlab.tasks import get_task

CFG = {"data": {"num_frames": 3, "max_objects": 3}}


def tiny(init: str) -> SAVi:
    torch.manual_seed(0)
    return SAVi(
        resolution=(16, 16), num_slots=4, slot_dim=32, init=init, init_hidden=32, encoder_channels=(8, 8),
        encoder_strides=(1, 1), encoder_hidden=16, predictor_heads=2, predictor_mlp=32, decoder_channels=(16, 16),
        targets={"rgb": 3},
    ).eval()  # fmt: skip


def clip(b: int, t: int = 3, size: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(b, t, 3, size, size, generator=g) * 2 - 1


def assert_same(got: tuple[torch.Tensor, ...], want: tuple[torch.Tensor, ...]) -> None:
    assert len(got) == len(want) == 4
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, atol=1e-5, rtol=0)


@pytest.mark.parametrize("init", ["boxes", "gaussian"])
def test_exported_program_matches_the_eager_model(init, tmp_path):
    model = tiny(init)
    spec = get_task("video").export_spec(model, CFG, None)
    assert spec.inputs == (["video", "boxes"] if init == "boxes" else ["video", "noise"])
    assert spec.outputs == ["recon", "masks", "slots", "attn"]
    torch.export.save(torch.export.export(spec.module, spec.example, dynamic_shapes=spec.dynamic), tmp_path / "m.pt2")
    program = torch.export.load(tmp_path / "m.pt2").module()
    video = clip(3)  # batch 3: not the example's 2
    g = torch.Generator().manual_seed(2)
    extra = torch.rand(3, 3, 4, generator=g) if init == "boxes" else torch.randn(3, 4, 32, generator=g)
    with torch.no_grad():
        out = model(video, **({"conditioning": extra} if init == "boxes" else {"noise": extra}))
        assert_same(program(video, extra), (out.recon, out.masks, out.slots, out.attn))
    assert out.masks.shape == (3, 3, 4 if init == "boxes" else 4, 16, 16)  # boxes: background + 3 boxes
    with pytest.raises(Exception):  # noqa: B017 (torch.export's guard error): T is fixed at export
        program(clip(3, t=4), extra)


def test_export_cli_of_a_zoo_video_model(tmp_path, capsys):
    """The unconditional zoo model (learned slots: the clip is the only input), at --frames 4."""
    import slotlab

    out = tmp_path / "savi.pt2"
    assert main(["export", "savi_moving_objects", "--frames", "4", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "inputs video [B, 4, 3, 32, 32] in [-1, 1]" in said and "T fixed at 4" in said
    program = torch.export.load(out).module()
    model = slotlab.load_model("savi_moving_objects").model.eval()
    video = clip(1, t=4, size=32)
    with torch.no_grad():
        want = model(video)
        assert_same(program(video), (want.recon, want.masks, want.slots, want.attn))


def test_frames_does_not_apply_to_an_image_model(tmp_path, capsys):
    assert main(["export", "tetrominoes", "--frames", "4", "--out", str(tmp_path / "t.pt2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--frames applies to models of clips" in err[0]
    assert not (tmp_path / "t.pt2").exists()


def test_points_model_takes_first_frame_points():
    spec = get_task("video").export_spec(tiny("points"), CFG, 2)
    assert spec.inputs == ["video", "points"] and spec.example[1].shape == (2, 3, 2)  # (y, x) of 3 objects
    assert spec.example[0].shape == (2, 2, 3, 16, 16)  # T = --frames 2


def test_onnx_export_of_the_conditional_zoo_model(tmp_path, capsys):
    """ONNX of SAVi (transformer predictor included) through the CLI; onnx's reference evaluator gives the eager
    model's outputs (max abs difference <= 1e-4)."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from onnx.reference import ReferenceEvaluator

    import slotlab

    path = tmp_path / "cond.onnx"
    assert main(["export", "savi_moving_objects_cond", "--format", "onnx", "--out", str(path)]) == 0
    assert "first-frame boxes [B, 5, 4]" in capsys.readouterr().out
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    assert [i.name for i in graph.graph.input] == ["video", "boxes"]
    assert [o.name for o in graph.graph.output] == ["recon", "masks", "slots", "attn"]
    video = clip(1, t=3, size=32)
    boxes = torch.tensor([[[0.1, 0.1, 0.4, 0.5], [0.5, 0.5, 0.9, 0.8], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]])
    got = ReferenceEvaluator(str(path)).run(None, {"video": video.numpy(), "boxes": boxes.numpy()})
    model = slotlab.load_model("savi_moving_objects_cond").model.eval()
    with torch.no_grad():
        want = model(video, conditioning=boxes)
    for g, w in zip(got, (want.recon, want.masks, want.slots, want.attn), strict=True):
        torch.testing.assert_close(torch.from_numpy(g), w, atol=1e-4, rtol=0)
