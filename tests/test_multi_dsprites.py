"""Tests of the procedural Multi-dSprites generator (slotlab.data.multi_dsprites)."""

from __future__ import annotations

import numpy as np
import pytest

from slotlab.data import multi_dsprites as md

N = 400  # samples for the statistics tests


@pytest.fixture(scope="module", params=list(md.VARIANTS))
def sample(request):
    return request.param, md.generate(7, 0, N, variant=request.param)


def test_chunk_determinism():
    a = md.generate(3, 250, 12)  # crosses the chunk boundary at 256
    b = md.generate(3, 240, 40)
    c = md.generate(3, 0, 300)
    assert set(a) == set(c)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k][10:22])
        np.testing.assert_array_equal(a[k], c[k][250:262])
    d = md.generate(4, 250, 12)
    assert not np.array_equal(a["image"], d["image"])
    e = md.generate(3, 250, 12, variant="binarized")
    assert not np.array_equal(a["mask"], e["mask"])
    assert md.generate(3, 5, 0)["image"].shape == (0, 64, 64, 3)


def test_shapes_and_dtypes(sample):
    variant, out = sample
    m = md.VARIANTS[variant]["max_objects"]
    assert m == md.MAX_OBJECTS[variant] == md.VARIANTS[variant]["num_entities"] - 1
    assert out["image"].shape == (N, 64, 64, 3) and out["image"].dtype == np.uint8
    assert out["mask"].shape == (N, 64, 64) and out["mask"].dtype == np.uint8
    assert out["num_objects"].dtype == np.int64 and out["num_objects"].shape == (N,)
    assert out["visibility"].shape == (N, m) and out["visibility"].dtype == np.float32
    for k in ("x", "y", "scale", "orientation"):
        assert out[k].shape == (N, m) and out[k].dtype == np.float32
    assert out["shape"].shape == (N, m) and out["shape"].dtype == np.int64
    assert out["color"].shape == (N, m, 3)


def test_counts_and_latents(sample):
    variant, out = sample
    cfg = md.VARIANTS[variant]
    num = out["num_objects"]
    assert num.min() == cfg["min_objects"] and num.max() == cfg["max_objects"]  # whole range is used
    present = np.arange(cfg["max_objects"])[None] < num[:, None]
    assert np.isin(out["shape"][present], [1, 2, 3]).all()
    assert set(np.unique(out["shape"][present])) == {1, 2, 3}
    assert np.isin(out["scale"][present], md.SCALES.astype(np.float32)).all()
    assert np.isin(out["orientation"][present], md.ORIENTATIONS.astype(np.float32)).all()
    assert np.isin(out["x"][present], md.POSITIONS.astype(np.float32)).all()
    assert np.isin(out["y"][present], md.POSITIONS.astype(np.float32)).all()
    for k in ("shape", "scale", "orientation", "x", "y", "visibility"):
        assert (out[k][~present] == 0).all(), k
    assert (out["color"][~present] == 0).all()


def test_mask_consistency(sample):
    _, out = sample
    mask, num, vis = out["mask"], out["num_objects"], out["visibility"]
    assert (mask.reshape(N, -1).max(1) <= num).all()
    for k in range(vis.shape[1]):
        np.testing.assert_array_equal(vis[:, k], (mask == k + 1).any(axis=(1, 2)).astype(np.float32))
    assert vis.sum() > 0.9 * num.sum()  # full occlusion is rare
    assert ((mask == 0).mean(axis=(1, 2)) > 0.3).all()  # there is always background


def test_colours(sample):
    variant, out = sample
    img, mask = out["image"], out["mask"]
    n_idx = np.arange(N)[:, None, None]
    palette = np.concatenate([out["background_color"][:, None], out["color"]], 1)  # [N, M + 1, 3]
    expected = np.round(palette[n_idx, mask] * 255).astype(np.uint8)
    np.testing.assert_array_equal(img, expected)  # flat colours: each pixel = its entity's colour
    bg = img[mask == 0]
    fg = img[mask > 0]
    if variant == "binarized":
        assert (bg == 0).all() and (fg == 255).all()
        assert (out["color"][out["shape"] > 0] == 1).all()
    else:
        hsv_s = 1 - fg.min(-1) / np.maximum(fg.max(-1), 1)
        assert hsv_s.min() >= 0.5 - 0.02 and fg.max(-1).min() >= 0.5 * 255 - 1
        if variant == "colored_on_grayscale":
            assert (bg[:, 0] == bg[:, 1]).all() and (bg[:, 1] == bg[:, 2]).all()
            assert np.ptp(out["background_color"][:, 0]) > 0.8  # random grey levels
        else:
            assert (bg.max(-1) - bg.min(-1)).mean() > 40  # coloured background


def test_occlusion_order_and_areas():
    out = md.generate(11, 0, 300, variant="colored_on_colored")
    lat = {k: out[k] for k in ("x", "y", "shape", "scale", "orientation")}
    for k in range(4):
        cover = md._inside(lat, k, (64, 64))  # [N, 64, 64]
        has = out["num_objects"] > k
        # Later sprites are painted on top: pixels covered by sprite k carry a label >= k + 1.
        assert (out["mask"][cover & has[:, None, None]] >= k + 1).all()
    # Single, unclipped sprites: area close to the analytic area (size 0.3 * scale * 64 px).
    single = np.flatnonzero(out["num_objects"] == 1)
    cx = md.POS_OFFSET + md.POS_RANGE * out["x"][single, 0]
    cy = md.POS_OFFSET + md.POS_RANGE * out["y"][single, 0]
    inner = (np.minimum(cx, cy) > 0.25) & (np.maximum(cx, cy) < 0.75)
    assert inner.sum() >= 10
    for i in single[inner]:
        s = md.SPRITE_SIZE * 64 * out["scale"][i, 0]
        area = (out["mask"][i] == 1).sum()
        expected = {1: s * s, 2: np.pi * 0.5 * 0.25 * s * s, 3: None}[out["shape"][i, 0]]
        if expected is not None:
            assert abs(area - expected) < 0.12 * expected + 4, (out["shape"][i, 0], area, expected)
        else:  # heart: between the inscribed ellipse and the square
            assert 0.5 * s * s < area < 1.0 * s * s


def test_bad_arguments():
    with pytest.raises(ValueError):
        md.generate(0, 0, 1, variant="nope")
    with pytest.raises(ValueError):
        md.generate(0, -1, 1)
