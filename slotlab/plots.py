"""Matplotlib plots of test-time sweeps (paper Figure 2 right: FG-ARI vs iterations; Figure 5: AP vs
iterations / number of objects). Uses the non-interactive Agg backend; nothing is shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_sweep(rows: list[dict[str, Any]], path: str | Path, metric: str, title: str = "") -> Path:
    """One line per K, metric against T (or against K if T is fixed)."""
    path = Path(path)
    ks = sorted({r["num_slots"] for r in rows})
    ts = sorted({r["iters"] for r in rows})
    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=120)
    if len(ts) > 1:
        for k in ks:
            pts = sorted((r["iters"], r[metric]) for r in rows if r["num_slots"] == k)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"K={k}")
        ax.set_xlabel("iterations T at test time")
    else:
        pts = sorted((r["num_slots"], r[metric]) for r in rows)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"T={ts[0]}")
        ax.set_xlabel("slots K at test time")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_ap_sweep(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """AP at every threshold against the swept quantity (T, K or the number of objects; paper Figure 5)."""
    path = Path(path)
    axis = next((a for a in ("iters", "num_slots", "objects") if len({r[a] for r in rows}) > 1), "iters")
    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=120)
    for key in [k for k in rows[0] if k.startswith("ap_")]:
        pts = sorted((r[axis], r[key]) for r in rows if r[axis] is not None)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=key.replace("ap_", "AP "))
    ax.set_xlabel({"iters": "iterations T at test time", "num_slots": "slots K", "objects": "number of objects"}[axis])
    ax.set_ylabel("Average Precision")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
