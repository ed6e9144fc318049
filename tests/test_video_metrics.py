"""Video FG-ARI against scikit-learn over all foreground pixels of all frames, mBO against a numpy loop oracle."""

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from slotlab.checks import InputDtypeError, InputShapeError, NonFiniteInputError
from slotlab.metrics.video import per_frame_fg_ari, video_fg_ari, video_mbo, video_metrics


def ari_oracle(true, labels, skip_first=False):
    """One sklearn ARI per clip over the foreground pixels of all (or all but the first) frames."""
    out = []
    for t, p in zip(true, labels, strict=True):
        if skip_first:
            t, p = t[1:], p[1:]
        fg = t > 0
        out.append(adjusted_rand_score(t[fg].ravel(), p[fg].ravel()))
    return np.array(out)


def mbo_oracle(true, labels, skip_first=False):
    """Plain loops: for each object present, the best space-time IoU over the predicted ids; the mean per clip."""
    out = []
    for t, p in zip(true, labels, strict=True):
        if skip_first:
            t, p = t[1:], p[1:]
        best = []
        for g in np.unique(t):
            if g == 0:
                continue
            ious = []
            for k in np.unique(p):
                inter = np.logical_and(t == g, p == k).sum()
                union = np.logical_or(t == g, p == k).sum()
                ious.append(inter / union)
            best.append(max(ious))
        out.append(np.mean(best) if best else np.nan)
    return np.array(out)


def random_clips(seed, b=8, t=4, k=6, h=10, w=12, objects=5):
    g = torch.Generator().manual_seed(seed)
    true = torch.randint(0, objects, (b, t, h, w), generator=g)
    scores = torch.randn(b, t, k, h, w, generator=g)
    onehot = torch.nn.functional.one_hot(true, k).permute(0, 1, 4, 2, 3)  # [B, T, K, H, W]
    scores += 3.0 * onehot * torch.rand(b, 1, 1, 1, 1, generator=g)  # correlated: scores span a range
    return true, scores


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("skip_first", [False, True])
def test_video_fg_ari_matches_sklearn_on_random_clips(seed, skip_first):
    true, scores = random_clips(seed)
    got = video_fg_ari(true, scores, skip_first=skip_first).numpy()
    expected = ari_oracle(true.numpy(), scores.argmax(2).numpy(), skip_first)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert got.std() > 0.05


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("skip_first", [False, True])
def test_video_mbo_matches_loop_oracle(seed, skip_first):
    true, scores = random_clips(seed)
    got = video_mbo(true, scores, skip_first=skip_first).numpy()
    expected = mbo_oracle(true.numpy(), scores.argmax(2).numpy(), skip_first)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert got.std() > 0.02


def test_identity_switch_costs_in_video_but_not_per_frame():
    true = torch.zeros(1, 2, 4, 4, dtype=torch.long)
    true[:, :, :2] = 1
    true[:, :, 2:] = 2
    pred = true.clone()
    pred[0, 1] = 3 - true[0, 1]  # slots swap objects in frame 1
    assert per_frame_fg_ari(true, pred).tolist() == [[1.0, 1.0]]
    assert video_fg_ari(true, pred).item() < 0.5
    assert video_fg_ari(true, pred, skip_first=True).item() == 1.0  # one frame left: no switch seen


def degenerate_cases():
    g = torch.Generator().manual_seed(7)
    cases = {}
    one = torch.zeros(2, 3, 6, 6, dtype=torch.long)
    one[:, :, 1:4, 2:5] = 3  # one object, id 3
    cases["one object"] = (one, torch.randint(0, 4, (2, 3, 6, 6), generator=g))
    cases["one object, one slot"] = (one, torch.zeros_like(one))
    empty_frames = torch.randint(0, 4, (2, 4, 6, 6), generator=g)
    empty_frames[:, 0] = 0  # all background in the first frame
    empty_frames[1, 2] = 0
    cases["all background in some frames"] = (empty_frames, torch.randint(0, 5, (2, 4, 6, 6), generator=g))
    cases["all background everywhere"] = (torch.zeros(1, 2, 5, 5, dtype=torch.long), torch.ones(1, 2, 5, 5).long())
    unused = torch.randint(0, 3, (2, 3, 6, 6), generator=g)
    cases["a slot never used"] = (unused, (unused * 2).long())  # ids 1 and 3 never predicted
    cases["identical"] = (unused, unused.clone())
    single_pixel = torch.zeros(1, 2, 4, 4, dtype=torch.long)
    single_pixel[0, 1, 2, 2] = 1
    cases["one foreground pixel"] = (single_pixel, torch.randint(0, 3, (1, 2, 4, 4), generator=g))
    return cases


