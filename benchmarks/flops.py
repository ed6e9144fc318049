"""Analytic FLOP count of one training step of the object-discovery model (the three sizes of ``baseline.SIZES``).

Counts the multiply-adds (2 FLOPs each) of what is *executed*: convolutions, transposed convolutions, linear
layers, GRU matmuls and the two attention products of every Slot Attention iteration. Element-wise work
(LayerNorm, softmax, ReLU, GRU gates, the mixture, the optimizer) is not counted.

Training step = forward + backward. The backward of a matmul/convolution costs one forward for the gradient of
the weights plus one for the gradient of the input, the latter only where the input needs a gradient (not for
the first encoder convolution, whose input is the image, nor for the all-ones image of the factorised first
decoder layer): about 3x forward overall.

Decoders:
- ``plain``: the first decoder layer is a full (transposed) convolution on the B*K broadcast images.
- ``factorised`` (slotlab's default, see ``slotlab/modules/decoders.py``): the first layer becomes a
  [B*K, D] x [D, O*H'*W'] matmul, plus one single-image convolution with O*D output channels (the response ``M``)
  and one with the position embedding, both per step, not per image.
Slot Attention:
- ``standard``: keys and values projected for all N inputs (Algorithm 1).
- ``reassociated`` (slotlab's default, ``SlotAttention(reassociate=True)``): projections act on the K side.

``--verify`` checks the counts against ``torch.utils.flop_counter.FlopCounterMode`` (which counts matmuls and
convolutions, forward and backward) on the plain baseline and slotlab's model at batch 1.

Usage: ``python benchmarks/flops.py [--batch 64] [--verify]``
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import SIZES, ModelSize  # noqa: E402


@dataclass
class Count:
    """Forward and training FLOPs, by part of the model."""

    fwd: dict[str, float] = field(default_factory=dict)
    train: dict[str, float] = field(default_factory=dict)

    def add(self, part: str, flops: float, input_grad: bool = True, weight_grad: bool = True) -> None:
        self.fwd[part] = self.fwd.get(part, 0.0) + flops
        self.train[part] = self.train.get(part, 0.0) + flops * (1 + int(input_grad) + int(weight_grad))

    @property
    def fwd_total(self) -> float:
        return sum(self.fwd.values())

    @property
    def train_total(self) -> float:
        return sum(self.train.values())


def conv(cin: int, cout: int, k: int, hout: int, wout: int, n: int = 1) -> float:
    return 2.0 * n * cin * cout * k * k * hout * wout


def conv_t(cin: int, cout: int, k: int, hin: int, win: int, n: int = 1) -> float:
    """Transposed convolution: every input pixel scatters a k x k x cout patch."""
    return 2.0 * n * cin * cout * k * k * hin * win


def linear(rows: int, din: int, dout: int) -> float:
    return 2.0 * rows * din * dout


def count(size: ModelSize, batch: int, decoder: str = "factorised", slot_attention: str = "standard") -> Count:
    """FLOPs of one training step at ``batch`` images."""
    if decoder not in ("plain", "factorised") or slot_attention not in ("standard", "reassociated"):
        raise ValueError(f"unknown variant {decoder!r} / {slot_attention!r}")
    c = Count()
    b, r, d, kk = batch, size.resolution, size.slot_dim, size.num_slots
    n = r * r
    # Encoder: 4 x conv 5x5 (stride 1), position embedding (one grid), LayerNorm + MLP per input.
    cin = 3
    for i, cout in enumerate(size.encoder_channels):
        c.add("encoder", conv(cin, cout, 5, r, r, b), input_grad=i > 0)
        cin = cout
    c.add("encoder", linear(n, 4, cin), input_grad=False)
    c.add("encoder", linear(b * n, cin, d) + linear(b * n, d, d))
    # Slot Attention.
    bk = b * kk
    if slot_attention == "standard":
        c.add("slot_attention", 2 * linear(b * n, d, d))  # k and v
    for _ in range(size.iters):
        c.add("slot_attention", linear(bk, d, d))  # q
        if slot_attention == "reassociated":
            c.add("slot_attention", 2 * linear(bk, d, d))  # q W_k and (attn x) W_v^T
        c.add("slot_attention", 2 * 2.0 * bk * n * d)  # logits and attn @ v
        c.add("slot_attention", 2 * linear(bk, d, 3 * d))  # GRU: input and hidden matmuls
        c.add("slot_attention", linear(bk, d, size.mlp_hidden) + linear(bk, size.mlp_hidden, d))
    # Decoder.
    h = size.broadcast
    c.add("decoder", linear(h * h, 4, d), input_grad=False)  # position embedding of the broadcast grid
    ch = size.decoder_channels
    if size.decoder == "full_resolution":
        if decoder == "plain":
            c.add("decoder", conv(d, ch, 5, h, h, bk))
        else:
            c.add("decoder", conv(1, ch * d, 5, h, h), input_grad=False)  # M: response to all-ones images
            c.add("decoder", conv(d, ch, 5, h, h))  # the layer on the position embedding (one image)
            c.add("decoder", linear(bk, d, ch * h * h))  # slots @ M
        res = h
        for cout, k in ((ch, 5), (ch, 5), (4, 3)):
            c.add("decoder", conv(ch, cout, k, res, res, bk))
    else:
        if decoder == "plain":
            c.add("decoder", conv_t(d, ch, 5, h, h, bk))
        else:
            c.add("decoder", conv_t(1, d * ch, 5, h, h), input_grad=False)
            c.add("decoder", conv_t(d, ch, 5, h, h))
            c.add("decoder", linear(bk, d, ch * (2 * h) ** 2))
        res = 2 * h
        for cout, k, s in ((ch, 5, 2), (ch, 5, 2), (ch, 5, 2), (ch, 5, 1), (4, 3, 1)):
            c.add("decoder", conv_t(ch, cout, k, res, res, bk))
            res *= s
        assert res == r, (res, r)
    return c


def train_flops(size_key: str, batch: int, decoder: str = "factorised", slot_attention: str = "standard") -> float:
    """Executed FLOPs of one training step (forward + backward) at ``batch`` images."""
    return count(SIZES[size_key], batch, decoder, slot_attention).train_total


def verify(sizes: list[str]) -> None:
    """Compare with torch's FlopCounterMode on one training step at batch 1."""
    import torch
    from baseline import PlainObjectDiscovery
    from torch.utils.flop_counter import FlopCounterMode

    from slotlab.tasks.object_discovery.model import ObjectDiscoveryModel

    for key in sizes:
        size = SIZES[key]
        slotlab_model = ObjectDiscoveryModel(
            (size.resolution, size.resolution),
            size.num_slots,
            encoder_channels=size.encoder_channels,
            decoder=size.decoder,
            decoder_channels=size.decoder_channels,
        )
        image = torch.rand(1, 3, size.resolution, size.resolution)
        for name, model, dec in (
            ("plain", PlainObjectDiscovery(size), "plain"),
            ("slotlab", slotlab_model, "factorised"),
        ):
            with FlopCounterMode(display=False) as fc:
                if name == "plain":
                    model.loss(image).backward()
                else:
                    model.loss(model(image), image).backward()
            ours = count(size, 1, dec).train_total
            print(
                f"verify {size.name} {name}: analytic {ours / 1e9:.4f} GFLOP, FlopCounterMode "
                f"{fc.get_total_flops() / 1e9:.4f} GFLOP"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--verify", action="store_true", help="check against torch's FlopCounterMode (batch 1)")
    args = ap.parse_args()
    if args.verify:
        verify(list(SIZES))
    print(f"FLOPs of one training step (forward + backward), batch {args.batch}; GFLOP = 1e9 FLOPs\n")
    print(
        "| model | decoder | slot attention | fwd GFLOP/image | train GFLOP/image | train GFLOP/step "
        "| encoder % | slot attn % | decoder % |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for size in SIZES.values():
        for dec, sa in (("plain", "standard"), ("factorised", "standard"), ("factorised", "reassociated")):
            c = count(size, args.batch, dec, sa)
            tot = c.train_total
            share = {p: 100 * v / tot for p, v in c.train.items()}
            print(
                f"| {size.name} (K={size.num_slots}) | {dec} | {sa} | {c.fwd_total / args.batch / 1e9:.3f} "
                f"| {tot / args.batch / 1e9:.3f} | {tot / 1e9:.1f} | {share['encoder']:.1f} "
                f"| {share['slot_attention']:.1f} | {share['decoder']:.1f} |"
            )


if __name__ == "__main__":
    main()
