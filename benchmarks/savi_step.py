"""SAVi training step: slotlab's model as a preset runs it vs a plain fp32 implementation of the same model, same run.

One step = video batch in [-1, 1] and first-frame boxes -> forward -> SAVi's loss (squared error summed over
T, C, H, W, batch mean) -> backward -> global-norm clipping at 0.05 -> Adam step (lr 2e-4), SAVi-S's settings.
Variants (the same weights, batch and boxes):

- ``slotlab``: :class:`slotlab.models.savi.SAVi` with its fast paths: precision ``auto`` as ``slotlab train`` resolves
  it (:func:`slotlab.machine.resolve_precision`: bf16 autocast only where it trains faster than fp32), channels_last,
  Slot Attention re-associated (projections on the K-sized side), transposed convolutions as their exact phase
  decomposition, glibc malloc tuned (process-wide, so the plain variant gets it too); ``--compile`` adds
  torch.compile (its first step is reported as compile time).
- ``plain``: the same module, straightforward: fp32, eager, NCHW, Slot Attention as Algorithm 1 literally (keys and
  values of all N inputs, autograd through every op: ``reassociate=False, fused=False``), PyTorch's own
  ``conv_transpose2d`` (``phase_decomposition=False``).

Both compute the same function: before timing, the fp32 outputs of the two are compared (printed). The variants run
interleaved in one process (A, B, B, A, ...), and the medians and their ratio ``plain / slotlab`` (> 1: slotlab
faster) are printed with the machine's description. Default sizes are small enough for a shared 2-core CPU; SAVi-S's
are ``--resolution 64 --batch 64 --objects 10`` (11 slots) with 6 frames.

Usage::

    python benchmarks/savi_step.py --batch 2 --frames 3 --rounds 1 --steps-per-round 1  # smoke (~16 s, 2 cores)
    python benchmarks/savi_step.py                                       # batch 4, 6 frames, 3 x 2 steps (~2 min)
    python benchmarks/savi_step.py --resolution 64 --batch 8 --rounds 5  # SAVi-S's model, smaller batch
    python benchmarks/savi_step.py --compile --precision fp32            # + torch.compile, fp32 forced
    python benchmarks/savi_step.py --config savi_moving_objects_cpu      # a preset's model, frames, batch, clip

``--config PRESET`` builds the model as ``slotlab train --config PRESET`` does (the video task's builder) and takes
the frame size, batch, clip length and objects (``data.max_objects``) from the preset; the step's loss, clipping
and Adam stay SAVi-S's (the preset's lr does not change a step's time).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch

from slotlab.machine import machine_description, resolve_precision
from slotlab.models.savi import SAVi
from slotlab.train.runtime import tune_malloc


class Variant:
    """A SAVi model + Adam + one fixed batch; ``step()`` runs one training step."""

    def __init__(self, name: str, model: SAVi, precision: str, channels_last: bool, compiled: bool, device: str):
        self.name, self.precision, self.channels_last, self.compiled = name, precision, channels_last, compiled
        self.device = device
        self.model = model.to(device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.forward = torch.compile(self.model) if compiled else self.model
        self.opt = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad], lr=2e-4)
        self.bf16 = precision.startswith("bf16")

    def run(self, video: torch.Tensor, boxes: torch.Tensor | None):
        with torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.bf16):
            return self.forward(video, boxes)

    def step(self, video: torch.Tensor, boxes: torch.Tensor | None) -> None:
        loss = SAVi.loss(self.run(video, boxes), video)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 0.05)
        self.opt.step()
        if self.device == "cuda":
            torch.cuda.synchronize()

    @property
    def settings(self) -> str:
        s = f"{'bf16' if self.bf16 else 'fp32'}, {'channels_last' if self.channels_last else 'NCHW'}"
        sa = self.model.corrector
        s += ", SA " + ("re-associated" + (" + fused" if sa._fused_path() else "") if sa.reassociate else "literal")
        phase = any(getattr(m, "phase_decomposition", False) for m in self.model.modules())
        s += ", convT " + ("phase decomposition" if phase else "torch conv_transpose2d")
        return s + (", torch.compile" if self.compiled else ", eager")


def plain_copy(model: SAVi) -> SAVi:
    """The same weights, every fast path off."""
    plain = copy.deepcopy(model)
    plain.corrector.reassociate = False
    plain.corrector.fused = False
    for m in plain.modules():
        if hasattr(m, "phase_decomposition"):
            m.phase_decomposition = False
    return plain


def interleaved(steps: dict[str, Callable[[], None]], rounds: int, per_round: int) -> dict[str, list[float]]:
    """Seconds per call of each step, interleaved (order reversed every other round)."""
    times: dict[str, list[float]] = {n: [] for n in steps}
    for r in range(rounds):
        for name in list(steps) if r % 2 == 0 else list(reversed(steps)):
            for _ in range(per_round):
                t0 = time.perf_counter()
                steps[name]()
                times[name].append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=32, help="frame side (SAVi-S: 64)")
    ap.add_argument("--batch", type=int, default=4, help="videos per step (SAVi-S: 64)")
    ap.add_argument("--frames", type=int, default=6, help="frames per clip (SAVi-S trains on 6)")
    ap.add_argument("--objects", type=int, default=4, help="first-frame boxes; slots = objects + 1 background")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps-per-round", type=int, default=2)
    ap.add_argument("--precision", default="auto", help="slotlab variant: auto (as slotlab train), fp32 or bf16")
    ap.add_argument("--compile", action="store_true", help="slotlab variant: torch.compile")
    ap.add_argument("--no-channels-last", action="store_true", help="slotlab variant: NCHW")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"))
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", default=None, help="a video preset: its model, frame size, batch, clip length")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    malloc = tune_malloc() if args.device == "cpu" else False
    accelerator = "gpu" if args.device == "cuda" else "cpu"
    precision = {"fp32": "32-true", "bf16": "bf16-mixed"}.get(args.precision, args.precision)
    precision = resolve_precision(precision, accelerator)

    torch.manual_seed(args.seed)
    if args.config:
        from slotlab.config import load_config
        from slotlab.tasks import get_task

        cfg = load_config(args.config)
        model = get_task(cfg["task"]).build_model(cfg)
        data = cfg["data"]
        args.resolution, args.batch, args.frames = data["image_size"], data["batch_size"], data["num_frames"]
        args.objects = data["max_objects"]
        title = f"preset {args.config}"
    else:
        model = SAVi(resolution=(args.resolution, args.resolution), targets={"rgb": 3})
        title = f"SAVi-S model ({args.objects + 1} slots)"
    plain = plain_copy(model)
    variants = {
        "slotlab": Variant("slotlab", model, precision, not args.no_channels_last, args.compile, args.device),
        "plain": Variant("plain", plain, "32-true", False, False, args.device),
    }
    g = torch.Generator().manual_seed(args.seed)
    r = args.resolution
    video = (torch.rand(args.batch, args.frames, 3, r, r, generator=g) * 2 - 1).to(args.device)
    lo = torch.rand(args.batch, args.objects, 2, generator=g) * 0.6
    boxes = torch.cat([lo, lo + 0.3], dim=-1).to(args.device)  # [B, K, 4] (ymin, xmin, ymax, xmax)
    if not model.conditional:  # learned / sampled slots: the boxes are not an input
        boxes = None

    print(f"machine: {machine_description(accelerator)}")
    print(f"torch threads: {torch.get_num_threads()}; glibc malloc tuned: {malloc}; device: {args.device}")
    print(f"{title} at {r}x{r}: batch {args.batch}, {args.frames} frames; step = fwd + bwd + clip + Adam")
    with torch.no_grad():  # the same function: both in fp32 (the slotlab variant's layout and paths)
        a = variants["slotlab"].model(video, boxes).recon
        b = variants["plain"].model(video, boxes).recon
    print(f"fp32 outputs agree: max |slotlab - plain| = {(a - b).abs().max().item():.2e}")

    first: dict[str, float] = {}
    for v in variants.values():  # warm-up (and compilation)
        t0 = time.perf_counter()
        v.step(video, boxes)
        first[v.name] = time.perf_counter() - t0
        v.step(video, boxes)
    steps = {n: (lambda v=v: v.step(video, boxes)) for n, v in variants.items()}
    times = interleaved(steps, args.rounds, args.steps_per_round)
    med = {n: statistics.median(t) for n, t in times.items()}
    for n, v in variants.items():
        extra = f"; compile {first[n] - med[n]:.1f} s" if v.compiled else ""
        print(
            f"{n:8s} {med[n]:8.3f} s/step (median of {len(times[n])}), {args.batch / med[n]:6.2f} videos/s  "
            f"[{v.settings}]{extra}"
        )
    print(f"ratio plain / slotlab = {med['plain'] / med['slotlab']:.2f} (> 1: slotlab faster)")


if __name__ == "__main__":
    main()
