"""Slot Attention module benchmark: slotlab vs the ``slot-attention`` package (lucidrains) from PyPI.

Measures forward+backward and forward-only (``torch.no_grad``) time of one Slot Attention call at the
object-discovery sizes of CLEVR (N = 64 * 64 = 4096 inputs by default; ``--inputs 4096,16384`` adds the paper's
128x128 encoder grid; K = 7 slots, D = 64, T = 3 iterations, batch 64), in fp32 and under bf16 autocast (with fp32
inputs, and with ``--precisions bf16in`` bf16 inputs: inside slotlab's models the module receives bf16 under
autocast, since the encoder's last Linear emits bf16; lucidrains' module gets the same bf16 tensor). The
variants are interleaved in one process (A, B, A, B, ..., order reversed every other round) and the median of each
is reported with the ratios ``other / slotlab`` (> 1 means slotlab is faster).

Weights are copied across (lucidrains' q/k/v biases set to zero, since slotlab's projections are bias-free, and
its LayerNorm eps set to slotlab's 1e-3), the slot-init noise is seeded identically, and the outputs are checked to
agree before timing. The allocator is tuned as ``slotlab train`` does (``--malloc default`` for glibc's default),
which applies to every variant (process-wide).

The ``slot-attention`` package is only needed for this benchmark (``pip install -e ".[bench]"``); it is not a
slotlab dependency. Further variants: ``slotlab_unfused`` is slotlab's module with ``fused=False`` (autograd
through the individual ops instead of the hand-written backward) and ``slotlab_literal`` with
``reassociate=False`` (keys and values of all N inputs materialised, Algorithm 1 literally).

Usage::

    python benchmarks/module.py                 # full sizes, 7 interleaved rounds
    python benchmarks/module.py --inputs 4096,16384 --variants slotlab,lucidrains --rounds 5
    python benchmarks/module.py --quick         # batch 16, 5 rounds (~1 min)
    python benchmarks/module.py --profile       # also print a torch.profiler table per variant (fp32)
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from slotlab.modules.slot_attention import SlotAttention
from slotlab.train.runtime import cpu_flags, cpu_has_native_bf16, cpu_model_name, tune_malloc


def machine_line() -> str:
    """CPU model, torch's CPU capability and the bf16-relevant CPU flags."""
    model = cpu_model_name()
    flags = sorted(f for f in cpu_flags() if f.startswith(("avx512", "amx", "avx2", "fma", "avx_vnni")))
    return (
        f"{model}; torch {torch.__version__}; capability {torch.backends.cpu.get_cpu_capability()}; "
        f"threads {torch.get_num_threads()}; native bf16 {cpu_has_native_bf16()}; flags {' '.join(flags)}"
    )


def build_variants(k: int, d: int, iters: int, seed: int) -> dict[str, nn.Module]:
    """slotlab's module, lucidrains' (weights copied) and slotlab's module evaluated literally."""
    torch.manual_seed(seed)
    ours = SlotAttention(k, dim=d, iters=iters, hidden_dim=128)
    variants: dict[str, nn.Module] = {"slotlab": ours}
    try:
        from slot_attention import SlotAttention as LucidSlotAttention
    except ImportError:
        print("slot-attention (lucidrains) is not installed: pip install slot-attention")
    else:
        theirs = LucidSlotAttention(k, d, iters=iters, eps=ours.eps, hidden_dim=128)
        copy_to_lucidrains(ours, theirs)
        variants["lucidrains"] = theirs
    unfused = copy.deepcopy(ours)
    unfused.fused = False
    variants["slotlab_unfused"] = unfused
    literal = copy.deepcopy(ours)
    literal.reassociate = False
    variants["slotlab_literal"] = literal
    return variants


@torch.no_grad()
def copy_to_lucidrains(ours: SlotAttention, theirs: nn.Module) -> None:
    """Same function: copy every parameter; lucidrains' q/k/v biases become zero."""
    theirs.slots_mu.copy_(ours.slots_mu)
    theirs.slots_logsigma.copy_(ours.slots_log_sigma)
    for src, dst in ((ours.project_q, theirs.to_q), (ours.project_k, theirs.to_k), (ours.project_v, theirs.to_v)):
        dst.weight.copy_(src.weight)
        dst.bias.zero_()
    theirs.gru.load_state_dict(ours.gru.state_dict())
    theirs.mlp.load_state_dict(ours.mlp.state_dict())
    theirs.norm_input.load_state_dict(ours.norm_inputs.state_dict())
    theirs.norm_slots.load_state_dict(ours.norm_slots.state_dict())
    theirs.norm_pre_ff.load_state_dict(ours.norm_mlp.state_dict())
    # slotlab's LayerNorms use the reference code's eps (Keras' 1e-3); lucidrains' use torch's default 1e-5.
    for src, dst in (
        (ours.norm_inputs, theirs.norm_input),
        (ours.norm_slots, theirs.norm_slots),
        (ours.norm_mlp, theirs.norm_pre_ff),
    ):
        dst.eps = src.eps


def slots_of(out: Any) -> Tensor:
    return out if isinstance(out, Tensor) else out.slots


def check_same_function(variants: dict[str, nn.Module], x: Tensor) -> None:
    """All variants give the same slots for the same noise seed (fp32)."""
    outs = {}
    for name, m in variants.items():
        torch.manual_seed(123)
        with torch.no_grad():
            outs[name] = slots_of(m(x))
    ref = outs["slotlab"]
    for name, o in outs.items():
        err = (o - ref).abs().max().item()
        print(f"  check: max |{name} - slotlab| = {err:.2e}")
        if err > 1e-4:
            raise SystemExit(f"{name} does not compute the same function as slotlab (max abs diff {err})")