@pytest.mark.parametrize("name", list(degenerate_cases()))
def test_degenerate_cases_match_sklearn_and_the_loop(name):
    true, pred = degenerate_cases()[name]
    for skip in (False, True):
        np.testing.assert_allclose(
            video_fg_ari(true, pred, skip_first=skip).numpy(), ari_oracle(true.numpy(), pred.numpy(), skip), atol=1e-12
        )
        np.testing.assert_allclose(
            video_mbo(true, pred, skip_first=skip).numpy(), mbo_oracle(true.numpy(), pred.numpy(), skip), atol=1e-12
        )
    frames = per_frame_fg_ari(true, pred).numpy()  # [B, T]
    b, t = true.shape[:2]
    per_frame = ari_oracle(true.flatten(0, 1)[:, None].numpy(), pred.flatten(0, 1)[:, None].numpy())  # clips of 1
    np.testing.assert_allclose(frames, per_frame.reshape(b, t), atol=1e-12)


def test_identical_scores_one_and_mbo_one():
    true = torch.randint(1, 4, (2, 3, 5, 5), generator=torch.Generator().manual_seed(1))
    assert video_fg_ari(true, true).tolist() == [1.0, 1.0]
    assert video_mbo(true, (true + 2) % 7).tolist() == [1.0, 1.0]  # a relabelling is still perfect


def test_undefined_nan_convention():
    true = torch.zeros(1, 2, 5, 5, dtype=torch.long)  # no foreground at all
    assert np.isnan(video_fg_ari(true, true, undefined="nan").item())
    assert video_fg_ari(true, true, undefined="one").item() == 1.0
    assert np.isnan(video_mbo(true, true).item())  # no object to score
    clip = torch.zeros(1, 3, 4, 4, dtype=torch.long)
    clip[0, 1, :2] = 1
    clip[0, 2, :2], clip[0, 2, 2:] = 1, 2
    pred = torch.zeros_like(clip)
    frames = per_frame_fg_ari(clip, pred, undefined="nan")[0].tolist()  # empty; one object in one slot; merged
    assert np.isnan(frames[0]) and frames[1:] == [1.0, 0.0]
    assert per_frame_fg_ari(clip, pred)[0].tolist() == [1.0, 1.0, 0.0]


def test_soft_masks_are_argmax_and_layouts_agree():
    true, scores = random_clips(3, b=3)
    labels = scores.argmax(2)
    for fn in (video_fg_ari, video_mbo):
        a = fn(true, scores)
        torch.testing.assert_close(a, fn(true, labels))
        torch.testing.assert_close(a, fn(true, scores.softmax(2)))  # softmax keeps the argmax
        torch.testing.assert_close(a, fn(true, scores[:, :, :, None]))  # [B, T, K, 1, H, W]
        torch.testing.assert_close(a, fn(true.numpy().astype(np.uint8), scores.numpy()))


def test_video_metrics_names_every_output():
    true, scores = random_clips(5, b=3, t=3)
    out = video_metrics(true, scores)
    assert set(out) == {"fg_ari_video", "fg_ari_video_skip_first", "mbo_video", "mbo_video_skip_first",
                        "fg_ari_per_frame"}  # fmt: skip
    torch.testing.assert_close(out["fg_ari_video_skip_first"], video_fg_ari(true, scores, skip_first=True))
    torch.testing.assert_close(out["mbo_video"], video_mbo(true, scores))
    assert out["fg_ari_per_frame"].shape == (3, 3)
    assert "fg_ari_video_skip_first" not in video_metrics(true[:, :1], scores[:, :1])  # one frame: nothing to skip


def test_empty_batch_gives_no_scores():
    assert video_fg_ari(torch.zeros(0, 2, 4, 4).long(), torch.zeros(0, 2, 3, 4, 4)).shape == (0,)
    assert video_mbo(torch.zeros(0, 2, 4, 4).long(), torch.zeros(0, 2, 3, 4, 4)).shape == (0,)


def test_bad_inputs_are_refused_with_names():
    true, scores = random_clips(0, b=2)
    bad = scores.clone()
    bad[0, 1, 2, 3, 4] = float("nan")
    bad[1, 0, 0, 0, 0] = float("inf")
    for fn in (video_fg_ari, video_mbo, per_frame_fg_ari, video_metrics):
        with pytest.raises(NonFiniteInputError, match=r"pred_masks holds 2 non-finite entries \(1 NaN, 1 Inf\)"):
            fn(true, bad)
    with pytest.raises(InputDtypeError, match="true_masks"):
        video_fg_ari(true.float(), scores)
    with pytest.raises(InputShapeError, match="true_masks"):
        video_fg_ari(true[0], scores)
    with pytest.raises(InputShapeError, match="pred_masks"):
        video_mbo(true, scores[..., :-1])
    with pytest.raises(InputShapeError, match="T >= 2"):
        video_fg_ari(true[:, :1], scores[:, :1], skip_first=True)
    with pytest.raises(InputShapeError, match=">= 0"):
        video_mbo(true, -scores.argmax(2) - 1)
