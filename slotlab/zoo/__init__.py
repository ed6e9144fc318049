"""The model zoo: trained slotlab models shipped inside the package, each with its config and measured score.

Serves the paper's results tables (Table 1 object discovery FG-ARI, Figure 5 set-prediction AP) as
re-measurable artefacts: every entry can be evaluated (``slotlab eval --pretrained NAME``), drawn
(``slotlab figures --pretrained NAME``) and used on one's own images (``slotlab segment --model NAME``).

An entry is a folder ``<zoo>/<name>/`` laid out as a Hugging Face model repo (so ``from_pretrained`` works on it
and it can be uploaded as it is), written by :func:`slotlab.inference.checkpoint_io.write_pretrained`:

* ``model.safetensors``: the model's fp32 weights (safetensors: raw tensors, nothing that can run code);
* ``config.json``: the slotlab config, task, image size, step and checkpoint format;
* ``README.md``: the model card; its YAML front matter holds, under ``slotlab``, the name, task, dataset, the
  measured scores (test split) with the command that measured them, the machine, the training time, the paper's
  number and the weights' sha256 (checked before the weights are used).

Zoo folders searched, in order: each folder of ``$SLOTLAB_ZOO`` (``os.pathsep``-separated; a name found there
shadows a packaged one), then the package's own ``slotlab/zoo/``. :func:`make_entry` builds an entry from a
finished run folder (``tools/add_to_zoo.py RUN_DIR NAME``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from slotlab.errors import UserError
from slotlab.inference.checkpoint_io import (
    CARD_FILE,
    CONFIG_FILE,
    PRETRAINED_FILES,
    WEIGHTS_FILE,
    CheckpointError,
    load_checkpoint,
    read_card_file,
    write_pretrained,
)
from slotlab.tasks import get_task, task_name

ZOO_ENV = "SLOTLAB_ZOO"
CHECKPOINT_NAME = WEIGHTS_FILE
# Every file of an entry; pyproject.toml's [tool.setuptools.package-data] must match these (tested).
ENTRY_FILES = PRETRAINED_FILES
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
OUTPUT_ROOT = "slotlab_out"  # where eval / figures write for zoo models (package data are read-only)


class UnknownModelError(CheckpointError):
    """A model name that is neither a zoo entry nor an existing path (the CLI prints it and exits 2)."""


class ZooEntryError(UserError, ValueError):
    """An entry that cannot be made (bad name, existing entry, unusable run folder)."""


@dataclass
class ZooEntry:
    """One zoo model: its folder, checkpoint file and card."""

    name: str
    folder: Path
    card: dict[str, Any]
    source: str  # "package" or the $SLOTLAB_ZOO folder it came from
    checkpoint: Path = field(init=False)

    def __post_init__(self) -> None:
        self.checkpoint = self.folder / CHECKPOINT_NAME

    @property
    def size_bytes(self) -> int:
        return self.checkpoint.stat().st_size

    @property
    def task(self) -> str:
        return task_name(self.card)

    @property
    def dataset(self) -> str:
        return str(self.card.get("dataset", "?"))

    def score(self) -> tuple[str, float | None]:
        """(metric name, value) of the card's headline score."""
        s = self.card.get("scores") or {}
        return str(s.get("metric", "?")), s.get("value")


def package_zoo_dir() -> Path:
    """The zoo folder inside the installed package (``slotlab/zoo/``)."""
    return Path(str(resources.files("slotlab") / "zoo"))


def zoo_dirs() -> list[Path]:
    """Folders searched for entries: ``$SLOTLAB_ZOO`` (in order), then the package's zoo."""
    extra = [Path(p) for p in os.environ.get(ZOO_ENV, "").split(os.pathsep) if p.strip()]
    return [*extra, package_zoo_dir()]


def read_card(folder: Path) -> dict[str, Any]:
    """The card of an entry folder: the ``slotlab`` facts of ``README.md``'s front matter, with the config of
    ``config.json`` under ``config``."""
    path = folder / CARD_FILE
    if not path.is_file():
        raise ZooEntryError(f"{folder} has no {CARD_FILE} (model card)")
    card = read_card_file(path)
    if not card:
        raise ZooEntryError(f"{path} has no 'slotlab' facts in its YAML front matter")
    try:
        meta = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ZooEntryError(f"cannot read {folder / CONFIG_FILE}: {e}") from e
    return {**card, "config": meta.get("config")}


