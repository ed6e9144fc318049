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
