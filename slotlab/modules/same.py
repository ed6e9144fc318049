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

import functools

import torch
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


@functools.cache
def _phase_taps(kernel: int, stride: int, before: int) -> tuple[Tensor, int, int]:
    """Kernel index per (output phase a, input offset j) of a transposed convolution, and the offsets' range.

    Output row ``p = stride * m + a`` of the TF-aligned transposed convolution is
    ``sum_j x[m + j] * w[stride * (-j) + a + before]`` over the taps inside the kernel; the index table holds
    ``kernel`` (a zero tap) where there is none. Returns (index [stride, J], j_min, j_max).
    """
    js = [
        -((kk - a - before) // stride) for a in range(stride) for kk in range(kernel) if (kk - a - before) % stride == 0
    ]
    j_min, j_max = min(js), max(js)
    index = torch.full((stride, j_max - j_min + 1), kernel, dtype=torch.long)
    for a in range(stride):
        for j in range(j_min, j_max + 1):
            kk = stride * (-j) + a + before
            if 0 <= kk < kernel:
                index[a, j - j_min] = kk
    return index, j_min, j_max


def phase_conv_transpose(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int) -> Tensor:
    """Exact TF-"SAME" transposed convolution as ONE stride-1 convolution and a pixel shuffle.

    Each of the ``stride**2`` output phases is a stride-1 correlation of the input with a sub-kernel of the
    transposed kernel (kernel 5, stride 2: 2 or 3 taps per axis); the sub-kernels, zero-padded to a common
    J x J (3 x 3), become the ``O * stride**2`` output channels of one convolution, and ``pixel_shuffle``
    interleaves the phases. Same function (tested in float64), but a stride-1 convolution stays on oneDNN's fast
    path in bf16 where the stride-2 transposed convolution's backward does not.
    x: [B, C, n, m]; weight: [C, O, k, k] (ConvTranspose2d layout) -> [B, O, n * stride, m * stride].
    """
    k = weight.shape[-1]
    if weight.shape[-2] != k:
        raise ValueError(f"phase_conv_transpose needs a square kernel, got {tuple(weight.shape[-2:])}")
    before, _ = same_transpose_crop(k, stride)
    index, j_min, j_max = _phase_taps(k, stride, before)
    index = index.to(weight.device)
    c, o = weight.shape[:2]
    taps = F.pad(weight, (0, 1, 0, 1))  # [C, O, k + 1, k + 1]: index k is a zero tap
    w = taps[:, :, index[:, :, None, None], index[None, None, :, :]]  # [C, O, s, J, s, J]
    j = j_max - j_min + 1
    w = w.permute(1, 2, 4, 0, 3, 5).reshape(o * stride * stride, c, j, j)  # [O*s*s, C, J, J]
    b = None if bias is None else bias.repeat_interleave(stride * stride)  # [O*s*s]
    if -j_min == j_max:
        y = F.conv2d(x, w, b, padding=j_max)
    else:
        y = F.conv2d(F.pad(x, (-j_min, j_max, -j_min, j_max)), w, b)
    return F.pixel_shuffle(y, stride)  # [B, O, n*s, m*s]


class SameConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` with TF "SAME" output alignment: [B, C, n, m] -> [B, O, n * s, m * s].

    ``phase_decomposition`` (default on for stride > 1): compute it as :func:`phase_conv_transpose` (same
    function, faster in bf16); off: PyTorch's transposed convolution with the TF crop.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, phase_decomposition: bool = True
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0)
        self.phase_decomposition = phase_decomposition

    def transpose_same(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """The layer's computation with another weight/bias (used by the decoder's exact factorisation)."""
        s = self.stride[0]
        if self.phase_decomposition and s > 1 and self.stride[1] == s and self.kernel_size[0] == self.kernel_size[1]:
            return phase_conv_transpose(x, weight, bias, s)
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
