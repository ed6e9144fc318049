"""Import checkpoints of the official Slot Attention code (google-research ``slot_attention``) as slotlab runs.

The reference implementation (``slot_attention/model.py``: the Keras classes ``SlotAttentionAutoEncoder``
for object discovery, paper Section 2.2 / 4.1, and ``SlotAttentionClassifier`` for set prediction, Section
2.3 / 4.2, both built around the Keras ``SlotAttention`` layer of Algorithm 1) is trained by the ``train.py``
script of each task's folder, which saves
``tf.train.Checkpoint(network=model, optimizer=optimizer, global_step=global_step)`` through a
``tf.train.CheckpointManager``: a folder with a ``checkpoint`` file and ``ckpt-N.index`` /
``ckpt-N.data-*`` files in TF2's object-based format. ``network`` is the functional ``tf.keras.Model`` that
wraps the autoencoder / classifier layer, so the variables are keyed by their path in the Keras object graph:

    network/layer_with_weights-0/encoder_cnn/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE
    network/layer_with_weights-0/slot_attention/gru/recurrent_kernel/.ATTRIBUTES/VARIABLE_VALUE
    network/layer_with_weights-0/.../kernel/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/VARIABLE_VALUE  (Adam moment)

This module reads such a checkpoint, converts every variable to the PyTorch layout of slotlab's models (the
model of each task that declares its official counterpart, :attr:`slotlab.tasks.base.Task.official`: the
encoder and Slot Attention are shared, the task names its head, e.g. the "clevr" decoder or the property
classifier) and writes a normal slotlab run folder
(``config.yaml``, ``checkpoints/last.ckpt``, ``imported.json``) that ``slotlab eval``, ``figures``,
``report`` and ``train --resume`` accept. slotlab's 128x128 models compute what the reference code computes
(TF "SAME" alignment of stride-2 layers, LayerNorm eps 1e-3; see :mod:`slotlab.modules.same`), so the
imported model gives the official model's outputs for the same images and slot-init noise
(``tests/test_official_parity.py`` checks this to 1e-4 against Keras models of the official architecture).

Layouts (TF -> torch):

- Dense ``kernel`` [in, out] -> ``nn.Linear.weight`` [out, in].
- Conv2D ``kernel`` [kh, kw, in, out] -> ``nn.Conv2d.weight`` [out, in, kh, kw] (both cross-correlate; no flip).
- Conv2DTranspose ``kernel`` [kh, kw, out, in] -> ``nn.ConvTranspose2d.weight`` [in, out, kh, kw].
- LayerNormalization ``gamma`` / ``beta`` -> ``weight`` / ``bias``.
- Keras ``GRUCell`` (TF2 defaults: ``reset_after=True``, sigmoid gates) -> ``nn.GRUCell``. Keras computes
  ``z = s(x Wz + bz + h Uz + cz)``, ``r = s(x Wr + br + h Ur + cr)``, ``n = tanh(x Wh + bh + r * (h Uh + ch))``,
  ``h' = z * h + (1 - z) * n``: the reset gate multiplies the recurrent term *after* its bias, which is exactly
  torch's GRUCell (``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``). Only the
  gate order differs: Keras stacks (z, r, h) along the last axis of ``kernel`` [in, 3D], ``recurrent_kernel``
  [D, 3D] and ``bias`` [2, 3D] (row 0 input bias, row 1 recurrent bias); torch stacks (r, z, n) along the first
  axis of ``weight_ih`` [3D, in], ``weight_hh`` [3D, D], ``bias_ih`` [3D], ``bias_hh`` [3D].
- ``slots_mu`` / ``slots_log_sigma`` [1, 1, D]: unchanged (both initialise ``mu + exp(log_sigma) * N(0, 1)``).

Adam moments saved as slot variables (``.OPTIMIZER_SLOT/optimizer/{m,v}``, the Keras optimizer of the TF 2.x
versions the official code ran on) are converted with the same layouts, so fine-tuning continues with them;
other optimizer formats are skipped (fresh moments). TensorFlow is needed only to read the checkpoint: it is
the optional extra ``slotlab[tf]``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from slotlab.errors import UserError, file_access_error
from slotlab.tasks import TASKS as REGISTERED
from slotlab.tasks.base import OfficialModel

TF_MISSING = 'reading official TF checkpoints needs TensorFlow: pip install "slotlab[tf]"'

VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
SLOT_MARKER = "/.OPTIMIZER_SLOT/optimizer/"
# The first encoder kernel, relative to the model layer: locates the model inside the object graph.
ANCHOR = "encoder_cnn/layer_with_weights-0/kernel"

Layout = Literal["dense", "conv", "conv_transpose", "same", "gru_kernel", "gru_bias"]


class OfficialCheckpointError(UserError, ValueError):
    """An official checkpoint that cannot be found, read or mapped onto slotlab's model (message says why)."""


