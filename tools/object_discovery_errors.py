"""Dev script: where an object-discovery model (paper Section 4.1) loses FG-ARI on held-out images. Each
ground-truth object (and the background) is given its majority slot, the one holding most of its pixels under the
decoder masks' argmax. Then: how much of each object its majority slot holds (splits), how many objects share their
majority slot with another object or with the background (merges), where the objects' other pixels go (the
background's slot; another object's: masks spilling over; a spare slot, no one's majority: duplicates), how much of
the background its slot holds, and three counterfactual FG-ARIs: every object wholly in its majority slot (no
splits), slots made per object (no merges), and only the objects' interior pixels scored (1-pixel erosion,
4-connected: what blob-shaped masks cost at the boundaries). Last, FG-ARI with duplicate slots merged (slots
whose vectors are more similar than --merge-cosine count as one; a list of thresholds sweeps). Last, whether the
slot index says which objects a slot takes: the normalised mutual information between each object's majority slot
and its hue (and its centroid's cell of a 3 x 3 grid), the hue distance of objects that share a slot against all
pairs (do slots merge objects of one colour?), and the slot-by-hue table of counts.

    python tools/object_discovery_errors.py MODEL [--split test] [--num-images 320]

MODEL: a zoo name, run folder or .ckpt of the object-discovery task. Prints one Markdown table row and its header.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
import torch.nn.functional as F


def erode(gt: torch.Tensor) -> torch.Tensor:
    """Object ids [..., H, W] with each object's boundary pixels (a 4-neighbour of another id or of the image's
    edge) set to 0 (background, not scored)."""
    x = F.pad(gt.float(), (1, 1, 1, 1), value=-1.0)  # [..., H+2, W+2]
    c = x[..., 1:-1, 1:-1]
    same = (x[..., :-2, 1:-1] == c) & (x[..., 2:, 1:-1] == c) & (x[..., 1:-1, :-2] == c) & (x[..., 1:-1, 2:] == c)
    return torch.where(same, gt, torch.zeros_like(gt))


def binding(gt: torch.Tensor, pred: torch.Tensor, num_slots: int) -> dict[str, torch.Tensor]:
    """gt ids [B, H, W] (0 = background), pred slot labels [B, H, W] -> per image and id (index 0: background):
    ``present`` bool [B, M+1], ``majority`` slot [B, M+1], ``share`` of the id's pixels in it [B, M+1],
    ``merged`` (an object whose majority slot is also another present object's) and ``in_background`` (an object
    whose majority slot is the background's), both bool [B, M] over the objects; ``outside``: the share of all
    object pixels that lie outside their object's majority slot, in the background's slot, in another object's
    or in a spare slot (no one's majority) [3]. The background's share tells how many slots it is spread over."""
    m1 = int(gt.max()) + 1
    conf = torch.einsum(
        "bnm,bnk->bmk", F.one_hot(gt.flatten(1), m1).float(), F.one_hot(pred.flatten(1), num_slots).float()
    )  # [B, M+1, K] pixels of id m in slot k
    size = conf.sum(-1)
    majority = conf.argmax(-1)  # [B, M+1]
    present = size > 0
    obj, obj_present = majority[:, 1:], present[:, 1:]  # [B, M]
    same = (obj[:, :, None] == obj[:, None, :]) & obj_present[:, None, :]  # [B, M, M]
    same &= ~torch.eye(obj.shape[1], dtype=torch.bool)
    mine = F.one_hot(majority, num_slots).bool()  # [B, M+1, K]
    background_slot = mine[:, 0]  # [B, K]
    object_slot = (mine[:, 1:] & obj_present[..., None]).any(1) & ~background_slot  # [B, K]
    off = conf[:, 1:] * ~mine[:, 1:]  # [B, M, K] object pixels outside their majority slot
    roles = torch.stack([background_slot, object_slot, ~background_slot & ~object_slot], -1).float()  # [B, K, 3]
    outside = torch.einsum("bmk,bkr->r", off, roles) / conf[:, 1:].sum().clamp_min(1)
    return {
        "present": present,
        "majority": majority,
        "share": conf.amax(-1) / size.clamp_min(1),
        "merged": same.any(-1) & obj_present,
        "in_background": (obj == majority[:, :1]) & obj_present,
        "outside": outside,
    }


def normalised_mutual_information(joint: np.ndarray) -> float:
    """I(X; Y) / sqrt(H(X) H(Y)) of a table of counts [X, Y] (0 when either is constant): 0 when a slot's index
    says nothing of its objects' property, 1 when it fixes it."""
    p = joint / max(joint.sum(), 1)
    px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / (px @ py)[nz])).sum())
    hx = -float((px[px > 0] * np.log(px[px > 0])).sum())
    hy = -float((py[py > 0] * np.log(py[py > 0])).sum())
    return mi / np.sqrt(hx * hy) if hx > 0 and hy > 0 else 0.0


