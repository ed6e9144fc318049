"""SAVi's spatial broadcast decoder (Kipf et al. 2022, the official ``SpatialBroadcastDecoder``): every slot of every
frame is broadcast onto a small grid, a position embedding is added, a CNN upsamples it, and a 1x1 readout gives the
target channels (RGB and/or optical flow, any number) plus one alpha logit per pixel. The alpha logits are normalised
with a softmax over the slots (the masks) and mix the per-slot targets.

SAVi-S: 8x8 broadcast, 4 layers of 64 channels with kernel 5, strides (2, 2, 2, 1): three transposed convolutions and
one convolution, each followed by ReLU (the official ``CNN`` activates every layer, the last one included), then
Dense readouts (alpha: 1 channel, each target: its channels) on the last layer's features. The readouts are one 1x1
convolution here (the same function). Slots and frames are folded into the batch by the caller ([B*T, K, D]).

Parametrisation only: the position grid is slotlab's (see :mod:`slotlab.modules.frame_encoder`), and transposed
convolutions are TF/flax "SAME"-aligned (:class:`~slotlab.modules.same.SameConvTranspose2d`; flax does not flip the
kernel, which is a relabelling of the weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from slotlab.modules.position import SoftPositionEmbed
from slotlab.modules.same import SameConv2d, SameConvTranspose2d


def savi_decoder_strides(resolution: tuple[int, int], broadcast: int = 8, layers: int = 4) -> tuple[int, ...]:
    """SAVi's layout for another image size: stride-2 (transposed) layers up from a ``broadcast`` x ``broadcast`` grid,
    then stride 1 (64x64 -> (2, 2, 2, 1), SAVi-S's; 128x128 -> (2, 2, 2, 2), SAVi-M's; 32x32 -> (2, 2, 1, 1))."""
    h, w = resolution
    if h != w or h % broadcast or (h // broadcast) & (h // broadcast - 1):
        raise ValueError(
            f"SAVi's decoder layout needs a square image whose side is {broadcast} times a power of 2, got "
            f"{resolution}; pass decoder_strides and broadcast_resolution explicitly"
        )
    ups = (h // broadcast).bit_length() - 1
    if ups > layers:
        raise ValueError(f"{resolution} needs {ups} stride-2 layers from {broadcast}x{broadcast}, more than {layers}")
    return (2,) * ups + (1,) * (layers - ups)


@dataclass
class VideoDecoderOutput:
    recon: Tensor  # [N, C, H, W] the targets mixed with the masks
    recons: Tensor  # [N, K, C, H, W] per-slot targets
    masks: Tensor  # [N, K, H, W] softmax of the alpha logits over the slots
    alpha_logits: Tensor  # [N, K, H, W]


class VideoBroadcastDecoder(nn.Module):
    """Decodes slots [N, K, D] (N = B*T frames) into [N, C, H, W] targets, per-slot targets and masks.

    Args:
        slot_dim: D.
        broadcast_resolution: grid the slots are broadcast onto (SAVi-S: 8x8).
        channels: output channels of the CNN layers (SAVi-S: 64, 64, 64, 64).
        strides: their strides; stride 2 layers are transposed convolutions, stride 1 layers are convolutions
            (SAVi-S: 2, 2, 2, 1).
        target_channels: channels of the readout (3 for RGB or SAVi's flow-as-RGB; 6 for both).
        kernel_size: of every CNN layer (5).
        fourier_bands: Fourier features of the broadcast grid (:func:`slotlab.modules.position.fourier_grid`; 0:
            SAVi's linear grid).
    """

    def __init__(
        self,
        slot_dim: int,
        broadcast_resolution: tuple[int, int] = (8, 8),
        channels: Sequence[int] = (64, 64, 64, 64),
        strides: Sequence[int] = (2, 2, 2, 1),
        target_channels: int = 3,
        kernel_size: int = 5,
        fourier_bands: int = 0,
    ) -> None:
        super().__init__()
        if len(channels) != len(strides) or not channels:
            raise ValueError(f"decoder channels {list(channels)} and strides {list(strides)} differ in length")
        if target_channels < 1:
            raise ValueError(f"target_channels must be >= 1, got {target_channels}")
        self.broadcast_resolution = (int(broadcast_resolution[0]), int(broadcast_resolution[1]))
        self.target_channels = target_channels
        self.pos = SoftPositionEmbed(slot_dim, self.broadcast_resolution, fourier_bands)
        layers: list[nn.Module] = []
        c, up = slot_dim, 1
        for c_out, s in zip(channels, strides, strict=True):
            conv = SameConvTranspose2d(c, c_out, kernel_size, s) if s > 1 else SameConv2d(c, c_out, kernel_size)
            layers += [conv, nn.ReLU(inplace=True)]
            c, up = c_out, up * s
        self.cnn = nn.Sequential(*layers)
        self.readout = nn.Conv2d(c, target_channels + 1, 1)  # targets, then the alpha logit
        self.output_resolution = (self.broadcast_resolution[0] * up, self.broadcast_resolution[1] * up)

    def forward(self, slots: Tensor) -> VideoDecoderOutput:
        n, k, d = slots.shape
        h, w = self.broadcast_resolution
        x = slots.reshape(n * k, d, 1, 1).expand(n * k, d, h, w)  # [NK, D, h, w]
        x = self.readout(self.cnn(self.pos(x)))  # [NK, C + 1, H, W]
        x = x.float()  # the softmax and the mixing in fp32
        x = x.view(n, k, self.target_channels + 1, *x.shape[-2:])  # [N, K, C + 1, H, W]
        recons, alpha_logits = x[:, :, :-1], x[:, :, -1]  # [N, K, C, H, W], [N, K, H, W]
        masks = alpha_logits.softmax(dim=1)
        recon = (recons * masks.unsqueeze(2)).sum(dim=1)  # [N, C, H, W]
        return VideoDecoderOutput(recon=recon, recons=recons, masks=masks, alpha_logits=alpha_logits)
