"""The moving-object video generator: its contract, determinism per (seed, index), and ground truth that agrees
with the pixels (boxes from the masks, flow from the motion, occlusion, objects entering and leaving)."""

import numpy as np
import pytest

from slotlab.data import moving_objects as mo


@pytest.fixture(scope="module")
def videos():
    return mo.generate(seed=1, start=0, count=48, image_size=32)


def test_contract_shapes_and_dtypes(videos):
    n, t, s, m = 48, mo.NUM_FRAMES, 32, mo.MAX_OBJECTS
    want = {
        "video": ((n, t, s, s, 3), np.uint8), "mask": ((n, t, s, s), np.uint8),
        "boxes": ((n, t, m, 4), np.float32), "visible": ((n, t, m), np.bool_), "centers": ((n, t, m, 2), np.float32),
        "flow": ((n, t, s, s, 2), np.float32), "backward_flow": ((n, t, s, s, 2), np.float32),
        "num_objects": ((n,), np.int64), "shape": ((n, m), np.int64),
        "size": ((n, m), np.float32), "color": ((n, m, 3), np.float32), "velocity": ((n, m, 2), np.float32),
        "background": ((n, 3), np.float32),
    }  # fmt: skip
    assert {k: (v.shape, v.dtype) for k, v in videos.items()} == want
    other = mo.generate(0, 5, 3, num_frames=4, image_size=20, min_objects=1, max_objects=7)
    assert other["video"].shape == (3, 4, 20, 20, 3) and other["boxes"].shape == (3, 4, 7, 4)
    assert {k: v.shape[0] for k, v in mo.generate(0, 3, 0).items()} == dict.fromkeys(want, 0)


def test_deterministic_per_seed_and_index():
    a = mo.generate(7, mo.CHUNK - 3, 6, image_size=16)  # across a chunk boundary
    b = mo.generate(7, mo.CHUNK - 1, 2, image_size=16)
    c = mo.generate(7, mo.CHUNK - 3, 6, image_size=16)
    for k in a:
        np.testing.assert_array_equal(a[k][2:4], b[k], err_msg=k)
        np.testing.assert_array_equal(a[k], c[k], err_msg=k)
    assert not np.array_equal(a["video"], mo.generate(8, mo.CHUNK - 3, 6, image_size=16)["video"])
    big = mo.generate(7, mo.CHUNK - 3, 6, image_size=48)  # the same scenes at another resolution
    for k in ("centers", "color", "shape", "num_objects", "velocity"):
        np.testing.assert_array_equal(big[k], a[k], err_msg=k)


def test_masks_ids_and_colours(videos):
    mask, video = videos["mask"], videos["video"]
    num = videos["num_objects"]
    assert (mask.reshape(len(mask), -1).max(axis=1) <= num).all()
    assert ((videos["shape"] > 0) == (np.arange(mo.MAX_OBJECTS) < num[:, None])).all()
    colour = np.round(videos["color"] * 255).astype(np.uint8)  # [n, M, 3]
    for k in range(mo.MAX_OBJECTS):  # an object's pixels have its colour in every frame: ids are stable
        i, *_ = np.nonzero(mask == k + 1)
        np.testing.assert_array_equal(video[mask == k + 1], colour[i, k])
    for i in range(len(num)):  # distinct colours within a video
        assert len({tuple(c) for c in colour[i, : num[i]]}) == num[i]


def test_boxes_and_visibility_match_the_masks(videos):
    mask, boxes, visible = videos["mask"], videos["boxes"], videos["visible"]
    n, t, h, w = mask.shape
    for i in range(n):
        for f in range(t):
            for k in range(mo.MAX_OBJECTS):
                rows, cols = np.nonzero(mask[i, f] == k + 1)
                assert visible[i, f, k] == (len(rows) > 0)
                want = (
                    [rows.min() / h, cols.min() / w, (rows.max() + 1) / h, (cols.max() + 1) / w]
                    if len(rows)
                    else [0] * 4
                )
                np.testing.assert_allclose(boxes[i, f, k], want, rtol=0, atol=1e-7)


def test_flow_is_the_motion_to_the_next_frame(videos):
    mask, flow, centers = videos["mask"], videos["flow"], videos["centers"]
    h, w = mask.shape[2:]
    step = (centers[:, 1:] - centers[:, :-1]) * np.array([h, w], np.float32)  # [n, T - 1, M, 2] pixels
    n, t = mask.shape[:2]
    for i in range(n):
        for f in range(t - 1):
            fg = mask[i, f] > 0
            np.testing.assert_allclose(flow[i, f][fg], step[i, f, mask[i, f][fg] - 1], atol=1e-4)
            assert (flow[i, f][~fg] == 0).all()  # static background
    assert (flow[:, -1] == 0).all()  # no next frame
    # constant velocity (no bounce): centres move on straight lines at the drawn velocity
    line = centers[:, :1] + np.arange(t)[None, :, None, None] * videos["velocity"][:, None]  # [n, T, M, 2]
    np.testing.assert_allclose(centers, line, atol=1e-5)


