"""The Slot Attention module (paper Section 2.1, Algorithm 1) and the ablations of appendix B.

Defaults reproduce Algorithm 1 and the reference code exactly: LayerNorm on inputs and slots, bias-free
linear q/k/v, softmax over the *slots* axis with logits scaled by D**-0.5, ``attn + eps`` (eps = 1e-8),
weighted *mean* over the inputs, a GRUCell update and a residual MLP. Slots are initialised as
``mu + exp(log_sigma) * N(0, 1)`` (reparameterised, so mu and sigma receive gradients), a fresh sample per call.

Every ablation of appendix B is a named constructor option (see :class:`SlotAttention`); the defaults are
the paper's choices. Attention is kept in the (slots, inputs) layout ``[B, K, N]`` so that the softmax over
slots, the normalisation over inputs and the ``attn @ v`` product need no transposes.

Evaluation order only (the same function): the fused attention with its hand-written backward is in
:mod:`slotlab.modules.slot_attention_fused`; the workarounds of torch bugs this module needs under torch.compile are
in :mod:`slotlab.torch_workarounds`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slotlab.checks import InputShapeError, float_input, none_or_positive, require_nonempty, require_tensor
from slotlab.modules import slot_attention_fused as fused
from slotlab.modules.norm import LayerNorm
from slotlab.modules.spatial_prior import check_positions, gaussian_prior
from slotlab.torch_workarounds import compiled_attention_logits, standard_normal

Aggregation = Literal["mean", "sum", "sum_layernorm"]
SoftmaxAxis = Literal["slots", "inputs"]
EpsPlacement = Literal["attn", "denominator"]
SlotInit = Literal["shared", "per_slot", "queries"]
UpdateFn = Literal["gru", "direct"]


@dataclass
class SlotAttentionOutput:
    """What :meth:`SlotAttention.forward` returns."""

    slots: Tensor  # [B, K, D] slots after the last iteration
    attn: Tensor  # [B, T, K, N] attention of every iteration (softmax-normalised, before the +eps)
    init_slots: Tensor  # [B, K, D] the initial slots the iterations started from


class SlotAttention(nn.Module):
    """Slot Attention (Algorithm 1).

    Args:
        num_slots: default number of slots K (can be changed per call).
        dim: slot size D (64 in the paper).
        input_dim: size of the input features; defaults to ``dim``.
        iters: default number of iterations T (3 in the paper; can be changed per call).
        hidden_dim: hidden size of the residual MLP (128 in the paper).
        eps: offset for numerical stability (1e-8).
        aggregation: ``"mean"`` (paper: weighted mean over inputs), ``"sum"`` (weighted sum) or
            ``"sum_layernorm"`` (weighted sum followed by LayerNorm). Appendix B, Figure 7.
        softmax_axis: ``"slots"`` (paper: slots compete for inputs) or ``"inputs"`` (as in regular
            self-attention). Appendix B, Figure 10.
        slot_init: ``"shared"`` (paper: one mu/sigma for all slots) or ``"per_slot"`` (a learned Gaussian per
            slot; then K is fixed to ``num_slots``). Appendix B, Figure 9. Not in the paper: ``"queries"``, one
            learned initial slot per slot and no noise (BO-QSA's learnable queries, Jia et al. 2023; K fixed too).
            BO-QSA is ``slot_init="queries"`` with ``implicit_differentiation=True`` (its bi-level scheme: the
            iterations before the last run without gradient, and the queries learn straight through).
        update: ``"gru"`` (paper) or ``"direct"`` (the aggregated updates become the slots). Figure 11.
        layer_norm: apply LayerNorm to inputs and slots (paper: True). Figure 13.
        mlp: apply the residual MLP after the update (paper: True). Figure 14.
        temperature: the softmax scaling divides logits by this; ``None`` means sqrt(D) (paper). Figure 15.
        eps_placement: ``"attn"`` (paper: ``attn + eps`` before normalising) or ``"denominator"``
            (``attn / (sum + eps)``). Figure 16.
        identity_projections: replace q/k/v by the identity (used by the soft k-means reduction, appendix B;
            requires ``input_dim == dim``).
        reassociate: evaluation order only, the same function: apply the key/value projections to the K-sized
            side (``(q W_k) x^T`` and ``(attn x) W_v^T``) instead of projecting all N inputs. Fewer FLOPs and
            no [B, N, D] key/value tensors; results agree with ``False`` (Algorithm 1 literally) to rounding.
        layer_norm_eps: epsilon of every LayerNorm; 1e-3 is Keras' default, which the reference code uses
            (torch's default would be 1e-5).
        implicit_differentiation: not in the paper (Chang et al. 2022, "Object Representations as Fixed
            Points"): the first T-1 iterations run without gradient and the slots are detached before the last
            one, so the backward pass goes through one iteration only (first-order Neumann approximation of the
            fixed point's implicit gradient): more stable training and a cheaper backward. The initial slots
            still receive the gradient that reaches the last iteration's input, straight through (as BO-QSA,
            Jia et al. 2023), so mu and sigma keep learning. The forward values are unchanged.
        fused: evaluation order only, the same function: with the paper's attention (softmax over slots, ``attn +
            eps``, weighted mean) and ``reassociate``, one custom autograd function computes the logits, softmax,
            normalisation and weighted sum of an iteration and its hand-written backward (the softmax and the
            renormalisation differentiated in closed form, the two [B, N, D] input gradients of an iteration in
            one product); it saves only the attention and the normalised weights. The forward is bit-identical
            to ``False`` (autograd through the individual ops); gradients agree to rounding (tested in float64).
            See :mod:`slotlab.modules.slot_attention_fused`.
        evidence_gate: not in the paper (nor in SAVi): ``None`` (Algorithm 1) or c > 0: each iteration's change of
            a slot is scaled by m / (m + c), m the slot's attention summed over the inputs (how many inputs it
            holds). A slot holding no input (an occluded object's, in video) keeps the slot it started the
            iteration from (SAVi: the predictor's) instead of becoming the weighted mean of the few inputs it
            faintly attends to; a slot holding many inputs (m >> c) is updated as without the gate.
    """

    def __init__(
        self,
        num_slots: int,
        dim: int = 64,
        input_dim: int | None = None,
        iters: int = 3,
        hidden_dim: int = 128,
        eps: float = 1e-8,
        aggregation: Aggregation = "mean",
        softmax_axis: SoftmaxAxis = "slots",
        slot_init: SlotInit = "shared",
        update: UpdateFn = "gru",
        layer_norm: bool = True,
        mlp: bool = True,
        temperature: float | None = None,
        eps_placement: EpsPlacement = "attn",
        identity_projections: bool = False,
        reassociate: bool = True,
        layer_norm_eps: float = 1e-3,
        implicit_differentiation: bool = False,
        fused: bool = True,
        evidence_gate: float | None = None,
    ) -> None:
        super().__init__()
        input_dim = dim if input_dim is None else input_dim
        _check_positive("num_slots", num_slots)
        _check_positive("iters", iters)
        _check_positive("dim", dim)
        _check_choice("aggregation", aggregation, ("mean", "sum", "sum_layernorm"))
        _check_choice("softmax_axis", softmax_axis, ("slots", "inputs"))
        _check_choice("slot_init", slot_init, ("shared", "per_slot", "queries"))
        _check_choice("update", update, ("gru", "direct"))
        _check_choice("eps_placement", eps_placement, ("attn", "denominator"))
        if identity_projections and input_dim != dim:
            raise ValueError(f"identity_projections needs input_dim == dim, got {input_dim} and {dim}")
        if temperature is not None and temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if evidence_gate is not None and not evidence_gate > 0:
            raise ValueError(f"evidence_gate must be > 0 (or None), got {evidence_gate}")

        self.num_slots = num_slots
        self.dim = dim
        self.input_dim = input_dim
        self.iters = iters
        self.eps = eps
        self.aggregation = aggregation
        self.softmax_axis = softmax_axis
        self.slot_init = slot_init
        self.update = update
        self.use_layer_norm = layer_norm
        self.use_mlp = mlp
        self.scale = (1.0 / temperature) if temperature is not None else dim**-0.5
        self.eps_placement = eps_placement
        self.identity_projections = identity_projections
        self.reassociate = reassociate
        self.implicit_differentiation = implicit_differentiation
        self.fused = fused
        self.evidence_gate = evidence_gate

        init_shape = (1, 1 if slot_init == "shared" else num_slots, dim)
        self.slots_mu = nn.Parameter(torch.empty(init_shape))  # [1, 1 or K, D]; the queries with "queries"
        # Glorot-uniform init of mu and log_sigma, as the reference code (of the queries too, as BO-QSA).
        limit = math.sqrt(6.0 / (1 + dim))
        nn.init.uniform_(self.slots_mu, -limit, limit)
        self.slots_log_sigma: nn.Parameter | None = None  # "queries" draws no noise
        if slot_init != "queries":
            self.slots_log_sigma = nn.Parameter(torch.empty(init_shape))
            nn.init.uniform_(self.slots_log_sigma, -limit, limit)

        def norm(size: int) -> nn.Module:
            return LayerNorm(size, eps=layer_norm_eps) if layer_norm else nn.Identity()

        self.norm_inputs = norm(input_dim)
        self.norm_slots = norm(dim)
        self.norm_mlp = norm(dim)
        if identity_projections:
            self.project_q = self.project_k = self.project_v = nn.Identity()
        else:
            self.project_q = nn.Linear(dim, dim, bias=False)
            self.project_k = nn.Linear(input_dim, dim, bias=False)
            self.project_v = nn.Linear(input_dim, dim, bias=False)
        self.gru = nn.GRUCell(dim, dim) if update == "gru" else None
        self.mlp = (
            nn.Sequential(nn.Linear(dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, dim))
            if mlp
            else None
        )
        self.norm_updates = LayerNorm(dim, eps=layer_norm_eps) if aggregation == "sum_layernorm" else None

    @property
    def noise_dim(self) -> int:
        """Features of the N(0, 1) noise a call draws per slot (``noise`` [B, K, noise_dim]): D here."""
        return self.dim

    def initial_slots(
        self, batch_size: int, num_slots: int | None = None, generator=None, noise: Tensor | None = None
    ) -> Tensor:
        """Sample initial slots ``mu + exp(log_sigma) * noise``: [B, K, D], noise ~ N(0, 1) unless given.

        With ``slot_init="queries"`` the initial slots are the learned queries themselves (``noise`` is ignored).
        """
        k = self.num_slots if num_slots is None else num_slots
        _check_positive("num_slots", k)
        if self.slot_init != "shared" and k != self.num_slots:
            raise ValueError(
                f"slot_init={self.slot_init!r} learns exactly {self.num_slots} initial slots; cannot use K={k}"
            )
        mu = self.slots_mu.expand(batch_size, k, -1)
        if self.slots_log_sigma is None:  # learned queries: deterministic
            return mu  # [B, K, D]
        sigma = self.slots_log_sigma.exp().expand(batch_size, k, -1)
        if noise is None:  # torch.randn(mu.shape, ...), traceable by torch.compile (torch_workarounds, bug 2)
            noise = standard_normal(mu.shape, mu.device, mu.dtype, generator)
        elif noise.shape != mu.shape:
            raise ValueError(f"noise must be [{batch_size}, {k}, {self.dim}], got {tuple(noise.shape)}")
        return mu + sigma * noise.to(device=mu.device, dtype=mu.dtype)  # [B, K, D]

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
        """Group ``inputs`` [B, N, D_inputs] into slots.

        Args:
            inputs: [B, N, D_inputs] set of input features.
            num_slots: K for this call (default: the constructor's); ignored when ``slots`` is given.
            iters: T for this call (default: the constructor's).
            slots: optional initial slots [B, K, D]; when given, no sampling happens.
            noise: optional N(0, 1) noise [B, K, D] for the initial slots (instead of drawing it here).
            logit_bias: optional [B, K, N] added to the attention logits in every iteration (not in the paper; e.g.
                :mod:`slotlab.modules.box_attention`); the op-by-op path runs where it is given.
            spatial_prior: optional weight of a Gaussian prior around each slot's previous attention, added to the
                logits from the second iteration on (not in the paper; :mod:`slotlab.modules.spatial_prior`);
                needs ``positions`` [N, 2], the inputs' positions.
        """
        inputs, slots, t_iters = self._start(inputs, num_slots, iters, slots, noise)
        init_slots = slots
        b = inputs.shape[0]

        x = self.norm_inputs(inputs)  # [B, N, D_inputs]
        if self.reassociate:
            dtype = _autocast_dtype(x.device.type)
            if dtype is not None:
                x = x.to(dtype)  # cast once, not in each of the 2T products with x
            keys = values = x
        else:  # Algorithm 1 literally: project every input to a key and a value
            keys, values = self.project_k(x), self.project_v(x)  # [B, N, D]

        bias = self._logit_bias(logit_bias, spatial_prior, positions, b, slots.shape[1], inputs.shape[1])

        grads = None  # the fused path's collector of the iterations' input gradients (one product in the backward)
        fused_ok = self._fused_path(logit_bias) and spatial_prior is None
        if fused_ok and torch.is_grad_enabled() and x.requires_grad:
            keys, grads = fused.collect_input_grads(x)
            values = keys

        slots, attns = self._iterate(slots, t_iters, lambda s, prev: self.step(s, keys, values, grads, bias(prev)))
        return SlotAttentionOutput(slots=slots, attn=torch.stack(attns, dim=1), init_slots=init_slots)

    def _iterate(
        self,
        slots: Tensor,
        t_iters: int,
        iteration: Callable[[Tensor, Tensor | None], tuple[Tensor, Tensor]],
    ) -> tuple[Tensor, list[Tensor]]:
        """``t_iters`` times ``iteration(slots, previous attn or None) -> (slots, attn)`` from the initial ``slots``
        [B, K, D]; with ``implicit_differentiation`` (and a gradient) all but the last without gradient. Returns the
        last slots and every iteration's attention [B, K, N]."""
        init_slots = slots
        attns: list[Tensor] = []
        free_iters = t_iters - 1 if self.implicit_differentiation and torch.is_grad_enabled() else t_iters
        with torch.no_grad() if free_iters < t_iters else contextlib.nullcontext():
            for _ in range(free_iters):
                slots, attn = iteration(slots, attns[-1] if attns else None)
                attns.append(attn)
        if free_iters < t_iters:
            # The value stays the iterate exactly (init - init.detach() is exactly 0); the gradient of the last
            # iteration's input slots reaches the initial slots straight through.
            slots = slots.detach() + (init_slots - init_slots.detach())
            slots, attn = iteration(slots, attns[-1] if attns else None)
            attns.append(attn)
        return slots, attns

    def _start(
        self, inputs: Tensor, num_slots: int | None, iters: int | None, slots: Tensor | None, noise: Tensor | None
    ) -> tuple[Tensor, Tensor, int]:
        """The checked inputs [B, N, D_inputs], the initial slots [B, K, D] (given, or drawn) and T of a call."""
        # Type, dtype and shape only (O(1), no sync): float64 / float32 / bf16 inputs are cast to the module's dtype
        # outside autocast (slotlab.checks); integer inputs, numpy arrays and empty sets are refused.
        dtype = self.slots_mu.dtype
        inputs = float_input(inputs, "inputs", dtype, f"[B, N, {self.input_dim}] of input features")
        if inputs.dim() != 3 or inputs.shape[-1] != self.input_dim:
            raise InputShapeError(f"inputs must be [B, N, {self.input_dim}], got {tuple(inputs.shape)}")
        require_nonempty(inputs, "inputs", "[B, N, D]", (0, 1))
        t_iters = self.iters if iters is None else iters
        _check_positive("iters", t_iters)
        b = inputs.shape[0]
        if noise is not None:
            noise = require_tensor(noise, "noise", f"[B, K, {self.dim}] of N(0, 1) samples")
        if slots is None:
            k_slots = num_slots if noise is None else noise.shape[1]
            slots = self.initial_slots(b, k_slots, noise=noise).to(inputs.dtype)
        else:
            slots = float_input(slots, "slots", dtype, f"[B, K, {self.dim}] of initial slots")
            if slots.dim() != 3 or slots.shape[0] != b or slots.shape[-1] != self.dim:
                raise InputShapeError(f"slots must be [{b}, K, {self.dim}], got {tuple(slots.shape)}")
        return inputs, slots, t_iters

    @staticmethod
    def _logit_bias(
        logit_bias: Tensor | None,
        spatial_prior: float | None,
        positions: Tensor | None,
        b: int,
        k_slots: int,
        n: int,
    ) -> Callable[[Tensor | None], Tensor | None]:
        """-> the function (previous attention [B, K, N] or None) -> an iteration's logit bias [B, K, N] or None:
        ``logit_bias`` (checked) plus, from the second iteration on, the spatial prior."""
        if logit_bias is not None and tuple(logit_bias.shape) != (b, k_slots, n):
            raise InputShapeError(f"logit_bias must be [{b}, {k_slots}, {n}] (B, K, N), got {tuple(logit_bias.shape)}")
        if spatial_prior is not None:
            spatial_prior = none_or_positive("spatial_prior", spatial_prior)
            positions = check_positions(positions, n)

        def bias(prev_attn: Tensor | None) -> Tensor | None:  # [B, K, N] or None: this iteration's logit bias
            if spatial_prior is None or prev_attn is None:
                return logit_bias
            prior = gaussian_prior(prev_attn, positions, spatial_prior)  # [B, K, N]
            return prior if logit_bias is None else logit_bias + prior

        return bias

    def step(
        self,
        slots: Tensor,
        keys: Tensor,
        values: Tensor,
        _grads: fused.InputGradFactors | None = None,
        logit_bias: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """One iteration of Algorithm 1. Returns the new slots [B, K, D] and attn [B, K, N].

        slots: [B, K, D]. With ``reassociate`` (default) ``keys`` and ``values`` are both the normalised inputs
        [B, N, D_inputs] and the projections act on the K-sized side:
        ``q k^T = (q W_k) x^T`` and ``attn v = (attn x) W_v^T``, so no [B, N, D] key/value tensor is formed.
        Otherwise they are the projected keys and values [B, N, D]. ``logit_bias`` [B, K, N] is added to the logits.
        """
        slots_prev = slots
        q = self.project_q(self.norm_slots(slots)) * self.scale  # [B, K, D]
        if self.reassociate and not self.identity_projections:
            q = q @ self.project_k.weight.to(q.dtype)  # [B, K, D_inputs]
        if self._fused_path(logit_bias):
            updates, attn = fused.attend_mean(q.to(keys.dtype), keys, self.eps, _grads)
        else:
            updates, attn = self._attend(q, keys, values, logit_bias)
        if self.reassociate and not self.identity_projections:
            updates = F.linear(updates, self.project_v.weight)  # [B, K, D]
        return self._update(slots_prev, updates, attn), attn

    def _update(self, slots_prev: Tensor, updates: Tensor, attn: Tensor) -> Tensor:
        """The slots [B, K, D] after an iteration's aggregated ``updates`` [B, K, D] (attention ``attn`` [B, K, N]):
        the optional LayerNorm of the updates, the GRU, the residual MLP and the optional evidence gate."""
        slots = slots_prev
        if self.norm_updates is not None:
            updates = self.norm_updates(updates)

        if self.gru is not None:
            bk = slots.shape[0] * slots.shape[1]
            slots = self.gru(updates.reshape(bk, -1), slots_prev.reshape(bk, -1)).view_as(slots_prev)
        else:
            slots = updates
        if self.mlp is not None:
            slots = slots + self.mlp(self.norm_mlp(slots))
        if self.evidence_gate is not None:
            mass = attn.sum(dim=-1, keepdim=True)  # [B, K, 1] inputs each slot holds (fp32)
            gate = (mass / (mass + self.evidence_gate)).to(slots.dtype)  # [B, K, 1]
            slots = slots_prev + gate * (slots - slots_prev)  # [B, K, D]
        return slots

    def _fused_path(self, logit_bias: Tensor | None = None) -> bool:
        # Under torch.compile the op-by-op path is traced instead (torch_workarounds, limitation 5: dynamo cannot
        # trace the fused function's shared gradient collector; inductor fuses the plain ops itself).
        return (
            self.fused
            and logit_bias is None
            and not torch.compiler.is_compiling()
            and self.reassociate
            and self.softmax_axis == "slots"
            and self.eps_placement == "attn"
            and self.aggregation == "mean"
        )

    def _attend(
        self, q: Tensor, keys: Tensor, values: Tensor, logit_bias: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Attention [B, K, N] and the aggregated values [B, K, D_values], op by op (autograd differentiates)."""
        if torch.compiler.is_compiling():  # the same dot products in another order (torch_workarounds, bug 3)
            logits = compiled_attention_logits(q, keys)  # [B, K, N]
        else:
            logits = torch.bmm(q.to(keys.dtype), keys.transpose(1, 2))  # [B, K, N]
        # Normalisation in fp32 under autocast: the softmax and the weighted mean are precision-sensitive.
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        if logit_bias is not None:
            logits = logits + logit_bias.to(logits.dtype)  # [B, K, N]
        attn = logits.softmax(dim=1 if self.softmax_axis == "slots" else 2)  # [B, K, N]

        if self.eps_placement == "attn":
            weights = attn + self.eps
            denom = weights.sum(dim=-1, keepdim=True)  # [B, K, 1]
        else:
            weights = attn
            denom = weights.sum(dim=-1, keepdim=True) + self.eps
        if self.aggregation == "mean":
            weights = weights / denom
        updates = torch.bmm(weights.to(values.dtype), values)  # [B, K, D_inputs] or [B, K, D]
        return updates, attn


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    if device_type in ("cpu", "cuda") and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


def soft_kmeans(num_slots: int, dim: int, **kwargs) -> SlotAttention:
    """The soft k-means reduction of appendix B: identity q/k/v, no GRU, no LayerNorm (and no MLP)."""
    options = dict(identity_projections=True, update="direct", layer_norm=False, mlp=False)
    options.update(kwargs)
    return SlotAttention(num_slots, dim=dim, input_dim=dim, **options)


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
