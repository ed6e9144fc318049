"""slotlab.data.clevr_compare: image statistics, reading a folder of real renders, the same-scene comparison."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slotlab.data import clevr_compare as cc
from slotlab.data import clevr_render as cr
from slotlab.data.errors import DatasetFileError

FIXTURE = Path(__file__).parent / "fixtures" / "clevr_real" / "CLEVR_val_scenes.json"


def test_stats_of_known_images():
    grey = np.full((2, 20, 30, 3), 100, np.uint8)
    st = cc.image_stats(grey)
    assert st["std_all"] == 0 and st["chroma"] == 0 and st["edge_density"] == 0 and st["gradient"] == 0
    assert st["luma_top"] == pytest.approx(100.0, abs=1e-3) and cc.hist_distance(st, st) == 0
    red = np.zeros((1, 20, 30, 3), np.uint8)
    red[..., 0] = 200
    sr = cc.image_stats(red)
    assert sr["chroma"] == 200 and sr["saturation"] == pytest.approx(100.0)
    assert cc.hist_distance(st, sr) == pytest.approx(1.0)  # disjoint colours
    half = grey.copy()
    half[:, :, 15:] = 200  # one vertical step of 100 levels
    sh = cc.image_stats(half)
    assert sh["edge_density"] > 0 and sh["luma_bottom"] == pytest.approx(sh["luma_top"])
    rows = cc.stats_rows(st, sh)
    assert rows[0] == ("images", "2", "2") and "|" in cc.markdown_table(rows, ("a", "b", "c"))


def test_read_real_png_folder(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((12, 16, 4), 50 * i, np.uint8)).save(tmp_path / f"x{i}.png")
    images, scenes = cc.read_real(tmp_path)
    assert images.shape == (3, 12, 16, 3) and scenes is None
    assert cc.read_real(tmp_path, num=2)[0].shape[0] == 2


@pytest.mark.parametrize("case", ["missing", "empty", "sizes", "broken"])
def test_read_real_refuses(tmp_path, case):
    folder = tmp_path / "real"
    if case != "missing":
        folder.mkdir()
    if case == "sizes":
        Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(folder / "a.png")
        Image.fromarray(np.zeros((10, 16, 3), np.uint8)).save(folder / "b.png")
    if case == "broken":
        (folder / "a.png").write_bytes(b"not a png")
    with pytest.raises(DatasetFileError, match=str(folder.name)):
        cc.read_real(folder)


def test_same_scene_render_of_a_real_scene(tmp_path):
    """A real scene's JSON, read from a CLEVR v1.0 folder, renders with every object where its pixel_coords say."""
    scene = json.loads(FIXTURE.read_text())["scenes"][0]
    root = tmp_path / "CLEVR_v1.0"
    (root / "images" / "val").mkdir(parents=True)
    (root / "scenes").mkdir()
    (root / "scenes" / "CLEVR_val_scenes.json").write_text(json.dumps({"scenes": [scene]}))
    Image.fromarray(np.full((240, 320, 3), 120, np.uint8)).save(root / "images" / "val" / scene["image_filename"])
    real, scenes = cc.read_real(tmp_path)
    mine = cc.scene_from_json(scenes[0], (240, 320))
    out = cr.render_scenes([mine])
    for j, o in enumerate(scene["objects"]):
        x, y = o["pixel_coords"][:2]
        assert out["mask"][0, y, x] == j + 1
    err = cc.pixel_errors(real, out["image"], out["mask"])
    assert set(err) >= {"mae", "mae_ground", "mae_objects"} and err["mae"] > 0
    pic = cc.side_by_side([real, out["image"]], gap=4)
    assert pic.shape == (240, 644, 3)
