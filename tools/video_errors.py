"""Dev script: where a video model (SAVi, Kipf et al. 2022) loses video FG-ARI on held-out clips of the built-in
generator. Each ground-truth object is given its slot: the one its first-frame box conditions (conditional models:
slot k + 1 for object k, slot 0 the background), or, for unconditional models, the slot that holds most of its
pixels in the first frame where it is visible. Then, per frame, the share of the objects' pixels that go to their
own slot, to the background's slot, to another object's slot or to a spare slot, separately for objects visible in
the first frame and objects that enter later; the per-frame FG-ARI; and two counterfactual scores: entering
objects given a label of their own, and only the objects' interior pixels scored (1-pixel erosion, 4-connected);
and video FG-ARI by what happens in a clip (an object enters after frame 0; two objects meet: their pixels touch).
With ``--merge-cosine T1,T2,..``: video FG-ARI with near-copy slots merged per frame (the image task's
``model.merge_slots``, :mod:`slotlab.modules.slot_merge`, on each frame's corrected slots; a counterfactual on the
argmax labels: each pixel takes its slot's group).

    python tools/video_errors.py MODEL [--split test] [--num-clips 256] [--slice N] [--merge-cosine 0.95,0.97]

MODEL: a zoo name, run folder or .ckpt of the video task on the built-in generator. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from object_discovery_errors import erode, merge_similar  # noqa: E402  (a sibling dev script)

CATEGORIES = ("own slot", "background's slot", "another object's slot", "spare slot")


def own_slots(gt: torch.Tensor, pred: torch.Tensor, conditional: bool, num_slots: int) -> torch.Tensor:
    """gt, pred [B, T, H, W] -> the slot of each ground-truth id [B, M + 1] (index 0: the background's slot)."""
    b, m1 = gt.shape[0], int(gt.max()) + 1
    if conditional:  # the boxes condition slot k on object k (slot 0: the background box)
        return torch.arange(m1).expand(b, m1).clone()
    onehot = F.one_hot(gt, m1).bool()  # [B, T, H, W, M+1]
    visible = onehot.flatten(2, 3).any(2)  # [B, T, M+1]
    first = visible.float().argmax(1)  # [B, M+1] first frame where each id is visible
    frame_of = torch.arange(gt.shape[1]).view(1, -1, 1, 1, 1)
    in_first = onehot & (frame_of == first.view(b, 1, 1, 1, m1))  # [B, T, H, W, M+1]
    votes = F.one_hot(pred, num_slots).unsqueeze(-2) & in_first.unsqueeze(-1)  # [B, T, H, W, M+1, K]
    return votes.flatten(1, 3).sum(1).argmax(-1)  # [B, M+1]


def breakdown(gt: torch.Tensor, pred: torch.Tensor, conditional: bool, num_slots: int) -> dict[str, np.ndarray]:
    """Pixel shares per category [T, 4] for objects visible in frame 0 ('first') and entering ones ('enter')."""
    b, t = gt.shape[:2]
    own = own_slots(gt, pred, conditional, num_slots)  # [B, M+1]
    m1 = own.shape[1]
    visible = F.one_hot(gt, m1).flatten(2, 3).any(2)  # [B, T, M+1]
    entering = visible[:, 1:].any(1) & ~visible[:, 0]  # [B, M+1]
    mine = own.gather(1, gt.flatten(1)).view_as(gt)  # [B, T, H, W] the pixel's object's own slot
    present = visible.any(1)[:, 1:, None]  # [B, M, 1]
    is_object_slot = (F.one_hot(own[:, 1:], num_slots).bool() & present).any(1)  # [B, K] slots owned by an object
    is_object_slot &= ~F.one_hot(own[:, 0], num_slots).bool()
    pred_owned = is_object_slot.gather(1, pred.flatten(1)).view_as(pred)
    cat = torch.full_like(gt, 3)  # spare slot
    cat = torch.where(pred_owned, torch.full_like(gt, 2), cat)
    cat = torch.where(pred == own[:, :1, None, None], torch.full_like(gt, 1), cat)
    cat = torch.where(pred == mine, torch.zeros_like(gt), cat)
    enters_px = entering.gather(1, gt.flatten(1)).view_as(gt)
    out = {}
    for name, sel in (("first", (gt > 0) & ~enters_px), ("enter", (gt > 0) & enters_px)):
        counts = F.one_hot(torch.where(sel, cat, torch.full_like(cat, 4)), 5)[..., :4]  # [B, T, H, W, 4]
        counts = counts.sum((0, 2, 3)).double()  # [T, 4]
        out[name] = (counts / counts.sum(1, keepdim=True).clamp_min(1)).numpy()
        out[name + "_pixels"] = counts.sum(1).numpy()
    out["entering_clips"] = entering.any(1).numpy()
    out["relabelled"] = torch.where(enters_px, 1000 + gt, pred)  # entering objects: a label of their own
    return out


def clip_events(gt: torch.Tensor) -> dict[str, np.ndarray]:
    """Per clip [B] (bool): ``entering`` (an object absent from frame 0 is visible later) and ``meeting`` (in some
    frame two objects' visible pixels touch: one lies within the other's 8-neighbourhood, overlap included)."""
    m1 = int(gt.max()) + 1
    objects = F.one_hot(gt, m1).bool()[..., 1:].permute(0, 1, 4, 2, 3)  # [B, T, M, H, W]
    visible = objects.flatten(3).any(3)  # [B, T, M]
    entering = (visible[:, 1:].any(1) & ~visible[:, 0]).any(1)  # [B]
    grown = F.max_pool2d(objects.flatten(0, 2)[:, None].float(), 3, 1, 1).view(objects.shape) > 0  # [B, T, M, H, W]
    touch = (grown[:, :, :, None] & objects[:, :, None]).flatten(4).any(4)  # [B, T, M, M]
    touch &= ~torch.eye(objects.shape[2], dtype=torch.bool)
    return {"entering": entering.numpy(), "meeting": touch.flatten(1).any(1).numpy()}


def merged(slots: torch.Tensor, pred: torch.Tensor, threshold: float) -> torch.Tensor:
    """pred [B, T, H, W] relabelled by each frame's groups of near-copy slots (slots [B, T, K, D]): the image
    script's :func:`merge_similar` on every frame."""
    return merge_similar(pred.flatten(0, 1), slots.flatten(0, 1), threshold).view_as(pred)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--split", default="test")
    p.add_argument("--num-clips", type=int, default=256)
    p.add_argument("--slice", type=int, default=None, help="slice length (default: the config's eval_slice)")
    p.add_argument("--merge-cosine", default="", help="comma-separated thresholds of the per-frame slot merge")
    args = p.parse_args(argv)

    import slotlab
    from slotlab.metrics.video import video_metrics
    from slotlab.tasks.common import EVAL_SEED
    from slotlab.tasks.video.data import load_split
    from slotlab.tasks.video.run import clip_scores

    loaded = slotlab.load_model(args.model)
    model, cfg = loaded.model.float().eval(), loaded.config
    data = load_split(cfg["data"], args.split, args.num_clips)
    index = torch.arange(len(data["image"]))
    slice_len = args.slice or cfg["data"].get("eval_slice")
    scores, out, _ = clip_scores(model, data, index, "nan", EVAL_SEED, slice_len=slice_len)
    gt, pred = data["mask"].long(), out.masks.argmax(2)  # [B, T, H, W]
    conditional = bool(model.conditional)
    r = breakdown(gt, pred, conditional, out.masks.shape[2])

    def fg(true: torch.Tensor, labels: torch.Tensor) -> float:
        return float(np.nanmean(video_metrics(true, labels, undefined="nan")["fg_ari_video"].numpy()))

    fg_all = scores["fg_ari_video"].numpy()
    ent = r["entering_clips"]
    per_frame = np.nanmean(video_metrics(gt, pred, undefined="nan")["fg_ari_per_frame"].numpy(), 0)
    print(f"{len(gt)} {args.split} clips of {gt.shape[1]} frames, {'conditional' if conditional else 'unconditional'}"
          f" model, slices of {slice_len or gt.shape[1]}")  # fmt: skip
    print(f"video FG-ARI {np.nanmean(fg_all):.4f}; clips with an entering object: {ent.sum()} "
          f"({np.nanmean(fg_all[ent]):.4f}), the others {np.nanmean(fg_all[~ent]):.4f}")  # fmt: skip
    print(f"counterfactual: entering objects a label of their own {fg(gt, r['relabelled']):.4f}; interior pixels "
          f"only {fg(erode(gt), pred):.4f}; both {fg(erode(gt), r['relabelled']):.4f}")  # fmt: skip
    events = clip_events(gt)
    loss = 1 - fg_all
    print("\n| objects entering after frame 0 | objects meeting | clips | video FG-ARI | share of the lost FG-ARI |")
    print("|---|---|---|---|---|")
    for enter in (False, True):
        for meet in (False, True):
            sel = (events["entering"] == enter) & (events["meeting"] == meet)
            share = np.nansum(loss[sel]) / max(np.nansum(loss), 1e-12)
            print(f"| {'yes' if enter else 'no'} | {'yes' if meet else 'no'} | {sel.sum()} | "
                  f"{np.nanmean(fg_all[sel]) if sel.any() else float('nan'):.4f} | {share:.2f} |")  # fmt: skip
    print()
    for tau in [float(v) for v in args.merge_cosine.split(",") if v]:
        score = fg(gt, merged(out.slots, pred, tau))
        print(f"video FG-ARI with near-copy slots merged per frame (cosine > {tau:g}): {score:.4f}")
    print("\n| frame | FG-ARI | " + " | ".join(f"first-frame objects: {c}" for c in CATEGORIES) + " | entering: own"
          " / background's / another's / spare |")  # fmt: skip
    print("|---" * 7 + "|")
    for t in range(gt.shape[1]):
        first = " | ".join(f"{100 * v:.1f}" for v in r["first"][t])
        enter = " / ".join(f"{100 * v:.0f}" for v in r["enter"][t]) if r["enter_pixels"][t] else "-"
        print(f"| {t} | {per_frame[t]:.3f} | {first} | {enter} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
