"""Invariant Slot Attention (Biza et al., ICML 2023, "Invariant Slot Attention: Object Discovery with
Slot-Centric Reference Frames"): Slot Attention whose keys and values are made relative to each slot's frame.

Not in the Slot Attention paper: an option (``model.slot_attention.frame``). It computes what ISA's
``SlotAttentionTranslEquiv`` (``frame="translation"``) and ``SlotAttentionTranslScaleEquiv``
(``"translation_scale"``) compute with ``add_rel_pos_to_values=True`` (the configs' "V3"):

    k, v = W_k LN(inputs), W_v LN(inputs)                        # [B, N, D], no absolute position
    for round r = 0 .. T:                                         # T iterations and one more round
        rel = (grid - position_k) [/ (5 * scale_k)]               # [B, K, N, 2] each input relative to each slot
        e = W_g rel + b_g                                         # [B, K, N, D]
        keys, values = g(k + e), g(v + e)                         # g: LayerNorm -> Dense(128) -> ReLU -> Dense(D)
        attn = softmax over slots of (q_k . keys_kn) / sqrt(D)    # q = W_q LN(slots)
        updates = mean of values_kn weighted by attn
        position_k, scale_k = attention-weighted mean and spread of the grid (clipped to [0.001, 2])
        if r < T: slots = GRU(slots, updates) + residual MLP      # the last round only moves the frames

The initial frames are drawn per image and slot, as ISA's ``ParamStateInitRandomPositions(Scales)``: positions
uniform in [-1, 1]^2, scales N(0.1, 0.1) clipped; they come from the same N(0, 1) noise as the slots (its last four
features: ``noise`` is [B, K, D + 4], positions through the normal CDF), so evaluation is deterministic per image and
training per step as for every slot initialisation. The image grid is the model's (y, x) grid in [-1, 1]
(``positions`` of :meth:`InvariantSlotAttention.forward`); the encoder should then not add an absolute position
embedding (ISA's encoders concatenate the grid for this module only: ``model.position_embedding: false``).

Output: ``attn`` holds the attention of rounds 1 .. T, the last one the final slots' (ISA's extra round), so the
frames a slot-centric decoder reads from it (``model.decoder_frame``, :mod:`slotlab.modules.slot_frame`) are ISA's
final positions and scales. Deviations, named: the renormalisation's epsilon follows ``eps_placement`` (the paper's
``attn + eps``; ISA divides by ``sum + eps``: equal to 1e-8), and every other Slot Attention option (slot init,
implicit differentiation, aggregation, ...) applies as in :class:`SlotAttention`. Costs K times the key and value
work of Slot Attention plus the grid MLP on [B, K, N, D] tensors: no reassociated or fused path.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from slotlab.modules.norm import LayerNorm
from slotlab.modules.slot_attention import SlotAttention, SlotAttentionOutput
from slotlab.modules.slot_frame import MAX_SCALE, MIN_SCALE, SCALES_FACTOR, slot_frames
from slotlab.modules.spatial_prior import check_positions
from slotlab.torch_workarounds import standard_normal

SLOT_FRAMES = ("translation", "translation_scale")
INIT_SCALE_MEAN, INIT_SCALE_SD = 0.1, 0.1  # ISA's ParamStateInitRandomPositionsScales
FRAME_NOISE = 4  # noise features per slot for its initial frame: 2 (position) + 2 (scale)


class InvariantSlotAttention(SlotAttention):
    """Slot Attention with slot-centric reference frames (ISA).

    Args:
        num_slots, dim, **kwargs: as :class:`SlotAttention` (``reassociate`` and ``fused`` do not apply).
        frame: ``"translation"`` (inputs relative to each slot's position) or ``"translation_scale"`` (and divided
            by 5 x its scale).
        grid_hidden: hidden units of the grid encoder g (ISA: 128).
    """

    def __init__(
        self, num_slots: int, dim: int = 64, *, frame: str = "translation_scale", grid_hidden: int = 128, **kwargs
    ) -> None:
        if frame not in SLOT_FRAMES:
            raise ValueError(f"frame must be one of {SLOT_FRAMES}, got {frame!r}")
        kwargs.update(reassociate=False, fused=False)  # keys and values are per slot
        super().__init__(num_slots, dim, **kwargs)
        self.frame = frame
        self.grid_proj = nn.Linear(2, dim)  # [.., 2] -> [.., D], with bias (ISA's dense_gp_0)
        self.grid_encoder = nn.Sequential(
            LayerNorm(dim, eps=kwargs.get("layer_norm_eps", 1e-3)),
            nn.Linear(dim, grid_hidden),
            nn.ReLU(),
            nn.Linear(grid_hidden, dim),
        )

    @property
    def noise_dim(self) -> int:
        """D features for the slots and four for the initial frame."""
        return self.dim + FRAME_NOISE

    def initial_slots(
        self, batch_size: int, num_slots: int | None = None, generator=None, noise: Tensor | None = None
    ) -> Tensor:
        """As :meth:`SlotAttention.initial_slots`; ``noise`` may carry the frames' four features after the D."""
        if noise is not None and noise.dim() == 3 and noise.shape[-1] == self.noise_dim:
            noise = noise[..., : self.dim]
        return super().initial_slots(batch_size, num_slots, generator, noise)

    def initial_frames(
        self,
        batch_size: int,
        num_slots: int,
        device: torch.device,
        noise: Tensor | None = None,
        generator=None,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[Tensor, Tensor]:
        """Initial positions [B, K, 2] (uniform in [-1, 1]) and scales [B, K, 2] (N(0.1, 0.1), clipped), from the
        last four features of ``noise`` [B, K, D + 4] if given, else drawn."""
        if noise is not None and noise.shape[-1] == self.noise_dim:
            n = noise[..., self.dim :].to(device, dtype)  # [B, K, 4]
        else:
            n = standard_normal((batch_size, num_slots, FRAME_NOISE), device, dtype, generator)
        positions = torch.erf(n[..., :2] / math.sqrt(2.0))  # [B, K, 2]: 2 Phi(n) - 1 ~ U(-1, 1)
        scales = (INIT_SCALE_MEAN + INIT_SCALE_SD * n[..., 2:]).clamp(MIN_SCALE, MAX_SCALE)  # [B, K, 2]
        return positions, scales

    def forward(
        self,
        inputs: Tensor,
        num_slots: int | None = None,
        iters: int | None = None,
        slots: Tensor | None = None,
        noise: Tensor | None = None,
        logit_bias: Tensor | None = None,
        spatial_prior: float | None = None,
        positions: Tensor | None = None,
    ) -> SlotAttentionOutput:
        """As :meth:`SlotAttention.forward`; ``positions`` [N, 2], the inputs' (y, x) grid in [-1, 1], is needed."""
        if noise is not None and noise.dim() == 3 and noise.shape[-1] not in (self.dim, self.noise_dim):
            raise ValueError(f"noise must be [B, K, {self.noise_dim}] (slots and frames), got {tuple(noise.shape)}")
        inputs, slots, t_iters = self._start(inputs, num_slots, iters, slots, noise)
        init_slots = slots
        b, k_slots, n = inputs.shape[0], slots.shape[1], inputs.shape[1]
        frames_dtype = torch.promote_types(inputs.dtype, torch.float32)  # fp32, or float64 for float64 inputs
        grid = check_positions(positions, n).to(inputs.device, frames_dtype)  # [N, 2]
        frame = self.initial_frames(b, k_slots, inputs.device, noise, dtype=frames_dtype)
        bias = self._logit_bias(logit_bias, spatial_prior, positions, b, k_slots, n)

        x = self.norm_inputs(inputs)  # [B, N, D_inputs]
        keys, values = self.project_k(x), self.project_v(x)  # [B, N, D]

        def iteration(slots: Tensor, prev_attn: Tensor | None) -> tuple[Tensor, Tensor]:
            nonlocal frame  # each round moves the frame (frames of rounds without gradient are constants)
            slots, attn, frame = self.round(slots, keys, values, grid, frame, bias(prev_attn))
            return slots, attn

        slots, attns = self._iterate(slots, t_iters, iteration)
        # ISA's last round: the final slots' attention and frames, no update.
        _, attn, _ = self.round(slots, keys, values, grid, frame, bias(attns[-1]), update=False)
        attns.append(attn)
        return SlotAttentionOutput(slots=slots, attn=torch.stack(attns[1:], dim=1), init_slots=init_slots)

    def round(
        self,
        slots: Tensor,
        keys: Tensor,
        values: Tensor,
        grid: Tensor,
        frame: tuple[Tensor, Tensor],
        logit_bias: Tensor | None = None,
        update: bool = True,
    ) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        """One round: slots [B, K, D], keys / values [B, N, D] (projected inputs), grid [N, 2], frame (positions,
        scales) [B, K, 2] each -> the slots after the update (unchanged with ``update=False``), attn [B, K, N] and
        the new frame (of this round's attention)."""
        position, scale = frame
        rel = grid[None, None] - position[:, :, None]  # [B, K, N, 2]
        if self.frame == "translation_scale":
            rel = rel / (SCALES_FACTOR * scale[:, :, None])
        emb = self.grid_proj(rel.to(keys.dtype))  # [B, K, N, D]
        slot_keys = self.grid_encoder(keys[:, None] + emb)  # [B, K, N, D]
        slot_values = self.grid_encoder(values[:, None] + emb)  # [B, K, N, D]
        q = self.project_q(self.norm_slots(slots)) * self.scale  # [B, K, D]
        logits = torch.einsum("bkd,bknd->bkn", q.to(slot_keys.dtype), slot_keys)  # [B, K, N]
        if logits.dtype in (torch.float16, torch.bfloat16):  # normalisation in fp32 under autocast
            logits = logits.float()
        if logit_bias is not None:
            logits = logits + logit_bias.to(logits.dtype)
        attn = logits.softmax(dim=1 if self.softmax_axis == "slots" else 2)  # [B, K, N]
        if self.eps_placement == "attn":
            weights = attn + self.eps
            denom = weights.sum(dim=-1, keepdim=True)  # [B, K, 1]
        else:
            weights = attn
            denom = weights.sum(dim=-1, keepdim=True) + self.eps
        if self.aggregation == "mean":
            weights = weights / denom
        new_frame = slot_frames(attn, grid)  # positions, scales [B, K, 2] of this round's attention
        if not update:
            return slots, attn, new_frame
        updates = torch.einsum("bkn,bknd->bkd", weights.to(slot_values.dtype), slot_values)  # [B, K, D]
        return self._update(slots, updates, attn), attn, new_frame


__all__ = ["FRAME_NOISE", "SLOT_FRAMES", "InvariantSlotAttention"]
