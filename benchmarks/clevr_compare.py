"""Built-in CLEVR renders vs real CLEVR renders: statistics side by side, the real scenes re-rendered, a picture.

Usage::

    python benchmarks/clevr_compare.py REAL_FOLDER [--num 64] [--variant clevr10] [--out docs/images/x.png]

REAL_FOLDER is a CLEVR v1.0 folder (images + scenes JSON; e.g. ../shared/data/real_clevr_dev) or a folder of
PNGs. Prints (Markdown) the statistics of ``slotlab.data.clevr_compare`` for the real images and ``--num``
built-in renders of the same size; where the real scenes' JSON exists, renders those scenes with the built-in
renderer (camera fitted from ``pixel_coords``) and prints their pixel-wise errors. ``--out`` writes a picture:
one row per real scene (at most ``--rows``): the real render, the same scene by the built-in renderer, a random
built-in render.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from slotlab.data import clevr_compare as cc
from slotlab.data import clevr_render


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

    real, scenes = cc.read_real(args.real, args.split)
    size = real.shape[1:3]
    t0 = time.perf_counter()
    ours = clevr_render.generate(args.seed, 0, args.num, variant=args.variant, image_size=size)
    secs = time.perf_counter() - t0
    rs, os_ = cc.image_stats(real), cc.image_stats(ours["image"])
    print(f"## {len(real)} real renders ({args.real}) vs {args.num} built-in {args.variant} renders "
          f"({size[1]}x{size[0]}, seed {args.seed}; rendered in {secs:.1f} s)\n")  # fmt: skip
    print(cc.markdown_table(cc.stats_rows(rs, os_), ("statistic", "real", "built-in")))
    same = None
    if scenes is not None:
        mine = [cc.scene_from_json(s, size) for s in scenes]
        rms = [cc.fit_camera(s["objects"], size)[1] for s in scenes]
        same = clevr_render.render_scenes(mine, size)
        ss = cc.image_stats(same["image"])
        err = cc.pixel_errors(real, same["image"], same["mask"])
        print(f"\n## The same {len(scenes)} scenes rendered from their JSON (camera fitted: RMS "
              f"{np.mean(rms):.2f} px; lights un-jittered)\n")  # fmt: skip
        print(cc.markdown_table(cc.stats_rows(rs, ss), ("statistic", "real", "built-in, same scenes")))
        rows = [(k, f"{v:.1f}") for k, v in err.items()]
        print("\nPixel-wise, built-in minus real (levels 0-255):\n")
        print(cc.markdown_table(rows, ("error", "value")))
    if args.out:
        n = min(args.rows, len(real))
        cols = [real[:n]] + ([same["image"][:n]] if same is not None else []) + [ours["image"][:n]]
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(cc.side_by_side(cols)).save(args.out, optimize=True)
        print(f"\nwrote {args.out}: rows = scenes; columns = real" + (", same scene built-in" if same else "")
              + ", a random built-in render")  # fmt: skip


if __name__ == "__main__":
    main()
