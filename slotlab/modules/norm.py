"""LayerNorm with exact weight and bias gradients for bf16 / fp16 inputs on CPUs (every LayerNorm of the paper's
models: the encoder's, and Slot Attention's on inputs, slots and before the MLP).

Under bf16 autocast the encoder's features and Slot Attention's inputs are bf16, and PyTorch's CPU LayerNorm then
runs its mixed-type kernel (bf16 input, fp32 weight and bias). Its forward and input gradient are right to bf16
rounding, but its weight and bias gradients are not (torch 2.13): a sum over all B*N rows that comes out wrong
by 4-42 % for random gradients and by 7x (35x35 Tetrominoes model) to 40x (128x128 CLEVR model) in the models at
initialisation, where the per-row gradients largely cancel (``tests/test_norm.py`` measures it). Those sums are
formed here from the same bf16 values upcast to fp32 (exact), with PyTorch's fp32 kernel; the forward values and
the input gradient are the mixed kernel's, unchanged. fp32 inputs, GPUs, ``torch.compile`` (inductor computes
the norm in fp32 itself) and inference take the plain ``F.layer_norm``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_HALF = (torch.bfloat16, torch.float16)


class LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` (same parameters, state-dict keys and forward values) whose weight/bias gradients are
    summed in fp32 for half-precision inputs on a CPU (see the module docstring)."""

    def forward(self, x: Tensor) -> Tensor:
        if (
            x.dtype in _HALF
            and x.device.type == "cpu"
            and self.weight is not None
            and self.bias is not None
            and torch.is_grad_enabled()
            and (self.weight.requires_grad or self.bias.requires_grad)
            and not torch.compiler.is_compiling()
        ):
            return _HalfInputLayerNorm.apply(x, self.weight, self.bias, tuple(self.normalized_shape), self.eps)
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class _HalfInputLayerNorm(torch.autograd.Function):
    """y = LayerNorm(x) with the mixed-type kernel; backward: dx from the same kernel, dweight/dbias in fp32."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, shape: tuple[int, ...], eps: float) -> Tensor:
        with torch.autocast("cpu", enabled=False):
            y, mean, rstd = torch.native_layer_norm(x, shape, weight, bias, eps)  # y in x's dtype; mean/rstd fp32
        ctx.save_for_backward(x, weight, bias, mean, rstd)
        ctx.shape = shape
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy: Tensor):
        x, weight, bias, mean, rstd = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        aten = torch.ops.aten
        gx = gw = gb = None
        with torch.autocast("cpu", enabled=False):
            if need_x:  # per-row: right to bf16 rounding in the mixed kernel
                mask = [True, False, False]
                gx = aten.native_layer_norm_backward(gy, x, ctx.shape, mean, rstd, weight, bias, mask)[0]
            if need_w or need_b:  # sums over all rows: from the same values, upcast exactly, in fp32
                _, gw, gb = aten.native_layer_norm_backward(
                    gy.float(), x.float(), ctx.shape, mean, rstd, weight, bias, [False, need_w, need_b]
                )
        return gx, gw, gb, None, None
