"""Matplotlib plots of test-time sweeps (paper Figure 2 right: FG-ARI vs iterations; Figure 5: AP vs
iterations / number of objects) and of a run's learning curves (``slotlab report``). Uses the non-interactive Agg
backend; nothing is shown."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


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


@dataclass(frozen=True)
class Panel:
    """One learning-curve panel: title, the metrics.csv columns drawn (one line each), y label, the column of a
    +- band around the first line (or None), log scale (only where the values span more than a decade)."""

    title: str
    columns: tuple[str, ...]
    ylabel: str
    band: str | None = None
    log_scale: bool = False


def _step_label(x: float, _pos: int | None = None) -> str:
    """Compact step numbers for the x axis: 950, 1.5k, 20k, 1.2M."""
    if abs(x) >= 1e6:
        return f"{x / 1e6:.3g}M"
    if abs(x) >= 1e3:
        return f"{x / 1e3:.3g}k"
    return f"{x:.0f}"


def _line_label(column: str) -> str:
    return column.replace("val/ap_", "AP ").replace("val/", "").replace("train/", "")


def plot_learning_curves(
    rows: list[dict[str, float]], panels: Sequence[Panel], resumes: Sequence[float] = (), columns_per_row: int = 3
) -> Figure:
    """Metrics over optimizer steps, one panel each (``rows``: metrics.csv rows with a ``step``). A panel whose
    columns were not logged says so. Legends sit below their panel (never over the lines); x ticks are at most
    six, with compact labels; dashed lines mark ``resumes``. Returns the Figure (close it with plt.close)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    n = max(1, len(panels))
    ncol = min(columns_per_row, n)
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.6 * nrow), dpi=110, squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    for ax, panel in zip(flat, panels, strict=False):
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel("optimizer step", fontsize=9)
        ax.set_ylabel(panel.ylabel, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True, min_n_ticks=2))
        ax.xaxis.set_major_formatter(FuncFormatter(_step_label))
        drawn = [c for c in panel.columns if any(c in r and math.isfinite(r[c]) for r in rows)]
        if not drawn:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="#999")
            continue
        values = []
        for i, col in enumerate(drawn):
            pts = sorted((r["step"], r[col]) for r in rows if col in r and math.isfinite(r[col]))
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            values += ys
            ax.plot(xs, ys, marker="o" if len(pts) < 30 else None, ms=3, lw=1.2, label=_line_label(col))
            band = {r["step"]: r[panel.band] for r in rows if i == 0 and panel.band and panel.band in r}
            if band:
                lo = [y - band.get(x, 0.0) for x, y in pts]
                hi = [y + band.get(x, 0.0) for x, y in pts]
                ax.fill_between(xs, lo, hi, alpha=0.2, label="± 1 std over images")
        positive = [v for v in values if v > 0]
        if panel.log_scale and len(positive) == len(values) and max(values) > 10 * min(values):
            ax.set_yscale("log")
        for s in resumes:
            ax.axvline(s, color="#999", ls="--", lw=0.8)
        if len(drawn) > 1 or panel.band:
            ax.legend(
                fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=min(3, len(drawn) + 1), frameon=False
            )
    fig.tight_layout()
    return fig
