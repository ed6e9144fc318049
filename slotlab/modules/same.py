"""TensorFlow/Keras ``padding="SAME"`` convolutions in PyTorch, aligned exactly as the reference code's layers.

TF pads ``total = max((ceil(n / s) - 1) * s + k - n, 0)`` for a convolution and puts the *smaller* half
before: kernel 5 with stride 2 on an even size pads 1 before and 2 after. PyTorch's ``padding=`` is
symmetric, so a naive port of a stride-2 layer is shifted by one pixel (the sizes still match, so nothing
errors). For a transposed convolution TF keeps the output rows ``[before : before + n * s]`` of the full
(unpadded, length ``(n - 1) * s + k``) result, with ``before = (k - s) // 2``.

:class:`SameConv2d` and :class:`SameConvTranspose2d` are ``nn.Conv2d`` / ``nn.ConvTranspose2d`` with those
semantics (same parameters and state-dict keys). Where the padding is symmetric (every stride-1 layer with an
odd kernel) they run the plain, padded PyTorch layer; otherwise they pad/crop the one extra pixel.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of a TF "SAME" convolution of one axis of length ``size``."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def same_transpose_crop(kernel: int, stride: int) -> tuple[int, int]:
    """(before, after): rows TF drops from each end of the full transposed convolution (output = n * stride)."""
    total = max(kernel - stride, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TF "SAME" padding (asymmetric where TF's is: stride 2, even sizes)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0)

    def _pads(self, h: int, w: int) -> tuple[tuple[int, int], tuple[int, int]]:
        return (
            same_pad(h, self.kernel_size[0], self.stride[0]),
            same_pad(w, self.kernel_size[1], self.stride[1]),
        )

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        return -(-h // self.stride[0]), -(-w // self.stride[1])

    def conv_same(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """The layer's computation with another weight/bias (used by the decoder's exact factorisation)."""
        (top, bottom), (left, right) = self._pads(*x.shape[-2:])
        if top == bottom and left == right:  # symmetric: let the kernel pad (the fast path)
            return F.conv2d(x, weight, bias, self.stride, (top, left))
        x = F.pad(x, (left, right, top, bottom))  # [B, C, H + pads, W + pads]
        return F.conv2d(x, weight, bias, self.stride, 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_same(x, self.weight, self.bias)


class SameConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` with TF "SAME" output alignment: [B, C, n, m] -> [B, O, n * s, m * s]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0)

    def transpose_same(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """The layer's computation with another weight/bias (used by the decoder's exact factorisation)."""
        (top, bottom), (left, right) = (
            same_transpose_crop(self.kernel_size[0], self.stride[0]),
            same_transpose_crop(self.kernel_size[1], self.stride[1]),
        )
        # torch's padding=p crops p rows at both ends; crop the remaining (after - before) rows at the end.
        y = F.conv_transpose2d(x, weight, bias, self.stride, (top, left))
        if bottom != top or right != left:
            y = y[..., : y.shape[-2] - (bottom - top), : y.shape[-1] - (right - left)]
        return y

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return self.transpose_same(x, self.weight, self.bias)
