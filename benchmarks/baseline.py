"""Plain fp32 object-discovery model written straight from Algorithm 1 and Section 2.2 of the paper.

No tricks: NCHW tensors, a spatial broadcast decoder that tiles every slot onto the grid and runs the full
first convolution on it (no factorisation), Slot Attention with the straightforward [B, N, K] attention layout
written with ``einsum``, separate key and value projections, keys scaled inside the loop. It is the reference
point of ``benchmarks/throughput.py``.

Parameter names and shapes equal those of :class:`slotlab.models.ObjectDiscoveryModel` for the three model
sizes in :data:`SIZES` (Tetrominoes 35x35, Multi-dSprites 64x64, CLEVR6 128x128), so a slotlab state_dict loads
into it unchanged; ``python benchmarks/baseline.py`` checks that both compute the same function.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class ModelSize:
    """One of the paper's object-discovery model sizes (the slotlab config it corresponds to)."""

    name: str
    config: str  # slotlab config name
    resolution: int
    num_slots: int
    encoder_channels: tuple[int, ...]
    decoder: str  # "full_resolution" or "clevr"
    decoder_channels: int
    slot_dim: int = 64
    mlp_hidden: int = 128
    iters: int = 3

    @property
    def broadcast(self) -> int:
        return self.resolution if self.decoder == "full_resolution" else self.resolution // 16


SIZES: dict[str, ModelSize] = {
    "35": ModelSize("tetrominoes 35x35", "tetrominoes", 35, 4, (32,) * 4, "full_resolution", 32),
    "64": ModelSize("multi_dsprites 64x64", "multi_dsprites", 64, 6, (32,) * 4, "full_resolution", 32),
    "128": ModelSize("clevr6 128x128", "clevr6", 128, 7, (64,) * 4, "clevr", 64),
}


