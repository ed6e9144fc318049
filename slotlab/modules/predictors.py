"""SAVi's predictor (Kipf et al. 2022): the transition model that maps the corrected slots of frame t to the
initial slots of frame t + 1, [B, K, D] -> [B, K, D].

- ``"transformer"`` (SAVi's default): one transformer-encoder block over the slots, multi-head self-attention and
  a ReLU MLP, each with a residual connection. The official ``TransformerBlock`` is post-norm by default
  (``pre_norm=False``: ``x = LN(x + MHA(x)); x = LN(x + MLP(x))``), SAVi-S uses 4 heads, qkv size 128 and MLP size
  256, no dropout, with biases on the q/k/v/output projections (flax's MultiHeadDotProductAttention) and LayerNorm
  eps 1e-6 (flax's default). This is :class:`torch.nn.TransformerEncoderLayer` with those settings (its qkv size
  is the slot size, as in every official SAVi config).
- ``"mlp"``: a per-slot residual MLP with pre-LayerNorm, ``x + MLP(LN(x))`` (no interaction between slots; built
  from the options of SAVi's ``misc.MLP``, ``layernorm="pre", residual=True``; no official config uses it).
- ``"identity"``: the corrected slots are carried over unchanged.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from slotlab.modules.frame_encoder import FLAX_LAYER_NORM_EPS
from slotlab.modules.norm import LayerNorm
from slotlab.torch_workarounds import fp32_outside_autocast

PredictorKind = Literal["transformer", "mlp", "identity"]
PREDICTORS = ("transformer", "mlp", "identity")


class TransformerPredictor(nn.Module):
    """One transformer-encoder block over the slots (self-attention between slots, then a per-slot MLP)."""

    def __init__(
        self,
        dim: int,
        num_heads: int = 4,
        mlp_size: int = 256,
        pre_norm: bool = False,
        layer_norm_eps: float = FLAX_LAYER_NORM_EPS,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"the slot size {dim} must be divisible by the number of heads {num_heads}")
        self.block = nn.TransformerEncoderLayer(
            dim,
            num_heads,
            dim_feedforward=mlp_size,
            dropout=0.0,
            activation="relu",
            layer_norm_eps=layer_norm_eps,
            batch_first=True,
            norm_first=pre_norm,
        )

    def forward(self, slots: Tensor) -> Tensor:
        return fp32_outside_autocast(self.block, slots)  # [B, K, D] fp32 (slotlab/torch_workarounds.py, 7)


class MLPPredictor(nn.Module):
    """``slots + MLP(LN(slots))``, per slot."""

    def __init__(self, dim: int, mlp_size: int = 256, layer_norm_eps: float = FLAX_LAYER_NORM_EPS) -> None:
        super().__init__()
        self.norm = LayerNorm(dim, eps=layer_norm_eps)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_size), nn.ReLU(inplace=True), nn.Linear(mlp_size, dim))

    def forward(self, slots: Tensor) -> Tensor:
        return slots + self.mlp(self.norm(slots))  # [B, K, D]


def build_predictor(
    kind: str,
    dim: int,
    num_heads: int = 4,
    mlp_size: int = 256,
    pre_norm: bool = False,
    layer_norm_eps: float = FLAX_LAYER_NORM_EPS,
) -> nn.Module:
    """The predictor ``kind`` (one of :data:`PREDICTORS`) for slots of size ``dim``."""
    if kind == "transformer":
        return TransformerPredictor(dim, num_heads, mlp_size, pre_norm, layer_norm_eps)
    if kind == "mlp":
        return MLPPredictor(dim, mlp_size, layer_norm_eps)
    if kind == "identity":
        return nn.Identity()
    raise ValueError(f"predictor must be one of {PREDICTORS}, got {kind!r}")
