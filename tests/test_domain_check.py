"""``slotlab segment`` reports each image's reconstruction error against the model's held-out error (stored in
the zoo card under ``domain``) and warns when the image is far outside the training images (issue 25 item 5)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from slotlab.cli import main
from slotlab.data.splits import generate_split
from slotlab.inference.domain import FAR_FACTOR, DomainReference, reference_of, verdict
from slotlab.zoo import get_model


def test_the_rule():
    ref = DomainReference(median=0.01, p95=0.02, num_images=320)
    assert ref.threshold == FAR_FACTOR * 0.02
    assert verdict(0.05, ref)[0] is False and verdict(0.07, ref)[0] is True
    assert "no held-out reference" in verdict(0.5, None)[1] and verdict(0.5, None)[0] is False


def test_zoo_cards_of_object_discovery_hold_a_reference():
    ref = reference_of(get_model("tetrominoes").card)
    assert ref is not None and ref.num_images == 320 and 0 < ref.median <= ref.p95 < 0.05


def test_segment_warns_on_a_photo_not_on_a_test_image(tmp_path, capsys):
    Image.fromarray(generate_split("tetrominoes", "test", 1)["image"][0]).save(tmp_path / "in.png")
    y, x = np.mgrid[0:240, 0:320]
    rng = np.random.default_rng(0)
    photo = np.stack([x / 320 * 255, y / 240 * 255, 128 + 60 * np.sin(x / 15)], -1) + rng.normal(0, 20, (240, 320, 3))
    Image.fromarray(photo.clip(0, 255).astype(np.uint8)).save(tmp_path / "photo.png")
    argv = ["segment", str(tmp_path / "in.png"), str(tmp_path / "photo.png"), "--model", "tetrominoes"]
    assert main([*argv, "--out", str(tmp_path / "seg")]) == 0
    out, err = capsys.readouterr()
    assert "in.png: reconstruction MSE" in out and "in.png" not in err
    assert "warning: " in err and "photo.png: reconstruction MSE" in err and "far outside" in err