def make_step(m: nn.Module, x: Tensor, mode: str, dtype: torch.dtype | None) -> Callable[[], None]:
    def fwd_bwd() -> None:
        x.grad = None
        m.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            s = slots_of(m(x))
        s.float().square().mean().backward()

    def fwd() -> None:
        with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            slots_of(m(x))

    return fwd_bwd if mode == "fwd+bwd" else fwd


def interleaved(fns: dict[str, Callable[[], None]], rounds: int, warmup: int) -> dict[str, list[float]]:
    """Time each function ``rounds`` times, alternating A, B, A, B, ...; returns seconds per call."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds):
        order = list(fns) if r % 2 == 0 else list(reversed(fns))  # alternate the order too
        for name in order:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def profile(m: nn.Module, fn: Callable[[], None], name: str, rows: int) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    with tprofile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    print(f"\n### profile: {name}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument(
        "--inputs", default="4096", help="comma list of N (4096: 64x64 grid; 16384: CLEVR's 128x128 encoder grid)"
    )
    ap.add_argument(
        "--variants",
        default="slotlab,lucidrains,slotlab_unfused,slotlab_literal",
        help="comma list of slotlab, lucidrains, slotlab_unfused (fused=False), slotlab_literal (reassociate=False)",
    )
    ap.add_argument("--slots", type=int, default=7)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 7, --quick 5)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up calls per variant (default 2, --quick 1)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument(
        "--precisions",
        default="fp32,bf16",
        help="comma list of fp32, bf16 (autocast, fp32 inputs), bf16in (autocast with bf16 inputs, which is what "
        "the module receives inside slotlab's models under autocast: the encoder's last Linear emits bf16)",
    )
    ap.add_argument("--modes", default="fwd+bwd,fwd", help="comma list of fwd+bwd, fwd (no_grad)")
    ap.add_argument(
        "--malloc",
        choices=("tuned", "default"),
        default="tuned",
        help="tuned: glibc keeps freed blocks (slotlab train's default, trainer.tune_malloc); default: untuned",
    )
    ap.add_argument("--quick", action="store_true", help="batch 16, 5 rounds, 1 warm-up")
    ap.add_argument("--profile", action="store_true", help="torch.profiler table of one fp32 call per variant")
    ap.add_argument("--profile-rows", type=int, default=18)
    args = ap.parse_args()
    if args.quick:
        args.batch = 16 if args.batch == 64 else args.batch
    args.rounds = args.rounds or (5 if args.quick else 7)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    if args.threads:
        torch.set_num_threads(args.threads)
    tuned = args.malloc == "tuned" and tune_malloc()

    print(f"machine: {machine_line()}; malloc tuned: {tuned}")
    inputs = [int(n) for n in args.inputs.split(",")]
    print(
        f"shape: B={args.batch} N={','.join(map(str, inputs))} K={args.slots} D={args.dim} T={args.iters}; "
        f"{args.rounds} interleaved rounds after {args.warmup} warm-up calls; times are medians"
    )
    variants = build_variants(args.slots, args.dim, args.iters, seed=0)
    variants = {n: variants[n] for n in args.variants.split(",") if n in variants}
    x = torch.randn(args.batch, inputs[0], args.dim)
    check_same_function(variants, x[:4].clone())
    # speed-up columns (time ratios, > 1 means the second is faster): lucidrains / each slotlab variant, and
    # each other slotlab variant / slotlab.
    ours = [n for n in variants if n != "lucidrains"]
    ratios = [("lucidrains", n) for n in ours if "lucidrains" in variants]
    ratios += [(n, "slotlab") for n in ours if n != "slotlab" and "slotlab" in variants]

    header = "| N | precision | mode | " + " | ".join(f"{n} ms" for n in variants)
    header += "".join(f" | {a} / {b}" for a, b in ratios) + " |"
    print("\n" + header)
    print("|" + "---|" * (3 + len(variants) + len(ratios)))
    for n_inputs in inputs:
        x = torch.randn(args.batch, n_inputs, args.dim)
        for prec in args.precisions.split(","):
            dtype = {"fp32": None, "bf16": torch.bfloat16, "bf16in": torch.bfloat16}[prec]
            for mode in args.modes.split(","):
                xi = (x.bfloat16() if prec == "bf16in" else x.clone()).requires_grad_(mode == "fwd+bwd")
                fns = {n: make_step(m, xi, mode, dtype) for n, m in variants.items()}
                times = interleaved(fns, args.rounds, args.warmup)
                med = {n: statistics.median(t) for n, t in times.items()}
                row = f"| {n_inputs} | {prec} | {mode} | " + " | ".join(f"{med[n] * 1e3:.1f}" for n in variants)
                row += "".join(f" | {med[a] / med[b]:.2f}x" for a, b in ratios) + " |"
                print(row, flush=True)
    if args.profile:
        x = torch.randn(args.batch, inputs[0], args.dim)
        for n, m in variants.items():
            for mode in args.modes.split(","):
                xi = x.clone().requires_grad_(mode == "fwd+bwd")
                profile(m, make_step(m, xi, mode, None), f"{n} {mode} fp32", args.profile_rows)


if __name__ == "__main__":
    main()
