"""Reading and writing trained slotlab models without running code from the file (infrastructure, not part of
the paper).

Two formats are read:

* a Lightning ``.ckpt`` file (or a run folder: its ``checkpoints/last.ckpt``), loaded with
  ``torch.load(..., weights_only=True)``: only tensors, numbers, strings and containers are unpickled, so a
  checkpoint whose pickle would call a function (``os.system``, ...) is refused with :class:`UnsafeCheckpointError`
  instead of running it;
* a Hugging Face-style model folder (the zoo's format, ``save_pretrained``'s output): ``config.json`` (the
  slotlab config, task, image size, format, step), ``model.safetensors`` (the weights; safetensors holds raw
  tensors only) and ``README.md`` (the model card, with its facts in the YAML front matter).

Both give the same checkpoint dict (``state_dict`` with ``model.`` keys, ``hyper_parameters`` = config and image
size, ``global_step``, ``slotlab_format``, ``slotlab_task``, ``_path``), which :func:`load_model` turns into the
task's ``nn.Module``.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from slotlab.atomic import atomic_open
from slotlab.checkpoint_format import CHECKPOINT_FORMAT, CheckpointFormatError, check_format
from slotlab.config_limits import load_yaml_text
from slotlab.errors import UserError
from slotlab.runs import checkpoint_file
from slotlab.tasks import task_name

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
PRETRAINED_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)
MAX_CONFIG_BYTES = 1 << 20  # a config.json larger than 1 MiB is no slotlab config


class CheckpointError(UserError, ValueError):
    """A checkpoint that is missing, unreadable, or not a slotlab model of the expected kind."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint whose pickle holds more than weights (objects whose loading would run code): refused."""


def is_pretrained_folder(path: str | Path) -> bool:
    """True for a folder laid out as a Hugging Face model repo by slotlab (``config.json`` + ``model.safetensors``)."""
    p = Path(path)
    return p.is_dir() and (p / CONFIG_FILE).is_file() and (p / WEIGHTS_FILE).is_file()


