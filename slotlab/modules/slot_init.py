"""Initial slots of SAVi (Kipf et al. 2022; the official ``initializers.py``): unconditional or conditioned on the
objects of the first frame.

Kinds (``SlotInitializer(kind=...)``):

- ``"boxes"`` (SAVi's default, ``CoordinateEncoderStateInit``): each first-frame bounding box (ymin, xmin, ymax, xmax),
  normalised to [0, 1] as MOVi's, goes through an MLP (4 -> 256 -> D, ReLU, no LayerNorm) to one slot. A zero
  "background box" is prepended (``prepend_background``), so K = number of boxes + 1 and slot 0 is the background
  slot. Absent objects are padded with zero boxes (SAVi's ``NOTRACK_BOX``), which encode like the background.
- ``"points"`` (``center_of_mass=True``): the same with the box centres ((ymin + ymax) / 2, (xmin + xmax) / 2), MLP
  2 -> 256 -> D; boxes [.., 4] are converted to centres, points [.., 2] are used as given.
- ``"learned"`` (``ParamStateInit``): one learned vector per slot, initialised N(0, 1); K is fixed.
- ``"gaussian"`` (the Slot Attention paper's): ``mu + exp(log_sigma) * N(0, 1)`` with a learned mu and log_sigma
  shared by the slots (Glorot-uniform initialised, as :class:`~slotlab.modules.slot_attention.SlotAttention`), a
  fresh sample per call; K may change per call.
- ``"standard_normal"`` (``GaussianStateInit``): N(0, 1) samples, no parameters; K may change per call.

Conditioning may be given for the first frame ([B, K, C]) or per frame ([B, T, K, C]; frame 0 is used, as SAVi).

Absent objects of the conditional kinds (``absent``): ``"box"`` (SAVi) encodes their zero boxes like any box, so
their slots are all alike (and alike the background's); ``"learned"`` (not in SAVi) gives each box position a
learned initial slot used where its box is all zeros, so the spare slots differ from each other and may take
objects that enter after the first frame, as an unconditional model's slots do.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from slotlab.checks import InputShapeError, float_input, require_tensor
from slotlab.torch_workarounds import standard_normal

InitKind = Literal["boxes", "points", "learned", "gaussian", "standard_normal"]
INIT_KINDS = ("boxes", "points", "learned", "gaussian", "standard_normal")
CONDITIONAL = ("boxes", "points")
ABSENT_KINDS = ("box", "learned")


class ConditioningError(InputShapeError):
    """Conditioning missing for a conditional initialisation, given to an unconditional one, or of the wrong shape."""


class SlotInitializer(nn.Module):
    """Initial slots [B, K, D] (see the module docstring for the kinds).

    Args:
        kind: one of :data:`INIT_KINDS`.
        dim: slot size D.
        num_slots: K of the unconditional kinds (for ``"learned"`` the number of learned slots).
        hidden_dim: hidden size of the coordinate MLP (SAVi: 256).
        prepend_background: prepend a background box/point to the conditioning (SAVi: True).
        background_value: the coordinates of that background box (SAVi: 0).
        absent: the slots of absent objects (all-zero boxes / points) of the conditional kinds: ``"box"`` (SAVi) or
            ``"learned"`` (one learned slot per box position; see the module docstring).
        max_boxes: box positions of ``absent="learned"`` (the most boxes a call may give; the data's objects).
    """

    def __init__(
        self,
        kind: str,
        dim: int,
        num_slots: int = 11,
        hidden_dim: int = 256,
        prepend_background: bool = True,
        background_value: float = 0.0,
        absent: str = "box",
        max_boxes: int = 10,
    ) -> None:
        super().__init__()
        if kind not in INIT_KINDS:
            raise ValueError(f"slot initialisation must be one of {INIT_KINDS}, got {kind!r}")
        if absent not in ABSENT_KINDS:
            raise ValueError(f"absent must be one of {ABSENT_KINDS}, got {absent!r}")
        if absent != "box" and kind not in CONDITIONAL:
            raise ValueError(f"absent={absent!r} applies to the conditional kinds {CONDITIONAL}, not {kind!r}")
        if not isinstance(num_slots, int) or isinstance(num_slots, bool) or num_slots < 1:
            raise ValueError(f"num_slots must be an integer >= 1, got {num_slots!r}")
        self.kind = kind
        self.dim = dim
        self.num_slots = num_slots
        self.prepend_background = prepend_background
        self.background_value = background_value
        self.encode: nn.Module | None = None
        self.slots: nn.Parameter | None = None
        self.mu: nn.Parameter | None = None
        self.log_sigma: nn.Parameter | None = None
        self.absent = absent
        self.absent_slots: nn.Parameter | None = None
        if absent == "learned":
            self.absent_slots = nn.Parameter(torch.randn(1, max_boxes, dim))  # [1, M, D], N(0, 1) as "learned"
        if kind in CONDITIONAL:
            coords = 4 if kind == "boxes" else 2
            self.encode = nn.Sequential(
                nn.Linear(coords, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, dim)
            )
        elif kind == "learned":
            self.slots = nn.Parameter(torch.randn(1, num_slots, dim))  # [1, K, D], N(0, 1) as ParamStateInit
        elif kind == "gaussian":
            limit = math.sqrt(6.0 / (1 + dim))
            self.mu = nn.Parameter(torch.empty(1, 1, dim).uniform_(-limit, limit))
            self.log_sigma = nn.Parameter(torch.empty(1, 1, dim).uniform_(-limit, limit))

    @property
    def conditional(self) -> bool:
        return self.kind in CONDITIONAL

    def forward(
        self,
        batch_size: int,
        conditioning: Tensor | None = None,
        num_slots: int | None = None,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Initial slots [B, K, D]; ``conditioning`` for the conditional kinds, ``noise`` [B, K, D] (N(0, 1)) or
        ``generator`` for the sampled ones."""
        if self.conditional:
            if conditioning is None:
                raise ConditioningError(
                    f"this model initialises its slots from first-frame {self.kind}: pass conditioning "
                    f"[B, K, {self._coords_hint()}] (or [B, T, K, {self._coords_hint()}])"
                )
            return self._encode(batch_size, conditioning, dtype)
        if conditioning is not None:
            raise ConditioningError(
                f"this model's slot initialisation is unconditional ({self.kind!r}); it takes no conditioning"
            )
        k = self.num_slots if num_slots is None else num_slots
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"num_slots must be an integer >= 1, got {k!r}")
        if self.kind == "learned":
            if k != self.num_slots:
                raise ValueError(f"slot initialisation 'learned' has exactly {self.num_slots} slots; cannot use K={k}")
            assert self.slots is not None
            return self.slots.expand(batch_size, -1, -1)  # [B, K, D]
        shape = (batch_size, k, self.dim)
        if self.mu is not None:
            device, dtype = self.mu.device, self.mu.dtype
        if noise is None:
            noise = standard_normal(shape, device, dtype, generator)
        else:
            noise = require_tensor(noise, "noise", f"[B, K, {self.dim}] of N(0, 1) samples")
            if tuple(noise.shape) != shape:
                raise InputShapeError(f"noise must be {list(shape)}, got {tuple(noise.shape)}")
            noise = noise.to(device=device, dtype=dtype)
        if self.mu is None:  # standard_normal
            return noise  # [B, K, D]
        assert self.log_sigma is not None
        return self.mu + self.log_sigma.exp() * noise  # [B, K, D]

    def _coords_hint(self) -> str:
        return "4 = (ymin, xmin, ymax, xmax)" if self.kind == "boxes" else "2 = (y, x) or 4 = a box"

    def _encode(self, batch_size: int, conditioning: Tensor, dtype: torch.dtype) -> Tensor:
        hint = self._coords_hint()
        c = float_input(conditioning, "conditioning", dtype, f"[B, K, {hint}] in [0, 1]")
        if c.dim() == 4:  # [B, T, K, C]: the first frame's, as SAVi
            c = c[:, 0]
        allowed = (4,) if self.kind == "boxes" else (2, 4)
        if c.dim() != 3 or c.shape[0] != batch_size or c.shape[-1] not in allowed:
            raise ConditioningError(
                f"conditioning must be [{batch_size}, K, {hint}] (or [{batch_size}, T, K, ...]), got "
                f"{tuple(conditioning.shape)}"
            )
        absent = (c == 0).all(-1)  # [B, M]: zero boxes (SAVi's NOTRACK_BOX) / points
        if self.prepend_background:
            background = c.new_full((c.shape[0], 1, c.shape[-1]), self.background_value)
            c = torch.cat([background, c], dim=1)  # [B, K + 1, C]
        if c.shape[1] == 0:
            raise ConditioningError("conditioning holds no objects (K = 0) and no background slot is prepended")
        if self.kind == "points" and c.shape[-1] == 4:  # box centres, as SAVi's center_of_mass
            c = torch.stack([(c[..., 0] + c[..., 2]) / 2, (c[..., 1] + c[..., 3]) / 2], dim=-1)  # [B, K, 2]
        assert self.encode is not None
        slots = self.encode(c)  # [B, K, D]
        if self.absent_slots is None:
            return slots
        m, most = absent.shape[1], self.absent_slots.shape[1]
        if m > most:
            raise ConditioningError(
                f"conditioning gives {m} boxes; this model has learned slots for absent objects at {most} box "
                f"positions (model.absent_slots learned), so it takes at most {most}"
            )
        learned = self.absent_slots[:, :m].to(slots.dtype).expand(batch_size, -1, -1)  # [B, M, D]
        first = slots.shape[1] - m  # the objects' slots follow the background slot, if any
        objects = torch.where(absent[..., None], learned, slots[:, first:])  # [B, M, D]
        return torch.cat([slots[:, :first], objects], dim=1)  # [B, K, D]
