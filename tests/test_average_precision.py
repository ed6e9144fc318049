"""Tests for the CLEVR set-prediction Average Precision (paper Section 4.2).

Module under test: slotlab.metrics.average_precision.

Expected values are computed by hand with the VOC all-point interpolation: prepend (recall 0, precision 0),
append (recall 1, precision 0), take the non-increasing precision envelope and sum
envelope[i + 1] * (recall[i + 1] - recall[i]) over the points where recall changes.
"""

import numpy as np
import pytest
import torch

from slotlab.metrics.average_precision import (
    COLOR,
    COORDS,
    FLAG,
    MATERIAL,
    SHAPE,
    SIZE,
    average_precision,
    average_precision_table,
    compute_average_precision,
    decode_attributes,
    encode_object,
    encode_objects,
)

THRESHOLDS = (-1.0, 1.0, 0.5, 0.25, 0.125)

# Three distinct objects (raw CLEVR 3d coordinates).
OBJ_A = dict(coords_3d=(1.0, -2.0, 0.35), size="large", material="metal", shape="cube", color="red")
OBJ_B = dict(coords_3d=(-1.5, 0.5, 0.7), size="small", material="rubber", shape="sphere", color="cyan")
OBJ_C = dict(coords_3d=(2.0, 2.0, 0.35), size="large", material="rubber", shape="cylinder", color="blue")


def _obj(spec, conf=1.0, **changes):
    spec = {**spec, **changes}
    return encode_object(spec["coords_3d"], spec["size"], spec["material"], spec["shape"], spec["color"], conf)


def _batch(*rows_per_image, k=4):
    """Stack rows into a zero-padded [B, k, 19] float64 array."""
    out = np.zeros((len(rows_per_image), k, 19), dtype=np.float64)
    for b, rows in enumerate(rows_per_image):
        for i, row in enumerate(rows):
            out[b, i] = row
    return out


def test_slices_and_encoding():
    assert (COORDS, SIZE, MATERIAL, SHAPE, COLOR, FLAG) == (
        slice(0, 3),
        slice(3, 5),
        slice(5, 7),
        slice(7, 10),
        slice(10, 18),
        18,
    )
    x = encode_object((0.0, 3.0, -3.0), "large", "metal", "cylinder", "cyan")
    np.testing.assert_allclose(x[COORDS], [0.5, 1.0, 0.0])
    assert x[SIZE].tolist() == [0, 1] and x[MATERIAL].tolist() == [0, 1]
    assert x[SHAPE].tolist() == [0, 0, 1] and x[COLOR].tolist() == [0] * 7 + [1] and x[FLAG] == 1
    dec = decode_attributes(x)
    assert (dec["size"], dec["material"], dec["shape"], dec["color"]) == (1, 1, 2, 7)
    np.testing.assert_allclose(dec["coords_3d"], [0.0, 3.0, -3.0], atol=1e-6)
    scene = encode_objects([{"3d_coords": (0, 0, 0), "size": 0, "material": 1, "shape": "sphere", "color": "gray"}], 3)
    assert scene.shape == (3, 19) and scene[0, FLAG] == 1 and not scene[1:].any()
    with pytest.raises(ValueError):
        encode_object((0, 0, 0), "huge", "metal", "cube", "red")


def test_perfect_prediction_is_one_at_all_thresholds():
    target = _batch([_obj(OBJ_A), _obj(OBJ_B)], [_obj(OBJ_C)])
    pred = target.copy()  # padded slots predict confidence 0 -> ranked last, after recall reached 1
    table = average_precision_table(pred, target)
    assert table == {th: pytest.approx(1.0) for th in THRESHOLDS}
    # torch input, float32
    t = torch.from_numpy(target).float()
    assert average_precision(t.clone(), t, 0.125) == pytest.approx(1.0)


def test_swapped_attribute_then_ranking_of_that_false_positive():
    target = _batch([_obj(OBJ_A), _obj(OBJ_B)])
    # Correct A (conf .9), B with wrong colour (conf .8): ranked TP, FP.
    # precision [1, .5], recall [.5, .5] -> AP = 1 * .5 = 0.5
    pred = _batch([_obj(OBJ_A, 0.9), _obj(OBJ_B, 0.8, color="red")])
    for th in THRESHOLDS:
        assert average_precision(pred, target, th) == pytest.approx(0.5)
    # Same, but the wrong prediction is ranked first: FP, TP.
    # precision [0, .5], recall [0, .5]; envelope .5 on recall (0, .5] -> AP = .5 * .5 = 0.25
    pred = _batch([_obj(OBJ_A, 0.8), _obj(OBJ_B, 0.9, color="red")])
    assert average_precision(pred, target, -1) == pytest.approx(0.25)


