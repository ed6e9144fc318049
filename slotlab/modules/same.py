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
    """``nn.Conv2d`` with TF "SAME" padding (asymmetric where TF's is: stride 2, even sizes).

    ``shifted_kernel`` (default on): an asymmetric padding is computed as the kernel with a leading zero tap and
    symmetric padding (same function, tested in float64; no padded copy of the input); off: ``F.pad`` + convolution.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, shifted_kernel: bool = True
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0)
        self.shifted_kernel = shifted_kernel

    def _pads(self, h: int, w: int) -> tuple[tuple[int, int], tuple[int, int]]:
        return (
            same_pad(h, self.kernel_size[0], self.stride[0]),
            same_pad(w, self.kernel_size[1], self.stride[1]),
        )

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        return -(-h // self.stride[0]), -(-w // self.stride[1])

    def ones_taps(self, h: int, w: int) -> tuple[Tensor, Tensor]:
        """Which kernel taps see the image (not the padding) at each output row / column, for an [h, w] input.

        Returns (rows [H', kh], cols [W', kw]) of 0/1: the layer's response to an all-ones image is
        ``sum_{kh, kw} weight[..., kh, kw] * rows[i, kh] * cols[j, kw]`` (+ bias), exactly.
        """
        out = []
        for n, k, s, (before, _) in zip((h, w), self.kernel_size, self.stride, self._pads(h, w), strict=True):
            rows = torch.arange(-(-n // s))[:, None] * s - before + torch.arange(k)[None, :]  # input row of each tap
            out.append(((rows >= 0) & (rows < n)).to(self.weight.dtype))
        return out[0], out[1]

    def conv_same(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """The layer's computation with another weight/bias (used by the decoder's exact factorisation)."""
        (top, bottom), (left, right) = self._pads(*x.shape[-2:])
        if top == bottom and left == right:  # symmetric: let the kernel pad (the fast path)
            return F.conv2d(x, weight, bias, self.stride, (top, left))
        if self.shifted_kernel:
            # TF pads one more after than before (kernel 5, stride 2, even size: 1 and 2). A kernel with a leading
            # zero tap on that axis and the symmetric padding ``after`` computes the same sums: window i starts one
            # row earlier, on the zero tap. No padded copy of the input; stays on oneDNN's padded fast path.
            weight = F.pad(weight, (right - left, 0, bottom - top, 0))  # [O, C, kh (+1), kw (+1)]
            return F.conv2d(x, weight, bias, self.stride, (bottom, right))
        x = F.pad(x, (left, right, top, bottom))  # [B, C, H + pads, W + pads]
        return F.conv2d(x, weight, bias, self.stride, 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_same(x, self.weight, self.bias)


def _phase_offsets(kernel: int, stride: int, before: int) -> tuple[int, int]:
    """(j_min, j_max): the range of input offsets j of a transposed convolution's phases (see :func:`_phase_taps`).

    Plain Python on ints (no cache wrapper and no tensor), so torch.compile traces it as constants.
    """
    js = [
        -((kk - a - before) // stride) for a in range(stride) for kk in range(kernel) if (kk - a - before) % stride == 0
    ]
    return min(js), max(js)


@functools.cache
def _phase_taps(kernel: int, stride: int, before: int) -> tuple[Tensor, int, int]:
    """Kernel index per (output phase a, input offset j) of a transposed convolution, and the offsets' range.

    Output row ``p = stride * m + a`` of the TF-aligned transposed convolution is
    ``sum_j x[m + j] * w[stride * (-j) + a + before]`` over the taps inside the kernel; the index table holds
    ``kernel`` (a zero tap) where there is none. Returns (index [stride, J], j_min, j_max).
    """
    j_min, j_max = _phase_offsets(kernel, stride, before)
    index = torch.full((stride, j_max - j_min + 1), kernel, dtype=torch.long)
    for a in range(stride):
        for j in range(j_min, j_max + 1):
            kk = stride * (-j) + a + before
            if 0 <= kk < kernel:
                index[a, j - j_min] = kk
    return index, j_min, j_max


def _phase_kernels(weight: Tensor, dim: int, stride: int, before: int, j_min: int, j: int) -> Tensor:
    """The per-phase sub-kernels of one kernel axis by slicing: axis ``dim`` (size k) -> (phase a, offset j).

    Phase ``a``, offset ``j_min + t`` uses tap ``stride * -(j_min + t) + a + before`` (zero outside the kernel), i.e.
    every ``stride``-th tap of the flipped kernel: the same values as indexing with :func:`_phase_taps`'s table,
    but made of flips, pads and strided views, whose backward is cheap (an index's backward is an accumulating
    scatter). weight [..., k, ...] -> [..., s, J, ...] (the phase axis inserted at ``dim``).
    """
    dim = dim % weight.dim()
    k = weight.shape[dim]
    flipped = weight.flip(dim)  # flipped tap r = k - 1 - kk
    starts = [k - 1 - a - before + stride * j_min for a in range(stride)]  # flipped tap of offset j_min
    lo = max(0, -min(starts))
    hi = max(0, max(starts) + stride * (j - 1) + 1 - k)
    pad = [0, 0] * (weight.dim() - 1 - dim) + [lo, hi]
    flipped = F.pad(flipped, pad)  # zero taps outside the kernel
    index = [slice(None)] * weight.dim()
    phases = []
    for st in starts:
        index[dim] = slice(st + lo, st + lo + stride * (j - 1) + 1, stride)
        phases.append(flipped[tuple(index)])
    return torch.stack(phases, dim)


def _interleave_phases(y: Tensor, stride: int, out_channels: int) -> Tensor:
    """Pixel shuffle of phase-major channels, written channels_last.

    y: [B, s*s*O, n, m] in channels_last memory with channel ``(a * s + b) * O + o`` holding output pixel
    ``(s * i + a, s * j + b)`` of channel ``o`` -> [B, O, n*s, m*s] (channels_last memory). A pure permutation:
    in memory [B, n, m, a, b, O] -> [B, n, a, m, b, O], copying runs of ``s * O`` contiguous values, where
    ``F.pixel_shuffle`` on a channels_last tensor gathers single elements (2-3x slower, forward and backward).
    """
    b, _, n, m = y.shape
    t = y.permute(0, 2, 3, 1).reshape(b, n, m, stride, stride, out_channels)  # view (channels_last memory)
    t = t.permute(0, 1, 3, 2, 4, 5).reshape(b, n * stride, m * stride, out_channels)  # the one copy
    return t.permute(0, 3, 1, 2)  # [B, O, n*s, m*s], channels_last memory


def _channels_last(x: Tensor) -> bool:
    """True if x is in channels_last memory and not also plain-contiguous (C == 1 or 1x1 images are both)."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def phase_conv_transpose(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int) -> Tensor:
    """Exact TF-"SAME" transposed convolution as ONE stride-1 convolution (and a pixel shuffle if stride > 1).

    Each of the ``stride**2`` output phases is a stride-1 correlation of the input with a sub-kernel of the
    transposed kernel (kernel 5, stride 2: 2 or 3 taps per axis); the sub-kernels, zero-padded to a common
    J x J (3 x 3), become the ``O * stride**2`` output channels of one convolution, and a pixel shuffle
    interleaves the phases. Stride 1 is the one-phase case: the convolution with the flipped kernel, in/out
    channels swapped. Same function (tested in float64), but a stride-1 convolution stays on oneDNN's fast path
    in bf16 where PyTorch's transposed convolution does not (stride 1, 64 channels, 128x128: ~3x faster forward +
    backward in bf16 on AMX). For a channels_last input the phases are ordered phase-major so that the shuffle
    copies whole pixels (:func:`_interleave_phases`); otherwise ``F.pixel_shuffle``.
    x: [B, C, n, m]; weight: [C, O, k, k] (ConvTranspose2d layout) -> [B, O, n * stride, m * stride].
    """
    k = weight.shape[-1]
    if weight.shape[-2] != k:
        raise ValueError(f"phase_conv_transpose needs a square kernel, got {tuple(weight.shape[-2:])}")
    before, _ = same_transpose_crop(k, stride)
    c, o = weight.shape[:2]
    if stride == 1:
        # full[p] = sum_i x[i] w[p - i], rows [before, before + n) kept: a correlation with the flipped kernel,
        # padded k - 1 - before before and ``before`` after.
        w = weight.flip(-2, -1).transpose(0, 1)  # [O, C, k, k]
        j_min, j_max = -(k - 1 - before), before
        b, phase_major = bias, False
    else:
        j_min, j_max = _phase_offsets(k, stride, before)
        j = j_max - j_min + 1
        w = _phase_kernels(_phase_kernels(weight, -2, stride, before, j_min, j), -1, stride, before, j_min, j)
        phase_major = _channels_last(x)
        # output channels (a, b, o) for the channels_last shuffle, (o, a, b) for F.pixel_shuffle
        w = w.permute(2, 4, 1, 0, 3, 5) if phase_major else w.permute(1, 2, 4, 0, 3, 5)
        w = w.reshape(o * stride * stride, c, j, j)  # [O*s*s, C, J, J]
        if bias is None:
            b = None
        else:
            b = bias.repeat(stride * stride) if phase_major else bias.repeat_interleave(stride * stride)
    if -j_min == j_max:
        y = F.conv2d(x, w, b, padding=j_max)
    else:
        y = F.conv2d(F.pad(x, (-j_min, j_max, -j_min, j_max)), w, b)
    if stride == 1:
        return y
    if phase_major and _channels_last(y):
        return _interleave_phases(y, stride, o)  # [B, O, n*s, m*s]
    if phase_major:  # oneDNN chose another layout: bring the (a, b, o) channels to pixel_shuffle's (o, a, b)
        y = y.view(y.shape[0], stride * stride, o, *y.shape[-2:]).transpose(1, 2).reshape(y.shape)
    return F.pixel_shuffle(y, stride)  # [B, O, n*s, m*s]


class SameConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` with TF "SAME" output alignment: [B, C, n, m] -> [B, O, n * s, m * s].

    ``phase_decomposition`` (default on): compute it as :func:`phase_conv_transpose` (same function, faster in
    bf16; for stride 1 a plain convolution with the flipped kernel); off: PyTorch's transposed convolution with
    the TF crop.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, phase_decomposition: bool = True
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0)
        self.phase_decomposition = phase_decomposition

    def ones_taps(self, h: int, w: int) -> tuple[Tensor, Tensor]:
        """Which kernel taps reach each output row / column of an all-ones [h, w] input (0/1).

        Returns (rows [h * s, kh], cols [w * s, kw]): the response to an all-ones image is
        ``sum_{kh, kw} weight[:, :, kh, kw] * rows[p, kh] * cols[q, kw]`` (+ bias), exactly. Output row p is full
        row ``q = p + before``, which input row i reaches through tap ``q - s * i``.
        """
        out = []
        for n, k, s in zip((h, w), self.kernel_size, self.stride, strict=True):
            before, _ = same_transpose_crop(k, s)
            q = torch.arange(n * s)[:, None] + before - torch.arange(k)[None, :]  # s * i for tap kh
            out.append(((q % s == 0) & (q >= 0) & (q < n * s)).to(self.weight.dtype))
        return out[0], out[1]

    def transpose_same(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """The layer's computation with another weight/bias (used by the decoder's exact factorisation)."""
        s = self.stride[0]
        if self.phase_decomposition and self.stride[1] == s and self.kernel_size[0] == self.kernel_size[1]:
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
