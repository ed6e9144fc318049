"""Start a run from a trained model's weights (``model.init_from``): fine-tuning, as AdaSlot (Fan et al. 2024)
starts its keep gate on a trained Slot Attention model. Tensors the trained model lacks (a new part, e.g. the keep
gate) keep their own initialisation; a tensor it has must fit in name and shape. Read with the safe loaders of
:mod:`slotlab.inference.checkpoint_io` (no code runs from the file).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from slotlab.errors import ConfigError
from slotlab.inference.checkpoint_io import load_checkpoint, model_weights
from slotlab.zoo import resolve_model


def load_initial_weights(model: nn.Module, spec: str) -> list[str]:
    """Copy the weights of ``spec`` (a zoo name, run folder, .ckpt or pretrained folder) into ``model``; returns
    the names of ``model``'s tensors that kept their own initialisation. ConfigError when the weights do not fit."""
    weights = model_weights(load_checkpoint(resolve_model(spec)))
    own = model.state_dict()
    unexpected = sorted(k for k in weights if k not in own)
    mismatched = sorted(k for k in weights if k in own and own[k].shape != weights[k].shape)
    if unexpected or mismatched:
        shown = ", ".join((unexpected + mismatched)[:4])
        raise ConfigError(
            f"model.init_from {spec}: its weights do not fit this model ({len(unexpected)} tensor(s) it lacks, "
            f"{len(mismatched)} of another shape, e.g. {shown}); the model keys must describe the same network"
        )
    model.load_state_dict(weights, strict=False)
    return sorted(k for k in own if k not in weights)


def check_initial_weights(cfg: dict[str, Any]) -> None:
    """Before a new run's folder, data or model exist: ``model.init_from`` (if set) is a model whose weights fit
    the config's model (the error of :func:`load_initial_weights`, or of the model's loading, otherwise)."""
    spec = cfg["model"].get("init_from")
    if not spec:
        return
    from slotlab.tasks import get_task

    task = get_task(cfg["task"])
    load_initial_weights(task.build_model(cfg, task.image_size(cfg)), spec)
