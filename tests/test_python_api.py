"""The Python API for trained models (``slotlab.load_model``): the README's example run verbatim, the input
conventions of ``preprocess`` (PIL / uint8 / float [0, 1], channels first or last, any size), [0, 1] tensors
given straight to the model, ``save_pretrained`` round trips, and ``torch.export`` / ``slotlab export``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import slotlab
from slotlab.cli import main
from slotlab.inference.api import ImageInputError
from slotlab.inference.export import exportable

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs_verbatim_and_prints_fg_ari(tmp_path):
    code = readme_example()
    assert "slotlab.load_model(" in code and len(code.strip().splitlines()) <= 5
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    m = re.search(r"FG-ARI (\d\.\d+), masks \(16, 4, 35, 35\)", r.stdout)
    assert m and float(m.group(1)) > 0.9, r.stdout  # the zoo model on 16 test images


@pytest.fixture(scope="module")
def model():
    return slotlab.load_model("tetrominoes")


@pytest.fixture(scope="module")
def data():
    return slotlab.load_images("tetrominoes", num=4, split="test")


def test_preprocess_accepts_every_image_convention(model, data):
    images, _ = data  # uint8 [4, 35, 35, 3]
    ref = model.preprocess(images)
    assert ref.shape == (4, 3, 35, 35) and ref.dtype == torch.float32
    assert float(ref.min()) >= -1 and float(ref.max()) <= 1
    same = [
        model.preprocess(images.astype(np.float32) / 255),  # floats in [0, 1]
        model.preprocess(torch.from_numpy(images).permute(0, 3, 1, 2)),  # uint8 channels first
        model.preprocess([Image.fromarray(im) for im in images]),  # PIL images
        model.preprocess(list(images)),  # a list of arrays
    ]
    for x in same:
        torch.testing.assert_close(x, ref, atol=1 / 127.5, rtol=0)
    one = model.preprocess(Image.fromarray(images[0]))  # one image -> a batch of one
    torch.testing.assert_close(one, ref[:1])
    big = Image.fromarray(images[0]).resize((140, 105))  # another size and aspect: centred crop, then resize
    assert model.preprocess(big).shape == (1, 3, 35, 35)
    mixed = model.preprocess([Image.fromarray(images[0]), big, Image.fromarray(images[1])])  # sizes mixed
    assert mixed.shape == (3, 3, 35, 35)
    torch.testing.assert_close(mixed[2], ref[1])


def test_bad_images_are_named(model):
    for bad, words in (
        (np.full((2, 35, 35, 3), 2.0, np.float32), "must be in [0, 1]"),
        (np.zeros((2, 35, 35, 5), np.uint8), "channels"),
        ([], "empty"),
        ("photo.png", "expected a PIL image"),
        (np.zeros((0, 35, 35, 3), np.uint8), "empty"),
        (np.full((1, 35, 35, 3), np.nan, np.float32), "NaN"),
    ):
        with pytest.raises(ImageInputError, match=re.escape(words)):
            model.preprocess(bad)


def test_forward_segment_and_the_zero_one_warning(model, data):
    images, masks = data
    x = model.preprocess(images)
    out = model(x)
    assert out.slots.shape == (4, 4, 64) and out.masks.shape == (4, 4, 35, 35)
    assert out.recon.shape == (4, 3, 35, 35) and out.recons.shape == (4, 4, 3, 35, 35)
    assert out.attn.shape[:3] == (4, 3, 4)
    torch.testing.assert_close(out.masks.sum(1), torch.ones(4, 35, 35))
    torch.testing.assert_close(model(images).masks, out.masks)  # raw images are prepared by forward
    assert torch.equal(model.segment(x), out.masks.argmax(1))
    assert float(slotlab.fg_ari(masks, out.masks).mean()) > 0.8
    # the classic mistake, a float tensor in [0, 1] at the model's size, is taken as [0, 1] images and rescaled
    torch.testing.assert_close(model((x + 1) / 2).masks, out.masks, atol=1e-5, rtol=0)


def test_save_pretrained_round_trip(model, data, tmp_path):
    folder = model.save_pretrained(tmp_path / "mine")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    again = slotlab.load_model(folder)
    x = model.preprocess(data[0])
    torch.testing.assert_close(again(x).masks, model(x).masks, atol=0, rtol=0)


def test_hub_ids_need_the_extra_or_say_so(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_hub(name, *a, **k):
        if name.startswith("huggingface_hub"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_hub)
    with pytest.raises(slotlab.inference.checkpoint_io.CheckpointError, match=r"slotlab\[hf\]"):
        slotlab.load_model("someone/some-model")


def test_torch_export_of_object_discovery(model, data):
    module, example, dynamic = exportable(model)
    program = torch.export.export(module, example, dynamic_shapes=dynamic)
    x = model.preprocess(data[0])  # batch 4: another size than the example's 2
    noise = torch.randn(4, 4, 64)
    got, want = program.module()(x, noise), module(x, noise)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)  # fp32, other op order


def test_export_cli_writes_and_never_replaces(tmp_path, capsys):
    out = tmp_path / "t.pt2"
    assert main(["export", "tetrominoes", "--out", str(out)]) == 0
    assert out.stat().st_size > 100_000 and "wrote" in capsys.readouterr().out
    program = torch.export.load(str(out))
    assert len(program.module()(torch.zeros(3, 3, 35, 35), torch.zeros(3, 4, 64))) == 4
    assert main(["export", "tetrominoes", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_onnx_export(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    out = tmp_path / "t.onnx"
    assert main(["export", "tetrominoes", "--format", "onnx", "--out", str(out)]) == 0
    onnx.checker.check_model(onnx.load(str(out)))
