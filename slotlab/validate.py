"""Up-front checks of every user input, so that a bad value ends in one line ``error: ...`` (exit status 2)
before any data or model is built, instead of a traceback minutes into a run.

Three layers:

- :data:`RULES`: the allowed range or choices of every config key of both tasks (object discovery and set
  prediction), checked by :func:`check_config_values` (called by ``config.load_config``) together with the
  constraints between keys (batch size vs dataset size and number of processes, K vs the set-prediction
  variant, strides vs channels, ...). Every key of the schemas must have a rule (``tests/test_bad_values.py``
  checks it), so a new key cannot be added unchecked.
- :func:`preflight_train` / :func:`preflight_eval`: what depends on the machine or the files: the accelerator
  exists, the devices are there, the precision is one slotlab runs, the dataset file or folder exists, the
  cache can be written, the model can be built for the image size (on PyTorch's ``meta`` device: no memory),
  and a lower bound of the memory the run needs fits in the memory available.
- argparse types for the CLI flags (:func:`int_arg`, :func:`int_list_arg`, :data:`seed_arg`,
  :func:`out_file_arg`, :func:`out_dir_arg`): ranges and output paths are checked while parsing.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slotlab.errors import ConfigError, UsageError  # UsageError: also importable from here

MAX_SEED = 2**32 - 1  # numpy's and Lightning's seed range
MAX_COUNT = 10**9  # images, steps
MAX_SLOTS = 256
MAX_ITERS = 100
PRECISIONS = ("auto", "32-true", "32", 32, "bf16-mixed", "bf16", "16-mixed", "16", 16)
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
STRATEGIES = ("auto", "ddp", "ddp_find_unused_parameters_true", "ddp_find_unused_parameters_false")
UNSUPPORTED_PRECISIONS = {
    "64-true": "the data pipeline feeds float32 images, which a float64 model rejects",
    "64": "the data pipeline feeds float32 images, which a float64 model rejects",
    64: "the data pipeline feeds float32 images, which a float64 model rejects",
    "bf16-true": "the data pipeline feeds float32 images, which a bfloat16 model rejects; use bf16-mixed",
    "16-true": "the data pipeline feeds float32 images, which a float16 model rejects; use 16-mixed",
}


# ----------------------------------------------------------------------------------------------- rules
def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {value!r}"
    return f"{type(value).__name__} {value!r}"


@dataclass(frozen=True)
class Int:
    """An integer in [lo, hi] (or null when ``nullable``)."""

    lo: int
    hi: int
    nullable: bool = False

    def check(self, path: str, value: Any) -> None:
        if value is None and self.nullable:
            return
        if not isinstance(value, int) or isinstance(value, bool) or not self.lo <= value <= self.hi:
            null = " or null" if self.nullable else ""
            raise ConfigError(f"{path} must be >= {self.lo} and <= {self.hi} (an integer{null}), got {_kind(value)}")


@dataclass(frozen=True)
class Float:
    """A finite number in [lo, hi] ((lo, hi] when ``lo_open``), or null when ``nullable``."""

    lo: float
    hi: float
    lo_open: bool = False
    nullable: bool = False

    def check(self, path: str, value: Any) -> None:
        if value is None and self.nullable:
            return
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if ok:
            ok = (value > self.lo if self.lo_open else value >= self.lo) and value <= self.hi
        if not ok:
            low = f"> {self.lo:g}" if self.lo_open else f">= {self.lo:g}"
            null = " or null" if self.nullable else ""
            raise ConfigError(f"{path} must be a finite number {low} and <= {self.hi:g}{null}, got {_kind(value)}")


@dataclass(frozen=True)
class Choice:
    """One of ``values`` (compared with their type: ``True`` is not ``1``)."""

    values: tuple[Any, ...]

    def check(self, path: str, value: Any) -> None:
        if not any(type(value) is type(v) and value == v for v in self.values):
            raise ConfigError(f"{path} must be one of {', '.join(map(repr, self.values))}; got {_kind(value)}")


@dataclass(frozen=True)
class Bool:
    def check(self, path: str, value: Any) -> None:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true or false, got {_kind(value)}")


@dataclass(frozen=True)
class IntList:
    """A list of integers in [lo, hi] with ``min_len`` to ``max_len`` entries."""

    lo: int
    hi: int
    min_len: int = 1
    max_len: int = 16

    def check(self, path: str, value: Any) -> None:
        ok = isinstance(value, list) and self.min_len <= len(value) <= self.max_len
        ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and self.lo <= v <= self.hi for v in value)
        if not ok:
            n = f"{self.min_len}" if self.min_len == self.max_len else f"{self.min_len} to {self.max_len}"
            raise ConfigError(f"{path} must be a list of {n} integers from {self.lo} to {self.hi}, got {_kind(value)}")


@dataclass(frozen=True)
class Text:
    """A non-empty string: ``kind`` "path" (any path) or "name" (one folder name: no '/', not '.' or '..')."""

    kind: str = "path"
    nullable: bool = False

    def check(self, path: str, value: Any) -> None:
        if value is None and self.nullable:
            return
        null = " or null" if self.nullable else ""
        if not isinstance(value, str) or not value.strip() or "\0" in value:
            raise ConfigError(f"{path} must be a non-empty {self.kind}{null}, got {_kind(value)}")
        if self.kind == "name" and ("/" in value or "\\" in value or value in (".", "..") or len(value) > 200):
            raise ConfigError(
                f"{path} must be a folder name (no '/', not '.' or '..', at most 200 characters), got {value!r}"
            )


@dataclass(frozen=True)
class DatasetName:
    """A built-in object-discovery dataset (see ``slotlab data list``)."""

    def check(self, path: str, value: Any) -> None:
        from slotlab.data.registry import get_dataset

        if not isinstance(value, str):
            raise ConfigError(f"{path} must be a dataset name, got {_kind(value)}")
        try:
            get_dataset(value)
        except ValueError as e:
            raise ConfigError(f"{path}: {e}") from e


@dataclass(frozen=True)
class Devices:
    """``auto``, a number of devices >= 1, or a list of distinct device ids (GPUs)."""

    def check(self, path: str, value: Any) -> None:
        if value == "auto" and isinstance(value, str):
            return
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4096:
            return
        if (
            isinstance(value, list)
            and 1 <= len(value) <= 4096
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 4096 for v in value)
            and len(set(value)) == len(value)
        ):
            return
        raise ConfigError(
            f"{path} must be 'auto', a number of devices from 1 to 4096 or a list of distinct device ids "
            f"(e.g. [0, 1]), got {_kind(value)}"
        )


@dataclass(frozen=True)
class ChannelsLast:
    def check(self, path: str, value: Any) -> None:
        if isinstance(value, bool) or (isinstance(value, str) and value == "auto"):
            return
        raise ConfigError(f"{path} must be 'auto', true or false, got {_kind(value)}")


@dataclass(frozen=True)
class Precision:
    def check(self, path: str, value: Any) -> None:
        if not isinstance(value, bool) and value in UNSUPPORTED_PRECISIONS:
            raise ConfigError(f"{path} {value!r} is not supported: {UNSUPPORTED_PRECISIONS[value]}")
        Choice(PRECISIONS).check(path, value)


Rule = Int | Float | Choice | Bool | IntList | Text | DatasetName | Devices | ChannelsLast | Precision

_SLOT_ATTENTION: dict[str, Rule] = {
    "aggregation": Choice(("mean", "sum", "sum_layernorm")),
    "softmax_axis": Choice(("slots", "inputs")),
    "slot_init": Choice(("shared", "per_slot", "queries")),
    "update": Choice(("gru", "direct")),
    "layer_norm": Bool(),
    "mlp": Bool(),
    "temperature": Float(0, 1e4, lo_open=True, nullable=True),
    "eps": Float(0, 1),
    "eps_placement": Choice(("attn", "denominator")),
    "identity_projections": Bool(),
    "implicit_differentiation": Bool(),
}

#: The rule of every config key of both tasks (dotted path -> rule).
RULES: dict[str, Rule] = {
    "task": Choice(("object_discovery", "set_prediction")),
    "seed": Int(0, MAX_SEED),
    # data
    "data.name": DatasetName(),
    "data.source": Choice(("procedural", "clevr_folder")),
    "data.path": Text("path", nullable=True),
    "data.variant": Choice(("clevr3", "clevr6", "clevr10")),
    "data.train_size": Int(1, MAX_COUNT),
    "data.eval_size": Int(1, MAX_COUNT),
    "data.batch_size": Int(1, 10**6),
    "data.eval_batch_size": Int(1, 10**6),
    "data.seed": Int(0, MAX_SEED),
    "data.image_size": Int(8, 1024),
    "data.render_size": IntList(16, 4096, 2, 2),
    "data.cache_dir": Text("path", nullable=True),
    "data.shard_size": Int(1, 10**6),
    "data.workers": Int(0, 1024),
    # model
    "model.kind": Choice(("slot_attention", "slot_mlp")),
    "model.num_slots": Int(1, MAX_SLOTS),
    "model.iters": Int(1, MAX_ITERS),
    "model.slot_dim": Int(1, 4096),
    "model.mlp_hidden": Int(1, 16384),
    "model.encoder_channels": IntList(1, 4096),
    "model.encoder_strides": IntList(1, 8),
    "model.decoder": Choice(("full_resolution", "clevr")),
    "model.decoder_channels": Int(1, 4096),
    "model.head_hidden": Int(1, 16384),
    "model.position_embedding": Bool(),
    "model.factorize_decoder": Bool(),
    "model.decoder_frame": Choice(("absolute", "translation", "translation_scale")),
    "model.layer_norm_eps": Float(0, 1, lo_open=True),
    **{f"model.slot_attention.{k}": v for k, v in _SLOT_ATTENTION.items()},
    "model.slot_mlp.grid": Int(1, 128),
    "model.slot_mlp.hidden": Int(1, 65536),
    # optim
    "optim.lr": Float(0, 10, lo_open=True),
    "optim.warmup_steps": Int(0, MAX_COUNT),
    "optim.decay_rate": Float(0, 1, lo_open=True),
    "optim.decay_steps": Int(1, MAX_COUNT),
    "optim.cooldown_steps": Int(0, MAX_COUNT),
    "optim.grad_clip": Float(0, 1e6, lo_open=True, nullable=True),
    "optim.ema_decay": Float(0, 0.99999, lo_open=True, nullable=True),
    # trainer
    "trainer.max_steps": Int(1, MAX_COUNT),
    "trainer.max_minutes": Float(0, 1e7, lo_open=True, nullable=True),
    "trainer.val_every": Int(1, MAX_COUNT),
    "trainer.log_every": Int(1, MAX_COUNT),
    "trainer.precision": Precision(),
    "trainer.channels_last": ChannelsLast(),
    "trainer.compile": Choice((True, False, "auto")),
    "trainer.accelerator": Choice(ACCELERATORS),
    "trainer.devices": Devices(),
    "trainer.num_nodes": Int(1, 4096),
    "trainer.strategy": Choice(STRATEGIES),
    "trainer.progress_bar": Bool(),
    "trainer.figure_every_val": Bool(),
    "trainer.num_figure_images": Int(1, 64),
    "trainer.tune_malloc": Bool(),
    "trainer.threads": Int(1, 1024, nullable=True),
    "trainer.failed_seed": Choice(("warn", "restart", "off")),
    "trainer.failed_seed_threshold": Float(0, 1, lo_open=True),
    "trainer.failed_seed_after": Int(0, MAX_COUNT, nullable=True),
    "trainer.failed_seed_restarts": Int(0, 100),
    # run, eval
    "run.root": Text("path"),
    "run.name": Text("name", nullable=True),
    "eval.ari_undefined": Choice(("nan", "one")),
}


def generic_rule(value: Any) -> Rule | None:
    """A loose check by type for a key that has no rule in RULES yet (numbers finite, counts not negative)."""
    if isinstance(value, bool):
        return Bool()
    if isinstance(value, int):
        return Int(0, MAX_COUNT)
    if isinstance(value, float):
        return Float(-1e12, 1e12)
    return None


def leaves(cfg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a nested config to {dotted path: value}."""
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        if isinstance(v, dict):
            out.update(leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def process_count(trainer: dict[str, Any]) -> int | None:
    """Processes of a run (devices x nodes), or None while ``devices`` is 'auto' (known on the machine only)."""
    devices = trainer["devices"]
    if isinstance(devices, list):
        n = len(devices)
    elif isinstance(devices, int):
        n = devices
    else:
        return None
    return n * trainer["num_nodes"]


def check_config_values(cfg: dict[str, Any]) -> None:
    """Range / choice of every key (:data:`RULES`) and the constraints between keys; raises ConfigError."""
    for path, value in leaves(cfg).items():
        rule = RULES.get(path) or generic_rule(value)  # a key without its rule: tests/test_bad_values.py fails
        if rule is not None:
            rule.check(path, value)
    d, m, t = cfg["data"], cfg["model"], cfg["trainer"]
    if d["batch_size"] > d["train_size"]:
        raise ConfigError(
            f"data.batch_size ({d['batch_size']}) is larger than the dataset (data.train_size {d['train_size']})"
        )
    world = process_count(t)
    if world is not None and d["batch_size"] % world:
        raise ConfigError(
            f"data.batch_size ({d['batch_size']}) must be divisible by the number of processes ({world} = "
            f"trainer.devices x trainer.num_nodes): it is the global batch, split evenly over the processes"
        )
    if cfg["task"] == "set_prediction":
        if len(m["encoder_strides"]) != len(m["encoder_channels"]):
            raise ConfigError(
                f"model.encoder_strides ({m['encoder_strides']}) and model.encoder_channels "
                f"({m['encoder_channels']}) must have the same length (one stride per encoder layer)"
            )
        check_set_prediction_config(cfg)
    else:
        from slotlab.data.registry import get_dataset

        h, w = get_dataset(d["name"]).image_size
        if m["decoder"] == "clevr" and (h % 16 or w % 16):
            raise ConfigError(
                f"model.decoder 'clevr' upsamples 16x and needs an image size divisible by 16; {d['name']} images "
                f"are {h}x{w}: use model.decoder=full_resolution"
            )


def check_set_prediction_config(cfg: dict[str, Any]) -> None:
    """Set-prediction constraints between keys: the variant, K = its number of target rows, a folder to read."""
    from slotlab.data.set_prediction_data import TARGET_ROWS

    d, m = cfg["data"], cfg["model"]
    if d["variant"] not in TARGET_ROWS:
        raise ConfigError(f"data.variant must be one of {sorted(TARGET_ROWS)}, got {d['variant']!r}")
    if m["num_slots"] != TARGET_ROWS[d["variant"]]:
        raise ConfigError(
            f"model.num_slots ({m['num_slots']}) must equal the number of target rows of data.variant "
            f"{d['variant']!r} ({TARGET_ROWS[d['variant']]}): the Hungarian loss matches K slots to K targets"
        )
    if d["source"] == "clevr_folder" and not d["path"]:
        raise ConfigError("data.source is 'clevr_folder': set data.path to the CLEVR v1.0 folder")


# ------------------------------------------------------------------------------------- machine checks
def available_memory(accelerator: str) -> int | None:
    """Bytes of memory free for a run on ``accelerator`` ("cpu" or "gpu"), or None when unknown."""
    if accelerator in ("gpu", "cuda"):
        import torch

        try:
            return int(torch.cuda.mem_get_info()[0])
        except (RuntimeError, AssertionError):
            return None
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    try:  # a container's limit (cgroup v2) can be lower than the machine's free memory
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            free = min(free, int(limit) - used)
    except (OSError, ValueError):
        pass
    return free


def check_accelerator(t: dict[str, Any]) -> tuple[str, int]:
    """-> (accelerator "cpu" / "gpu" / "mps", processes); ConfigError when it is not on this machine."""
    import torch

    acc = t["accelerator"]
    if acc == "auto":
        acc = "gpu" if torch.cuda.is_available() else "cpu"
    if acc in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.accelerator is {t['accelerator']!r} but this machine has no usable CUDA GPU "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda}); use trainer.accelerator=cpu or auto"
            )
        acc, count = "gpu", torch.cuda.device_count()
    elif acc == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError("trainer.accelerator is 'mps' but Apple's MPS backend is not available here")
        count = 1
    else:
        count = os.cpu_count() or 1
    devices = t["devices"]
    if devices == "auto":
        n = count if acc == "gpu" else 1
    elif isinstance(devices, list):
        if acc != "gpu":
            raise ConfigError(f"trainer.devices {devices}: a list of device ids needs GPUs; on {acc} give a number")
        if max(devices) >= count:
            raise ConfigError(f"trainer.devices {devices}: this machine has {count} GPU(s) (ids 0 to {count - 1})")
        n = len(devices)
    else:
        n = devices
        if acc != "cpu" and n > count:
            raise ConfigError(f"trainer.devices is {n} but this machine has {count} {acc} device(s)")
    precision = t["precision"]
    if acc == "gpu" and precision in ("bf16-mixed", "bf16") and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"trainer.precision {precision!r}: this GPU has no bfloat16 support; use 16-mixed or auto")
    return acc, n * t["num_nodes"]


