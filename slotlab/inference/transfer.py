"""Transfer check of a model (``slotlab data compare REAL_FOLDER --model NAME``), for tasks that have one
(``Task.transfer_check``; set prediction): its AP on real CLEVR renders against its AP on built-in renders of the
same size and variant (paper Section 4.2's AP; the ratio real AP_inf / built-in AP_inf says how much of the score
survives the move to real renders).

The real side is exactly ``slotlab eval MODEL --data-path REAL_FOLDER`` (:func:`slotlab.evaluate.
evaluate_settings` on the folder's ``val`` scenes with at most the variant's number of objects: the images squashed
to the model's S x S, no crop). The built-in side renders ``num`` scenes of the model's variant at the real images'
size (so both sides go through the same squash to S x S) and evaluates them with the same task code. Those scenes
are the model's held-out test split (:func:`builtin_stream`: its data seed's test stream; at the real images' size
equal to the render size, the very images ``slotlab eval`` scores): until 2026-12-06 they were stream 0, the
training images of data seed 0, which flattered the built-in side. Library code: nothing is printed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from slotlab.data.splits import split_stream
from slotlab.errors import UsageError
from slotlab.tasks.common import EVAL_SEED, EvalOptions, EvalSetting

BAR = 0.8  # issue 23: real AP_inf / built-in AP_inf >= 0.8


def builtin_stream(cfg: dict[str, Any]) -> tuple[int, str]:
    """The generator stream of the built-in side for a model with config ``cfg`` and its name: the test split of the
    model's data seed (scenes it never trained on, the split its published scores come from)."""
    seed = int(cfg["data"].get("seed", 0))
    return split_stream(seed, "test"), f"the test split of data seed {seed}"


@dataclass
class TransferResult:
    """AP results (``ap_inf``, ``ap_1``, ... fractions; ``num_images``) of the real and the built-in images."""

    real: dict[str, Any]
    builtin: dict[str, Any]
    real_skipped: int  # real scenes left out: more objects than the variant has target rows
    variant: str
    builtin_name: str  # which built-in scenes: "the test split of data seed 0"

    @property
    def ratio(self) -> float:
        """Real AP_inf / built-in AP_inf (NaN when the built-in AP_inf is 0)."""
        b = self.builtin["ap_inf"]
        return float(self.real["ap_inf"] / b) if b > 0 else float("nan")

    def record(self) -> dict[str, Any]:
        """The numbers as one JSON-able dict."""
        keys = [k for k in self.real if k.startswith("ap_")]
        return {
            "variant": self.variant,
            "real": {k: self.real[k] for k in [*keys, "num_images"]},
            "builtin": {k: self.builtin[k] for k in [*keys, "num_images"]},
            "real_skipped": self.real_skipped,
            "builtin_scenes": self.builtin_name,
            "ratio_ap_inf": self.ratio,
        }

    def setting(self) -> str:
        """`` (K=10, T=3)``: the slots and iterations both sides were evaluated with."""
        k, t = self.real.get("num_slots"), self.real.get("iters")
        return "" if k is None else f" (K={k}" + (f", T={t})" if t else ")")

    def text(self) -> str:
        """Markdown: one row per AP threshold, then the ratio."""
        keys = [k for k in self.real if k.startswith("ap_")]
        skipped = f"; {self.real_skipped} with more objects left out" if self.real_skipped else ""
        lines = [
            f"## Transfer: AP on {self.real['num_images']} real {self.variant} scenes{skipped} vs "
            f"{self.builtin['num_images']} built-in renders of the same size ({self.builtin_name}){self.setting()}\n",
            "| AP | real | built-in |",
            "|---|---|---|",
        ]
        lines += [f"| {k.replace('ap_', 'AP_')} | {100 * self.real[k]:.1f} % | {100 * self.builtin[k]:.1f} % |"
                  for k in keys]  # fmt: skip
        if np.isnan(self.ratio):
            lines.append("\nreal AP_inf / built-in AP_inf: undefined (the built-in AP_inf is 0)")
        else:
            verdict = "meets" if self.ratio >= BAR else "below"
            lines.append(f"\nreal AP_inf / built-in AP_inf: {self.ratio:.3f} ({verdict} the bar {BAR})")
        return "\n".join(lines)


def require_scenes(real_folder: str | os.PathLike[str]) -> None:
    """UsageError when an existing ``real_folder`` has no scene JSON (a folder of PNGs): nothing to score against.
    A missing folder is left to the reader (:func:`slotlab.data.clevr_compare.read_real`) to name."""
    root = Path(real_folder)
    if root.is_dir() and not any((c / "scenes").is_dir() for c in (root, root / "CLEVR_v1.0")):
        raise UsageError(
            f"--model: {root} has no scene JSON (not a CLEVR v1.0 folder with images/ and scenes/), so the model's "
            "predictions cannot be scored there"
        )


def transfer_check(
    model: nn.Module,
    cfg: dict[str, Any],
    real_folder: str | os.PathLike[str],
    renders: dict[str, np.ndarray],
    stream: int,
    *,
    seed: int = EVAL_SEED,
) -> TransferResult:
    """AP of a set-prediction ``model`` (config ``cfg``) on the ``val`` scenes of the CLEVR v1.0 folder
    ``real_folder`` and on ``renders`` (``clevr_render.generate``'s output of the model's variant from ``stream``,
    which must be :func:`builtin_stream`'s); see the module docstring. Raises :class:`UsageError` for a folder
    without scene JSON or without a scene the variant allows, :class:`slotlab.data.errors.DatasetFileError` for an
    unreadable one, ValueError for renders of another stream (a caller's bug)."""
    held_out, name = builtin_stream(cfg)
    if stream != held_out:
        raise ValueError(f"the built-in renders must be {name} (stream {held_out}), got stream {stream}")
    from slotlab.data.clevr_folder import ClevrFolder
    from slotlab.evaluate import evaluate_settings
    from slotlab.tasks import get_task

    task = get_task(cfg["task"])
    spec = task.transfer_check(model, cfg)
    if spec is None:
        raise UsageError(f"--model: {task.adjective} model has no transfer check (a set-prediction model has one)")
    variant, rows = spec.variant, spec.max_objects
    root = Path(real_folder)
    require_scenes(root)
    every = len(ClevrFolder(root, "val", image_size=None))
    n = len(ClevrFolder(root, "val", max_objects=rows, image_size=None))
    if n == 0:
        raise UsageError(f"--model: no scene of {root} (val) has at most {rows} objects, the model's {variant}")
    (real,) = evaluate_settings(model, cfg, [EvalSetting()], split="eval", num_images=n, seed=seed,
                                data_path=str(root))  # fmt: skip
    data = {k: torch.from_numpy(v) for k, v in spec.builtin_data(renders).items()}
    builtin = task.evaluate(model, data, cfg, EvalSetting(), EvalOptions(seed=seed))
    return TransferResult(real, builtin, every - n, variant, name)
