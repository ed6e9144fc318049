"""The one evaluation path of every task (``slotlab eval``, the zoo's measured scores, Python): a trained model
on the held-out images of its run (or of another data file), at test-time K / T (paper Figure 2 right, Figure 5)
and, for a task that selects images by their number of objects, per number of objects. The metrics are the task's
(:meth:`slotlab.tasks.base.Task.evaluate`).
On a data file, models that reconstruct also get the domain check (:mod:`slotlab.inference.domain_eval`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from slotlab.inference.domain_eval import DomainCheck, domain_check
from slotlab.inference.loading import load_model
from slotlab.tasks import get_task
from slotlab.tasks.common import EVAL_SEED, EvalOptions, EvalSetting


def data_with_path(cfg: dict[str, Any], data_path: str | None) -> dict[str, Any]:
    """The run's ``data`` section, reading ``data_path`` instead when given (the task says how: e.g. a DeepMind
    .tfrecords file, a CLEVR v1.0 folder)."""
    d = dict(cfg["data"])
    return d if data_path is None else get_task(cfg["task"]).data_with_path(d, data_path)


def evaluate_settings(
    model: nn.Module,
    cfg: dict[str, Any],
    settings: list[EvalSetting],
    *,
    split: str = "eval",
    num_images: int | None = None,
    seed: int = EVAL_SEED,
    ari_undefined: str | None = None,
    data_path: str | None = None,
    batch_size: int | None = None,
    domain: DomainCheck | None = None,
) -> list[dict[str, Any]]:
    """One result per setting (the task's metrics, with ``split``, ``seed`` and the data facts). The held-out
    images are loaded once per distinct data need, from the same loader training validated on. ``domain``: the
    results also hold ``domain``, the reconstruction error of their images against its reference (at the model's
    own K and T, like the reference)."""
    task = get_task(cfg["task"])
    d = data_with_path(cfg, data_path)
    n = int(num_images or d["eval_size"])
    loaded: dict[tuple, tuple[dict[str, torch.Tensor], dict[str, Any]]] = {}
    results = []
    for s in settings:
        key = task.eval_data_key(s)
        if key not in loaded:
            loaded[key] = task.eval_data(cfg, d, split, n, s)
            if domain is not None:
                summary = domain.summarize(model, loaded[key][0]["image"])
                loaded[key] = (loaded[key][0], {**loaded[key][1], "domain": summary.as_record()})
        data, facts = loaded[key]
        res = task.evaluate(model, data, cfg, s, EvalOptions(seed, ari_undefined, batch_size))
        res.update(facts, split=split, seed=seed)
        results.append(res)
    return results


def evaluate_checkpoint(
    checkpoint: str | Path,
    num_slots: int | None = None,
    iters: int | None = None,
    num_images: int | None = None,
    *,
    exact_objects: int | None = None,
    split: str = "eval",
    seed: int = EVAL_SEED,
    ari_undefined: str | None = None,
    data_path: str | None = None,
    batch_size: int | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """The held-out evaluation of a checkpoint (a .ckpt file or a run folder) at one setting.

    Args:
        num_slots, iters: K and T at test time (default: the training values).
        num_images: the first ``num_images`` held-out images (default: the config's ``data.eval_size``).
        exact_objects: only the images with exactly this many objects (set prediction, paper Figure 5 right).
        split: held-out split, "eval" or (procedural data) "test"; recorded in the result.
        seed: seed of the slot-initialisation noise.
        ari_undefined: "nan" (DeepMind) or "one" (scikit-learn) where the ARI is 0/0; default: the run's.
        data_path: real data instead of the config's (a DeepMind .tfrecords file / a CLEVR v1.0 folder); the
            result then holds ``domain`` (:mod:`slotlab.inference.domain_eval`) for models that reconstruct.
    """
    model, cfg, ckpt = load_model(checkpoint)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(dev)
    (result,) = evaluate_settings(
        model,
        cfg,
        [EvalSetting(num_slots, iters, exact_objects)],
        split=split,
        num_images=num_images,
        seed=seed,
        ari_undefined=ari_undefined,
        data_path=data_path,
        batch_size=batch_size,
        domain=domain_check(checkpoint, model, cfg) if data_path is not None else None,
    )
    result["checkpoint"] = str(checkpoint)
    return result
