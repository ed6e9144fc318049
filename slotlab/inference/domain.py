"""Is an image like the ones a model was trained on? The object-discovery autoencoder's own reconstruction error
(the training loss of paper Section 2.2: per-image MSE on [-1, 1] pixels) against the same error on the model's
held-out test images, which a zoo card stores under ``domain``. Not part of the paper.

The rule (documented in docs/zoo.md): an image is *far outside* the training distribution when its
reconstruction MSE exceeds ``FAR_FACTOR`` (3) times the 95th percentile of the held-out per-image MSE; its masks
may then mean little, and ``slotlab segment`` says so in a ``warning:`` line. A set of images (``slotlab eval
--data-path``: the evaluated images of a data file) is far outside when its median image is (the same rule for
the typical image), or when more of its images are far outside than a sample of the held-out images would have:
at most ``FAR_SHARE`` (5 %) of those exceed even their 95th percentile, and a count of far images that a 5 % rate
gives with probability below ``FAR_P`` (0.1 %, binomial tail) is no such sample (:class:`DomainSummary`). So one
odd image among 16 in-domain ones warns of nothing, 30 of 320 do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from slotlab.noise import index_noise
from slotlab.tasks.common import EVAL_SEED, slot_attention_of

FAR_FACTOR = 3.0
FAR_SHARE = 0.05  # the most held-out images beyond their 95th percentile (and so beyond FAR_FACTOR times it)
FAR_P = 1e-3  # a set's count of far images less likely than this at the FAR_SHARE rate: the set is far outside


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
    dev = next(model.parameters()).device
    out = []
    for start in range(0, images.shape[0], batch):  # batches bound the memory; each batch is one vectorised call
        x = images[start : start + batch].to(dev)
        idx = torch.arange(start, start + x.shape[0])
        noise = index_noise(seed, idx, sa.num_slots, sa.noise_dim).to(dev) if sa is not None else None  # [b, K, D]
        recon = model(x, noise=noise).recon.float()  # [b, 3, H, W]
        out.append(((recon - x) ** 2).mean(dim=(1, 2, 3)).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


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


@dataclass
class DomainSummary:
    """Per-image reconstruction MSE of a set of images (e.g. the evaluated images of a data file) against a
    model's reference; ``source``: where the reference came from, or why there is none."""

    median: float
    p95: float
    num_images: int
    num_far: int  # images far outside, each by :func:`verdict`'s rule (0 without a reference)
    reference: DomainReference | None
    source: str

    @property
    def far_outside(self) -> bool:
        """The median image is far outside, or more images are than held-out ones would be (never without a
        reference; see the module docstring)."""
        if self.reference is None or self.num_images == 0:
            return False
        return self.median > self.reference.threshold or binomial_tail(self.num_far, self.num_images) < FAR_P

    def line(self) -> str:
        """One sentence: the set's error, the reference's and how many images are far outside."""
        text = (f"reconstruction MSE of the {self.num_images} evaluated images: median {self.median:.4f}, 95th "
                f"percentile {self.p95:.4f}")  # fmt: skip
        ref = self.reference
        if ref is None:
            return f"{text} ({self.source})"
        share = self.num_far / max(self.num_images, 1)
        return (f"{text}; on the model's {ref.num_images} held-out {ref.split} images ({self.source}): median "
                f"{ref.median:.4f}, 95th percentile {ref.p95:.4f}; {self.num_far} of {self.num_images} images "
                f"({share:.0%}) far outside (MSE > {FAR_FACTOR:g}x that 95th percentile)")  # fmt: skip

    def warning(self) -> str | None:
        """The warning of a set far outside the training images, else None."""
        if not self.far_outside:
            return None
        return (f"{self.num_far} of {self.num_images} evaluated images reconstruct far worse than the images the "
                f"model was trained on (beyond {FAR_FACTOR:g}x the 95th percentile of its held-out error; median "
                f"{self.median:.4f} against {self.reference.median:.4f}): this data may not be what the model was "
                "trained on, and its scores on it may mean little")  # fmt: skip

    def as_record(self) -> dict[str, Any]:
        """What an evaluation's result file records (JSON-safe)."""
        return {"recon_mse_median": self.median, "recon_mse_p95": self.p95, "num_images": self.num_images,
                "num_far": self.num_far, "far_outside": self.far_outside, "far_factor": FAR_FACTOR,
                "far_share": FAR_SHARE, "far_p": FAR_P, "reference_source": self.source,
                "reference": None if self.reference is None else self.reference.as_card()}  # fmt: skip


def binomial_tail(k: int, n: int, p: float = FAR_SHARE) -> float:
    """P(X >= k) for X ~ Binomial(n, p) (log-space terms: exact enough for any n)."""
    if k <= 0:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
            for i in range(k, n + 1)]  # fmt: skip
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


def summarize_set(mse: np.ndarray, ref: DomainReference | None, source: str) -> DomainSummary:
    """The :class:`DomainSummary` of per-image MSEs ``mse`` [N] against ``ref`` (None: no reference, ``source``
    says why)."""
    mse = np.asarray(mse, dtype=np.float64)
    far = int((mse > ref.threshold).sum()) if ref is not None else 0
    med, p95 = (float(np.median(mse)), float(np.percentile(mse, 95))) if len(mse) else (float("nan"),) * 2
    return DomainSummary(med, p95, int(len(mse)), far, ref, source)
