"""CNN encoders of the paper's models (Section 2.2 object discovery, Section 2.3 set prediction).

``CNNEncoder`` is the backbone: a stack of 5x5 'same' convolutions with ReLU (stride 1 for object
discovery; strides (1, 2, 2, 1) for set prediction on 128x128 -> 32x32). ``SlotInputEncoder`` adds the soft
position embedding, flattens the grid and applies LayerNorm + MLP, giving the inputs of Slot Attention.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from slotlab.modules.position import SoftPositionEmbed


class CNNEncoder(nn.Module):
    """Conv(5x5, 'same', ReLU) stack: [B, 3, H, W] -> [B, C, H', W'] (the last layer is followed by ReLU too)."""

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
        pad = kernel_size // 2
        for c_out, stride in zip(channels, strides, strict=True):
            # stride-2 'same' convolution as in TF: output = ceil(H / 2); padding 2 with kernel 5 gives that.
            layers += [nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=pad), nn.ReLU(inplace=True)]
            c_in = c_out
        self.net = nn.Sequential(*layers)
        self.out_channels = c_in
        self.total_stride = 1
        for s in strides:
            self.total_stride *= s

    def output_resolution(self, resolution: tuple[int, int]) -> tuple[int, int]:
        h, w = resolution
        for m in self.net:
            if isinstance(m, nn.Conv2d):
                s, p, k = m.stride[0], m.padding[0], m.kernel_size[0]
                h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
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
    ) -> None:
        super().__init__()
        self.cnn = CNNEncoder(3, channels, strides)
        c = self.cnn.out_channels
        self.feature_resolution = self.cnn.output_resolution(tuple(resolution))
        # Appendix B (Figure 8): the position embedding can be switched off.
        self.pos = SoftPositionEmbed(c, self.feature_resolution) if position_embedding else None
        self.norm = nn.LayerNorm(c)
        self.mlp = nn.Sequential(nn.Linear(c, out_dim), nn.ReLU(inplace=True), nn.Linear(out_dim, out_dim))

    def forward(self, image: Tensor) -> Tensor:
        x = self.cnn(image)  # [B, C, h, w]
        if self.pos is not None:
            x = self.pos(x)
        x = x.flatten(2).transpose(1, 2)  # [B, N = h*w, C]
        return self.mlp(self.norm(x))  # [B, N, D]
