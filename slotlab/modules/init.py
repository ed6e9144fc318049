"""Parameter initialisation of the reference implementations (``model.weight_init``).

The paper's reference code (google-research ``slot_attention``) builds its layers with Keras' defaults and SAVi's
(``slot-attention-video``) with Flax's; torch's own defaults differ from both, and the difference is not small for
these models: torch draws a layer's weights with a third of the variance of Glorot's / LeCun's for the same fan-in
(``U(+-1/sqrt(fan_in))``) and gives every bias a random value where both references start from zero. Through the
4-layer ReLU encoder of the object-discovery model this leaves the image-dependent part of the features ~26x
smaller than the soft position embedding added to them at the first step (~5x with Keras' init), so Slot
Attention starts out grouping by position.

Schemes (applied to every ``nn.Linear``, ``nn.Conv2d``, ``nn.ConvTranspose2d``, ``nn.GRUCell`` and the q/k/v
projections of ``nn.MultiheadAttention`` (as three Dense layers) of a model; the
slot initialisers' own parameters and LayerNorm keep theirs, which already follow the references):

- ``"keras"`` (the reference code of the paper): kernels Glorot-uniform (``limit = sqrt(6 / (fan_in + fan_out))``,
  fans with the receptive field), biases zero; the GRU's input kernel Glorot-uniform over all three gates at once
  (Keras' ``[D_in, 3D]`` kernel), its recurrent kernel orthogonal over all three gates at once, biases zero.
- ``"flax"`` (SAVi): kernels LeCun-normal (a normal truncated at 2 standard deviations, variance ``1 / fan_in``),
  biases zero; Flax's GRU cell: each gate's input kernel LeCun-normal, each gate's recurrent kernel orthogonal,
  biases zero.
- ``"torch"``: torch's defaults, left as constructed (slotlab's behaviour until 2026-12-05).

``model.encoder_init: he`` (:func:`encoder_init_`, not in either reference) then re-draws the encoder CNN's
convolutions Kaiming-normal (variance ``2 / fan_in``, the ReLU gain; zero biases), so that the features' image-
dependent part keeps the input's scale through the ReLU stack instead of shrinking ~2x (LeCun / Glorot) or ~6x
(torch) in variance per layer.
"""

from __future__ import annotations

import math

import torch
from torch import nn

INIT_SCHEMES = ("keras", "flax", "torch")
ENCODER_INITS = ("weight_init", "he")

_TRUNC_STD = 0.87962566103423978  # std of a standard normal truncated to [-2, 2] (Flax's variance_scaling)


def _fans(weight: torch.Tensor, transposed: bool) -> tuple[int, int]:
    """(fan_in, fan_out) of a torch weight as the references count them (receptive field included).

    torch stores Linear [out, in], Conv2d [out, in, kh, kw], ConvTranspose2d [in, out, kh, kw].
    """
    receptive = weight[0, 0].numel() if weight.dim() > 2 else 1
    c_out, c_in = (weight.shape[1], weight.shape[0]) if transposed else (weight.shape[0], weight.shape[1])
    return c_in * receptive, c_out * receptive


def _glorot_uniform_(weight: torch.Tensor, fan_in: int, fan_out: int) -> None:
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    nn.init.uniform_(weight, -limit, limit)


def _lecun_normal_(weight: torch.Tensor, fan_in: int) -> None:
    std = math.sqrt(1.0 / fan_in) / _TRUNC_STD
    nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)


@torch.no_grad()
def _init_gru(cell: nn.GRUCell, scheme: str) -> None:
    h, d_in = cell.hidden_size, cell.input_size
    if scheme == "keras":
        _glorot_uniform_(cell.weight_ih, d_in, 3 * h)  # Keras kernel [D_in, 3H] = weight_ih^T
        nn.init.orthogonal_(cell.weight_hh)  # [3H, H]: orthonormal columns = Keras' orthonormal rows of [H, 3H]
    else:
        for gate in range(3):  # Flax: one Dense per gate
            _lecun_normal_(cell.weight_ih[gate * h : (gate + 1) * h], d_in)
            nn.init.orthogonal_(cell.weight_hh[gate * h : (gate + 1) * h])
    for bias in (cell.bias_ih, cell.bias_hh):
        if bias is not None:
            nn.init.zeros_(bias)


@torch.no_grad()
def _init_attention(attn: nn.MultiheadAttention, scheme: str) -> None:
    """The q, k, v projections (torch holds them as one [3D, D] matrix) as three Dense layers D -> D."""
    d = attn.embed_dim
    for i in range(3):  # slotlab's attention has kdim = vdim = embed_dim: one packed [3D, D] in_proj_weight
        _init_kernel(attn.in_proj_weight[i * d : (i + 1) * d], d, d, scheme)
    if attn.in_proj_bias is not None:
        nn.init.zeros_(attn.in_proj_bias)


def _init_kernel(weight: torch.Tensor, fan_in: int, fan_out: int, scheme: str) -> None:
    if scheme == "keras":
        _glorot_uniform_(weight, fan_in, fan_out)
    else:
        _lecun_normal_(weight, fan_in)


@torch.no_grad()
def reference_init_(model: nn.Module, scheme: str) -> nn.Module:
    """Re-initialise ``model``'s layers in place as ``scheme`` (one of :data:`INIT_SCHEMES`) does; returns it.

    The random draws come from torch's global generator, so a seeded run stays reproducible.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"model.weight_init must be one of {INIT_SCHEMES}, got {scheme!r}")
    if scheme == "torch":
        return model
    for module in model.modules():
        if isinstance(module, nn.GRUCell):
            _init_gru(module, scheme)
        elif isinstance(module, nn.MultiheadAttention):  # its out_proj is an nn.Linear, met next
            _init_attention(module, scheme)
        elif isinstance(module, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
            fan_in, fan_out = _fans(module.weight, isinstance(module, nn.ConvTranspose2d))
            _init_kernel(module.weight, fan_in, fan_out, scheme)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


@torch.no_grad()
def encoder_init_(model: nn.Module, scheme: str) -> nn.Module:
    """Re-draw the convolutions of ``model.encoder.cnn`` as ``scheme`` (one of :data:`ENCODER_INITS`) says:
    ``"weight_init"`` leaves them (``model.weight_init``'s), ``"he"`` draws Kaiming-normal kernels (fan-in, ReLU
    gain) and zero biases. Returns ``model``; the draws come from torch's global generator."""
    if scheme not in ENCODER_INITS:
        raise ValueError(f"model.encoder_init must be one of {ENCODER_INITS}, got {scheme!r}")
    if scheme == "weight_init":
        return model
    for module in model.encoder.cnn.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model