@dataclass(frozen=True)
class VariableSpec:
    """One variable of the official model: its path below the model layer, the slotlab parameter(s) it
    becomes, and how its layout changes."""

    name: str  # e.g. "slot_attention/gru/kernel"
    targets: tuple[str, ...]  # slotlab state-dict names (two for the GRU bias)
    layout: Layout


@dataclass
class OfficialCheckpoint:
    """The variables of an official checkpoint, by their name below the model layer (TF layouts)."""

    prefix: str  # the ckpt-N prefix that was read
    root: str  # object-graph path of the model layer, e.g. "network/layer_with_weights-0/"
    variables: dict[str, np.ndarray]
    foreign: list[str] = field(default_factory=list)  # keys of the model object outside the model layer
    moments: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # Adam (m, v) per variable
    global_step: int = 0
    optimizer_step: int | None = None  # Adam's iteration count, when the checkpoint has one
    tensorflow_version: str = ""


def official_tasks() -> tuple[str, ...]:
    """The registered tasks whose model the official code has (``slotlab import-official TASK``)."""
    return tuple(name for name, t in REGISTERED.items() if t.official is not None)


def official_model(task: str) -> OfficialModel:
    """What the official code's model of ``task`` is (OfficialCheckpointError for a task it has none of)."""
    known = official_tasks()
    if task not in known:
        raise OfficialCheckpointError(f"task must be one of {known}, got {task!r}")
    return REGISTERED[task].official


def variable_specs(task: str, encoder_layers: int = 4) -> list[VariableSpec]:
    """Every variable of the official ``task`` model (the Keras attribute names of ``model.py``) and its
    slotlab counterpart: the shared encoder and Slot Attention, then the task's head. Sequential sub-models number
    their layers ``layer_with_weights-i``."""
    head = official_model(task).head

    def dense(tf_name: str, torch_name: str, bias: bool = True) -> list[VariableSpec]:
        out = [VariableSpec(f"{tf_name}/kernel", (f"{torch_name}.weight",), "dense")]
        if bias:
            out.append(VariableSpec(f"{tf_name}/bias", (f"{torch_name}.bias",), "same"))
        return out

    def layer_norm(tf_name: str, torch_name: str) -> list[VariableSpec]:
        return [
            VariableSpec(f"{tf_name}/gamma", (f"{torch_name}.weight",), "same"),
            VariableSpec(f"{tf_name}/beta", (f"{torch_name}.bias",), "same"),
        ]

    specs: list[VariableSpec] = []
    for i in range(encoder_layers):  # Conv2D + ReLU pairs: torch indices 0, 2, 4, 6
        specs += [
            VariableSpec(f"encoder_cnn/layer_with_weights-{i}/kernel", (f"encoder.cnn.net.{2 * i}.weight",), "conv"),
            VariableSpec(f"encoder_cnn/layer_with_weights-{i}/bias", (f"encoder.cnn.net.{2 * i}.bias",), "same"),
        ]
    specs += dense("encoder_pos/dense", "encoder.pos.dense")
    specs += layer_norm("layer_norm", "encoder.norm")
    specs += dense("mlp/layer_with_weights-0", "encoder.mlp.0") + dense("mlp/layer_with_weights-1", "encoder.mlp.2")

    sa = "slot_attention"
    specs += [
        VariableSpec(f"{sa}/slots_mu", (f"{sa}.slots_mu",), "same"),
        VariableSpec(f"{sa}/slots_log_sigma", (f"{sa}.slots_log_sigma",), "same"),
    ]
    for norm in ("norm_inputs", "norm_slots", "norm_mlp"):
        specs += layer_norm(f"{sa}/{norm}", f"{sa}.{norm}")
    for proj in ("project_q", "project_k", "project_v"):
        specs += dense(f"{sa}/{proj}", f"{sa}.{proj}", bias=False)
    specs += [
        VariableSpec(f"{sa}/gru/kernel", (f"{sa}.gru.weight_ih",), "gru_kernel"),
        VariableSpec(f"{sa}/gru/recurrent_kernel", (f"{sa}.gru.weight_hh",), "gru_kernel"),
        VariableSpec(f"{sa}/gru/bias", (f"{sa}.gru.bias_ih", f"{sa}.gru.bias_hh"), "gru_bias"),
    ]
    specs += dense(f"{sa}/mlp/layer_with_weights-0", f"{sa}.mlp.0")
    specs += dense(f"{sa}/mlp/layer_with_weights-1", f"{sa}.mlp.2")

    specs += [VariableSpec(name, targets, layout) for name, targets, layout in head]
    return specs


