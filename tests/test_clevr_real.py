"""The built-in CLEVR renderer against the real generator: scene facts from real CLEVR scene files (fixture),
image statistics measured on real renders, and the looks the renderer must have (soft shadows, anti-aliased
edges, metal reflecting other objects)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from slotlab.data import clevr_compare as cc
from slotlab.data import clevr_render as cr
from slotlab.data import clevr_scene as cs
from slotlab.data import clevr_shading as sh

FIXTURE = Path(__file__).parent / "fixtures" / "clevr_real" / "CLEVR_val_scenes.json"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def real_scenes():
    return json.loads(FIXTURE.read_text())["scenes"]


def test_directions_are_clevrs(real_scenes):
    for name, vec in real_scenes[0]["directions"].items():
        np.testing.assert_allclose(cs.DIRECTIONS[name], vec, atol=1e-5)


def test_camera_model_reproduces_pixel_coords(real_scenes):
    """Aimed at the origin from (7.48, -6.51, 5.34) + U(-0.5, 0.5)^3: every real scene's object centres are
    reproduced to their rounding, by a jitter inside the generator's range."""
    for s in real_scenes:
        cam, rms = cc.fit_camera(s["objects"], (240, 320))
        assert rms < 0.5, rms
        assert np.abs(cam - cs.CAMERA_LOCATION).max() < 0.5 + 0.02, cam
        px, py, depth = cr.project(np.array([o["3d_coords"] for o in s["objects"]]), cam, (240, 320))
        np.testing.assert_allclose(depth.numpy(), [o["pixel_coords"][2] for o in s["objects"]], atol=0.02)


def test_sizes_are_clevrs(real_scenes):
    """z = r = 0.35 / 0.7 for every shape, cubes included (as in the real scene files)."""
    objs = [o for s in real_scenes for o in s["objects"]]
    assert any(o["shape"] == "cube" for o in objs)
    for o in objs:
        shape = np.array([cs.SHAPE_NAMES.index(o["shape"]) + 1])
        size = np.array([cs.SIZE_NAMES.index(o["size"]) + 1])
        assert abs(o["3d_coords"][2] - cs.object_radius(shape, size)[0]) < 1e-6
    out = cs.sample_objects(np.random.default_rng(0), 10)
    np.testing.assert_allclose(out["z"], cs.SIZE_VALUES[out["size"] - 1])


@pytest.fixture(scope="module")
def renders():
    return cr.generate(11, 0, 12, variant="clevr10")


def test_image_statistics_near_real(renders):
    """Real CLEVR renders (10 dev scenes, 320x240) measure: std of all values 22.8, chroma 9.0, luminance of the
    top / bottom tenth of the rows 104.8 / 140.7, mean Sobel gradient 1.19. The renderer before this test was
    written measured 40.9, 17.1, 71.7 / 168.1, 1.66."""
    st = cc.image_stats(renders["image"])
    assert 17.0 < st["std_all"] < 30.0, st["std_all"]
    assert st["chroma"] < 13.0, st["chroma"]
    assert 92.0 < st["luma_top"] < 118.0, st["luma_top"]
    assert 125.0 < st["luma_bottom"] < 158.0, st["luma_bottom"]
    assert st["luma_bottom"] - st["luma_top"] > 15.0
    assert 0.8 < st["gradient"] < 1.6, st["gradient"]


def _one(objects: list[dict], camera=None) -> dict:
    keys = ("x", "y", "z", "r", "rotation", "shape", "size", "material", "color")
    return {
        "camera": cs.CAMERA_LOCATION.copy() if camera is None else camera,
        "lights": cs.LIGHT_LOCATIONS.copy(),
        "objects": {k: np.array([o[k] for o in objects]) for k in keys},
    }


def _obj(x, y, size=2, shape=2, material=1, color=1, rotation=0.0) -> dict:
    r = cs.SIZE_VALUES[size - 1]
    return {"x": x, "y": y, "z": r, "r": r, "rotation": rotation, "shape": shape, "size": size,
            "material": material, "color": color}  # fmt: skip


def test_soft_shadows():
    """A large sphere's shadows on the ground fade over pixels, not at one pixel's step (a hard shadow has no
    visibility strictly between 0 and 1)."""
    scene = _one([_obj(0.0, 0.0)])
    grid = cr.Grid(240, 320)
    batch = cr.Batch([scene], 1)
    dirs = batch.dirs(grid)
    depth, label = cr.primary(batch, grid, dirs)
    pts = batch.camera[:, None] + depth[..., None] * dirs
    origin = pts.reshape(-1, 3).clone()
    origin[:, 2] = 1e-3
    vis = sh.soft_shadows(batch, grid, torch.zeros_like(label), origin, sh.PARAMS)  # [L, P]
    ground = label.reshape(-1) == 0
    for li in range(3):
        v = vis[li][ground]
        assert (v < 0.05).sum() > 50  # an umbra
        assert ((v > 0.1) & (v < 0.9)).sum() > max(150, 0.25 * (v < 0.05).sum())  # and a penumbra around it


def test_antialiased_edges():
    """Silhouette pixels mix object and ground: their colours lie between the two, unlike a one-ray render."""
    scene = _one([_obj(0.0, 0.0, color=5)])  # red
    out = cr.render_scenes([scene])
    img, mask = out["image"][0].astype(np.float32), out["mask"][0]
    red = img[..., 0] - img[..., 2]
    inside = red[mask == 1]
    ground = red[mask == 0]
    border = (mask == 0) & (np.roll(mask, 1, 0) == 1)  # ground just below an object pixel
    mixed = red[border]
    assert np.median(ground) + 5 < np.median(mixed) < np.median(inside) - 5


def test_metal_reflects_other_objects():
    """A grey metal sphere next to a large red cube shows red where it faces the cube."""
    sphere = _obj(0.0, 0.0, material=2, color=1)
    alone = cr.render_scenes([_one([sphere])])
    with_cube = cr.render_scenes([_one([sphere, _obj(-1.2, 1.2, shape=1, color=5)])])

    def redness(out):
        img = out["image"][0].astype(np.float32)
        pix = img[out["mask"][0] == 1]
        return (pix[:, 0] - pix[:, 2]).max()

    assert redness(with_cube) > redness(alone) + 20


def test_renderer_version_covers_its_modules():
    """The cache key of rendered data hashes every module the renderer runs."""
    import sys

    from slotlab.data import shards

    shards.renderer_version()
    used = {n for n, mod in sys.modules.items() if n.startswith("slotlab.data.clevr_") and mod is not None}
    rendered = {m.__name__ for m in shards.renderer_modules()}
    needed = {"slotlab.data.clevr_render", "slotlab.data.clevr_scene", "slotlab.data.clevr_geometry",
              "slotlab.data.clevr_shading"}  # fmt: skip
    assert needed <= rendered
    for name in used - rendered:
        # readers and the compare report: they read images, they do not render them
        assert name in ("slotlab.data.clevr_compare", "slotlab.data.clevr_compare_report",
                        "slotlab.data.clevr_folder"), name  # fmt: skip
