"""Spatial broadcast decoder with alpha masks (paper Section 2.2; Watters et al. 2019, as in IODINE).

Each slot is tiled onto a grid, a soft position embedding is added, and a CNN shared across slots decodes
it to RGB + one alpha logit per pixel. Alpha logits are normalised with a softmax over slots (the masks) and
the per-slot RGB images are mixed with them.

Exact factorisation of the first layer (``factorize_first_layer=True``, on by default): the first layer
sees ``broadcast(slot) + P`` with P the (slot-independent) position embedding. The layer is linear, so
``L(broadcast(s) + P) = L_nobias(broadcast(s)) + L(P)``; and ``L_nobias(broadcast(s))[o, i, j] =
sum_c s_c * M[c, o, i, j]`` where ``M`` is the layer's response to an all-ones image per input channel
(zero padding included, so the borders are exact). ``M`` is the sum of the kernel taps that see the image at each
output pixel (:meth:`ones_taps` of the layer: a 0/1 table per axis, one small einsum per step), and
the per-slot work becomes a [B*K, C] x [C, O*H*W] matmul instead of a full convolution on B*K images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slotlab.modules.position import SoftPositionEmbed
from slotlab.modules.same import SameConv2d, SameConvTranspose2d
from slotlab.modules.slot_frame import FRAMES, SCALES_FACTOR, centred_grid, relative_grid


@dataclass(frozen=True)
class LayerSpec:
    """One decoder layer: ``kind`` is "conv" (stride 1, 'same') or "convT" (stride 1 or 2, 'same')."""

    kind: str
    out_channels: int
    kernel: int
    stride: int = 1


def full_resolution_layers(channels: int = 32, num_layers: int = 3) -> list[LayerSpec]:
    """Decoder of the small datasets (Tetrominoes, Multi-dSprites): broadcast at full resolution,
    ``num_layers`` x Conv(5x5, ``channels``, ReLU) then Conv(3x3, 4)."""
    return [LayerSpec("conv", channels, 5)] * num_layers + [LayerSpec("conv", 4, 3)]


def clevr_layers(channels: int = 64) -> list[LayerSpec]:
    """Reference decoder for 128x128 (CLEVR): broadcast 8x8, 4 x ConvT(5, stride 2), ConvT(5, 1), ConvT(3, 1)."""
    return [LayerSpec("convT", channels, 5, 2)] * 4 + [
        LayerSpec("convT", channels, 5, 1),
        LayerSpec("convT", 4, 3),
    ]


def _make_layer(spec: LayerSpec, in_channels: int) -> nn.Module:
    k, s = spec.kernel, spec.stride
    if spec.kind == "conv":
        if s != 1:
            raise ValueError("decoder 'conv' layers must have stride 1")
        return SameConv2d(in_channels, spec.out_channels, k)
    if spec.kind == "convT":
        # TF 'SAME' transposed conv: output = input * stride, aligned as TF (see slotlab.modules.same).
        return SameConvTranspose2d(in_channels, spec.out_channels, k, stride=s)
    raise ValueError(f"unknown decoder layer kind {spec.kind!r} (expected 'conv' or 'convT')")


@dataclass
class DecoderOutput:
    recon: Tensor  # [B, 3, H, W] mixture of the per-slot reconstructions
    recons: Tensor  # [B, K, 3, H, W] per-slot RGB
    masks: Tensor  # [B, K, 1, H, W] alpha masks (softmax over slots)
    alpha: Tensor | None = None  # [B, K, 1, H, W] their logits


class SpatialBroadcastDecoder(nn.Module):
    """Decodes slots [B, K, D] into an image, per-slot RGB and masks (softmax over slots).

    ``frame``: "absolute" (the paper: the soft position embedding of the absolute grid), or "translation" /
    "translation_scale" (ISA, :mod:`slotlab.modules.slot_frame`): ``Linear(2 -> D)`` of the grid relative to
    each slot's position (and scale), which :meth:`forward` then needs. ``fourier_bands``: Fourier features of the
    absolute grid (:func:`slotlab.modules.position.fourier_grid`; 0 = the paper's linear grid).
    """

    def __init__(
        self,
        slot_dim: int,
        broadcast_resolution: tuple[int, int],
        layers: Sequence[LayerSpec],
        factorize_first_layer: bool = True,
        frame: str = "absolute",
        fourier_bands: int = 0,
    ) -> None:
        super().__init__()
        if not layers or layers[-1].out_channels != 4:
            raise ValueError("the last decoder layer must output 4 channels (RGB + alpha)")
        if frame not in FRAMES:
            raise ValueError(f"decoder frame must be one of {FRAMES}, got {frame!r}")
        self.broadcast_resolution = tuple(broadcast_resolution)
        self.frame = frame
        if frame == "absolute":
            self.pos = SoftPositionEmbed(slot_dim, self.broadcast_resolution, fourier_bands)
        elif fourier_bands:
            raise ValueError(f"Fourier position features need the absolute frame, not {frame!r}")
        else:
            self.frame_pos = nn.Linear(2, slot_dim)  # ISA's RelativePositionEmbedding, "project_add"
            self.register_buffer("frame_grid", centred_grid(*self.broadcast_resolution), persistent=False)
        modules = []
        c = slot_dim
        for spec in layers:
            modules.append(_make_layer(spec, c))
            c = spec.out_channels
        self.layers = nn.ModuleList(modules)
        self.factorize_first_layer = factorize_first_layer

    def _first_layer_factorized(self, slots: Tensor) -> Tensor:
        """Exact ``layer0(broadcast(slots) + pos)`` for slots [BK, D] -> [BK, O, H', W'] (channels_last)."""
        layer = self.layers[0]
        d = slots.shape[-1]
        o = layer.out_channels
        # M = the layer's response to an all-ones image per input channel: the sum of the kernel taps that see
        # the image at each output pixel (a 0/1 tap table per axis; the same sums a convolution of ones forms).
        m = self._ones_response(slots.dtype, slots.device)  # [D, H', W', O]
        hh, ww = m.shape[1], m.shape[2]
        pos_out = layer(self.pos.embedding().to(slots.dtype))  # [1, O, H', W'] (includes the bias)
        out = slots @ m.reshape(d, hh * ww * o)  # [BK, H'*W'*O]
        out = out.view(-1, hh, ww, o) + pos_out.permute(0, 2, 3, 1)  # [BK, H', W', O]
        return out.permute(0, 3, 1, 2)  # [BK, O, H', W'] in channels_last memory layout

    def _ones_response(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        """M of the first layer: its bias-free response to an all-ones image per input channel, [D, H', W', O]."""
        layer = self.layers[0]
        h, w = self.broadcast_resolution
        rows, cols = (t.to(device=device, dtype=dtype) for t in layer.ones_taps(h, w))
        weight = layer.weight.to(dtype)
        if isinstance(layer, SameConv2d):  # weight [O, D, kh, kw]
            return torch.einsum("odkl,hk,wl->dhwo", weight, rows, cols)
        return torch.einsum("dokl,hk,wl->dhwo", weight, rows, cols)  # SameConvTranspose2d, weight [D, O, kh, kw]

    def _frame_first_layer_factorized(self, slots: Tensor, positions: Tensor, scales: Tensor | None) -> Tensor:
        """Exact ``layer0(broadcast(slot) + Linear(relative grid))`` per slot [BK, D] -> [BK, O, H', W'].

        ``Linear(rel)`` with ``rel_a = (g_a - p_a) / c_a`` is ``sum_a (W_a g_a) / c_a + (b - sum_a W_a p_a / c_a)``:
        a per-slot constant (folded into the slot, through M) plus two slot-independent maps ``W_a g_a`` scaled by
        ``1 / c_a`` (their bias-free responses computed once per step).
        """
        layer = self.layers[0]
        h, w = self.broadcast_resolution
        dtype = slots.dtype
        scale = SCALES_FACTOR * scales if scales is not None else torch.ones_like(positions)
        inv_c = (1.0 / scale).to(dtype)  # [BK, 2]
        weight_r = self.frame_pos.weight.to(dtype)  # [D, 2]
        shifted = slots + self.frame_pos.bias.to(dtype) - (positions.to(dtype) * inv_c) @ weight_r.t()  # [BK, D]
        m = self._ones_response(dtype, slots.device)  # [D, H', W', O]
        d, hh, ww, o = m.shape
        grid = self.frame_grid.to(dtype).t().reshape(2, 1, h, w)  # [2, 1, h, w] (y, x)
        maps = weight_r.t()[:, :, None, None] * grid  # [2, D, h, w]: W_a g_a
        bias = layer.bias.to(dtype)
        resp = layer(maps.contiguous()) - bias[None, :, None, None]  # [2, O, H', W'] bias-free
        out = shifted @ m.reshape(d, hh * ww * o)  # [BK, H'*W'*O]
        out = out + inv_c @ resp.permute(0, 2, 3, 1).reshape(2, hh * ww * o)
        out = out.view(-1, hh, ww, o) + bias  # [BK, H', W', O]
        return out.permute(0, 3, 1, 2)  # [BK, O, H', W'] in channels_last memory layout

    def _frame_input(self, slots: Tensor, positions: Tensor, scales: Tensor | None) -> Tensor:
        """``broadcast(slot) + Linear(relative grid)``: [BK, D] -> [BK, D, h, w] (the unfactorised path)."""
        h, w = self.broadcast_resolution
        rel = relative_grid(self.frame_grid.to(positions.device), positions.float(), scales)  # [BK, h*w, 2]
        emb = self.frame_pos(rel.to(slots.dtype))  # [BK, h*w, D]
        x = slots[:, None, :] + emb  # [BK, h*w, D]
        return x.transpose(1, 2).reshape(-1, slots.shape[-1], h, w)

    def forward(self, slots: Tensor, positions: Tensor | None = None, scales: Tensor | None = None) -> DecoderOutput:
        """slots [B, K, D]; with a slot frame also ``positions`` [B, K, 2] and (translation_scale) ``scales``."""
        b, k, d = slots.shape
        flat = slots.reshape(b * k, d)  # [BK, D]
        if self.frame != "absolute":
            if positions is None or (self.frame == "translation_scale" and scales is None):
                raise ValueError(f"decoder frame {self.frame!r} needs the slots' positions (and scales)")
            pos = positions.reshape(b * k, 2)
            sc = scales.reshape(b * k, 2) if self.frame == "translation_scale" else None
            if self.factorize_first_layer:
                x = self._frame_first_layer_factorized(flat, pos, sc)
            else:
                x = self.layers[0](self._frame_input(flat, pos, sc))
        elif self.factorize_first_layer:
            x = self._first_layer_factorized(flat)
        else:
            h, w = self.broadcast_resolution
            x = flat[:, :, None, None].expand(b * k, d, h, w)  # [BK, D, h, w]
            x = self.pos(x)
            x = self.layers[0](x)
        for layer in self.layers[1:]:
            x = layer(F.relu(x))
        x = x.float()  # mixing in fp32
        x = x.view(b, k, 4, *x.shape[-2:])  # [B, K, 4, H, W]
        recons, alpha = x[:, :, :3], x[:, :, 3:]  # [B, K, 3, H, W], [B, K, 1, H, W]
        masks = alpha.softmax(dim=1)
        recon = (recons * masks).sum(dim=1)  # [B, 3, H, W]
        return DecoderOutput(recon=recon, recons=recons, masks=masks, alpha=alpha)


def build_decoder(
    resolution: tuple[int, int],
    slot_dim: int,
    kind: str,
    channels: int,
    factorize: bool = True,
    frame: str = "absolute",
    fourier_bands: int = 0,
) -> SpatialBroadcastDecoder:
    """The paper's decoder for an image size: ``"full_resolution"`` (broadcast at (H, W), stride-1 convs; the
    small datasets) or ``"clevr"`` (broadcast at (H/16, W/16), 4 stride-2 transposed convs; 128x128).
    ``frame``, ``fourier_bands``: the broadcast grid's frame and features (see :class:`SpatialBroadcastDecoder`)."""
    if kind == "full_resolution":
        layers = full_resolution_layers(channels)
        return SpatialBroadcastDecoder(slot_dim, resolution, layers, factorize, frame, fourier_bands)
    if kind == "clevr":
        if resolution[0] % 16 or resolution[1] % 16:
            raise ValueError(f"the 'clevr' decoder upsamples 16x and needs H, W divisible by 16: {resolution}")
        small = (resolution[0] // 16, resolution[1] // 16)
        return SpatialBroadcastDecoder(slot_dim, small, clevr_layers(channels), factorize, frame, fourier_bands)
    raise ValueError(f"decoder must be 'full_resolution' or 'clevr', got {kind!r}")
