"""Learning-rate schedule of the reference code (paper Section 4.1, appendix B Figures 17-18).

lr(step) = base * min(step / warmup_steps, 1) * decay_rate ** (step / decay_steps); the decay is continuous
and runs from step 0. ``warmup_steps = 0`` switches warmup off; ``decay_rate = 1`` switches decay off.

Not in the paper: ``cooldown_steps > 0`` (``optim.cooldown_steps``) multiplies the last ``cooldown_steps`` steps
before ``max_steps`` by a linear ramp from 1 down to 0 ("warmup-stable-decay" style cooldown), so a short run
ends at a low learning rate instead of mid-oscillation. ``cooldown_steps = 0`` (the default) is the reference
schedule exactly.
"""

from __future__ import annotations


def lr_factor(
    step: int,
    warmup_steps: int,
    decay_rate: float,
    decay_steps: int,
    cooldown_steps: int = 0,
    max_steps: int | None = None,
) -> float:
    """Multiplier of the base learning rate at ``step``."""
    warm = min(step / warmup_steps, 1.0) if warmup_steps > 0 else 1.0
    factor = warm * decay_rate ** (step / decay_steps)
    if cooldown_steps > 0 and max_steps is not None:
        factor *= min(max(max_steps - step, 0) / cooldown_steps, 1.0)
    return factor