@dataclass
class ModelFootprint:
    """What building and running the model on the ``meta`` device tells (no memory used)."""

    parameters: int  # number of parameters
    largest_activation: int  # bytes of the largest tensor of a forward pass, per image
    grid: tuple[int, int]  # encoder grid (Slot Attention inputs)


def model_footprint(
    cfg: dict[str, Any], num_slots: int | None = None, iters: int | None = None, train: bool = True
) -> ModelFootprint:
    """Build the config's model on the meta device and run one image through it (forward, and backward when
    ``train``): errors of the architecture or of test-time K / T surface here as ConfigError."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class _Largest(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if not any(r.alias_info is not None for r in func._schema.returns):  # new memory, not a view
                for x in tree_leaves(out):
                    if isinstance(x, torch.Tensor):
                        self.largest = max(self.largest, x.numel() * x.element_size())
            return out

    from slotlab.tasks import get_task  # imported outside the meta-device block (module-level tensors)

    task = get_task(cfg["task"])
    size = input_size(cfg)
    try:
        with torch.device("meta"):
            model = task.build_model(cfg, size)
            image = torch.zeros(1, 3, *size)
            kwargs: dict[str, Any] = {}
            if num_slots is not None:
                kwargs["num_slots"] = num_slots
            if iters is not None:
                kwargs["iters"] = iters
            probe = _Largest()
            with probe, torch.set_grad_enabled(train):
                out = model(image, **kwargs)
                if train:
                    (out.pred if hasattr(out, "pred") else out.recon).float().mean().backward()
    except (ValueError, RuntimeError, TypeError, IndexError, ZeroDivisionError) as e:
        what = f"K={num_slots} T={iters} " if num_slots or iters else ""
        raise ConfigError(f"the model of this config cannot run {what}on {size[0]}x{size[1]} images: {e}") from e
    grid = getattr(getattr(model, "encoder", None), "feature_resolution", size)
    return ModelFootprint(sum(p.numel() for p in model.parameters()), probe.largest, tuple(grid))


def input_size(cfg: dict[str, Any]) -> tuple[int, int]:
    """(H, W) of the images the model of ``cfg`` takes."""
    if cfg["task"] == "set_prediction":
        s = cfg["data"]["image_size"]
        return s, s
    from slotlab.data.registry import get_dataset

    return tuple(get_dataset(cfg["data"]["name"]).image_size)


def image_bytes(cfg: dict[str, Any]) -> int:
    """Bytes one image takes in memory (uint8 image + mask + targets)."""
    h, w = input_size(cfg)
    return 4 * h * w + (TARGET_BYTES if cfg["task"] == "set_prediction" else 0)


TARGET_BYTES = 10 * 19 * 4


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_memory(need: int, parts: str, where: str, advice: str) -> None:
    """ConfigError when ``need`` bytes (a lower bound) exceed the memory available on ``where`` (cpu / gpu)."""
    have = available_memory(where)
    if have is not None and need > have:
        label = "GPU" if where == "gpu" else "main"
        raise ConfigError(
            f"this needs at least {_gib(need)} of {label} memory ({parts}), more than the {_gib(have)} available "
            f"on this machine; {advice}"
        )


def check_data_source(cfg: dict[str, Any]) -> None:
    """The dataset file / folder exists, and the cache folder can be written where the data are cached."""
    d = cfg["data"]
    path = d.get("path")
    if cfg["task"] == "set_prediction":
        if d["source"] == "clevr_folder" and not Path(path).is_dir():
            raise ConfigError(f"data.path {path}: no such folder (the CLEVR v1.0 folder, with images/ and scenes/)")
        check_cache_root(d)
        return
    if path:
        if not Path(path).is_file():
            what = "is a folder" if Path(path).is_dir() else "not found"
            raise ConfigError(
                f"data.path {path}: {what}. Give the {d['name']} TFRecord file of DeepMind's multi-object-datasets"
            )
        return
    from slotlab.data.registry import get_dataset

    if get_dataset(d["name"]).expensive:
        check_cache_root(d)


def check_cache_root(data_cfg: dict[str, Any]) -> None:
    """ConfigError when the data cache (``data.cache_dir``, else $SLOTLAB_CACHE, else the user cache) is not a
    writable folder (it is created if missing)."""
    from slotlab.data.cache import cache_root

    root = cache_root(data_cfg.get("cache_dir"))
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write_test_{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise ConfigError(
            f"cannot write the data cache {root}: {e.strerror or e}. Set SLOTLAB_CACHE (or data.cache_dir) to a "
            "writable folder"
        ) from e


def preflight_train(cfg: dict[str, Any]) -> None:
    """Machine and file checks of a training run, before its run folder, data or model exist."""
    t, d = cfg["trainer"], cfg["data"]
    accelerator, world = check_accelerator(t)
    if d["batch_size"] % world:
        raise ConfigError(
            f"data.batch_size ({d['batch_size']}) must be divisible by the number of processes ({world}): it is the "
            "global batch, split evenly over the processes"
        )
    check_data_source(cfg)
    fp = model_footprint(cfg)
    per_process_batch = d["batch_size"] // world
    data = (d["train_size"] + d["eval_size"]) * image_bytes(cfg)
    params = 4 * 4 * fp.parameters  # weights, gradients, Adam's two moments (fp32)
    acts = per_process_batch * fp.largest_activation
    if accelerator == "gpu":
        check_memory(params + acts, f"{_gib(params)} parameters and optimiser, {_gib(acts)} activations", "gpu",
                     "lower data.batch_size or the model size")  # fmt: skip
        need, parts = data * world, f"{_gib(data)} of images per process"
    else:
        need = world * (data + params + acts)
        parts = (
            f"per process: {_gib(data)} of images, {_gib(params)} parameters and optimiser, at least {_gib(acts)} "
            f"activations; {world} process(es)"
        )
    check_memory(need, parts, "cpu", "lower data.train_size / data.eval_size, data.batch_size or the model size")


def preflight_eval(cfg: dict[str, Any], num_images: int, num_slots: list[int | None], iters: list[int | None]) -> None:
    """Checks of an evaluation before data are loaded: every test-time K / T runs on the model, and the images
    and the largest batch fit in memory."""
    largest = 0
    for k in num_slots:
        for t in iters:
            largest = max(largest, model_footprint(cfg, k, t, train=False).largest_activation)
    data = num_images * image_bytes(cfg)
    acts = min(cfg["data"]["eval_batch_size"], num_images) * largest
    check_memory(
        data + acts, f"{_gib(data)} for {num_images} images, at least {_gib(acts)} activations", "cpu",
        "evaluate fewer images (--num-images) or fewer slots",
    )  # fmt: skip


# ------------------------------------------------------------------------------------ argparse types
def int_arg(lo: int, hi: int) -> Callable[[str], int]:
    """argparse type: an integer in [lo, hi]."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer from {lo} to {hi}, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"expected an integer from {lo} to {hi}, got {value}")
        return value

    parse.__name__ = f"integer {lo}..{hi}"
    return parse


