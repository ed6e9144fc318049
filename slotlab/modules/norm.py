"""LayerNorm with exact weight and bias gradients for bf16 / fp16 inputs on CPUs (every LayerNorm of the paper's
models: the encoder's, and Slot Attention's on inputs, slots and before the MLP).

Under bf16 autocast PyTorch's CPU LayerNorm gets the weight and bias gradients of a half-precision input wrong
(torch 2.13; :mod:`slotlab.torch_workarounds`, bug 1, measured in ``tests/test_norm.py``); this module forms those
sums exactly there and is ``nn.LayerNorm`` everywhere else (fp32 inputs, GPUs, ``torch.compile``, inference).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from slotlab.torch_workarounds import HalfInputLayerNorm, needs_exact_layer_norm_sums


class LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` (same parameters, state-dict keys and forward values) whose weight/bias gradients are
    summed in fp32 for half-precision inputs on a CPU (see the module docstring)."""

    def forward(self, x: Tensor) -> Tensor:
        if needs_exact_layer_norm_sums(x, self.weight, self.bias):
            return HalfInputLayerNorm.apply(x, self.weight, self.bias, tuple(self.normalized_shape), self.eps)
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