def object_properties(image: torch.Tensor, gt: torch.Tensor, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Per image and object id 1..M: (its mean colour's hue bin in [0, bins), its centroid's cell of a 3 x 3 grid),
    both [B, M] int (-1 where absent). image [B, H, W, 3] or [B, 3, H, W] in [0, 255] or [0, 1]; gt ids [B, H, W]."""
    from matplotlib.colors import rgb_to_hsv

    m1 = int(gt.max()) + 1
    onehot = F.one_hot(gt.flatten(1), m1).float()[..., 1:]  # [B, N, M]
    size = onehot.sum(1)  # [B, M]
    if image.shape[1] == 3 and image.shape[-1] != 3:
        image = image.permute(0, 2, 3, 1)  # [B, 3, H, W] -> [B, H, W, 3]
    rgb = image.flatten(1, 2).float()
    rgb = rgb / 255.0 if rgb.max() > 1.5 else rgb
    colour = torch.einsum("bnm,bnc->bmc", onehot, rgb) / size.clamp_min(1)[..., None]  # [B, M, 3]
    hue = np.minimum((rgb_to_hsv(colour.clamp(0, 1).numpy())[..., 0] * bins).astype(int), bins - 1)
    h, w = gt.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    cy = torch.einsum("bnm,n->bm", onehot, ys.flatten()) / size.clamp_min(1)
    cx = torch.einsum("bnm,n->bm", onehot, xs.flatten()) / size.clamp_min(1)
    cell = (3 * cy // h * 3 + 3 * cx // w).long().numpy()
    absent = (size == 0).numpy()
    return np.where(absent, -1, hue), np.where(absent, -1, cell)


def slot_specialisation(majority: torch.Tensor, labels: np.ndarray, k: int, n: int) -> np.ndarray:
    """Counts [K, n] of objects (labels [B, M] in [0, n), -1 absent) by their majority slot (majority [B, M])."""
    keep = labels >= 0
    joint = np.zeros((k, n))
    np.add.at(joint, (majority.numpy()[keep], labels[keep]), 1)
    return joint


def merged_pair_hue_distance(majority: torch.Tensor, hue: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Circular hue-bin distances of every pair of present objects of an image (hue [B, M], -1 absent) that share
    their majority slot (majority [B, M]), and of all pairs: (merged [P_m], all [P])."""
    maj = majority.numpy()
    a, b = np.triu_indices(hue.shape[1], k=1)
    both = (hue[:, a] >= 0) & (hue[:, b] >= 0)  # [B, P]
    d = np.abs(hue[:, a] - hue[:, b])
    d = np.minimum(d, bins - d)
    same = maj[:, a] == maj[:, b]
    return d[both & same], d[both]


def merge_similar(pred: torch.Tensor, slots: torch.Tensor, threshold: float) -> torch.Tensor:
    """Slot labels [B, H, W] with every group of similar slots (cosine similarity of their mean-centred vectors
    above ``threshold``, chained: :func:`slotlab.modules.slot_merge.slot_groups`) relabelled as one: what the
    score would be with duplicate slots merged. slots [B, K, D]."""
    from slotlab.modules.slot_merge import slot_groups

    return slot_groups(slots, threshold).gather(1, pred.flatten(1)).view_as(pred)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--split", default="test")
    p.add_argument("--num-images", type=int, default=320)
    p.add_argument(
        "--merge-cosine", default="0.95", help="slots this similar count as duplicates; a list sweeps: 0.9,0.95"
    )
    p.add_argument("--hue-bins", type=int, default=6, help="hue bins of the slot-vs-hue table (default 6)")
    args = p.parse_args(argv)

    import slotlab
    from slotlab.metrics.ari import fg_ari
    from slotlab.tasks import get_task
    from slotlab.tasks.common import EVAL_SEED, eval_noise, image_to_model

    loaded = slotlab.load_model(args.model)
    model, cfg = loaded.model.float().eval(), loaded.config
    data = get_task(cfg["task"]).heldout(cfg["data"], args.split, args.num_images)
    index = data.get("index", torch.arange(len(data["image"])))
    masks, slots = [], []
    with torch.no_grad():
        for s in range(0, len(data["image"]), 64):
            image = image_to_model(data["image"][s : s + 64], False)
            out = model(image, noise=eval_noise(model, index[s : s + 64], None, EVAL_SEED))
            masks.append(out.masks.float())
            slots.append(out.slots.float())
    scores = torch.cat(masks)  # [B, K, H, W] (or [B, K, 1, H, W])
    k = scores.shape[1]
    pred = scores.reshape(scores.shape[0], k, *scores.shape[-2:]).argmax(1)  # [B, H, W]
    gt = data["mask"].long()
    r = binding(gt, pred, k)
    obj = r["present"][:, 1:]
    share = r["share"][:, 1:][obj].numpy()
    no_splits = torch.where(gt > 0, r["majority"].gather(1, gt.flatten(1)).view_as(gt), pred)
    no_merges = torch.where(gt > 0, pred + k * gt, pred)
    slots = torch.cat(slots)  # [B, K, D]
    background = float(r["share"][:, 0].mean())
    outside = " / ".join(f"{100 * v:.1f}" for v in r["outside"].tolist())

    def score(true: torch.Tensor, labels: torch.Tensor) -> str:
        return f"{np.nanmean(fg_ari(true, labels).numpy()):.3f}"

    n = int(obj.sum())
    print(f"{len(gt)} {args.split} images, {n} objects, K = {k}")
    print("| FG-ARI | object's share in its slot (mean / median / % < 0.8) | % objects merged with another | % in the "
          "background's slot | object pixels outside their slot: in the background's / another object's / a spare slot "
          "(%) | background's share in its slot | FG-ARI, no splits | FG-ARI, no merges | FG-ARI, "
          "interior pixels only |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {score(gt, pred)} | {share.mean():.3f} / {np.median(share):.3f} / {100 * (share < 0.8).mean():.1f} | "
          f"{100 * r['merged'].sum() / n:.1f} | {100 * r['in_background'].sum() / n:.1f} | {outside} | "
          f"{background:.3f} | "
          f"{score(gt, no_splits)} | {score(gt, no_merges)} | {score(erode(gt), pred)} |")  # fmt: skip
    for threshold in [float(t) for t in args.merge_cosine.split(",")]:
        merged = merge_similar(pred, slots, threshold)
        print(f"FG-ARI with duplicate slots merged (cosine > {threshold}): {score(gt, merged)}")
    # Does a slot's index say which objects it takes (learned initial slots tuned to a hue or a region)?
    hue, cell = object_properties(data["image"], gt, args.hue_bins)
    majority = r["majority"][:, 1:]
    by_hue = slot_specialisation(majority, hue, k, args.hue_bins)
    by_cell = slot_specialisation(majority, cell, k, 9)
    print(f"objects' majority slot vs their hue ({args.hue_bins} bins from red) and their centroid's cell (3 x 3):"
          f" normalised mutual information {normalised_mutual_information(by_hue):.3f} (hue), "
          f"{normalised_mutual_information(by_cell):.3f} (cell); 0: the slot index says nothing")  # fmt: skip
    merged_d, all_d = merged_pair_hue_distance(majority, hue, args.hue_bins)
    print(f"object pairs sharing their majority slot: {len(merged_d)} of {len(all_d)}; hue-bin distance (circular) "
          f"{merged_d.mean():.2f} against {all_d.mean():.2f} over all pairs; within one bin: "
          f"{100 * (merged_d <= 1).mean():.0f} % against {100 * (all_d <= 1).mean():.0f} %")  # fmt: skip
    print("objects by slot (rows) and hue bin (columns):")
    for row in by_hue.astype(int):
        print("  " + " ".join(f"{v:4d}" for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