def position_grid(h: int, w: int) -> Tensor:
    """[H, W, 4] grid (y, x, 1 - y, 1 - x) in [0, 1], as in the reference code."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([y, x, 1 - y, 1 - x], dim=-1)


class PositionEmbed(nn.Module):
    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(4, channels)
        self.register_buffer("grid", position_grid(size, size), persistent=False)

    def forward(self, x: Tensor) -> Tensor:  # x: [B, C, H, W]
        return x + self.dense(self.grid).permute(2, 0, 1).unsqueeze(0)


class CNN(nn.Module):
    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for o in channels:
            layers += [nn.Conv2d(c, o, 5, padding=2), nn.ReLU()]
            c = o
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Encoder(nn.Module):
    def __init__(self, size: ModelSize) -> None:
        super().__init__()
        c = size.encoder_channels[-1]
        self.cnn = CNN(size.encoder_channels)
        self.pos = PositionEmbed(c, size.resolution)
        self.norm = nn.LayerNorm(c)
        self.mlp = nn.Sequential(nn.Linear(c, size.slot_dim), nn.ReLU(), nn.Linear(size.slot_dim, size.slot_dim))

    def forward(self, image: Tensor) -> Tensor:
        x = self.pos(self.cnn(image))  # [B, C, H, W]
        x = x.flatten(2).permute(0, 2, 1)  # [B, N, C]
        return self.mlp(self.norm(x))  # [B, N, D]


class PlainSlotAttention(nn.Module):
    """Algorithm 1, line by line."""

    def __init__(self, num_slots: int, dim: int, iters: int, hidden: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.num_slots, self.dim, self.iters, self.eps = num_slots, dim, iters, eps
        limit = math.sqrt(6.0 / (1 + dim))
        self.slots_mu = nn.Parameter(torch.empty(1, 1, dim).uniform_(-limit, limit))
        self.slots_log_sigma = nn.Parameter(torch.empty(1, 1, dim).uniform_(-limit, limit))
        self.norm_inputs = nn.LayerNorm(dim)
        self.norm_slots = nn.LayerNorm(dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.project_q = nn.Linear(dim, dim, bias=False)
        self.project_k = nn.Linear(dim, dim, bias=False)
        self.project_v = nn.Linear(dim, dim, bias=False)
        self.gru = nn.GRUCell(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, inputs: Tensor) -> Tensor:
        b, _, d = inputs.shape
        mu = self.slots_mu.expand(b, self.num_slots, d)
        sigma = self.slots_log_sigma.exp().expand(b, self.num_slots, d)
        slots = mu + sigma * torch.randn(mu.shape)  # [B, K, D]
        inputs = self.norm_inputs(inputs)
        k = self.project_k(inputs)  # [B, N, D]
        v = self.project_v(inputs)  # [B, N, D]
        for _ in range(self.iters):
            slots_prev = slots
            slots = self.norm_slots(slots)
            q = self.project_q(slots)  # [B, K, D]
            attn_logits = torch.einsum("bnd,bkd->bnk", k, q) / math.sqrt(d)  # [B, N, K]
            attn = attn_logits.softmax(dim=-1)  # softmax over slots
            attn = attn + self.eps
            attn = attn / attn.sum(dim=1, keepdim=True)  # weighted mean over inputs
            updates = torch.einsum("bnk,bnd->bkd", attn, v)  # [B, K, D]
            slots = self.gru(updates.reshape(-1, d), slots_prev.reshape(-1, d)).reshape(b, -1, d)
            slots = slots + self.mlp(self.norm_mlp(slots))
        return slots


class PlainBroadcastDecoder(nn.Module):
    """Tile each slot onto the grid, add the position embedding, run the CNN on all B*K images, mix."""

    def __init__(self, size: ModelSize) -> None:
        super().__init__()
        d, c = size.slot_dim, size.decoder_channels
        self.size = size.broadcast
        self.pos = PositionEmbed(d, size.broadcast)
        if size.decoder == "full_resolution":
            specs = [(d, c, 5, 1, "conv"), (c, c, 5, 1, "conv"), (c, c, 5, 1, "conv"), (c, 4, 3, 1, "conv")]
        else:
            specs = [(d, c, 5, 2, "convT")] + [(c, c, 5, 2, "convT")] * 3
            specs += [(c, c, 5, 1, "convT"), (c, 4, 3, 1, "convT")]
        layers: list[nn.Module] = []
        for cin, cout, k, s, kind in specs:
            if kind == "conv":
                layers.append(nn.Conv2d(cin, cout, k, padding=k // 2))
            else:
                layers.append(nn.ConvTranspose2d(cin, cout, k, stride=s, padding=k // 2, output_padding=s - 1))
        self.layers = nn.ModuleList(layers)

    def forward(self, slots: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, k, d = slots.shape
        x = slots.reshape(b * k, d, 1, 1).expand(b * k, d, self.size, self.size)  # spatial broadcast
        x = self.pos(x)
        for i, layer in enumerate(self.layers):
            x = layer(x if i == 0 else F.relu(x))
        x = x.reshape(b, k, 4, *x.shape[-2:])
        recons, masks = x[:, :, :3], x[:, :, 3:].softmax(dim=1)
        return (recons * masks).sum(dim=1), recons, masks


class PlainObjectDiscovery(nn.Module):
    """Encoder -> Slot Attention -> spatial broadcast decoder; MSE reconstruction loss."""

    def __init__(self, size: ModelSize) -> None:
        super().__init__()
        self.encoder = Encoder(size)
        self.slot_attention = PlainSlotAttention(size.num_slots, size.slot_dim, size.iters, size.mlp_hidden)
        self.decoder = PlainBroadcastDecoder(size)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.decoder(self.slot_attention(self.encoder(image)))

    def loss(self, image: Tensor) -> Tensor:
        return F.mse_loss(self(image)[0], image)


def check_against_slotlab(size: ModelSize, batch: int = 2) -> float:
    """Load a slotlab model's weights into the baseline; returns the max |recon difference| (same noise)."""
    from slotlab.tasks.object_discovery.model import ObjectDiscoveryModel

    ours = ObjectDiscoveryModel(
        resolution=(size.resolution, size.resolution),
        num_slots=size.num_slots,
        encoder_channels=size.encoder_channels,
        decoder=size.decoder,
        decoder_channels=size.decoder_channels,
    )
    plain = PlainObjectDiscovery(size)
    plain.load_state_dict(ours.state_dict(), strict=True)
    image = torch.rand(batch, 3, size.resolution, size.resolution) * 2 - 1
    with torch.no_grad():
        torch.manual_seed(0)
        a = ours(image).recon
        torch.manual_seed(0)
        b = plain(image)[0]
    return (a - b).abs().max().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="35,64,128")
    args = ap.parse_args()
    for key in args.sizes.split(","):
        size = SIZES[key]
        n_params = sum(p.numel() for p in PlainObjectDiscovery(size).parameters())
        err = check_against_slotlab(size)
        print(f"{size.name}: {n_params} parameters; max |baseline - slotlab| recon = {err:.2e}")


if __name__ == "__main__":
    main()