def verify_weights(entry: ZooEntry) -> None:
    """Refuse an entry whose weights are not the ones its card describes (sha256), e.g. the half-done replacement
    of a killed ``add_to_zoo --overwrite``."""
    want = (entry.card.get("checkpoint") or {}).get("sha256")
    if not want:
        raise ZooEntryError(f"{entry.folder / CARD_FILE} records no sha256 of {WEIGHTS_FILE}")
    got = _sha256(entry.checkpoint)
    if got != want:
        raise ZooEntryError(
            f"zoo entry {entry.name!r}: {entry.checkpoint} (sha256 {got[:12]}...) is not the model its card "
            f"describes (sha256 {want[:12]}...); make the entry again (tools/add_to_zoo.py --overwrite)"
        )


def scan_zoo() -> tuple[list[ZooEntry], list[str]]:
    """All entries (first folder wins for a repeated name), sorted by name, and one line per broken entry."""
    entries: dict[str, ZooEntry] = {}
    problems: list[str] = []
    package = package_zoo_dir()
    for root in zoo_dirs():
        if not root.is_dir():
            if root != package:
                problems.append(f"{ZOO_ENV} folder {root} does not exist")
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
            if folder.name in entries:
                continue
            if not (folder / CHECKPOINT_NAME).exists():
                problems.append(f"{folder}: no {CHECKPOINT_NAME}")
                continue
            try:
                card = read_card(folder)
            except (ZooEntryError, CheckpointError, ValueError, yaml.YAMLError) as e:
                problems.append(f"{folder}: unreadable card ({e})")
                continue
            source = "package" if root == package else str(root)
            entries[folder.name] = ZooEntry(folder.name, folder, card, source)
    return [entries[n] for n in sorted(entries)], problems


def list_models() -> list[ZooEntry]:
    """The usable zoo entries, sorted by name."""
    return scan_zoo()[0]


def get_model(name: str) -> ZooEntry:
    """The zoo entry ``name``; unknown names raise :class:`UnknownModelError` naming the nearest ones."""
    entries = {e.name: e for e in list_models()}
    if name in entries:
        return entries[name]
    near = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
    if not entries:
        hint += " The zoo is empty."
    raise UnknownModelError(f"unknown model {name!r}.{hint} (slotlab models lists them)")


def resolve_model(spec: str | Path) -> Path:
    """A model given as a zoo name, a zoo entry / pretrained folder, a run folder or a .ckpt file -> a path that
    :func:`load_checkpoint` reads. Existing paths win over zoo names; a zoo entry's weights are checked against
    its card's sha256."""
    p = Path(spec)
    if p.exists():
        return p
    spec = str(spec)
    if os.sep in spec or spec.endswith((".ckpt", ".safetensors")):
        raise UnknownModelError(f"{spec} does not exist (neither a file nor a folder), and is no zoo model name")
    entry = get_model(spec)
    verify_weights(entry)
    return entry.folder


def output_dir(name: str, out: str | Path | None = None) -> Path:
    """Where eval / figures write for zoo model ``name``: ``out``, else ``./slotlab_out/<name>/``."""
    return Path(out) if out is not None else Path(OUTPUT_ROOT) / name


# ----------------------------------------------------------------------------------------------------------
# making entries


def _checkpoint_in(run: Path, which: str) -> Path:
    if run.is_file():
        return run
    if which in ("last", "best"):
        folder = run / "checkpoints"
        if which == "last":
            return folder / "last.ckpt"
        best = sorted(folder.glob("best-*.ckpt"))
        if not best:
            raise ZooEntryError(f"{folder} has no best-*.ckpt")
        return best[-1]
    return Path(which)


MEASURE_SPLIT = "test"  # a card's score: images that chose nothing (checkpoints are picked on "eval")


def measure(checkpoint: str | Path) -> dict[str, Any]:
    """The default held-out evaluation of a checkpoint on the ``test`` split, exactly as ``slotlab eval
    --pretrained NAME`` runs it (same data, K, T, noise seed, ARI convention): the card's score. Returns
    ``metric``, ``value``, ``std``, ``split`` and ``details``."""
    from slotlab.evaluate import evaluate_checkpoint

    res = evaluate_checkpoint(checkpoint, device="cpu", split=MEASURE_SPLIT)
    task = get_task(task_name(load_checkpoint(checkpoint)["hyper_parameters"]["config"]))
    metric, key = task.score
    details = {k: v for k, v in res.items() if k not in NOT_DETAILS}
    std = res.get(key.replace("_mean", "_std")) if key.endswith("_mean") else None
    value, std = float(res[key]), None if std is None else float(std)
    return {"metric": metric, "value": value, "std": std, "split": res.get("split"), "details": details}


