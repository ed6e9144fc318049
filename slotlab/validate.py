"""Up-front checks of every user input, so that a bad value ends in one line ``error: ...`` (exit status 2)
before any data or model is built, instead of a traceback minutes into a run.

Three layers:

- The rule of every config key (its range or choices, declared with the key in its task's schema:
  :mod:`slotlab.config_schema`), checked by :func:`check_config_values` (called by ``config.load_config``)
  together with the constraints between keys (batch size vs dataset size and number of processes, K vs the
  set-prediction variant, strides vs channels, ...). A key cannot be declared without a rule, so a new key
  cannot be added unchecked; :data:`RULES` shows them for every registered task.
- :func:`preflight_train` / :func:`preflight_eval`: what depends on the machine or the files: the accelerator
  exists, the devices are there, the precision is one slotlab runs, the dataset file or folder exists, the
  cache can be written, the model can be built for the image size (on PyTorch's ``meta`` device: no memory),
  and a lower bound of the memory the run needs fits in the memory available.
- argparse types for the CLI flags (:func:`int_arg`, :func:`int_list_arg`, :data:`seed_arg`,
  :func:`out_file_arg`, :func:`out_dir_arg`): ranges and output paths are checked while parsing.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slotlab.config_rules import MAX_COUNT, MAX_ITERS, MAX_SEED, MAX_SLOTS, Choice, Rule, generic_rule  # noqa: F401 (MAX_*: the CLI)
from slotlab.errors import ConfigError, UsageError  # UsageError: also importable from here


# ----------------------------------------------------------------------------------------------- rules
def rules_for(task: str) -> dict[str, Rule]:
    """Dotted path -> rule of every key of a registered task's config (``task``: any registered name)."""
    from slotlab.tasks import get_task, task_names

    return {**get_task(task).schema.rules(), "task": Choice(task_names())}


class _AllRules(Mapping[str, Rule]):
    """The rule of every config key of every registered task (dotted path -> rule), read when used, so that a
    task registered later is included; the checks themselves use the rules of the config's own task."""

    def _rules(self) -> dict[str, Rule]:
        from slotlab.tasks import task_names

        return {path: rule for task in task_names() for path, rule in rules_for(task).items()}

    def __getitem__(self, path: str) -> Rule:
        return self._rules()[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rules())

    def __len__(self) -> int:
        return len(self._rules())


RULES: Mapping[str, Rule] = _AllRules()


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
    """Range / choice of every key (the rules of the config's task) and the constraints between keys; raises
    ConfigError."""
    from slotlab.tasks import get_task, task_names

    Choice(task_names()).check("task", cfg.get("task"))  # the first key of a config
    rules = rules_for(cfg["task"])
    for path, value in leaves(cfg).items():
        rule = rules.get(path) or generic_rule(value)  # every declared key has its rule
        if rule is not None:
            rule.check(path, value)
    d, t = cfg["data"], cfg["trainer"]
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
    get_task(cfg["task"]).check_config(cfg)  # the task's own constraints between keys


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
            probe = _Largest()
            with probe, torch.set_grad_enabled(train):
                out = task.probe(model, cfg, size, num_slots, iters)  # one example of the task's input
                if train:
                    out.float().mean().backward()
    except (ValueError, RuntimeError, TypeError, IndexError, ZeroDivisionError) as e:
        what = f"K={num_slots} T={iters} " if num_slots or iters else ""
        raise ConfigError(f"the model of this config cannot run {what}on {size[0]}x{size[1]} images: {e}") from e
    grid = getattr(getattr(model, "encoder", None), "feature_resolution", size)
    return ModelFootprint(sum(p.numel() for p in model.parameters()), probe.largest, tuple(grid))


def input_size(cfg: dict[str, Any]) -> tuple[int, int]:
    """(H, W) of the images the model of ``cfg`` takes (the task's :meth:`~slotlab.tasks.base.Task.image_size`)."""
    from slotlab.tasks import get_task

    return tuple(get_task(cfg["task"]).image_size(cfg))


def image_bytes(cfg: dict[str, Any]) -> int:
    """Bytes one example takes in memory (uint8 image + mask + targets: the task's
    :meth:`~slotlab.tasks.base.Task.example_bytes`)."""
    from slotlab.tasks import get_task

    return get_task(cfg["task"]).example_bytes(cfg)


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
    """The dataset file / folder exists, and the cache folder can be written where the data are cached (the
    task's :meth:`~slotlab.tasks.base.Task.check_data_source`)."""
    from slotlab.tasks import get_task

    get_task(cfg["task"]).check_data_source(cfg)


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


def _path_arg(text: str, what: str) -> Path:
    """A path flag's text as a Path; an empty one is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a {what} path, got an empty string")
    return Path(text)


def _writable_folder(folder: Path, not_folder: str, not_writable: str) -> None:
    """argparse's error ``not_folder`` / ``not_writable`` unless ``folder`` is a folder this process can write."""
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(not_folder)
    if not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(not_writable)


def out_file_arg(text: str) -> Path:
    """argparse type: a file to write: not a folder, in a folder that exists and can be written."""
    path = _path_arg(text, "file")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file path (e.g. {Path(text) / 'out.json'})")
    parent = path.parent
    missing = f"the folder {parent} does not exist; create it first or choose another path"
    _writable_folder(parent, missing, f"the folder {parent} is not writable")
    return path


def out_dir_arg(text: str) -> Path:
    """argparse type: a folder to write into: an existing writable folder, or one that can be created."""
    path = _path_arg(text, "folder")
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    _writable_folder(existing, f"cannot create {text}: {existing} is not a folder", f"cannot write into {existing}")
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
    ignored), before any data are loaded: K and T against the model's slots here, the task's own flags by the task
    (:meth:`slotlab.tasks.base.Task.check_eval_flags`)."""
    from slotlab.tasks import get_task
    from slotlab.tasks.common import EvalFlags

    task = get_task(cfg["task"])
    m = cfg["model"]
    k = m.get("num_slots")
    if k is None:  # a model without slots
        if num_slots or iters:
            flag = "--num-slots" if num_slots else "--iters"
            raise UsageError(f"{flag} does not apply: this {task.title} model has no slots")
    elif m.get("kind") == "slot_mlp":
        if iters:
            raise UsageError("--iters does not apply: the Slot MLP baseline (model.kind slot_mlp) has no iterations")
        if num_slots and any(v != k for v in num_slots):
            raise UsageError(
                f"--num-slots: the Slot MLP baseline has a fixed number of slots ({k}); it cannot use others"
            )
    elif (
        (init := (m.get("slot_attention") or {}).get("slot_init", "shared")) != "shared"
        and num_slots
        and any(v != k for v in num_slots)
    ):
        raise UsageError(
            f"--num-slots: this model learned one initial slot per slot (model.slot_attention.slot_init "
            f"{init}), so it runs with exactly K={k}"
        )
    task.check_eval_flags(cfg, EvalFlags(num_slots, iters, objects, split, ari_undefined, data_path))
