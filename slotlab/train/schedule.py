"""Learning-rate schedule of the reference code (paper Section 4.1, appendix B Figures 17-18).

lr(step) = base * min(step / warmup_steps, 1) * decay_rate ** (step / decay_steps); the decay is continuous
and runs from step 0. ``warmup_steps = 0`` switches warmup off; ``decay_rate = 1`` switches decay off.

Not in the paper: ``cooldown_steps > 0`` (``optim.cooldown_steps``) multiplies the last ``cooldown_steps`` steps
before ``max_steps`` by a linear ramp from 1 down to 0 ("warmup-stable-decay" style cooldown), so a short run
ends at a low learning rate instead of mid-oscillation. ``cooldown_steps = 0`` (the default) is the reference
schedule exactly.

``schedule="cosine"`` (``optim.schedule``; SAVi's ``optax.warmup_cosine_decay_schedule`` with init and end value 0):
the same linear warmup, then ``0.5 * (1 + cos(pi * (step - warmup_steps) / (decay_steps - warmup_steps)))``, reaching
0 at ``decay_steps`` (counted from step 0, warmup included) and staying there; ``decay_rate`` is not used.
"""

from __future__ import annotations

import math

SCHEDULES = ("exponential", "cosine")


def lr_factor(
    step: int,
    warmup_steps: int,
    decay_rate: float,
    decay_steps: int,
    cooldown_steps: int = 0,
    max_steps: int | None = None,
    schedule: str = "exponential",
) -> float:
    """Multiplier of the base learning rate at ``step``."""
    warm = min(step / warmup_steps, 1.0) if warmup_steps > 0 else 1.0
    if schedule == "exponential":
        factor = warm * decay_rate ** (step / decay_steps)
    elif schedule == "cosine":
        progress = min(max(step - warmup_steps, 0) / max(decay_steps - warmup_steps, 1), 1.0)
        factor = warm * 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if cooldown_steps > 0 and max_steps is not None:
        factor *= min(max(max_steps - step, 0) / cooldown_steps, 1.0)
    return factor
