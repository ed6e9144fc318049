"""Fit the built-in CLEVR renderer's light and material constants (``clevr_shading.PARAMS``) to real CLEVR renders.

Usage: ``python tools/fit_clevr_shading.py REAL_CLEVR_FOLDER [--fit 0-4] [--check 5-9] [--evals 600]``

The real scenes (a CLEVR v1.0 folder with scene JSON) are rendered by the built-in renderer with each scene's
camera recovered from its ``pixel_coords`` and the lights at their un-jittered places (the jitter of a real
scene is unknown); the constants minimise the mean absolute 8-bit error against the real images, averaged over
ground, rubber and metal pixels, away from the objects' outlines (2 px), by Powell's method in log space. ``--fit``
scenes are fitted, ``--check`` scenes are only scored (a held-out check). The fit runs at half the real
size (``--scale``; the real images area-averaged). Prints the constants as JSON.
The generator's own values live in a Blender file that is not read here; this measures their effect.

``--rounds N`` alternates N times: each scene's light jitter fitted alone (9 numbers in the generator's range
+-1, the constants fixed), then the constants refitted with the scenes' lights so placed; otherwise shadows
put in the wrong place by the unknown jitter would bias the fit towards faint, blurred shadows.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize

from slotlab.data import clevr_compare as cc
from slotlab.data import clevr_render, clevr_shading
from slotlab.data import clevr_scene as cs

FREE = (
    "key", "fill", "back", "sky", "ground_bounce", "ground_albedo", "rubber_gloss", "metal_diffuse", "metal_reflect",
    "metal_rough", "metal_spot", "metal_broad", "metal_broad_exp", "env", "radius_scale",
)  # fmt: skip


def _span(text: str) -> list[int]:
    a, b = text.split("-")
    return list(range(int(a), int(b) + 1))


def _params(x: np.ndarray, free: tuple[str, ...] = FREE) -> dict:
    p = dict(clevr_shading.PARAMS)
    v = {k: float(e) for k, e in zip(free, np.exp(x), strict=True)}
    scale = v.pop("radius_scale", 1.0)
    p.update(v)
    for k in ("key_radius", "fill_radius", "back_radius"):
        p[k] = clevr_shading.PARAMS[k] * scale
    return p


def _weights(mask: np.ndarray, metal: list[np.ndarray]) -> np.ndarray:
    """Per-pixel weights [N, H, W]: ground, rubber and metal pixels weigh a third each in total; outlines (2 px)
    weigh 0. ``metal[i]``: scene i's metal flags per object."""
    m = torch.from_numpy(mask).float()[:, None]
    mx = F.max_pool2d(m, 5, 1, 2)
    mn = -F.max_pool2d(-m, 5, 1, 2)
    keep = (mx == mn)[:, 0].numpy()
    is_metal = np.stack([np.concatenate([[False], f])[mk] for f, mk in zip(metal, mask, strict=True)])
    w = np.zeros(mask.shape, np.float32)
    for sel in (keep & (mask == 0), keep & (mask > 0) & ~is_metal, keep & is_metal):
        w[sel] = 1.0 / 3.0 / max(1, sel.sum())
    return w