# Settings and facts of an evaluation result that are not scores (left out of a card's ``details``).
NOT_DETAILS = {"checkpoint", "split", "seed", "variant", "source", "model_kind", "exact_objects", "iters", "ap",
               "num_slots"}  # fmt: skip


def domain_reference(folder: Path) -> Any:
    """The held-out reconstruction error of an entry whose model reconstructs (``slotlab.inference.domain``),
    measured on the first 320 test images its task gives (:meth:`slotlab.tasks.base.Task.domain_images`), or None
    (no such images: a model without a decoder, or one trained on a data file)."""
    from slotlab.inference.domain import measure_reference
    from slotlab.inference.loading import load_model

    model, cfg, _ = load_model(folder)
    images = get_task(cfg["task"]).domain_images(cfg, 320, MEASURE_SPLIT)
    return None if images is None else measure_reference(model, images)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def set_evaluation_keys(ckpt: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set config keys that act in eval mode only (the schema's ``evaluation`` keys: ``model.eval_iters``,
    ``model.merge_slots``, ``model.eval_spatial_prior``) in the checkpoint dict ``ckpt``, e.g.
    ``["model.eval_iters=7"]``; the weights are not touched, so the entry stays the trained model. Returns
    {dotted key: value} of what was set. Raises :class:`ZooEntryError` for another key (it would describe a model
    that was not trained) or a bad value."""
    from slotlab.errors import UsageError
    from slotlab.inference.evaluation_keys import evaluation_overrides
    from slotlab.validate import leaves

    cfg = ckpt["hyper_parameters"]["config"]
    try:
        new, checked, paths = evaluation_overrides(cfg, overrides, prefix="after training: ")
    except UsageError as e:
        raise ZooEntryError(str(e)) from e
    # The config as trained plus the new keys, not filled with today's defaults: a key the run's version did not
    # have (e.g. model.weight_init, whose default has changed) keeps meaning what it meant for that run.
    ckpt["hyper_parameters"]["config"] = new
    values = leaves(checked)
    return {path: values[path] for path in paths}


def evaluation_note(values: dict[str, Any]) -> str:
    """The card's words for keys set after training (:func:`set_evaluation_keys`)."""
    keys = ", ".join(f"{k} {v}" for k, v in values.items())
    return f"Set at zoo time, after training (evaluation only, the weights are the run's): {keys}."


def make_entry(
    run: str | Path,
    name: str,
    dest: str | Path | None = None,
    checkpoint: str = "last",
    measure_score: bool = True,
    paper: dict[str, str] | None = None,
    machine: str | None = None,
    notes: str | None = None,
    overwrite: bool = False,
    evaluation: list[str] | None = None,
) -> ZooEntry:
    """Make zoo entry ``name`` from a finished run folder (or a .ckpt file) into ``dest`` (default: the
    package's zoo): a slimmed ``model.ckpt`` and a ``card.yaml``.

    Args:
        run: a run folder (``config.yaml``, ``checkpoints/``, ``results.json``) or a checkpoint file.
        name: entry name (lower case letters, digits, ``_ . -``).
        dest: zoo folder to write into; the entry is ``dest/name/``.
        checkpoint: "last", "best" (the best-by-metric checkpoint of the run) or a path.
        measure_score: evaluate the slimmed checkpoint as ``slotlab eval --pretrained NAME`` does and put the
            result on the card (seconds for the small models); False: take ``results.json``'s numbers.
        paper: the paper's number (``metric``, ``value``, ``where``); default: the task's for the dataset
            (:meth:`slotlab.tasks.base.Task.paper_score`).
        machine: what the model was trained on (default: this machine, from ``results.json``'s facts).
        notes: free text for the card.
        overwrite: replace an existing entry of that name.
        evaluation: ``key=value`` settings of keys that act at evaluation only (:func:`set_evaluation_keys`),
            e.g. the test-time T chosen on the eval split; the card's notes name them.
    """
    if not NAME_PATTERN.match(name):
        raise ZooEntryError(
            f"zoo name {name!r}: use lower-case letters, digits, '_', '.', '-' (e.g. tetrominoes_quick)"
        )
    run = Path(run)
    src = _checkpoint_in(run, checkpoint)
    ckpt = load_checkpoint(src)
    if evaluation:
        note = evaluation_note(set_evaluation_keys(ckpt, evaluation))
        notes = f"{notes} {note}" if notes else note
    run_dir = run if run.is_dir() else (src.parent.parent if src.parent.name == "checkpoints" else src.parent)
    root = Path(dest if dest is not None else package_zoo_dir())
    folder = root / name
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise ZooEntryError(f"zoo entry {folder} exists; pass overwrite=True (--overwrite) to replace it")
    # The new entry is made whole in a hidden sibling folder, then swapped in: a killed process leaves the old
    # entry (or, between the two renames, none), never a card beside another model's weights.
    new, old = root / f".{name}.new", root / f".{name}.old"
    for leftover in (new, old):
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        write_pretrained(ckpt, new)
        card = _card(name, ckpt, new, src, run_dir, measure_score, paper, machine, notes)
        write_pretrained(ckpt, new, card)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    if folder.exists():
        folder.rename(old)
    new.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return ZooEntry(name, folder, read_card(folder), str(root))


def _card(
    name: str,
    ckpt: dict[str, Any],
    folder: Path,
    src: Path,
    run_dir: Path,
    measure_score: bool,
    paper: dict[str, str] | None,
    machine: str | None,
    notes: str | None,
) -> dict[str, Any]:
    """The card of a new entry: its pretrained ``folder`` (made from ``src`` of run ``run_dir``) is measured here
    unless ``measure_score`` is False."""
    from slotlab.machine import machine_kind

    meta = json.loads((folder / CONFIG_FILE).read_text())
    cfg = meta["config"]
    weights = folder / WEIGHTS_FILE
    task = get_task(task_name(cfg))
    results_path = run_dir / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}

    if measure_score:
        scores = measure(folder)
        scores["command"] = f"slotlab eval --pretrained {name}"
        scores["measured_on"] = machine_kind()
        scores["measured_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    else:
        metric, key = task.score
        scores = {
            "metric": metric,
            "value": results.get(key),
            "std": results.get("fg_ari_std"),
            "details": {k: v for k, v in results.items() if k.startswith(("fg_ari", "ap_", "attn_ari", "num_"))},
            "command": f"slotlab train (held-out evaluation at the end of training, {results_path})",
        }
    training = {
        k: results[k]
        for k in ("global_step", "train_seconds", "wall_seconds", "precision", "accelerator", "threads", "world_size")
        if k in results
    }
    if "train_seconds" in training:
        training["train_minutes"] = round(training["train_seconds"] / 60, 1)
    card = {
        "name": name,
        "task": task.name,
        "dataset": task.zoo_dataset(cfg),
        "model_kind": cfg["model"].get("kind", "slot_attention"),
        "image_size": list(meta.get("image_size") or [cfg["data"].get("image_size")] * 2),
        "num_slots": cfg["model"]["num_slots"],
        "iters": cfg["model"].get("iters"),  # None: a model without Slot Attention iterations as a key (video)
        "scores": scores,
        # Each task's own number (e.g. CLEVR6's Table 1 FG-ARI is object discovery's, not set prediction's).
        "paper": paper or task.paper_score(cfg),
        "training": {
            **training,
            "machine": machine
            or results.get("machine")
            or (machine_kind() if results else "unknown (no results.json)"),
            "run": run_dir.name,
            "checkpoint": src.name,
            "checkpoint_step": meta["global_step"],
        },
        "checkpoint": {
            "file": WEIGHTS_FILE,
            "bytes": weights.stat().st_size,
            "sha256": _sha256(weights),
            "parameters": int(sum(v.numel() for k, v in ckpt["state_dict"].items() if k.startswith("model."))),
            "dtype": "float32",
            "slotlab_format": meta["slotlab_format"],
        },
        "notes": notes,
    }
    if measure_score and (domain := domain_reference(folder)) is not None:
        card["domain"] = domain.as_card()
    imported = run_dir / "imported.json"  # a run made by `slotlab import-official`: keep where it came from
    if imported.exists():
        card["imported"] = json.loads(imported.read_text())
    return card
