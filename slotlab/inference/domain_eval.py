"""The domain check of an evaluation on a data file (``slotlab eval --data-path``, :func:`slotlab.evaluate.
evaluate_checkpoint` with ``data_path``): the per-image reconstruction error of the evaluated images against the
model's reference (:mod:`slotlab.inference.domain`: the rule, the warning). Not part of the paper.

Where the reference comes from:

- a pretrained folder (a zoo entry, ``save_pretrained``'s output) whose card stores ``domain``: that one (the
  zoo measures it on the first 320 images of the test split);
- any other model that reconstructs (a run folder, a ``.ckpt`` file, a card without ``domain``): measured on the
  first ``REFERENCE_IMAGES`` images of the model's own held-out ``eval`` split (its config's data: the images it
  validated on, never trained on). For a run folder or ``.ckpt`` file it is cached in ``domain_reference.json``
  in the run folder, keyed by the content of the checkpoint and its data config, so a later evaluation of the
  same weights reuses it and a new checkpoint measures afresh; a pretrained folder is never written to (zoo
  folders are package data), so there it is measured at each evaluation. Where those images cannot be read (a
  data file that has moved), the check reports the evaluated images' error with no reference and warns of
  nothing.

Models without a decoder (set prediction) reconstruct nothing: no check; nor for a task whose models reconstruct
something else than images (its :meth:`~slotlab.tasks.base.Task.checks_domain`: videos).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slotlab.atomic import write_json
from slotlab.data.fingerprint import content_key
from slotlab.errors import UserError
from slotlab.inference.checkpoint_io import CARD_FILE, WEIGHTS_FILE, is_pretrained_folder, read_card_file
from slotlab.inference.domain import DomainReference, DomainSummary, per_image_mse, reference_of, summarize_set
from slotlab.runs import checkpoint_file, run_dir_of

REFERENCE_IMAGES = 320  # held-out images a measured reference uses (as the zoo's)
REFERENCE_CACHE = "domain_reference.json"


@dataclass
class DomainCheck:
    """A model's reference (None: none could be had) and where it came from (or why there is none)."""

    reference: DomainReference | None
    source: str

    def summarize(self, model: nn.Module, images_uint8: torch.Tensor) -> DomainSummary:
        """The check of uint8 images [N, 3, H, W] (as the task's held-out loader gives them)."""
        x = images_uint8.float().div(127.5).sub(1.0)  # [N, 3, H, W] in [-1, 1], the model's input
        return summarize_set(per_image_mse(model, x), self.reference, self.source)


def reconstructs(model: nn.Module) -> bool:
    """Whether the model has a decoder whose reconstruction error the check can measure."""
    return getattr(model, "decoder", None) is not None


def domain_check(checkpoint: str | Path, model: nn.Module, cfg: dict[str, Any]) -> DomainCheck | None:
    """The reference of the model loaded from ``checkpoint`` (see the module docstring); None for a model that
    reconstructs nothing."""
    from slotlab.tasks import get_task

    if not reconstructs(model) or not get_task(cfg["task"]).checks_domain(model):
        return None
    path = Path(checkpoint)
    if is_pretrained_folder(path):
        card = path / CARD_FILE
        ref = reference_of(read_card_file(card)) if card.is_file() else None
        if ref is not None:
            return DomainCheck(ref, f"from its card {card}")
        return measured_check(path / WEIGHTS_FILE, None, model, cfg)
    return measured_check(checkpoint_file(path), run_dir_of(path), model, cfg)


def measured_check(weights: Path, folder: Path | None, model: nn.Module, cfg: dict[str, Any]) -> DomainCheck:
    """The reference measured on the model's own held-out ``eval`` images, cached in ``folder`` (None: not
    cached)."""
    from slotlab.tasks import get_task

    n = min(REFERENCE_IMAGES, int(cfg["data"]["eval_size"]))
    cache = folder / REFERENCE_CACHE if folder is not None else None
    key = reference_key(weights, cfg["data"], n)
    entries = _read_cache(cache) if cache is not None else {}
    if (ref := _reference_in(entries.get(key))) is not None:
        return DomainCheck(ref, f"measured earlier, cached in {cache}")
    try:
        images = get_task(cfg["task"]).heldout(cfg["data"], "eval", n)["image"]  # uint8 [n, 3, H, W]
    except UserError as e:
        return DomainCheck(None, f"no held-out reference: the model's own held-out images cannot be read: {e}")
    x = images.float().div(127.5).sub(1.0)  # [n, 3, H, W]
    mse = per_image_mse(model, x)
    s = summarize_set(mse, None, "")
    ref = DomainReference(s.median, s.p95, s.num_images, "eval")
    if cache is None:
        return DomainCheck(ref, "measured now; not cached: a pretrained folder is not written to")
    try:
        write_json(cache, {**entries, key: {**ref.as_card(), "checkpoint": weights.name}})
    except OSError as e:  # a read-only folder (an installed package): measured again next time
        return DomainCheck(ref, f"measured now; not cached: {cache}: {e.strerror or e}")
    return DomainCheck(ref, f"measured now, cached in {cache}")


def reference_key(weights: Path, data_cfg: dict[str, Any], n: int) -> str:
    """Content key of a measured reference: the checkpoint's bytes, the data config, the number of images and the
    size and time of a data file the config reads (its held-out images)."""
    h = hashlib.sha1(json.dumps({"data": data_cfg, "n": n}, sort_keys=True, default=str).encode())
    if data_cfg.get("path"):
        try:
            st = os.stat(data_cfg["path"])
            h.update(f"{st.st_size}\0{st.st_mtime_ns}".encode())
        except OSError:
            h.update(b"missing")
    return f"{content_key([weights])}-{h.hexdigest()[:8]}"


def _read_cache(path: Path) -> dict[str, Any]:
    """The cache's entries ({} for a missing or unreadable file: it is measured again and rewritten)."""
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def _reference_in(entry: Any) -> DomainReference | None:
    try:
        return reference_of({"domain": entry}) if isinstance(entry, dict) else None
    except (TypeError, ValueError, KeyError):
        return None


def record_lines(record: dict[str, Any]) -> tuple[str, str | None]:
    """(the ``domain:`` text, the ``warning:`` text or None) of a result's ``domain`` record."""
    ref = record.get("reference")
    summary = DomainSummary(
        record["recon_mse_median"], record["recon_mse_p95"], record["num_images"], record["num_far"],
        reference_of({"domain": ref}) if ref else None, record["reference_source"],
    )  # fmt: skip
    return summary.line(), summary.warning()
