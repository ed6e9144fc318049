"""Tests of the CLEVR-like scene sampler and ray caster (slotlab.data.clevr_scene / clevr_render)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from slotlab.data import clevr_render as cr
from slotlab.data import clevr_scene as cs

SMALL = (120, 160)  # fast renders for the statistics tests


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Render with one intra-op thread: on a shared 2-core machine, 2 OpenMP threads can stall badly."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def clevr6():
    return cr.generate(1, 0, 160, variant="clevr6", image_size=SMALL)


@pytest.fixture(scope="module")
def clevr10():
    return cr.generate(2, 0, 100, variant="clevr10", image_size=SMALL)


@pytest.fixture(scope="module")
def clevr3():
    return cr.generate(4, 0, 120, variant="clevr3", image_size=SMALL)


@pytest.fixture(scope="module")
def full():
    return cr.generate(3, 0, 24)  # default 320x240 clevr6


def test_determinism_across_batches():
    a = cr.generate(5, 30, 4, image_size=(48, 64))  # crosses the render batch boundary at 32
    b = cr.generate(5, 26, 12, image_size=(48, 64))
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k][4:8])
    c = cr.generate(6, 30, 4, image_size=(48, 64))
    assert not np.array_equal(a["x"], c["x"])


def test_dtypes_and_shapes(full):
    n, m = 24, cr.MAX_OBJECTS["clevr6"]
    assert full["image"].shape == (n, 240, 320, 3) and full["image"].dtype == np.uint8
    assert full["mask"].shape == (n, 240, 320) and full["mask"].dtype == np.uint8
    assert full["num_objects"].dtype == np.int64
    assert full["visibility"].shape == (n, m) and full["visibility"].dtype == np.float32
    assert full["pixel_coords"].shape == (n, m, 3)
    for k in ("shape", "size", "material", "color"):
        assert full[k].dtype == np.int64 and full[k].shape == (n, m)


@pytest.mark.parametrize("name", ["clevr6", "clevr10", "clevr3"])
def test_counts_and_attributes(name, clevr6, clevr10, clevr3):
    out = {"clevr6": clevr6, "clevr10": clevr10, "clevr3": clevr3}[name]
    cfg = cr.VARIANTS[name]
    num = out["num_objects"]
    assert num.min() == cfg["min_objects"] and num.max() == cfg["max_objects"]
    present = np.arange(cfg["max_objects"])[None] < num[:, None]
    for key, codes in (("shape", 3), ("size", 2), ("material", 2), ("color", 8)):
        vals = out[key][present]
        assert set(np.unique(vals)) == set(range(1, codes + 1)), key  # all classes occur, none else
        assert (out[key][~present] == 0).all()
    # z = r: radius (cube half-size) 0.35 / 0.7 for every shape, as in real CLEVR scene files (the generator's
    # division of cubes by sqrt(2) never applies: see clevr_scene and tests/test_clevr_real.py).
    r = cs.SIZE_VALUES[out["size"][present] - 1]
    np.testing.assert_allclose(out["z"][present], r, rtol=1e-6)
    assert (np.abs(out["x"][present]) <= 3).all() and (np.abs(out["y"][present]) <= 3).all()
    assert (out["rotation"][present] >= 0).all() and (out["rotation"][present] < 360).all()
    np.testing.assert_allclose(out["color_rgb"][present], cs.COLORS[out["color"][present] - 1])


@pytest.mark.parametrize("name", ["clevr6", "clevr10"])
def test_placement_rules(name, clevr6, clevr10):
    out = clevr6 if name == "clevr6" else clevr10
    left, behind = cs.DIRECTIONS["left"][:2], cs.DIRECTIONS["behind"][:2]
    pairs = 0
    for i in range(len(out["num_objects"])):
        k = out["num_objects"][i]
        xy = np.stack([out["x"][i, :k], out["y"][i, :k]], -1).astype(np.float64)
        r = out["z"][i, :k].astype(np.float64)
        for a in range(k):
            for b in range(a + 1, k):
                d = xy[a] - xy[b]
                assert np.linalg.norm(d) - r[a] - r[b] >= cs.MIN_DIST - 1e-5
                assert abs(d @ left) >= cs.MARGIN - 1e-5 and abs(d @ behind) >= cs.MARGIN - 1e-5
                pairs += 1
    assert pairs > 300


def test_masks_and_visibility(clevr6, full):
    for out, size in ((clevr6, SMALL), (full, (240, 320))):
        mask, num = out["mask"], out["num_objects"]
        n, m = out["visibility"].shape
        present = np.arange(m)[None] < num[:, None]
        counts = np.stack([(mask == k + 1).sum(axis=(1, 2)) for k in range(m)], 1)
        np.testing.assert_array_equal(counts, out["pixel_count"])
        np.testing.assert_array_equal(out["visibility"], (counts > 0).astype(np.float32))
        threshold = 200 * size[0] * size[1] / (320 * 240)  # the generator's default: 200 pixels at 320x240
        assert (counts[present] >= threshold).all() and (counts[~present] == 0).all()
        assert (mask.reshape(n, -1).max(1) == num).all() or (mask.reshape(n, -1).max(1) <= num).all()
    # The projected object centre lies on or next to the object's own mask (at 320x240).
    hits = 0
    for i in range(len(full["num_objects"])):
        for j in range(full["num_objects"][i]):
            px, py = full["pixel_coords"][i, j, :2].astype(int)
            ys, xs = np.nonzero(full["mask"][i] == j + 1)
            hits += np.hypot(xs - px, ys - py).min() <= 3
    assert hits >= 0.9 * full["num_objects"].sum()


def test_pixel_coords_depth(clevr6):
    """pixel_coords[2] is the distance along the viewing axis (Blender's world_to_camera_view z) of the scene's
    camera, which is aimed at the origin from its jittered place."""
    out = clevr6
    for i in range(20):
        k = out["num_objects"][i]
        forward = -cs.camera_rotation(out["camera"][i].astype(np.float64))[2]
        pts = np.stack([out["x"][i, :k], out["y"][i, :k], out["z"][i, :k]], -1)
        depth = (pts - out["camera"][i]) @ forward
        np.testing.assert_allclose(out["pixel_coords"][i, :k, 2], depth, rtol=1e-5)
        assert ((out["pixel_coords"][i, :k, 2] > 6) & (out["pixel_coords"][i, :k, 2] < 17)).all()


def _linear(c: np.ndarray) -> np.ndarray:
    """sRGB values in [0, 1] -> linear."""
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def test_colours(full):
    """Colours as in real CLEVR renders (measured on 10 real scenes, rendered with their own JSON: lit rubber's
    linear colour is parallel to its base colour, median cosine 0.99, at 0.24-0.47 of its length, median 0.31;
    the ground's darkest 1 % is at 0.78-0.84 of its median: soft shadows)."""
    img = full["image"].astype(np.float32) / 255
    mask = full["mask"]
    cosines, ratios = [], []
    for i in range(len(img)):
        for j in range(full["num_objects"][i]):
            pix = img[i][mask[i] == j + 1]  # [q, 3]
            if full["material"][i, j] != 1 or len(pix) < 150:
                continue
            base = full["color_rgb"][i, j]
            lum = pix.sum(1)
            lit = _linear(pix[lum >= np.quantile(lum, 0.75)]).mean(0)  # the lit side of the object, linear
            cosines.append(lit @ base / (np.linalg.norm(lit) * np.linalg.norm(base)))
            ratios.append(np.linalg.norm(lit) / np.linalg.norm(base))
    assert len(ratios) >= 10
    assert np.median(cosines) > 0.98 and min(cosines) > 0.9, cosines
    assert 0.2 < np.median(ratios) < 0.45 and min(ratios) > 0.1 and max(ratios) < 0.7, ratios
    # Metal objects show highlights brighter than their base colour.
    bright = [
        img[i][mask[i] == j + 1].max(0).mean() - full["color_rgb"][i, j].mean()
        for i in range(len(img))
        for j in range(full["num_objects"][i])
        if full["material"][i, j] == 2 and full["shape"][i, j] == 2
    ]
    assert len(bright) > 0 and np.median(bright) > 0.2
    # Ground: near-grey, with soft shadows (darker ground pixels in every image, but not black ones).
    for i in range(len(img)):
        g = img[i][mask[i] == 0]
        assert np.abs(g[:, 0] - g[:, 2]).mean() < 0.05
        lum = g.mean(1)
        assert 0.6 * np.median(lum) < np.quantile(lum, 0.01) < 0.92 * np.median(lum)


def test_greyscale():
    a = cr.generate(4, 0, 3, image_size=SMALL)
    g = cr.generate(4, 0, 3, image_size=SMALL, greyscale=True)
    np.testing.assert_array_equal(a["mask"], g["mask"])
    gi = g["image"]
    assert (gi[..., 0] == gi[..., 1]).all() and (gi[..., 1] == gi[..., 2]).all()
    lum = a["image"].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    assert np.abs(lum - g["image"][..., 0]).max() <= 1.0


def test_scene_json(full):
    s = cr.scene_json(full, 2, split="val", image_index=12)
    json.dumps(s)
    assert s["image_filename"] == "CLEVR_val_000012.png"
    assert len(s["objects"]) == full["num_objects"][2]
    o = s["objects"][0]
    assert set(o) == {"shape", "size", "material", "color", "3d_coords", "rotation", "pixel_coords"}
    assert o["shape"] in cs.SHAPE_NAMES and o["color"] in cs.COLOR_NAMES
    assert o["size"] in cs.SIZE_NAMES and o["material"] in cs.MATERIAL_NAMES
    np.testing.assert_allclose(o["3d_coords"], [full["x"][2, 0], full["y"][2, 0], full["z"][2, 0]], rtol=1e-6)
    assert all(isinstance(v, int) for v in o["pixel_coords"][:2])
    assert set(s["directions"]) == {"left", "right", "front", "behind", "above", "below"}
    all_scenes = cr.scenes_json(full, start=100)
    assert len(all_scenes) == 24 and all_scenes[3]["image_index"] == 103
    assert all_scenes[2]["objects"] == s["objects"]


def test_preprocess(full):
    x = cr.preprocess_clevr(full["image"][:4])
    assert x.shape == (4, 3, 128, 128) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    ref = torch.from_numpy(full["image"][:4, 29:221, 64:256]).permute(0, 3, 1, 2).float() / 127.5 - 1
    ref = torch.nn.functional.interpolate(ref, size=(128, 128), mode="bilinear", align_corners=False)
    torch.testing.assert_close(x, ref)
    assert cr.preprocess_clevr(full["image"][:2], crop=False, size=64).shape == (2, 3, 64, 64)
    mk = cr.preprocess_clevr_mask(full["mask"][:4])
    assert mk.shape == (4, 128, 128) and mk.dtype == torch.uint8
    crop = full["mask"][:4, 29:221, 64:256]
    src = (np.arange(128) * 1.5).astype(int)  # nearest: floor(dst * in / out)
    np.testing.assert_array_equal(mk.numpy(), crop[:, src][:, :, src])
    const = np.full((1, 240, 320, 3), 255, np.uint8)
    torch.testing.assert_close(cr.preprocess_clevr(const), torch.ones(1, 3, 128, 128))


def test_render_geometry_single_sphere():
    """A hand-made scene: one large rubber sphere at the origin, camera without jitter."""
    scene = {
        "camera": cs.CAMERA_LOCATION.copy(),
        "lights": cs.LIGHT_LOCATIONS.copy(),
        "num": 1,
        "objects": {
            "x": np.array([0.0]),
            "y": np.array([0.0]),
            "z": np.array([0.7]),
            "r": np.array([0.7]),
            "rotation": np.array([0.0]),
            "shape": np.array([2]),
            "size": np.array([2]),
            "material": np.array([1]),
            "color": np.array([5]),
        },
    }
    grid = cr._Grid(240, 320)
    batch = cr._Batch([scene], 1)
    depth, label = cr._primary(batch, grid)
    lab = grid.to_image(label[..., None])[0, ..., 0]
    ys, xs = np.nonzero(lab.numpy())
    # The sphere is centred in the image (the camera looks at the origin; its centre is 0.7 above it).
    px, py, dep = cr.project(np.array([[0.0, 0.0, 0.7]]), scene["camera"], (240, 320))
    assert abs(xs.mean() - px.item()) < 1.5 and abs(ys.mean() - py.item()) < 1.5
    # Projected radius ~ f * r / distance (f = 35 / 32 * 320 px).
    dist = np.linalg.norm(scene["camera"] - np.array([0, 0, 0.7]))
    radius = 350.0 * 0.7 / dist
    assert abs(np.sqrt(len(xs) / np.pi) - radius) < 0.06 * radius
    # Depth of the nearest hit = distance - r.
    assert abs(depth[label > 0].min().item() - (dist - 0.7)) < 0.02
