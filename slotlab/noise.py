"""Slot-initialisation noise as a pure function of (seed, step) in training and of (seed, image index) in
evaluation, instead of a draw from the global RNG.

Why: the same seed gives the same run whatever the number of processes (under DDP every rank generates the
global batch's noise and takes its own rows, so 2 processes compute what 1 process computes), a resumed run
needs no RNG state to continue exactly, and an image's evaluation score does not depend on the batch size or
on how the evaluation set is sharded. The noise is still N(0, 1) and fresh at every step, as in the paper.
"""

from __future__ import annotations

import torch

_CHUNK = 64


def step_noise(seed: int, step: int, global_batch: int, num_slots: int, dim: int, rows: slice) -> torch.Tensor:
    """N(0, 1) noise [len(rows), K, D] for training step ``step`` (rows of the global batch)."""
    g = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(step) * 7_919 + 17) % (2**63))
    return torch.randn(global_batch, num_slots, dim, generator=g)[rows]


def index_noise(seed: int, indices: torch.Tensor, num_slots: int, dim: int) -> torch.Tensor:
    """N(0, 1) noise [B, K, D] for images ``indices`` [B]: row i depends only on (seed, indices[i], K, D)."""
    idx = indices.long().cpu()
    chunks = idx // _CHUNK
    out = torch.empty(len(idx), num_slots, dim)
    for c in torch.unique(chunks).tolist():  # a few chunks per batch, not a loop over images
        g = torch.Generator().manual_seed((int(seed) * 1_000_003 + c * 104_729 + 31) % (2**63))
        block = torch.randn(_CHUNK, num_slots, dim, generator=g)
        sel = chunks == c
        out[sel] = block[idx[sel] - c * _CHUNK]
    return out