def test_each_attribute_must_match():
    target = _batch([_obj(OBJ_A)])
    for change in (dict(size="small"), dict(material="rubber"), dict(shape="sphere"), dict(color="gray")):
        pred = _batch([_obj(OBJ_A, 0.9, **change)])
        assert average_precision(pred, target, -1) == 0.0


def test_ranking_by_confidence_matters():
    target = _batch([_obj(OBJ_A), _obj(OBJ_B)])
    # OBJ_C is not in the image -> false positive, once with low and once with high confidence.
    # FP ranked last: TP, TP, FP -> precision reaches 1 at recall 1 -> AP = 1
    low = _batch([_obj(OBJ_A, 0.9), _obj(OBJ_B, 0.8), _obj(OBJ_C, 0.1)])
    # FP ranked first: FP, TP, TP -> precision [0, 1/2, 2/3], recall [0, 1/2, 1]
    # envelope 2/3 everywhere -> AP = 2/3 * 1/2 + 2/3 * 1/2 = 2/3
    high = _batch([_obj(OBJ_A, 0.9), _obj(OBJ_B, 0.8), _obj(OBJ_C, 0.95)])
    assert average_precision(low, target, -1) == pytest.approx(1.0)
    assert average_precision(high, target, -1) == pytest.approx(2.0 / 3.0)


def test_duplicate_prediction_is_false_positive():
    target = _batch([_obj(OBJ_A), _obj(OBJ_B)])
    # A (.9), A again (.8), B (.7): TP, FP, TP.
    # precision [1, 1/2, 2/3], recall [1/2, 1/2, 1] -> envelope [1, 2/3 (at recall 1)]
    # AP = 1 * 1/2 + 2/3 * 1/2 = 5/6
    pred = _batch([_obj(OBJ_A, 0.9), _obj(OBJ_A, 0.8), _obj(OBJ_B, 0.7)])
    assert average_precision(pred, target, -1) == pytest.approx(5.0 / 6.0)


def test_reference_semantics_closest_target_even_if_already_matched():
    # Two identical-attribute objects far apart. Both predictions sit next to the first one; the second
    # prediction's closest attribute-matching target is already detected, so (as in the reference code)
    # it is a false positive even though the other object is still unmatched and no threshold applies.
    # TP, FP -> AP = 1 * 1/2 = 0.5
    far = dict(OBJ_A, coords_3d=(-2.0, 2.0, 0.35))
    target = _batch([_obj(OBJ_A), _obj(far)])
    near = dict(OBJ_A, coords_3d=(1.1, -2.0, 0.35))
    pred = _batch([_obj(OBJ_A, 0.9), _obj(near, 0.8)])
    assert average_precision(pred, target, -1) == pytest.approx(0.5)
    # ... and matching is per image: the same predictions in another image do not steal detections.
    assert average_precision(np.concatenate([pred, pred]), np.concatenate([target, target]), -1) == (pytest.approx(0.5))


def test_distance_threshold_is_strict_and_uses_original_scale():
    target = _batch([_obj(OBJ_A, coords_3d=(0.0, 0.0, 0.0))])

    def ap_at(offset, th):
        pred = _batch([_obj(OBJ_A, 0.9, coords_3d=offset)])
        return average_precision(pred, target, th)

    # distance 0.49 (original CLEVR units) is inside 0.5, 0.51 outside
    assert ap_at((0.49, 0.0, 0.0), 0.5) == pytest.approx(1.0)
    assert ap_at((0.51, 0.0, 0.0), 0.5) == 0.0
    # 3-d Euclidean distance: (0.3, 0.4, 0) -> 0.5
    assert ap_at((0.3, 0.4, 0.0), 0.51) == pytest.approx(1.0)
    assert ap_at((0.3, 0.4, 0.0), 0.49) == 0.0
    # exactly representable: encoded 0.625 vs 0.5 -> distance exactly 0.75; '<' is strict
    assert ap_at((0.75, 0.0, 0.0), 0.75) == 0.0
    assert ap_at((0.75, 0.0, 0.0), 1.0) == pytest.approx(1.0)
    # no threshold: -1 and inf are equivalent
    assert ap_at((5.0, 5.0, 5.0), -1) == pytest.approx(1.0)
    assert ap_at((5.0, 5.0, 5.0), float("inf")) == pytest.approx(1.0)


