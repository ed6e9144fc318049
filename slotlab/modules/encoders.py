"""CNN encoders of the paper's models (Section 2.2 object discovery, Section 2.3 set prediction).

``CNNEncoder`` is the backbone: a stack of 5x5 'same' convolutions with ReLU (stride 1 for object
discovery; strides (1, 2, 2, 1) for set prediction on 128x128 -> 32x32). ``SlotInputEncoder`` adds the soft
position embedding, flattens the grid and applies LayerNorm + MLP, giving the inputs of Slot Attention.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from slotlab.modules.norm import LayerNorm
from slotlab.modules.position import SoftPositionEmbed
from slotlab.modules.same import SameConv2d

LAYER_NORM_EPS = 1e-3  # Keras' default, used by every LayerNorm of the reference code (torch's default is 1e-5)


class CNNEncoder(nn.Module):
    """Conv(5x5, TF 'SAME', ReLU) stack: [B, 3, H, W] -> [B, C, H', W'] (the last layer is followed by ReLU too).

    Stride-2 layers pad as TF does (1 before, 2 after for kernel 5 on an even size), see :mod:`slotlab.modules.same`.
    """

    def __init__(
        self,
        in_channels: int = 3,
        channels: Sequence[int] = (64, 64, 64, 64),
        strides: Sequence[int] = (1, 1, 1, 1),
        kernel_size: int = 5,
    ) -> None:
        super().__init__()
        if len(channels) != len(strides):
            raise ValueError(f"channels {list(channels)} and strides {list(strides)} differ in length")
        layers: list[nn.Module] = []
        c_in = in_channels
        for c_out, stride in zip(channels, strides, strict=True):
            layers += [SameConv2d(c_in, c_out, kernel_size, stride=stride), nn.ReLU(inplace=True)]
            c_in = c_out
        self.net = nn.Sequential(*layers)
        self.out_channels = c_in
        self.total_stride = 1
        for s in strides:
            self.total_stride *= s

    def output_resolution(self, resolution: tuple[int, int]) -> tuple[int, int]:
        h, w = resolution
        for m in self.net:
            if isinstance(m, SameConv2d):
                h, w = m.output_size(h, w)
        return h, w

    def forward(self, image: Tensor) -> Tensor:
        return self.net(image)  # [B, C, H', W']


class SlotInputEncoder(nn.Module):
    """CNN + soft position embedding + flatten + LayerNorm + MLP -> Slot Attention inputs [B, N, D]."""

    def __init__(
        self,
        resolution: tuple[int, int],
        channels: Sequence[int] = (64, 64, 64, 64),
        strides: Sequence[int] = (1, 1, 1, 1),
        out_dim: int = 64,
        position_embedding: bool = True,
        layer_norm_eps: float = LAYER_NORM_EPS,
        fourier_bands: int = 0,
    ) -> None:
        super().__init__()
        if fourier_bands and not position_embedding:
            raise ValueError("Fourier position features need the position embedding (position_embedding=True)")
        self.cnn = CNNEncoder(3, channels, strides)
        c = self.cnn.out_channels
        self.feature_resolution = self.cnn.output_resolution(tuple(resolution))
        # Appendix B (Figure 8): the position embedding can be switched off. fourier_bands > 0: the grid's Fourier
        # features too (not in the paper; slotlab.modules.position).
        self.pos = SoftPositionEmbed(c, self.feature_resolution, fourier_bands) if position_embedding else None
        self.norm = LayerNorm(c, eps=layer_norm_eps)
        self.mlp = nn.Sequential(nn.Linear(c, out_dim), nn.ReLU(inplace=True), nn.Linear(out_dim, out_dim))

    def forward(self, image: Tensor) -> Tensor:
        x = self.cnn(image)  # [B, C, h, w]
        tokens = x.flatten(2).transpose(1, 2)  # [B, N = h*w, C] (a view for a channels_last map)
        if self.pos is not None:
            tokens = self.pos.add_to_tokens(tokens, x.shape[-2:])  # = pos(x) flattened, in the token layout
        return self.mlp(self.norm(tokens))  # [B, N, D]
