"""Learning-rate schedule of the reference code (paper Section 4.1, appendix B Figures 17-18).

lr(step) = base * min(step / warmup_steps, 1) * decay_rate ** (step / decay_steps); the decay is continuous
and runs from step 0. ``warmup_steps = 0`` switches warmup off; ``decay_rate = 1`` switches decay off.
"""

from __future__ import annotations


def lr_factor(step: int, warmup_steps: int, decay_rate: float, decay_steps: int) -> float:
    """Multiplier of the base learning rate at ``step``."""
    warm = min(step / warmup_steps, 1.0) if warmup_steps > 0 else 1.0
    return warm * decay_rate ** (step / decay_steps)
