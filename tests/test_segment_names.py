"""`slotlab segment` never replaces files: two inputs with one file name get their own outputs (``img``, ``img_2``),
and a later call into the same folder numbers its outputs after the files already there (slotlab.segment.unique_stems).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from slotlab.cli import main
from slotlab.segment import unique_stems


def test_unique_stems_within_a_call_and_against_the_folder(tmp_path):
    assert unique_stems(["a/img.png", "b/img.png", "img.jpg"]) == ["img", "img_2", "img_3"]
    (tmp_path / "img_masks.npz").write_bytes(b"")  # an earlier call's output (any of its files)
    (tmp_path / "x[1]_figure.svg").write_bytes(b"")  # glob characters in a name are names, not patterns
    (tmp_path / "other_figure.png").write_bytes(b"")
    assert unique_stems(["a/img.png", "b/img.png", "x[1].png", "x1.png"], tmp_path) == [
        "img_2",
        "img_3",
        "x[1]_2",
        "x1",
    ]


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_segment_keeps_every_output(tmp_path, tiny_od_run, capsys):
    rng = np.random.default_rng(0)
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        Image.fromarray(rng.integers(0, 256, (35, 35, 3), dtype=np.uint8)).save(tmp_path / sub / "img.png")
    out = tmp_path / "out"
    model = ["--model", str(tiny_od_run), "--out", str(out)]
    assert main(["segment", str(tmp_path / "a" / "img.png"), str(tmp_path / "b" / "img.png"), *model]) == 0
    first_call = files(out)
    a, b = np.load(out / "img_masks.npz"), np.load(out / "img_2_masks.npz")
    assert not np.array_equal(a["image"], b["image"])  # two images, two outputs
    assert np.array_equal(a["image"], np.asarray(Image.open(tmp_path / "a" / "img.png")))
    capsys.readouterr()
    assert main(["segment", str(tmp_path / "b" / "img.png"), *model]) == 0  # a second call into the same folder
    assert f"note: {tmp_path / 'b' / 'img.png'}: writing img_3_*" in capsys.readouterr().out
    later = files(out)
    assert {k: later[k] for k in first_call} == first_call  # the first call's files untouched
    assert sorted(set(later) - set(first_call)) == ["img_3_figure.png", "img_3_masks.npz", "img_3_masks.png"]


def test_segment_set_evaluation_keys(tmp_path, tiny_od_run, capsys):
    """``--set`` segments with keys that act at evaluation only (T at test time here) and refuses others."""
    Image.fromarray(np.zeros((35, 35, 3), np.uint8)).save(tmp_path / "img.png")
    model = ["--model", str(tiny_od_run), "--out", str(tmp_path / "out")]
    assert main(["segment", str(tmp_path / "img.png"), *model, "--set", "model.eval_iters=2"]) == 0
    assert " T=2 -> " in capsys.readouterr().out
    assert main(["segment", str(tmp_path / "img.png"), *model, "--set", "model.iters=2"]) == 2
    assert "only keys that act at evaluation" in capsys.readouterr().err