def safe_torch_load(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; a file whose pickle asks for anything but weights raises
    :class:`UnsafeCheckpointError` (nothing of it runs), any other unreadable file :class:`CheckpointError`."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "unsupported global" not in msg.lower():  # a damaged file, not a refused object
            raise CheckpointError(f"cannot read checkpoint {path}: not a readable torch checkpoint (damaged?)") from e
        what = msg.split("Trying to load unsupported")[-1].strip().splitlines()[0]
        raise UnsafeCheckpointError(
            f"refused to load {path}: it holds Python objects besides weights ({what}), whose loading could run "
            "code. slotlab loads weights only; export the model's state_dict (or a slotlab save_pretrained folder) "
            "from a source you trust."
        ) from None
    except Exception as e:  # torch raises many kinds for corrupt files
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from e


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict of a .ckpt file, a run folder (its last.ckpt) or a pretrained folder, format-checked;
    ``_path`` added. Never runs code from the file."""
    path = Path(path)
    if is_pretrained_folder(path):
        ckpt = checked_checkpoint(read_pretrained(path), path, (), CheckpointError)
    else:
        path = checkpoint_file(path)
        if not path.exists():
            raise CheckpointError(f"checkpoint {path} does not exist")
        if path.is_dir():
            raise CheckpointError(f"{path} is a folder, not a checkpoint file")
        keys = ("state_dict", "hyper_parameters")
        ckpt = checked_checkpoint(safe_torch_load(path), path, keys, CheckpointError)
    ckpt["_path"] = str(path)
    return ckpt


def checked_checkpoint(ckpt: Any, path: Path, keys: tuple[str, ...], error: type[Exception]) -> dict[str, Any]:
    """``ckpt`` (loaded from ``path``) if it is a checkpoint dict with ``keys`` in a format this version reads;
    else ``error`` (the caller's kind of user error) saying why."""
    if keys and (not isinstance(ckpt, dict) or any(k not in ckpt for k in keys)):
        raise error(f"{path} is not a slotlab/Lightning checkpoint (no {' / '.join(keys)})")
    try:
        check_format(ckpt, str(path))
    except CheckpointFormatError as e:
        raise error(str(e)) from e
    return ckpt


# ----------------------------------------------------------------------------------------------------------
# Hugging Face-style folders


def read_pretrained(folder: str | Path) -> dict[str, Any]:
    """A pretrained folder -> the checkpoint dict :func:`load_checkpoint` returns (without ``_path``)."""
    folder = Path(folder)
    cfg_path = folder / CONFIG_FILE
    if cfg_path.stat().st_size > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{cfg_path} is {cfg_path.stat().st_size:,} bytes: not a slotlab model config")
    try:
        meta = json.loads(cfg_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"cannot read {cfg_path}: {e}") from e
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{cfg_path} is not a slotlab model config (no 'config' mapping)")
    try:
        weights = load_file(str(folder / WEIGHTS_FILE), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {folder / WEIGHTS_FILE}: {e}") from e
    hp: dict[str, Any] = {"config": meta["config"]}
    if meta.get("image_size"):
        hp["image_size"] = tuple(int(s) for s in meta["image_size"])
    return {
        "state_dict": {f"model.{k}": v for k, v in weights.items()},
        "hyper_parameters": hp,
        "global_step": int(meta.get("global_step", 0)),
        "slotlab_format": meta.get("slotlab_format", 1),
        "slotlab_task": task_name(meta["config"]),
    }


def pretrained_meta(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The ``config.json`` of a checkpoint dict: the config (its ``run`` section reset: paths of the training
    machine), image size, task, step and format."""
    hp = ckpt["hyper_parameters"]
    cfg = json.loads(json.dumps(hp["config"]))  # plain copy (no tuples / shared objects)
    cfg["run"] = {"root": "runs", "name": None}
    meta: dict[str, Any] = {
        "library_name": "slotlab",
        "slotlab_format": ckpt.get("slotlab_format", CHECKPOINT_FORMAT),
        "task": task_name(cfg),
        "global_step": int(ckpt.get("global_step", 0)),
        "config": cfg,
    }
    if hp.get("image_size"):
        meta["image_size"] = [int(s) for s in hp["image_size"]]
    return meta


def model_weights(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model's weights of a checkpoint dict (``model.`` prefix removed), fp32, contiguous and unshared."""
    out = {}
    for k, v in ckpt["state_dict"].items():
        if not k.startswith("model."):
            continue
        t = v.detach().cpu()
        out[k.removeprefix("model.")] = (t.float() if t.is_floating_point() else t).contiguous().clone()
    return out


def write_pretrained(ckpt: dict[str, Any], folder: str | Path, card: dict[str, Any] | None = None) -> Path:
    """Write ``ckpt`` (a checkpoint dict) as a pretrained folder: ``config.json``, ``model.safetensors`` and a
    ``README.md`` model card (``card``'s facts in its YAML front matter). Each file is written to a temporary
    name and renamed, so a killed write leaves the previous file whole. Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = pretrained_meta(ckpt)
    weights = model_weights(ckpt)
    with atomic_open(folder / WEIGHTS_FILE) as f:
        # one metadata key: safetensors orders several in a per-process random order, and the bytes (and so the
        # card's sha256) must be the same for the same weights
        f.write(save(weights, metadata={"format": "pt"}))
    with atomic_open(folder / CONFIG_FILE) as f:
        f.write(json.dumps(meta, indent=2).encode())
    with atomic_open(folder / CARD_FILE) as f:
        f.write(model_card(meta, card or {}).encode())
    return folder


def model_card(meta: dict[str, Any], card: dict[str, Any]) -> str:
    """A Hugging Face model card: YAML front matter (``library_name``, ``tags``, and slotlab's card under
    ``slotlab``), then a short human-readable summary."""
    front = {"library_name": "slotlab", "tags": ["slot-attention", "object-centric", meta["task"]], "slotlab": card}
    name = card.get("name") or "slotlab model"
    scores = card.get("scores") or {}
    lines = [
        "---",
        yaml.safe_dump(json.loads(json.dumps(front, default=str)), sort_keys=False, width=120).rstrip(),
        "---",
        "",
        f"# {name}",
        "",
        f"A slotlab {meta['task'].replace('_', ' ')} model (Slot Attention, Locatello et al. 2020)"
        + (f" trained on {card['dataset']}" if card.get("dataset") else "")
        + f", step {meta['global_step']:,}.",
        "",
    ]
    if scores.get("value") is not None:
        split = (scores.get("details") or {}).get("split", scores.get("split", "?"))
        lines += [f"- {scores.get('metric', 'score')}: {float(scores['value']):.4f} on the `{split}` split "
                  f"(`{scores.get('command', '')}`)", ""]  # fmt: skip
    lines += [
        "```python",
        "import slotlab",
        f'model = slotlab.load_model("{name}")  # or the path of this folder',
        "```",
        "",
    ]
    return "\n".join(lines)


def read_card_file(path: str | Path) -> dict[str, Any]:
    """The ``slotlab`` mapping of a model card's YAML front matter ({} when it has none)."""
    text = Path(path).read_text(encoding="utf-8")
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        raise CheckpointError(f"{path}: the YAML front matter has no closing '---'")
    front = load_yaml_text(text[3:end], f"{path} (front matter)")  # size, depth and alias limits first
    if not isinstance(front, dict):
        return {}
    card = front.get("slotlab") or {}
    if not isinstance(card, dict):
        raise CheckpointError(f"{path}: 'slotlab' in the front matter is not a mapping")
    return card