def int_list_arg(lo: int, hi: int) -> Callable[[str], list[int]]:
    """argparse type: integers in [lo, hi] separated by commas (e.g. 4,6,8); no empty entries, no repeats."""

    def parse(text: str) -> list[int]:
        parts = [p.strip() for p in text.split(",")]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected integers from {lo} to {hi} separated by commas (e.g. 4,6,8), got {text!r}"
            ) from None
        if not all(lo <= v <= hi for v in values):
            raise argparse.ArgumentTypeError(f"values must be integers from {lo} to {hi}, got {text!r}")
        if len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"a value is repeated in {text!r}")
        return values

    parse.__name__ = f"list of integers {lo}..{hi}"
    return parse


seed_arg = int_arg(0, MAX_SEED)


def out_file_arg(text: str) -> Path:
    """argparse type: a file to write: not a folder, in a folder that exists and can be written."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file path, got an empty string")
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file path (e.g. {Path(text) / 'out.json'})")
    parent = path.parent
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"the folder {parent} does not exist; create it first or choose another path")
    if not os.access(parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"the folder {parent} is not writable")
    return path


def out_dir_arg(text: str) -> Path:
    """argparse type: a folder to write into: an existing writable folder, or one that can be created."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder path, got an empty string")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"cannot create {text}: {existing} is not a folder")
    if not os.access(existing, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write into {existing}")
    return path


# ------------------------------------------------------------------------- flags of eval / figures
def check_eval_flags(
    cfg: dict[str, Any],
    num_slots: list[int] | None = None,
    iters: list[int] | None = None,
    objects: list[int] | None = None,
    split: str = "eval",
    ari_undefined: str | None = None,
    data_path: str | None = None,
) -> None:
    """UsageError for test-time flags that do not apply to the checkpoint's model or task (instead of being
    ignored), before any data are loaded."""
    m, task = cfg["model"], cfg["task"]
    k = m["num_slots"]
    if m["kind"] == "slot_mlp":
        if iters:
            raise UsageError("--iters does not apply: the Slot MLP baseline (model.kind slot_mlp) has no iterations")
        if num_slots and any(v != k for v in num_slots):
            raise UsageError(
                f"--num-slots: the Slot MLP baseline has a fixed number of slots ({k}); it cannot use others"
            )
        if task == "set_prediction" and ari_undefined:
            raise UsageError("--ari-undefined does not apply: the Slot MLP baseline has no attention masks to score")
    elif m["slot_attention"]["slot_init"] != "shared" and num_slots and any(v != k for v in num_slots):
        raise UsageError(
            f"--num-slots: this model learned one initial slot per slot (model.slot_attention.slot_init "
            f"{m['slot_attention']['slot_init']}), so it runs with exactly K={k}"
        )
    if task == "object_discovery":
        if objects:
            raise UsageError(
                "--objects applies to set prediction only (images with exactly N objects); this checkpoint is an "
                "object-discovery model"
            )
        if data_path is not None and not Path(data_path).is_file():
            raise UsageError(f"--data-path {data_path}: {'a folder' if Path(data_path).is_dir() else 'not found'}; "
                             "give the DeepMind .tfrecords file of the model's dataset")  # fmt: skip
        return
    source = "clevr_folder" if data_path is not None else cfg["data"]["source"]
    if data_path is not None and not Path(data_path).is_dir():
        raise UsageError(f"--data-path {data_path}: no such folder (a CLEVR v1.0 folder with images/ and scenes/)")
    if split == "test" and source == "clevr_folder":
        raise UsageError(
            "--split test: CLEVR v1.0's test split has no scene annotations, so it cannot be scored; use --split "
            "eval (CLEVR's val)"
        )
    if objects:
        from slotlab.data.clevr_render import VARIANTS

        variant = cfg["data"]["variant"]
        if num_slots and max(num_slots) > VARIANTS[variant]["max_objects"]:
            variant = "clevr10"  # evaluate_set_prediction's rule: more slots than objects -> CLEVR10 scenes
        lo, hi = VARIANTS[variant]["min_objects"], VARIANTS[variant]["max_objects"]
        bad = [o for o in objects if not lo <= o <= hi]
        if bad:
            raise UsageError(f"--objects {bad}: {variant} scenes have {lo} to {hi} objects, so no image has {bad[0]}")
