"""tools/video_errors.py and tools/object_discovery_errors.py (where a model loses FG-ARI) and
tools/set_prediction_errors.py (where it loses AP) against independent loop / scipy / brute-force computations."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from scipy.ndimage import binary_erosion

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tool():
    return _load("video_errors")


@pytest.fixture(scope="module")
def image_tool():
    return _load("object_discovery_errors")


def test_erode_is_scipy_binary_erosion_per_object(tool):
    rng = np.random.default_rng(0)
    gt = torch.from_numpy(rng.integers(0, 4, size=(2, 3, 9, 9)))
    gt[0, 0, 2:7, 2:7] = 3  # one solid object with an interior
    got = tool.erode(gt).numpy()
    want = np.zeros_like(got)
    for b, t in np.ndindex(2, 3):
        for k in range(1, 4):
            want[b, t][binary_erosion(gt[b, t].numpy() == k)] = k  # 4-connected, the frame's edge erodes
    np.testing.assert_array_equal(got, want)


def test_breakdown_categories_match_a_loop(tool):
    rng = np.random.default_rng(1)
    b, t, h, w, k = 3, 4, 6, 6, 5
    gt = torch.from_numpy(rng.integers(0, 4, size=(b, t, h, w)))
    gt[0, 0][gt[0, 0] == 3] = 0  # object 3 of clip 0 enters after frame 0
    pred = torch.from_numpy(rng.integers(0, k, size=(b, t, h, w)))
    for conditional in (True, False):
        r = tool.breakdown(gt, pred, conditional, k)
        own = tool.own_slots(gt, pred, conditional, k).numpy()
        if not conditional:  # the slot with most of the id's pixels in its first visible frame
            for c in range(b):
                for i in range(4):
                    first = next(f for f in range(t) if (gt[c, f] == i).any())
                    votes = np.bincount(pred[c, first][gt[c, first] == i].numpy(), minlength=k)
                    assert own[c, i] == votes.argmax()
        counts = {"first": np.zeros((t, 4)), "enter": np.zeros((t, 4))}
        for c, f, y, x in np.ndindex(b, t, h, w):
            i, s = int(gt[c, f, y, x]), int(pred[c, f, y, x])
            if i == 0:
                continue
            present = [j for j in range(1, 4) if (gt[c] == j).any()]
            if s == own[c, i]:
                cat = 0
            elif s == own[c, 0]:
                cat = 1
            elif s in [own[c, j] for j in present]:
                cat = 2
            else:
                cat = 3
            entering = not (gt[c, 0] == i).any()
            counts["enter" if entering else "first"][f, cat] += 1
        for name, n in counts.items():
            share = n / np.maximum(n.sum(1, keepdims=True), 1)
            np.testing.assert_allclose(r[name], share, err_msg=f"{name}, conditional={conditional}")
        relabelled = r["relabelled"]
        assert (relabelled[0][gt[0] == 3] == 1003).all()
        assert torch.equal(relabelled[1:], pred[1:])


def test_binding_matches_a_loop(image_tool):
    rng = np.random.default_rng(2)
    b, h, w, k, m = 4, 7, 7, 5, 4
    gt = torch.from_numpy(rng.integers(0, m + 1, size=(b, h, w)))
    gt[1][gt[1] == 4] = 0  # an image without object 4
    pred = torch.from_numpy(rng.integers(0, k, size=(b, h, w)))
    pred[2][gt[2] == 1] = 3  # objects 1 and 2 of image 2 in one slot, object 3 in the background's
    pred[2][gt[2] == 2] = 3
    pred[2][(gt[2] == 0) | (gt[2] == 3)] = 0
    r = image_tool.binding(gt, pred, k)
    outside, total = np.zeros(3), 0
    for i in range(b):
        majority, share, present = [], [], []
        for j in range(m + 1):
            counts = np.bincount(pred[i][gt[i] == j].numpy(), minlength=k)
            present.append(counts.sum() > 0)
            majority.append(counts.argmax())
            share.append(counts.max() / max(counts.sum(), 1))
        assert r["present"][i].tolist() == present
        assert r["majority"][i].tolist() == majority
        np.testing.assert_allclose(r["share"][i].numpy(), share)
        for j in range(1, m + 1):
            others = [majority[o] for o in range(1, m + 1) if o != j and present[o]]
            assert bool(r["merged"][i, j - 1]) == (present[j] and majority[j] in others)
            assert bool(r["in_background"][i, j - 1]) == (present[j] and majority[j] == majority[0])
            owners = [majority[o] for o in range(1, m + 1) if present[o]]
            for s in pred[i][gt[i] == j].tolist():
                total += 1
                if s == majority[j]:
                    continue
                outside[0 if s == majority[0] else 1 if s in owners else 2] += 1
    np.testing.assert_allclose(r["outside"].numpy(), outside / total, rtol=1e-6)
    assert r["merged"][2, :2].all() and r["in_background"][2, 2]
    assert not r["present"][1, 4] and not r["merged"][1, 3]


def test_slot_specialisation_and_its_information_against_sklearn_and_a_loop(image_tool):
    import colorsys

    from sklearn.metrics import normalized_mutual_info_score

    rng = np.random.default_rng(4)
    b, h, w, m, k, bins = 5, 9, 8, 3, 4, 6
    gt = torch.from_numpy(rng.integers(0, m + 1, size=(b, h, w)))
    gt[0][gt[0] == 2] = 0  # an absent object
    image = torch.from_numpy(rng.integers(0, 256, size=(b, 3, h, w), dtype=np.uint8))  # channels first, as loaded
    hue, cell = image_tool.object_properties(image, gt, bins)
    for i in range(b):
        for j in range(1, m + 1):
            where = (gt[i] == j).numpy()
            if not where.any():
                assert hue[i, j - 1] == cell[i, j - 1] == -1
                continue
            rgb = image[i].permute(1, 2, 0).numpy()[where].mean(0) / 255
            assert hue[i, j - 1] == min(int(colorsys.rgb_to_hsv(*rgb)[0] * bins), bins - 1)
            ys, xs = np.nonzero(where)
            assert cell[i, j - 1] == int(3 * ys.mean() // h) * 3 + int(3 * xs.mean() // w)
    majority = torch.from_numpy(rng.integers(0, k, size=(b, m)))
    joint = image_tool.slot_specialisation(majority, hue, k, bins)
    keep = hue >= 0
    assert joint.sum() == keep.sum()
    want = normalized_mutual_info_score(majority.numpy()[keep], hue[keep], average_method="geometric")
    assert image_tool.normalised_mutual_information(joint) == pytest.approx(want, abs=1e-9)
    merged, every = image_tool.merged_pair_hue_distance(majority, hue, bins)
    want_merged, want_all = [], []
    for i in range(b):
        for x in range(m):
            for y in range(x + 1, m):
                if hue[i, x] < 0 or hue[i, y] < 0:
                    continue
                d = min(abs(hue[i, x] - hue[i, y]), bins - abs(hue[i, x] - hue[i, y]))
                want_all.append(d)
                if majority[i, x] == majority[i, y]:
                    want_merged.append(d)
    assert merged.tolist() == want_merged and every.tolist() == want_all
    diagonal = np.diag([5.0, 3.0, 2.0])
    assert image_tool.normalised_mutual_information(diagonal) == pytest.approx(1.0)  # the slot fixes the bin
    assert image_tool.normalised_mutual_information(np.outer([1, 2], [3, 1, 2])) == pytest.approx(0.0, abs=1e-12)


def _union_find_labels(vectors: np.ndarray, labels: np.ndarray, threshold: float) -> np.ndarray:
    """Oracle: each label replaced by the smallest slot index of its chain of slots whose mean-centred cosine
    similarity exceeds ``threshold`` (a union-find loop). vectors [K, D]."""
    v = vectors - vectors.mean(-1, keepdims=True)
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    parent = list(range(len(v)))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for u in range(len(v)):
        for w in range(len(v)):
            if v[u] @ v[w] > threshold:
                a, c = sorted((find(u), find(w)))
                parent[c] = a
    return np.vectorize(find)(labels)


def test_merge_similar_is_connected_components(image_tool):
    rng = np.random.default_rng(3)
    b, k, d = 6, 6, 8
    base = rng.normal(size=(b, 3, d))
    slots = base[:, rng.integers(0, 3, size=k)] + 0.05 * rng.normal(size=(b, k, d))  # near-copies of 3 vectors
    slots = torch.from_numpy(slots).float()
    pred = torch.from_numpy(rng.integers(0, k, size=(b, 5, 5)))
    got = image_tool.merge_similar(pred, slots, 0.9)
    for i in range(b):
        want = _union_find_labels(slots[i].double().numpy(), pred[i].numpy(), 0.9)
        np.testing.assert_array_equal(got[i].numpy(), want)
    assert len(torch.unique(got)) < len(torch.unique(pred))  # the near-copies were merged


def test_video_merge_relabels_each_frame_by_its_groups(tool):
    """Per frame, each pixel takes the smallest slot index among its slot's chain of near-copies (checked against a
    union-find loop over the pairwise mean-centred cosines)."""
    rng = np.random.default_rng(3)
    b, t, k, d, h, w = 2, 3, 5, 4, 4, 4
    slots = torch.from_numpy(rng.normal(size=(b, t, k, d))).float()
    slots[0, 1, 3] = slots[0, 1, 1] * 2 + 0.5  # a near-copy (the same after mean-centring and scale) in frame 1 only
    slots[1, 2, 4] = slots[1, 2, 2] + 1e-4
    slots[1, 2, 0] = slots[1, 2, 4] + 1e-4  # a chain 0 ~ 4 ~ 2 in frame 2 of clip 1
    pred = torch.from_numpy(rng.integers(0, k, size=(b, t, h, w)))
    got = tool.merged(slots, pred, 0.99).numpy()
    for c, f in np.ndindex(b, t):
        want = _union_find_labels(slots[c, f].double().numpy(), pred[c, f].numpy(), 0.99)
        np.testing.assert_array_equal(got[c, f], want, err_msg=f"clip {c}, frame {f}")
    assert (got[0, 1] != 3).all() and (got[1, 2] != 4).all() and (got[1, 2] != 2).all()


def test_clip_events_entering_and_meeting_by_hand(tool):
    """Four clips of 3 frames, 8x8: nothing happens; object 2 enters at frame 1; two objects touch diagonally in
    frame 2 (8-neighbours, no shared edge); two objects one pixel apart in every frame (no touch)."""
    gt = torch.zeros(4, 3, 8, 8, dtype=torch.long)
    gt[:, :, 0:2, 0:2] = 1  # object 1 top-left in every clip and frame
    gt[0, :, 5:7, 5:7] = 2
    gt[1, 1:, 5:7, 5:7] = 2  # not in frame 0: enters
    gt[2, :2, 5:7, 5:7] = 2
    gt[2, 2, 2:4, 2:4] = 2  # frame 2: its corner (2, 2) is the diagonal neighbour of object 1's (1, 1)
    gt[3, :, 0:2, 3:5] = 3  # one empty column (2) between objects 1 and 3
    events = tool.clip_events(gt)
    np.testing.assert_array_equal(events["entering"], [False, True, False, False])
    np.testing.assert_array_equal(events["meeting"], [False, False, True, False])


@pytest.fixture(scope="module")
def set_tool():
    return _load("set_prediction_errors")


def test_set_prediction_matching_is_the_cheapest_assignment(set_tool):
    """Each real object's slot is the one of the cheapest one-to-one assignment (L1 over the 19 features), found
    here by trying every assignment; its attribute hits and 3D distance follow from that slot."""
    from itertools import permutations

    from slotlab.metrics.average_precision import decode_attributes, encode_object

    rng = np.random.default_rng(3)
    b, k, m = 5, 4, 3
    target = np.zeros((b, k, 19), np.float32)
    for i in range(b):
        for j in range(m - (i % 2)):  # 3 or 2 real objects, zero padding after them
            target[i, j] = encode_object(rng.uniform(-3, 3, 3), *(int(rng.integers(n)) for n in (2, 2, 3, 8)))
    pred = rng.uniform(0, 1, (b, k, 19)).astype(np.float32)
    pred[0, 2] = target[0, 0]  # one exact prediction, in another slot
    e = set_tool.matched_errors(torch.from_numpy(pred), torch.from_numpy(target))
    want = {a: [] for a in (*set_tool.ATTRS, "dist", "objects")}
    for i in range(b):
        real = target[i][target[i, :, 18] > 0.5]
        best = min(permutations(range(k), len(real)), key=lambda s: np.abs(real - pred[i][list(s)]).sum())
        dp, dt = decode_attributes(pred[i][list(best)]), decode_attributes(real)
        for a in set_tool.ATTRS:
            want[a] += list(dp[a] == dt[a])
        want["dist"] += list(np.linalg.norm(dp["coords_3d"] - dt["coords_3d"], axis=-1))
        want["objects"] += [len(real)] * len(real)
    for key, value in want.items():
        np.testing.assert_allclose(e[key], np.asarray(value, dtype=float), atol=1e-6, err_msg=key)
    assert all(e[a][0] for a in set_tool.ATTRS) and e["dist"][0] < 1e-5  # the exact prediction was found


def test_set_prediction_errors_scores_the_training_images(set_tool, tiny_sp_run, capsys):
    """--split train reads the model's own training images: the first ones its training run loaded."""
    from slotlab.tasks.set_prediction.data import SetPredictionData

    assert set_tool.main([str(tiny_sp_run), "--split", "train", "--num-images", "8"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    data = SetPredictionData(yaml.safe_load((tiny_sp_run / "config.yaml").read_text())["data"])
    data.setup("fit")  # the training set, as the trainer loads it
    objects = int((data.train["target"][:8, :, 18] > 0.5).sum())
    assert first.startswith(f"8 images, {objects} objects (train): AP_inf ")
