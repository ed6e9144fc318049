"""Prototype: Slot Attention with re-associated key/value projections (same function as :class:`SlotAttention`).

Algorithm 1 projects all N inputs to keys and values (``k = LN(x) W_k^T``, ``v = LN(x) W_v^T``: two
[B, N, D] GEMMs and two [B, N, D] tensors written, then read in every iteration). Since only K << N slots
query them, the products can be re-associated exactly (up to floating-point rounding):

    logits  = (q W_k^T)^T-side:  q k^T        = (q W_k) LN(x)^T          # [B, K, N]
    updates = attn v             = (attn LN(x)) W_v^T                   # [B, K, D]

so the keys and values are never materialised: each iteration reads ``LN(x)`` twice, as before it read k and
v, while the projections shrink from [B*N, D] x [D, D] to [B*K, D] x [D, D] GEMMs (4x fewer FLOPs for the whole
module at N = 4096, D = 64, T = 3) and the scale ``D**-0.5`` is applied to the [B, K, D] queries instead of a
[B, N, D] tensor. Parameters, state_dict and options are those of :class:`SlotAttention`; only the
evaluation order differs (results agree to fp32 rounding, ~1e-6).

Not used by slotlab's models; benchmarked by ``benchmarks/module.py``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor

from slotlab.modules.slot_attention import SlotAttention, SlotAttentionOutput


class FastSlotAttention(SlotAttention):
    """:class:`SlotAttention` with re-associated k/v projections (see the module docstring)."""

    layout: str = "nk"

    @classmethod
    def from_slot_attention(cls, module: SlotAttention, layout: str = "nk") -> FastSlotAttention:
        """A copy of ``module`` (same parameters and options) that evaluates in the re-associated order.

        ``layout`` is the layout of the attention logits: "nk" ([B, N, K]: the gradients of LN(x) from the 2T
        products come out contiguous, so their accumulation is a plain add) or "kn" ([B, K, N], as
        :class:`SlotAttention`; the products with ``x^T`` give transposed gradients, accumulated with strided adds).
        """
        if layout not in ("nk", "kn"):
            raise ValueError(f"layout must be 'nk' or 'kn', got {layout!r}")
        fast = copy.deepcopy(module)
        fast.__class__ = cls
        fast.layout = layout
        return fast

    def forward(
        self,
        inputs: Tensor,
        num_slots: int | None = None,
        iters: int | None = None,
        slots: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> SlotAttentionOutput:
        """Same arguments and result as :meth:`SlotAttention.forward`."""
        if self.identity_projections:
            return super().forward(inputs, num_slots, iters, slots, noise)
        if inputs.dim() != 3 or inputs.shape[-1] != self.input_dim:
            raise ValueError(f"inputs must be [B, N, {self.input_dim}], got {tuple(inputs.shape)}")
        t_iters = self.iters if iters is None else iters
        b = inputs.shape[0]
        if slots is None:
            k_slots = num_slots if noise is None else noise.shape[1]
            slots = self.initial_slots(b, k_slots, noise=noise).to(inputs.dtype)
        elif slots.dim() != 3 or slots.shape[0] != b or slots.shape[-1] != self.dim:
            raise ValueError(f"slots must be [{b}, K, {self.dim}], got {tuple(slots.shape)}")
        init_slots = slots
        x = self.norm_inputs(inputs)  # [B, N, D_in]
        if torch.is_autocast_enabled("cpu") and x.device.type == "cpu":
            x = x.to(torch.get_autocast_dtype("cpu"))  # cast once, not in each of the 2T products
        elif x.device.type == "cuda" and torch.is_autocast_enabled("cuda"):
            x = x.to(torch.get_autocast_dtype("cuda"))
        attns = []
        step = self._step_nk if self.layout == "nk" else self._step_kn
        for _ in range(t_iters):
            slots, attn = step(slots, x)
            attns.append(attn)
        return SlotAttentionOutput(slots=slots, attn=torch.stack(attns, dim=1), init_slots=init_slots)

    def _query_in_input_space(self, slots: Tensor) -> Tensor:
        q = self.project_q(self.norm_slots(slots)) * self.scale  # [B, K, D]
        return q @ self.project_k.weight.to(q.dtype)  # [B, K, D_in]

    def _weights(self, attn: Tensor, input_axis: int) -> Tensor:
        if self.eps_placement == "attn":
            weights = attn + self.eps
            denom = weights.sum(dim=input_axis, keepdim=True)
        else:
            weights = attn
            denom = weights.sum(dim=input_axis, keepdim=True) + self.eps
        return weights / denom if self.aggregation == "mean" else weights

    def _step_kn(self, slots: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        q_in = self._query_in_input_space(slots)
        logits = torch.bmm(q_in.to(x.dtype), x.transpose(1, 2)).float()  # [B, K, N]
        attn = logits.softmax(dim=1 if self.softmax_axis == "slots" else 2)
        weights = self._weights(attn, input_axis=2)
        updates = F.linear(torch.bmm(weights.to(x.dtype), x), self.project_v.weight)  # [B, K, D]
        return self._update(slots, updates), attn

    def _step_nk(self, slots: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        q_in = self._query_in_input_space(slots)
        logits = torch.bmm(x, q_in.to(x.dtype).transpose(1, 2)).float()  # [B, N, K]
        attn = logits.softmax(dim=2 if self.softmax_axis == "slots" else 1)
        weights = self._weights(attn, input_axis=1)
        updates = F.linear(torch.bmm(weights.to(x.dtype).transpose(1, 2), x), self.project_v.weight)  # [B, K, D]
        return self._update(slots, updates), attn.transpose(1, 2)

    def _update(self, slots: Tensor, updates: Tensor) -> Tensor:
        slots_prev = slots
        if self.norm_updates is not None:
            updates = self.norm_updates(updates)
        if self.gru is not None:
            bk = slots.shape[0] * slots.shape[1]
            slots = self.gru(updates.reshape(bk, -1), slots_prev.reshape(bk, -1)).view_as(slots_prev)
        else:
            slots = updates
        if self.mlp is not None:
            slots = slots + self.mlp(self.norm_mlp(slots))
        return slots
