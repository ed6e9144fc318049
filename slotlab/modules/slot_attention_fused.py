"""The fused attention of Slot Attention (``SlotAttention(fused=True)``, the default): the N-sized part of an
iteration with the paper's attention (softmax over slots, ``attn + eps``, weighted mean) as one custom autograd
function with a hand-written backward. Evaluation order only: the forward is bit-identical to the op-by-op path of
:meth:`SlotAttention._attend <slotlab.modules.slot_attention.SlotAttention._attend>`, gradients agree to rounding
(tested in float64), and it saves only the attention and the normalised weights (no [B, N, D] tensor).

:func:`collect_input_grads` marks the normalised inputs once per forward so that the input gradients of all T
iterations are formed in one product at the end of the backward pass (:class:`GatherInputGrad`), and
:func:`attend_mean` is one iteration's attention (:class:`AttendMean`).
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from slotlab.torch_workarounds import will_engine_execute_node


class InputGradFactors:
    """The factors (p [B, K, N], g [B, K, D]) of the iterations' input gradients, collected during backward."""

    def __init__(self) -> None:
        self.factors: list[tuple[Tensor, Tensor]] = []
        self.node = None  # the grad_fn of GatherInputGrad's output

    def add(self, factors: list[tuple[Tensor, Tensor]]) -> None:
        self.factors.extend(factors)

    def take(self) -> list[tuple[Tensor, Tensor]]:
        factors, self.factors = self.factors, []
        return factors


def collect_input_grads(x: Tensor) -> tuple[Tensor, InputGradFactors]:
    """``x`` (the same values) whose gradient :class:`GatherInputGrad` forms once for all iterations, and the
    collector the iterations' :func:`attend_mean` calls hand their factors to."""
    grads = InputGradFactors()
    out = GatherInputGrad.apply(x, grads)
    grads.node = out.grad_fn
    return out, grads


def attend_mean(q: Tensor, x: Tensor, eps: float, grads: InputGradFactors | None) -> tuple[Tensor, Tensor]:
    """One iteration's (updates [B, K, D], attn [B, K, N]) for queries q [B, K, D] (scaled, projected onto the
    inputs' side) and inputs x [B, N, D] (see :class:`AttendMean`)."""
    return AttendMean.apply(q, x, eps, grads)