def score(x: np.ndarray, scenes: list[dict], real: np.ndarray, size, free=FREE, spread: float = 0.0) -> float:
    """Weighted mean absolute error (8-bit levels) of the scenes rendered at ``size`` against ``real``; with
    ``spread`` > 0 plus ``spread`` times the mean absolute difference of the quantiles of the metal pixels'
    luminance (real vs rendered, per scene: the contrast of the reflections, wherever they fall)."""
    out = clevr_render.render_scenes(scenes, size, _params(x, free))
    ours, theirs = out["image"].astype(np.float32), real.astype(np.float32)
    err = np.abs(ours - theirs).mean(-1)
    metal = [np.asarray(sc["objects"]["material"]) == 2 for sc in scenes]
    w = _weights(out["mask"], metal)
    total = float((err * w).sum())
    if spread > 0:
        qs = np.linspace(0.02, 0.98, 25)
        diffs = []
        for i, f in enumerate(metal):
            sel = (w[i] > 0) & np.concatenate([[False], f])[out["mask"][i]]
            if sel.sum() >= 30:
                a, b = ours[i][sel].mean(-1), theirs[i][sel].mean(-1)
                diffs.append(np.abs(np.quantile(a, qs) - np.quantile(b, qs)).mean())
        total += spread * float(np.mean(diffs)) if diffs else 0.0
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("real")
    ap.add_argument("--fit", default="0-4")
    ap.add_argument("--check", default="5-9")
    ap.add_argument("--evals", type=int, default=600)
    ap.add_argument("--scale", type=int, default=2, help="fit at 1/scale of the real size (area-averaged)")
    ap.add_argument("--rounds", type=int, default=0, help="rounds of per-scene light fits (docstring)")
    ap.add_argument("--light-evals", type=int, default=250)
    ap.add_argument("--free", default=None, help="comma-separated constants to fit (default: all of FREE)")
    ap.add_argument("--spread", type=float, default=0.0, help="weight of the metal-contrast term (score)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    real, scenes_json = cc.read_real(args.real)
    scenes = [cc.scene_from_json(s, real.shape[1:3]) for s in scenes_json]
    k = args.scale
    n, h, w, _ = real.shape
    real = real[:, : h // k * k, : w // k * k].reshape(n, h // k, k, w // k, k, 3).mean((2, 4))
    size = real.shape[1:3]
    fit, check = _span(args.fit), _span(args.check)
    free = tuple(args.free.split(",")) if args.free else FREE
    base = dict(clevr_shading.PARAMS)
    x0 = np.log([max(base[k], 1e-3) if k != "radius_scale" else 1.0 for k in free])

    calls = [0]

    def f(x):
        calls[0] += 1
        v = score(x, [scenes[i] for i in fit], real[fit], size, free, args.spread)
        if calls[0] % 25 == 0:
            print(f"{calls[0]} evaluations: {v:.2f}", flush=True)
        return v

    def fit_lights(x: np.ndarray, i: int) -> None:
        """Scene i's light jitter (tanh-bounded to +-1 per axis), the constants x fixed."""
        base_lights = cs.LIGHT_LOCATIONS

        def g(y):
            scenes[i]["lights"] = base_lights + np.tanh(y.reshape(3, 3))
            return score(x, [scenes[i]], real[i : i + 1], size, free, args.spread)

        res = minimize(g, np.zeros(9), method="Powell", options={"maxfev": args.light_evals, "xtol": 1e-2})
        g(res.x)

    def check_score(x):
        return score(x, [scenes[i] for i in check], real[check], size, free, args.spread)

    print(f"start: fit {f(x0):.2f}, check {check_score(x0):.2f}", flush=True)
    x = x0
    for rnd in range(args.rounds + 1):
        if rnd:
            for i in fit + check:
                fit_lights(x, i)
            print(f"round {rnd}: lights fitted: fit {f(x):.2f}, check {check_score(x):.2f}", flush=True)
        res = minimize(f, x, method="Powell", options={"maxfev": args.evals, "xtol": 1e-2, "ftol": 1e-3})
        x = res.x
        print(f"round {rnd}: constants fitted ({res.nfev} evaluations): fit {f(x):.2f}, check {check_score(x):.2f}")
    if args.rounds:
        jit = np.stack([scenes[i]["lights"] - cs.LIGHT_LOCATIONS for i in fit + check])
        print(f"fitted light jitter: mean |offset| {np.abs(jit).mean():.2f}, max {np.abs(jit).max():.2f}")
    p = _params(x, free)
    print(json.dumps({k: round(float(v), 4) for k, v in p.items()}, indent=1))


if __name__ == "__main__":
    main()
