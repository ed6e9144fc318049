"""Is an image like the ones a model was trained on? The object-discovery autoencoder's own reconstruction error
(the training loss of paper Section 2.2: per-image MSE on [-1, 1] pixels) against the same error on the model's
held-out test images, which a zoo card stores under ``domain``. Not part of the paper.

The rule (documented in docs/zoo.md): an image is *far outside* the training distribution when its
reconstruction MSE exceeds ``FAR_FACTOR`` (3) times the 95th percentile of the held-out per-image MSE; its masks
may then mean little, and ``slotlab segment`` / ``slotlab eval --data-path`` say so in a ``warning:`` line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from slotlab.noise import index_noise
from slotlab.tasks.base import EVAL_SEED, slot_attention_of

FAR_FACTOR = 3.0


@dataclass
class DomainReference:
    """Per-image reconstruction MSE of a model on its held-out test images."""

    median: float
    p95: float
    num_images: int
    split: str = "test"

    @property
    def threshold(self) -> float:
        return FAR_FACTOR * self.p95

    def as_card(self) -> dict[str, Any]:
        return {"recon_mse_median": self.median, "recon_mse_p95": self.p95, "num_images": self.num_images,
                "split": self.split, "far_factor": FAR_FACTOR}  # fmt: skip


def reference_of(card: dict[str, Any] | None) -> DomainReference | None:
    """The reference stored in a zoo card (None when the card has none: set prediction, older cards)."""
    d = (card or {}).get("domain") or {}
    if "recon_mse_p95" not in d:
        return None
    return DomainReference(float(d["recon_mse_median"]), float(d["recon_mse_p95"]), int(d["num_images"]),
                           str(d.get("split", "test")))  # fmt: skip


@torch.no_grad()
def per_image_mse(model: nn.Module, images: torch.Tensor, seed: int = EVAL_SEED, batch: int = 64) -> np.ndarray:
    """Reconstruction MSE of each image (float [B, 3, H, W] in [-1, 1]) -> float64 [B]."""
    sa = slot_attention_of(model)
    out = []
    for start in range(0, images.shape[0], batch):  # batches bound the memory; each batch is one vectorised call
        x = images[start : start + batch]
        idx = torch.arange(start, start + x.shape[0])
        noise = index_noise(seed, idx, sa.num_slots, sa.dim) if sa is not None else None  # [b, K, D]
        recon = model(x, noise=noise).recon.float()  # [b, 3, H, W]
        out.append(((recon - x) ** 2).mean(dim=(1, 2, 3)).double().numpy())
    return np.concatenate(out)


def measure_reference(model: nn.Module, images_uint8: np.ndarray) -> DomainReference:
    """The reference of ``model`` on held-out uint8 images [N, H, W, 3]."""
    x = torch.from_numpy(images_uint8).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)  # [N, 3, H, W]
    mse = per_image_mse(model, x)
    return DomainReference(float(np.median(mse)), float(np.percentile(mse, 95)), int(len(mse)))


def verdict(mse: float, ref: DomainReference | None) -> tuple[bool, str]:
    """(far outside?, a sentence) for an image's reconstruction MSE."""
    if ref is None:
        return False, f"reconstruction MSE {mse:.4f} (no held-out reference stored for this model)"
    ratio = mse / max(ref.p95, 1e-12)
    text = (f"reconstruction MSE {mse:.4f}; on its {ref.num_images} held-out {ref.split} images: median "
            f"{ref.median:.4f}, 95th percentile {ref.p95:.4f} ({ratio:.1f}x)")  # fmt: skip
    if mse > ref.threshold:
        return True, text + (f": far outside the images the model was trained on (> {FAR_FACTOR:g}x the 95th "
                             "percentile); its masks may mean little")  # fmt: skip
    return False, text