class AttendMean(torch.autograd.Function):
    """The N-sized part of one iteration with the paper's attention, forward and backward written out.

    forward(q [B, K, D], x [B, N, D], eps) -> (updates [B, K, D], attn [B, K, N]) with
    ``attn = softmax_K(q x^T)``, ``w = (attn + eps) / sum_N(attn + eps)``, ``updates = w x``: the same ops in the
    same order as :meth:`SlotAttention._attend` (the logits' softmax and normalisation in fp32 when ``x`` is
    half precision, the two products in ``x``'s dtype), so the forward values are bit-identical.

    Backward, with ``s = sum_N(attn + eps)`` and gradients gU (of updates) and gA (of attn):
    ``gW = gU x^T``; ``g(attn) = (gW - <gU, updates>_D) / s + gA`` (the renormalisation in closed form: the
    correction term sum_N gW * w equals <gU, updates>, a [B, K] product instead of another [B, K, N] pass);
    ``gl = attn * (g(attn) - sum_K attn * g(attn))`` (softmax over K); ``gq = gl x``; and the input gradient of
    both products at once: ``gx = [w; gl]^T [gU; q]`` (one [B, N, D] product with inner size 2K instead of two
    with inner size K). Saved: q, x (the caller's tensor, no copy), attn, w (in x's dtype, as the product uses
    it), s and updates; no [B, N, D] tensor is created in the forward.
    """

    @staticmethod
    def forward(ctx, q: Tensor, x: Tensor, eps: float, grads: InputGradFactors | None) -> tuple[Tensor, Tensor]:
        with autocast_off(x.device.type):  # explicit dtypes below, as autocast would pick them
            logits = torch.bmm(q, x.transpose(1, 2))  # [B, K, N]
            if logits.dtype in (torch.float16, torch.bfloat16):
                logits = logits.float()
            attn = logits.softmax(dim=1)
            del logits
            w = attn + eps
            s = w.sum(dim=-1, keepdim=True)  # [B, K, 1]
            if w.dtype == x.dtype:
                w = w.div_(s)
            else:  # the fp32 quotient rounded to x's dtype in the same pass (the same values as div, then cast)
                w = torch.div(w, s, out=torch.empty(w.shape, dtype=x.dtype, device=w.device))
            updates = torch.bmm(w, x)  # [B, K, D]
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(q, x, attn, w, s, updates)
        ctx.grads = grads
        return updates, attn

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_updates: Tensor | None, g_attn: Tensor | None):
        q, x, attn, w, s, updates = ctx.saved_tensors
        if g_updates is None and g_attn is None:
            return None, None, None, None
        with autocast_off(x.device.type):
            ga: Tensor | None = None
            if g_updates is not None:
                g_updates = g_updates.to(x.dtype)
                gw = torch.bmm(g_updates, x.transpose(1, 2)).to(attn.dtype)  # [B, K, N]
                c = (g_updates.to(attn.dtype) * updates.to(attn.dtype)).sum(dim=-1, keepdim=True)  # [B, K, 1]
                ga = gw.sub_(c).div_(s)
            if g_attn is not None:
                ga = g_attn.to(attn.dtype) if ga is None else ga.add_(g_attn)
            assert ga is not None
            gl = ga.sub_((attn * ga).sum(dim=1, keepdim=True)).mul_(attn)  # [B, K, N] gradient of the logits
            gl_x = gl.to(x.dtype)
            gq = torch.bmm(gl_x, x) if ctx.needs_input_grad[0] else None
            gx = None
            if ctx.needs_input_grad[1]:
                factors = [(gl_x, q)] if g_updates is None else [(w, g_updates), (gl_x, q)]
                grads = ctx.grads
                if grads is not None and will_engine_execute_node(grads.node):
                    grads.add(factors)  # summed with the other iterations' by GatherInputGrad.backward
                else:
                    gx = input_grad(factors)
        return gq, gx, None, None


class GatherInputGrad(torch.autograd.Function):
    """Identity on the normalised inputs whose backward sums the gradients of all iterations in one product.

    Each AttendMean backward hands its factors to the shared :class:`InputGradFactors` (when this node runs in
    the current backward pass) instead of returning a [B, N, D] gradient; this node runs after all of them (it
    feeds every iteration) and forms ``sum_t [w_t; gl_t]^T [gU_t; q_t]`` with inner size 2KT: one [B, N, D]
    output instead of 2T products and their accumulation.
    """

    @staticmethod
    def forward(ctx, x: Tensor, grads: InputGradFactors) -> Tensor:
        ctx.grads = grads
        ctx.set_materialize_grads(False)
        return x.view_as(x)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor | None):
        factors = ctx.grads.take()
        gx = input_grad(factors) if factors else None
        if g is not None:
            gx = g if gx is None else gx.add_(g)
        return gx, None


def input_grad(factors: list[tuple[Tensor, Tensor]]) -> Tensor:
    """sum_i p_i^T g_i for p_i [B, K_i, N] and g_i [B, K_i, D] as one product: [B, N, sum K_i] @ [B, sum K_i, D]."""
    p = torch.cat([f[0] for f in factors], dim=1).transpose(1, 2)
    if p.dtype in (torch.float16, torch.bfloat16):
        p = p.contiguous()  # oneDNN's half-precision kernels are faster with the reduced dimension innermost
    return torch.bmm(p, torch.cat([f[1] for f in factors], dim=1))


def autocast_off(device_type: str):
    """Autocast disabled on ``device_type`` (a no-op where there is no autocast, e.g. the meta device that config
    validation runs the model on)."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()
