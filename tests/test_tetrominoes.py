"""Procedural Tetrominoes: the DeepMind dataset's form, determinism per (seed, index), fixed splits."""

import numpy as np

from slotlab.data import tetrominoes
from slotlab.data.splits import generate_split


def test_form_and_statistics():
    d = tetrominoes.generate(0, 0, 300)
    assert d["image"].shape == (300, 35, 35, 3) and d["image"].dtype == np.uint8
    assert d["mask"].shape == (300, 35, 35)
    # Exactly three pieces of 4 blocks of 5x5 pixels each, background label 0 and black.
    for j in (1, 2, 3):
        assert ((d["mask"] == j).sum(axis=(1, 2)) == 4 * 25).all()
    assert (d["image"][d["mask"] == 0] == 0).all()
    # Piece pixels carry exactly their piece's colour, one of the 6 DeepMind colours.
    colours = {tuple(c) for c in (tetrominoes.COLORS * 255).astype(int)}
    for j in range(3):
        px = d["image"][d["mask"] == j + 1]
        assert {tuple(c) for c in np.unique(px, axis=0)} <= colours
    used = {tuple(c) for c in np.unique(d["image"].reshape(-1, 3), axis=0)} - {(0, 0, 0)}
    assert used == colours  # all 6 appear in 300 images
    assert len(np.unique(d["shape"])) == tetrominoes.NUM_SHAPES == 19


def test_pieces_do_not_touch():
    d = tetrominoes.generate(1, 0, 200)
    m = d["mask"].astype(int)
    # No two different pieces are 4- or 8-neighbours.
    for dy, dx in [(0, 1), (1, 0), (1, 1), (1, -1)]:
        a = m[:, max(0, -dy) : 35 - max(0, dy), max(0, -dx) : 35 - max(0, dx)]
        b = m[:, max(0, dy) :, max(0, dx) :][:, : a.shape[1], : a.shape[2]] if dx >= 0 else m[:, dy:, : 35 + dx]
        both = (a > 0) & (b > 0)
        assert (a[both] == b[both]).all()


def test_deterministic_per_seed_and_index():
    a = tetrominoes.generate(5, 0, 600)
    b = tetrominoes.generate(5, 250, 100)  # crosses a chunk boundary
    for k in a:
        np.testing.assert_array_equal(a[k][250:350], b[k])
    c = tetrominoes.generate(6, 0, 10)
    assert not np.array_equal(a["image"][:10], c["image"])


def test_splits_are_fixed_and_disjoint_streams():
    train = generate_split("tetrominoes", "train", 50, seed=0)
    eval_a = generate_split("tetrominoes", "eval", 50, seed=0)
    eval_b = generate_split("tetrominoes", "eval", 50, seed=0)
    np.testing.assert_array_equal(eval_a["image"], eval_b["image"])
    same = (train["image"].reshape(50, 1, -1) == eval_a["image"].reshape(1, 50, -1)).all(-1)
    assert not same.any()
