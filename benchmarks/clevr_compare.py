"""Built-in CLEVR renders vs real CLEVR renders: statistics side by side, the real scenes re-rendered, a picture.

Usage::

    python benchmarks/clevr_compare.py REAL_FOLDER [--num 64] [--variant clevr10] [--out docs/images/x.png]

The same report as ``slotlab data compare REAL_FOLDER`` (:func:`slotlab.data.clevr_compare_report.compare_renders`;
see ``slotlab data compare --help``), with a ``--threads`` flag for timing runs.
"""

from __future__ import annotations

import argparse

import torch

from slotlab.data import clevr_render
from slotlab.data.clevr_compare_report import compare_renders


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("real", help="CLEVR v1.0 folder or folder of PNGs")
    ap.add_argument("--split", default="val")
    ap.add_argument("--num", type=int, default=64, help="built-in renders")
    ap.add_argument("--variant", default="clevr10", choices=sorted(clevr_render.VARIANTS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="PNG of the side-by-side picture")
    ap.add_argument("--rows", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    report = compare_renders(
        args.real, split=args.split, num=args.num, variant=args.variant, seed=args.seed, out=args.out, rows=args.rows
    )
    print(report.text)


if __name__ == "__main__":
    main()