def test_backward_flow_is_the_motion_from_the_previous_frame_in_every_frame(videos):
    """Backward flow (SAVi's target on MOVi) at an object's pixel: its displacement to the previous frame, from the
    centres; in frame 0 too (constant velocity: the sprite was one velocity step back), and in bounced videos."""
    for v, bounce in ((videos, False), (mo.generate(seed=2, start=0, count=24, image_size=32, bounce=True), True)):
        mask, back, centers = v["mask"], v["backward_flow"], v["centers"].astype(np.float64)
        n, t, h, w = mask.shape
        before = centers[:, :1] - v["velocity"][:, None]  # [n, 1, M, 2] frame -1 on the straight line
        if bounce:  # reflected into [size, 1 - size] like the centres (a triangle wave)
            lo = v["size"][:, None, :, None].astype(np.float64)
            span = 1 - 2 * lo
            y = np.mod(before - lo, 2 * span)
            before = lo + span - np.abs(y - span)
        step = (np.concatenate([before, centers[:, :-1]], axis=1) - centers) * np.array([h, w])  # [n, T, M, 2]
        moving = 0
        for i in range(n):
            for f in range(t):
                fg = mask[i, f] > 0
                np.testing.assert_allclose(back[i, f][fg], step[i, f, mask[i, f][fg] - 1], atol=2e-4)
                assert (back[i, f][~fg] == 0).all()  # static background
                moving += int(fg.any() and (np.abs(back[i, f][fg]) > 0.1).any())
        assert moving == (mask > 0).any(axis=(2, 3)).sum()  # every frame with an object has motion, frame 0 too


def full_coverage(videos, size):
    """[n, T, M, H, W]: each object's pixels as if nothing occluded it (the generator's own rasteriser)."""
    n, t, m = videos["centers"].shape[:3]
    cov = [mo._coverage(videos["shape"][:, k], videos["size"][:, k], videos["centers"][:, :, k].astype(np.float64),
                        (size, size)) for k in range(m)]  # fmt: skip
    return np.stack(cov, axis=2)


def test_objects_occlude_enter_and_leave(videos):
    cov = full_coverage(videos, 32)  # [n, T, M, H, W]
    own = videos["mask"][:, :, None] == np.arange(1, mo.MAX_OBJECTS + 1)[None, None, :, None, None]
    assert (own <= cov).all()  # visible pixels are the object's own
    hidden = (cov & ~own).sum(axis=(3, 4))  # [n, T, M] pixels of an object covered by nearer ones
    assert (hidden > 0).mean() > 0.05  # occlusion is common
    mask = videos["mask"]
    for i in range(len(mask)):  # a fixed depth order: where two objects overlap, the same one is on top throughout
        for a in range(mo.MAX_OBJECTS):
            for b in range(a):
                on_top = set(np.unique(mask[i][cov[i, :, a] & cov[i, :, b]])) & {a + 1, b + 1}
                assert len(on_top) <= 1, (i, a, b, on_top)
    vis = videos["visible"]
    entered = (~vis[:, :-1] & vis[:, 1:]).any(axis=1)  # [n, M]
    left = (vis[:, :-1] & ~vis[:, 1:]).any(axis=1)
    assert entered.sum() >= 3 and left.sum() >= 3
    assert not vis[:, 0][videos["shape"] > 0].all()  # some objects are not in the first frame


def test_bounce_keeps_objects_inside():
    v = mo.generate(2, 0, 24, image_size=24, bounce=True, num_frames=20)
    lo = v["size"][:, None, :, None]
    present = (v["shape"] > 0)[:, None, :, None]
    c = v["centers"]
    assert ((c >= lo - 1e-6) & (c <= 1 - lo + 1e-6) | ~present).all()
    speed = np.linalg.norm(np.diff(c, axis=1), axis=-1)  # [n, T - 1, M]
    direction_changes = (np.sign(np.diff(c, axis=1)[:, 1:]) != np.sign(np.diff(c, axis=1)[:, :-1])).any()
    assert direction_changes  # some bounce happened
    assert (speed <= np.linalg.norm(v["velocity"], axis=-1)[:, None] + 1e-6).all()  # reflections keep |v|


@pytest.mark.parametrize(
    "kwargs",
    [{"seed": -1}, {"count": -1}, {"num_frames": 0}, {"min_objects": 0}, {"min_objects": 4, "max_objects": 3},
     {"max_objects": 9}, {"enter_prob": 1.5}],
)  # fmt: skip
def test_bad_settings_are_refused(kwargs):
    args = {"seed": 0, "start": 0, "count": 1} | kwargs
    with pytest.raises(ValueError):
        mo.generate(**args)