# ------------------------------------------------------------------------------------------------ layouts


def _gru_reorder(x: np.ndarray) -> np.ndarray:
    """Last axis (z, r, h) blocks -> (r, z, n) blocks (torch's gate order)."""
    z, r, h = np.split(x, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


def to_torch_layout(value: np.ndarray, layout: Layout) -> list[np.ndarray]:
    """One TF variable -> its slotlab parameter(s) (two for the GRU bias: bias_ih, bias_hh)."""
    if layout == "dense":  # [in, out] -> [out, in]
        return [value.T]
    if layout in ("conv", "conv_transpose"):
        # conv [kh, kw, in, out] -> [out, in, kh, kw]; transposed conv [kh, kw, out, in] -> [in, out, kh, kw]
        return [value.transpose(3, 2, 0, 1)]
    if layout == "gru_kernel":  # [in, 3D] (z, r, h) -> [3D, in] (r, z, n)
        return [_gru_reorder(value).T]
    if layout == "gru_bias":  # [2, 3D] (z, r, h) -> bias_ih [3D], bias_hh [3D] (r, z, n)
        reordered = _gru_reorder(value)
        return [reordered[0], reordered[1]]
    return [value]


def tf_shape(layout: Layout, torch_shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """The TF shape a variable must have to become parameters of ``torch_shapes``."""
    s = torch_shapes[0]
    if layout in ("dense", "gru_kernel"):
        return (s[1], s[0])
    if layout in ("conv", "conv_transpose"):
        return (s[2], s[3], s[1], s[0])
    if layout == "gru_bias":
        return (2, s[0])
    return tuple(s)


def convert(
    ckpt: OfficialCheckpoint, specs: list[VariableSpec], expected: Mapping[str, tuple[int, ...]]
) -> tuple[dict[str, torch.Tensor], dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """TF variables -> (slotlab state dict, Adam moments by parameter name). ``expected``: the slotlab model's
    parameter shapes. Missing, unknown or wrongly shaped variables raise :class:`OfficialCheckpointError`
    naming them (object-graph keys)."""
    known = {s.name for s in specs}
    missing = [s.name for s in specs if s.name not in ckpt.variables]
    unknown = [_key(ckpt.root, n) for n in sorted(set(ckpt.variables) - known)] + sorted(ckpt.foreign)
    problems = []
    if missing:
        problems.append("missing variables: " + ", ".join(_key(ckpt.root, n) for n in missing))
    if unknown:
        problems.append("unknown variables: " + ", ".join(unknown))
    for s in specs:
        if s.name not in ckpt.variables:
            continue
        want = tf_shape(s.layout, [tuple(expected[t]) for t in s.targets])
        got = tuple(ckpt.variables[s.name].shape)
        if got != want:
            problems.append(f"wrong shape of {_key(ckpt.root, s.name)}: {list(got)}, expected {list(want)}")
    other = {REGISTERED[t].official.head_prefix: t for t in official_tasks()}
    for part, other_task in other.items():
        if any(f"/{part}" in k for k in unknown):
            problems.append(f"its {part.rstrip('/')} variables say it is for `slotlab import-official {other_task}`")
    if problems:
        raise OfficialCheckpointError(
            f"{ckpt.prefix} does not hold the official model's variables: " + "; ".join(problems)
        )

    state: dict[str, torch.Tensor] = {}
    moments: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    have_moments = bool(ckpt.moments) and all(s.name in ckpt.moments for s in specs)
    for s in specs:
        for target, value in zip(s.targets, to_torch_layout(ckpt.variables[s.name], s.layout), strict=True):
            state[target] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        if have_moments:
            m, v = (to_torch_layout(x, s.layout) for x in ckpt.moments[s.name])
            for target, mi, vi in zip(s.targets, m, v, strict=True):
                moments[target] = (
                    torch.from_numpy(np.ascontiguousarray(mi, dtype=np.float32)),
                    torch.from_numpy(np.ascontiguousarray(vi, dtype=np.float32)),
                )
    return state, moments


def _key(root: str, name: str) -> str:
    return f"{root}{name}{VALUE_SUFFIX}"


# ------------------------------------------------------------------------------------------------ reading


def import_tensorflow() -> Any:
    """``tensorflow`` or an :class:`OfficialCheckpointError` that says how to install it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as e:
        raise OfficialCheckpointError(TF_MISSING) from e
    return tf


def resolve_prefix(path: str | Path, tf: Any) -> str:
    """A checkpoint folder (its latest checkpoint), a ``ckpt-N`` prefix, or one of its files -> the prefix."""
    p = Path(path)
    if p.is_dir():
        latest = tf.train.latest_checkpoint(str(p))
        if latest is None:  # no `checkpoint` file, or it names a path from another machine
            indexed = sorted(p.glob("*.index"), key=lambda f: _trailing_number(f.stem))
            if not indexed:
                raise OfficialCheckpointError(f"{p} holds no TF checkpoint (no `checkpoint` file, no *.index files)")
            latest = str(indexed[-1].with_suffix(""))
        return latest
    text = str(p)
    for pattern in (r"\.index$", r"\.data-\d+-of-\d+$"):
        text = re.sub(pattern, "", text)
    if not Path(text + ".index").exists():
        raise OfficialCheckpointError(
            f"{path}: no TF checkpoint there (expected a folder with a `checkpoint` file, or a ckpt-N prefix "
            f"with a ckpt-N.index file)"
        )
    return text


def _check_checkpoint_files(path: str | Path) -> None:
    """The checks of :func:`resolve_prefix` that need no TensorFlow: a folder with checkpoint files, or a prefix."""
    p = Path(path)
    if p.is_dir():
        if not (p / "checkpoint").exists() and not any(p.glob("*.index")):
            raise OfficialCheckpointError(f"{p} holds no TF checkpoint (no `checkpoint` file, no *.index files)")
        return
    text = re.sub(r"(\.index|\.data-\d+-of-\d+)$", "", str(p))
    if not Path(text + ".index").exists():
        raise OfficialCheckpointError(
            f"{path}: no TF checkpoint there (expected a folder with a `checkpoint` file, or a ckpt-N prefix "
            f"with a ckpt-N.index file)"
        )


def _trailing_number(stem: str) -> int:
    m = re.search(r"(\d+)$", stem)
    return int(m.group(1)) if m else -1


def read_official_checkpoint(path: str | Path) -> OfficialCheckpoint:
    """Read the model variables (and Adam moments, global step) of an official checkpoint with TensorFlow."""
    _check_checkpoint_files(path)  # before importing TensorFlow: a wrong path costs no TF import
    tf = import_tensorflow()
    prefix = resolve_prefix(path, tf)
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
    except Exception as e:  # TF raises several kinds for unreadable files
        raise OfficialCheckpointError(f"cannot read TF checkpoint {prefix}: {type(e).__name__}: {e}") from e

    anchors = [k[: -len(ANCHOR + VALUE_SUFFIX)] for k in shapes if k.endswith(ANCHOR + VALUE_SUFFIX)]
    if len(anchors) != 1:
        sample = ", ".join(sorted(shapes)[:5])
        what = "no" if not anchors else "more than one"
        raise OfficialCheckpointError(
            f"{prefix}: {what} Slot Attention model found (looked for a variable ending in {ANCHOR}{VALUE_SUFFIX}; "
            f"the checkpoint has {len(shapes)} variables, e.g. {sample})"
        )
    root = anchors[0]
    top = root.split("/", 1)[0] + "/"  # the checkpoint's model object ("network/")

    variables: dict[str, np.ndarray] = {}
    foreign: list[str] = []
    slots: dict[str, dict[str, np.ndarray]] = {}
    for key in shapes:
        if not key.startswith(top):
            continue  # optimizer, global_step, save_counter, the object graph
        if SLOT_MARKER in key:
            base, slot = key.split(SLOT_MARKER, 1)
            if base.startswith(root) and slot.endswith(VALUE_SUFFIX):
                slots.setdefault(base[len(root) :], {})[slot[: -len(VALUE_SUFFIX)]] = reader.get_tensor(key)
            continue
        if key.startswith(root) and key.endswith(VALUE_SUFFIX):
            variables[key[len(root) : -len(VALUE_SUFFIX)]] = reader.get_tensor(key)
        else:  # part of the model object but not of the model layer: reported as unknown
            foreign.append(key)
    moments = {n: (s["m"], s["v"]) for n, s in slots.items() if "m" in s and "v" in s}

    def scalar(name: str) -> int | None:
        key = name + VALUE_SUFFIX
        return int(reader.get_tensor(key)) if key in shapes else None

    step = scalar("global_step")
    optimizer_step = scalar("optimizer/iter")
    if optimizer_step is None:
        optimizer_step = scalar("optimizer/_iterations")
    return OfficialCheckpoint(
        prefix=prefix,
        root=root,
        variables=variables,
        foreign=foreign,
        moments=moments,
        global_step=step if step is not None else (optimizer_step or 0),
        optimizer_step=optimizer_step,
        tensorflow_version=str(tf.__version__),
    )


# ------------------------------------------------------------------------------------------------ writing


def imported_config(task: str, resolution: int, num_slots: int | None, iters: int | None) -> dict[str, Any]:
    """The packaged config of ``task`` (the official training settings) with K, T, the image size and what else
    the task sets for an imported model (:meth:`slotlab.tasks.base.Task.official_overrides`)."""
    from slotlab.config import ConfigError, load_config

    overrides = []
    if num_slots is not None:
        overrides.append(f"model.num_slots={num_slots}")
    if iters is not None:
        overrides.append(f"model.iters={iters}")
    overrides += REGISTERED[task].official_overrides(resolution, num_slots)
    try:
        return load_config(official_model(task).config, overrides)
    except ConfigError as e:
        raise OfficialCheckpointError(str(e)) from e


def _check_resolution(task: str, resolution: int) -> None:
    factor = official_model(task).resolution_factor  # e.g. decoder upsampling 16x / encoder downsampling 4x
    if resolution < factor or resolution % factor:
        raise OfficialCheckpointError(
            f"--resolution must be a positive multiple of {factor} for {task}, got {resolution}"
        )


def _loops_at_step(step: int) -> dict[str, Any]:
    """Lightning's loop states of a run stopped after ``step`` optimizer steps in its first epoch (what a
    checkpoint written by ``slotlab train`` at that step holds), so ``train --resume`` continues from ``step``."""
    import lightning as L

    quiet = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.WARNING)
    try:
        trainer = L.Trainer(
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)

    def set_counts(progress: Any, value: int) -> None:
        for tracker in (progress.total, progress.current):
            for name in ("ready", "started", "processed", "completed"):
                if hasattr(tracker, name):
                    setattr(tracker, name, value)

    fit = trainer.fit_loop
    epoch = fit.epoch_loop
    set_counts(epoch.batch_progress, step)
    set_counts(epoch.scheduler_progress, step)
    optimizer = epoch.automatic_optimization.optim_progress.optimizer
    set_counts(optimizer.step, step)
    set_counts(optimizer.zero_grad, step)
    epoch._batches_that_stepped = step
    for tracker in (fit.epoch_progress.total, fit.epoch_progress.current):
        tracker.ready = tracker.started = 1  # inside the first epoch
    return {
        "fit_loop": fit.state_dict(),
        "validate_loop": trainer.validate_loop.state_dict(),
        "test_loop": trainer.test_loop.state_dict(),
        "predict_loop": trainer.predict_loop.state_dict(),
    }


def lightning_checkpoint(
    task: str,
    cfg: dict[str, Any],
    resolution: int,
    state: dict[str, torch.Tensor],
    moments: dict[str, tuple[torch.Tensor, torch.Tensor]],
    global_step: int,
    optimizer_step: int | None,
) -> dict[str, Any]:
    """A checkpoint as ``slotlab train`` writes it (Lightning's entries + slotlab's format/task/RNG entries) for
    the converted weights at ``global_step``: weights, Adam state, lr schedule position and loop counters."""
    import lightning

    from slotlab.checkpoint_format import add_state
    from slotlab.train.module import SlotModule

    module = SlotModule(cfg, (resolution, resolution))
    hyper = {"config": cfg, "image_size": (resolution, resolution), "channels_last": False}
    try:
        module.model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise OfficialCheckpointError(f"converted weights do not fit slotlab's {task} model: {e}") from e

    optim = module.configure_optimizers()
    optimizer, scheduler = optim["optimizer"], optim["lr_scheduler"]["scheduler"]
    adam_step = float(optimizer_step if optimizer_step is not None else global_step)
    for name, param in module.named_parameters():
        m_v = moments.get(name.removeprefix("model."))
        if m_v is not None:
            optimizer.state[param] = {"step": torch.tensor(adam_step), "exp_avg": m_v[0], "exp_avg_sq": m_v[1]}
    factor = scheduler.lr_lambdas[0](global_step)
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor
    sched_state = scheduler.state_dict()
    sched_state.update(
        last_epoch=global_step, _step_count=global_step + 1, _last_lr=[g["lr"] for g in optimizer.param_groups]
    )

    checkpoint: dict[str, Any] = {
        "epoch": 0,
        "global_step": global_step,
        "pytorch-lightning_version": lightning.__version__,
        "state_dict": {k: v.detach().clone() for k, v in module.state_dict().items()},
        "loops": _loops_at_step(global_step),
        "callbacks": {},
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [sched_state],
        "hparams_name": "kwargs",
        "hyper_parameters": hyper,
    }
    add_state(checkpoint, task)
    return checkpoint


def import_official(
    task: str,
    checkpoint: str | Path,
    out: str | Path,
    resolution: int = 128,
    num_slots: int | None = None,
    iters: int | None = None,
) -> Path:
    """Convert an official checkpoint into the slotlab run folder ``out`` (which must not exist or be empty).

    Writes ``config.yaml`` (the packaged config of ``task`` with K / T / resolution), ``checkpoints/last.ckpt``
    (at the TF checkpoint's global step) and ``imported.json`` (where the weights came from). Returns ``out``.
    """
    official = official_model(task)
    _check_resolution(task, resolution)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OfficialCheckpointError(f"{out} already exists and is not empty; choose another --out")
    cfg = imported_config(task, resolution, num_slots, iters)
    cfg["run"] = {**cfg["run"], "root": str(out.parent), "name": out.name}
    ckpt = read_official_checkpoint(checkpoint)

    m = cfg["model"]
    specs = variable_specs(task, len(m["encoder_channels"]))
    expected = {k: tuple(v.shape) for k, v in _model_shapes(task, cfg, resolution).items()}
    state, moments = convert(ckpt, specs, expected)
    lightning_ckpt = lightning_checkpoint(task, cfg, resolution, state, moments, ckpt.global_step, ckpt.optimizer_step)

    from slotlab.atomic import atomic_open, write_text
    from slotlab.runs import dump_config

    try:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise file_access_error(out / "checkpoints", "create the folder", e) from e
    dump_config(cfg, out / "config.yaml")
    with atomic_open(out / "checkpoints" / "last.ckpt") as f:
        torch.save(lightning_ckpt, f)
    info = {
        "source": str(Path(ckpt.prefix).resolve()),
        "source_code": "google-research/google-research slot_attention (" + official.keras_class + ")",
        "task": task,
        "global_step": ckpt.global_step,
        "num_slots": m["num_slots"],
        "iters": m["iters"],
        "resolution": [resolution, resolution],
        "config": official.config,
        "variables": len(specs),
        "model_root": ckpt.root,
        "adam_moments": bool(moments),
        "adam_step": (ckpt.global_step if ckpt.optimizer_step is None else ckpt.optimizer_step) if moments else None,
        "tensorflow": ckpt.tensorflow_version,
        "imported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_text(out / "imported.json", json.dumps(info, indent=2) + "\n")
    return out


def _model_shapes(task: str, cfg: dict[str, Any], resolution: int) -> dict[str, torch.Tensor]:
    """The parameters (shapes) of the slotlab model ``cfg`` describes, on the meta device (no memory)."""
    from slotlab.tasks import get_task  # imported outside the meta-device block (module-level tensors)

    with torch.device("meta"):
        model = get_task(task).build_model(cfg, (resolution, resolution))
    return dict(model.state_dict())
