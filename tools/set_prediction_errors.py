"""Dev script: where a set-prediction model loses AP_inf (paper Section 4.2). Each real object of the held-out
images is matched to one slot's prediction (Hungarian, on the L1 distance of the 19 features), then per attribute
(size, material, shape, colour) the fraction of matched objects predicted right, all four right (what AP_inf needs
of a detection), the 3D distance of the coordinates, and the same by the number of objects in the image. First
line: the images' AP_inf and AP_1. ``--split train`` scores the first training images of the model's data seed
(does the model fit what it was trained on?).

    python tools/set_prediction_errors.py MODEL [--split test|eval|train] [--num-images 256] [--data-path CLEVR_v1.0]

MODEL: a zoo name, run folder or .ckpt. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

ATTRS = ("size", "material", "shape", "color")


def matched_errors(pred: torch.Tensor, target: torch.Tensor) -> dict[str, np.ndarray]:
    """pred [n, K, 19], target [n, M, 19] -> per matched real object: attribute hits, 3D distance, objects."""
    from slotlab.metrics.average_precision import decode_attributes

    rows: dict[str, list] = {a: [] for a in (*ATTRS, "dist", "objects")}
    for p, t in zip(pred.numpy(), target.numpy(), strict=True):
        real = t[t[:, -1] > 0.5]  # [m, 19]
        cost = np.abs(real[:, None, :] - p[None, :, :]).sum(-1)  # [m, K]
        r, c = linear_sum_assignment(cost)
        dp, dt = decode_attributes(p[c]), decode_attributes(real[r])
        for a in ATTRS:
            rows[a] += list(dp[a] == dt[a])
        rows["dist"] += list(np.linalg.norm(dp["coords_3d"] - dt["coords_3d"], axis=-1))
        rows["objects"] += [len(real)] * len(r)
    return {k: np.asarray(v) for k, v in rows.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--split", default="test", choices=["train", "eval", "test"])
    p.add_argument("--num-images", type=int, default=256)
    p.add_argument("--data-path", default=None)
    args = p.parse_args(argv)

    import slotlab
    from slotlab.metrics.average_precision import average_precision_table
    from slotlab.tasks import get_task
    from slotlab.tasks.common import EVAL_SEED, eval_noise, image_to_model

    loaded = slotlab.load_model(args.model)
    model, cfg = loaded.model, loaded.config
    task = get_task(cfg["task"])
    data_cfg = task.data_with_path(cfg["data"], args.data_path) if args.data_path else cfg["data"]
    split = "eval" if args.data_path else args.split  # a CLEVR folder's val scenes
    data = task.heldout(data_cfg, split, args.num_images)
    preds = []
    index = data.get("index", torch.arange(len(data["image"])))  # the noise of slotlab eval's same images
    with torch.no_grad():
        for s in range(0, len(data["image"]), 64):
            image = image_to_model(data["image"][s : s + 64], False)
            noise = eval_noise(model, index[s : s + 64], None, EVAL_SEED)
            preds.append(model(image, noise=noise).pred.float())
    pred, target = torch.cat(preds), data["target"].float()
    e = matched_errors(pred, target)
    every = np.all([e[a] for a in ATTRS], axis=0)
    ap = average_precision_table(pred, target, (-1.0, 1.0))
    print(f"{len(data['image'])} images, {len(every)} objects ({args.data_path or args.split}): "
          f"AP_inf {100 * ap[-1.0]:.1f} %, AP_1 {100 * ap[1.0]:.1f} %")  # fmt: skip
    print("| objects in image | objects | size | material | shape | colour | all four | 3D dist median | dist <= 1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    groups = [("all", np.ones_like(every))] + [(str(m), e["objects"] == m) for m in np.unique(e["objects"])]
    for name, sel in groups:
        cells = [f"{100 * e[a][sel].mean():.1f}" for a in ATTRS]
        print(f"| {name} | {sel.sum()} | {' | '.join(cells)} | {100 * every[sel].mean():.1f} | "
              f"{np.median(e['dist'][sel]):.2f} | {100 * (e['dist'][sel] <= 1).mean():.1f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