def test_padded_targets_are_ignored():
    # Zero padding rows decode to (small, rubber, cube, gray) at coords (-3, -3, -3).
    ghost = _obj(dict(coords_3d=(-3.0, -3.0, -3.0), size="small", material="rubber", shape="cube", color="gray"), 0.9)
    target = _batch([_obj(OBJ_A)], k=4)  # 1 real object + 3 padding rows
    # ghost (.9) would match a padding row if padding counted; A (.8). FP, TP.
    # precision [0, 1/2], recall [0, 1] (denominator is 1 real object, not 4) -> AP = 1/2 * 1 = 0.5
    pred = _batch([ghost, _obj(OBJ_A, 0.8)], k=4)
    assert average_precision(pred, target, 0.125) == pytest.approx(0.5)


def test_torch_and_numpy_agree_on_random_inputs():
    rng = np.random.default_rng(0)
    target = np.zeros((3, 5, 19))
    for b in range(3):
        for i in range(rng.integers(1, 6)):
            target[b, i] = encode_object(
                rng.uniform(-3, 3, 3), rng.integers(2), rng.integers(2), rng.integers(3), rng.integers(8)
            )
    pred = target + rng.normal(0, 0.05, target.shape)
    pred[..., FLAG] = rng.uniform(0, 1, (3, 5))
    table = average_precision_table(torch.from_numpy(pred), torch.from_numpy(target))
    for th, value in table.items():
        assert value == pytest.approx(average_precision(pred, target, th))
        assert 0.0 <= value <= 1.0
    values = [table[th] for th in THRESHOLDS]
    assert values == sorted(values, reverse=True)  # tighter thresholds never increase AP


def test_compute_average_precision_voc_interpolation():
    # ranked TP, FP, TP with 2 positives -> 5/6 (see duplicate test)
    ap = compute_average_precision(np.array([1, 0.5, 2 / 3]), np.array([0.5, 0.5, 1]))
    assert ap == pytest.approx(5 / 6)


def test_validation():
    good = _batch([_obj(OBJ_A)])
    with pytest.raises(ValueError, match="shape"):
        average_precision(good[..., :18], good, -1)
    with pytest.raises(ValueError, match="batch"):
        average_precision(np.concatenate([good, good]), good, -1)
    with pytest.raises(ValueError, match="no real objects"):
        average_precision(good, np.zeros_like(good), -1)
    with pytest.raises(ValueError, match="threshold"):
        average_precision(good, good, 0.0)


def _loop_ap(pred, target, threshold):
    """Slow, literal per-prediction loop following the reference algorithm (for cross-checking)."""
    b, k, _ = pred.shape
    flat = pred.reshape(b * k, 19)
    order = np.argsort(-flat[:, FLAG], kind="stable")
    detected, tp = set(), []
    for idx in order:
        image = idx // k
        p = decode_attributes(flat[idx])
        best_d, best_j = np.inf, None
        for j in range(target.shape[1]):
            t = decode_attributes(target[image, j])
            attrs_equal = all(p[a] == t[a] for a in ("size", "material", "shape", "color"))
            if t["flag"] and attrs_equal:
                d = np.linalg.norm(p["coords_3d"] - t["coords_3d"])
                if d < best_d:
                    best_d, best_j = d, j
        ok = best_j is not None and (threshold == -1 or best_d < threshold)
        ok = ok and (image, best_j) not in detected
        if ok:
            detected.add((image, best_j))
        tp.append(1.0 if ok else 0.0)
    tp = np.cumsum(tp)
    n = np.arange(1, len(tp) + 1)
    return compute_average_precision(tp / n, tp / target[..., FLAG].sum())


@pytest.mark.parametrize("seed", range(4))
def test_matches_literal_loop_on_random_scenes(seed):
    rng = np.random.default_rng(seed)
    b, k = 4, 6
    target = np.zeros((b, k, 19))
    for i in range(b):
        for j in range(rng.integers(1, k + 1)):
            # few attribute values -> many attribute collisions and duplicate matches
            target[i, j] = encode_object(rng.uniform(-3, 3, 3), rng.integers(2), 0, rng.integers(2), 0)
    pred = target[:, rng.permutation(k)] + rng.normal(0, 0.03, target.shape)
    swap = rng.random((b, k)) < 0.3
    pred[swap, 7:10] = pred[swap][:, 7:10][:, [1, 0, 2]]  # some wrong shapes
    pred[..., FLAG] = rng.uniform(0, 1, (b, k))
    for th in THRESHOLDS:
        assert average_precision(pred, target, th) == pytest.approx(_loop_ap(pred, target, th))
