"""FG-ARI against scikit-learn's adjusted_rand_score on the foreground pixels (independent oracle)."""

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from slotlab.metrics import fg_ari


def oracle(true, labels):
    out = []
    for t, p in zip(true, labels, strict=True):
        fg = t > 0
        out.append(adjusted_rand_score(t[fg].ravel(), p[fg].ravel()))
    return np.array(out)


@pytest.mark.parametrize("seed", range(5))
def test_fg_ari_matches_sklearn_on_random_cases(seed):
    g = torch.Generator().manual_seed(seed)
    b, k, h, w = 16, 6, 20, 24
    true = torch.randint(0, 5, (b, h, w), generator=g)
    # Predictions correlated with the truth, so scores span a wide range.
    scores = torch.randn(b, k, h, w, generator=g)
    scores += 3.0 * torch.nn.functional.one_hot(true, k).permute(0, 3, 1, 2) * torch.rand(b, 1, 1, 1, generator=g)
    got = fg_ari(true, scores).numpy()
    expected = oracle(true.numpy(), scores.argmax(1).numpy())
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert got.std() > 0.05  # a range of values, not one number


def test_label_input_and_decoder_masks_agree():
    g = torch.Generator().manual_seed(0)
    true = torch.randint(0, 4, (3, 10, 10), generator=g)
    scores = torch.randn(3, 5, 10, 10, generator=g)
    a = fg_ari(true, scores)
    b = fg_ari(true, scores.argmax(1))
    c = fg_ari(true, scores[:, :, None])  # [B, K, 1, H, W]
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


def test_background_is_ignored_and_perfect_is_one():
    true = torch.tensor([[[0, 0, 1, 1], [0, 2, 2, 1], [3, 3, 0, 0]]])
    pred = true.clone()
    pred[true == 0] = 7  # whatever the model does on background does not matter
    assert fg_ari(true, pred).item() == pytest.approx(1.0)
    pred2 = (true + 1) % 4  # a relabelling is still perfect
    assert fg_ari(true, pred2).item() == pytest.approx(1.0)
    merged = torch.where(true == 2, torch.tensor(1), true)  # objects 1 and 2 merged
    assert fg_ari(true, merged).item() < 0.9


def test_single_cluster_both_sides_is_one_like_sklearn():
    true = torch.zeros(1, 4, 4, dtype=torch.long)
    true[0, 1:3, 1:3] = 1
    pred = torch.zeros(1, 4, 4, dtype=torch.long)
    assert fg_ari(true, pred).item() == 1.0 == adjusted_rand_score([1, 1, 1, 1], [0, 0, 0, 0])


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="true_masks"):
        fg_ari(torch.zeros(2, 4, 4), torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="pred_masks"):
        fg_ari(torch.zeros(2, 4, 4, dtype=torch.long), torch.zeros(2, 3, 5, 4))


def deepmind_oracle(true, labels, num_true, num_pred):
    """DeepMind segmentation_metrics.adjusted_rand_index, written from its documented formula in numpy:
    one-hot true masks with the background channel dropped, one-hot argmax predictions, 0/0 -> NaN, and 1.0
    where every pixel has one true group id (argmax of the one-hot row, 0 for all-zero rows) and one predicted id.
    """
    b = true.shape[0]
    t = np.eye(num_true)[true.reshape(b, -1)][..., 1:]  # [B, N, G_true - 1], background rows all zero
    p = np.eye(num_pred)[labels.reshape(b, -1)]  # [B, N, G_pred]
    n_points = t.sum(axis=(1, 2))
    nij = np.einsum("bji,bjk->bki", p, t)
    a, bb = nij.sum(axis=1), nij.sum(axis=2)
    rindex = (nij * (nij - 1)).sum(axis=(1, 2))
    aindex = (a * (a - 1)).sum(axis=1)
    bindex = (bb * (bb - 1)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = aindex * bindex / (n_points * (n_points - 1))
        score = (rindex - expected) / ((aindex + bindex) / 2 - expected)
    tid, pid = t.argmax(-1), p.argmax(-1)
    single = (tid == tid[:, :1]).all(1) & (pid == pid[:, :1]).all(1)
    return np.where(single, 1.0, score)


def degenerate_cases():
    """Images where the ARI is 0/0 in some way, mixed with ordinary ones."""
    true = torch.zeros(8, 6, 6, dtype=torch.long)
    pred = torch.zeros(8, 6, 6, dtype=torch.long)
    true[0, 1:3, 1:3] = 1  # one object (label 1), kept in one slot, background in the same slot: single cluster
    true[1, 1:3, 1:3] = 2  # one object (label 2) in one slot: DeepMind NaN, sklearn 1
    pred[2] = 3
    true[2, 1:3, 1:3] = 1  # one object in one slot, background in another: NaN (pred ids differ over all pixels)
    pred[2, 1:3, 1:3] = 1
    true[3, 0, 0] = 1  # a single foreground pixel (n(n-1) = 0), background partly in another slot: NaN
    pred[3, 5, 5] = 1
    # image 4: no foreground at all: NaN (pred single cluster, true ids all 0 -> 1.0 by DeepMind's special case)
    true[5] = torch.arange(36).view(6, 6) % 3  # ordinary image
    pred[5] = torch.arange(36).view(6, 6) % 2
    true[6] = 1 + torch.arange(36).view(6, 6) % 4  # ordinary, all foreground
    pred[6] = torch.arange(36).view(6, 6) % 4
    true[7, :3] = 1  # one object split over two slots: ARI 0 (defined)
    pred[7, :3, :3] = 1
    pred[7, :3, 3:] = 2
    return true, pred


def test_undefined_nan_matches_deepmind_formula():
    true, pred = degenerate_cases()
    got = fg_ari(true, pred).numpy()  # default: DeepMind semantics
    expected = deepmind_oracle(true.numpy(), pred.numpy(), int(true.max()) + 1, int(pred.max()) + 1)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got[~np.isnan(got)], expected[~np.isnan(expected)], atol=1e-12)
    assert np.isnan(got).sum() == 3 and got[0] == 1.0 and got[4] == 1.0  # the cases named above


@pytest.mark.parametrize("seed", range(3))
def test_undefined_nan_matches_deepmind_formula_on_random_cases(seed):
    g = torch.Generator().manual_seed(seed)
    true = torch.randint(0, 3, (64, 5, 5), generator=g) * (torch.rand(64, 1, 1, generator=g) < 0.7)
    pred = torch.randint(0, 2, (64, 5, 5), generator=g) * (torch.rand(64, 1, 1, generator=g) < 0.5)
    got = fg_ari(true, pred).numpy()
    expected = deepmind_oracle(true.numpy(), pred.numpy(), 3, 2)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got[~np.isnan(got)], expected[~np.isnan(expected)], atol=1e-12)
    assert np.isnan(got).any() and not np.isnan(got).all()


def test_undefined_one_is_sklearns_convention():
    true, pred = degenerate_cases()
    got = fg_ari(true, pred, undefined="one").numpy()
    np.testing.assert_allclose(got, oracle(true.numpy(), pred.numpy()), atol=1e-12)


def test_means_skip_undefined_images_and_count_them():
    from slotlab.tasks.object_discovery import summarize

    s = summarize(np.array([1.0, np.nan, 0.5, np.nan]))
    assert s["fg_ari_mean"] == 0.75 and s["fg_ari_undefined"] == 2 and s["num_images"] == 4
    assert s["frac_above_0.9"] == 0.5
