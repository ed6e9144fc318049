"""The ``slotlab`` command line: train, evaluate (with test-time K/T sweeps) and list configs.

slotlab train                                # quick Tetrominoes preset (configs/tetrominoes_quick.yaml)
slotlab train --config tetrominoes trainer.max_steps=1000 optim.lr=2e-4
slotlab train --resume runs/RUN_DIR          # continue from RUN_DIR/checkpoints/last.ckpt
slotlab eval runs/RUN_DIR/checkpoints/last.ckpt --iters 1,3,5,7 --num-slots 4
slotlab configs                              # list the packaged experiment configs
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import sys
from pathlib import Path

from slotlab.metrics.ari import undefined_note

DEFAULT_CONFIG = "tetrominoes_quick"


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from e
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"values must be integers >= 1, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slotlab", description="Object-centric learning with Slot Attention.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model (default: the quick Tetrominoes preset)")
    t.add_argument("--config", default=None, help=f"config name or YAML path (default: {DEFAULT_CONFIG})")
    t.add_argument("--resume", default=None, metavar="RUN_DIR", help="resume a run from its last checkpoint")
    t.add_argument("overrides", nargs="*", help="config overrides such as optim.lr=2e-4 trainer.max_steps=100")

    e = sub.add_parser("eval", help="evaluate a checkpoint on held-out images (FG-ARI)")
    e.add_argument("checkpoint", nargs="?", help="a .ckpt file or a run folder (uses its last.ckpt)")
    e.add_argument("--pretrained", metavar="NAME", default=None, help="a zoo model instead (see `slotlab models`)")
    e.add_argument("--num-slots", type=_int_list, default=None, help="K at test time; a list sweeps, e.g. 4,6,8")
    e.add_argument("--iters", type=_int_list, default=None, help="T at test time; a list sweeps, e.g. 1,2,3,5")
    e.add_argument("--num-images", type=int, default=None, help="held-out images (default: the config's)")
    e.add_argument("--split", default="eval", choices=["eval", "test"], help="held-out split")
    e.add_argument("--out", default=None, help="JSON (or CSV for sweeps) output path")
    e.add_argument("--seed", type=int, default=None, help="seed of the slot-init noise")
    e.add_argument(
        "--ari-undefined",
        choices=["nan", "one"],
        default=None,
        help="FG-ARI where it is 0/0: nan (DeepMind, skipped in means) or one (scikit-learn); default: the run's",
    )
    e.add_argument(
        "--objects",
        type=_int_list,
        default=None,
        help="set prediction: only images with exactly this many objects; a list sweeps (Figure 5)",
    )
    e.add_argument(
        "--data-path",
        default=None,
        help="real data instead of the config's: a DeepMind .tfrecords file (object discovery; the held-out "
        "images follow the first data.train_size) or a CLEVR v1.0 folder (set prediction)",
    )

    f = sub.add_parser("figures", help="paper Figure 3 from a checkpoint (slots, attention, iterations)")
    f.add_argument("checkpoint", nargs="?", help="a .ckpt file or a run folder")
    f.add_argument("--pretrained", metavar="NAME", default=None, help="a zoo model instead (see `slotlab models`)")
    f.add_argument("--num-images", type=int, default=4)
    f.add_argument("--num-slots", type=int, default=None)
    f.add_argument("--iters", type=int, default=None)
    f.add_argument("--split", default="eval", choices=["eval", "test"])
    f.add_argument("--out", default=None, help="output folder (default: RUN_DIR/figures)")

    r = sub.add_parser("report", help="write RUN_DIR/report.html (metrics, learning curves, figures)")
    r.add_argument("run_dir")

    d = sub.add_parser("data", help="generate or look at datasets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    g = dsub.add_parser("generate", help="generate a split into the on-disk cache (parallel, resumable)")
    g.add_argument("name", help="a built-in dataset name (see `slotlab data list`)")
    g.add_argument("--split", default="train", choices=["train", "eval", "test"])
    g.add_argument("--num", type=int, required=True, help="number of images")
    g.add_argument("--out", default=None, help="cache folder (default: $SLOTLAB_CACHE or ~/.cache/slotlab)")
    g.add_argument("--seed", type=int, default=0, help="data seed")
    g.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    s_ = dsub.add_parser("show", help="write a PNG grid of images with mask overlays")
    s_.add_argument("source", help="a built-in dataset name or a DeepMind .tfrecords file")
    s_.add_argument("--dataset", default=None, help="for a .tfrecords file: its dataset (e.g. tetrominoes)")
    s_.add_argument("--num", type=int, default=16)
    s_.add_argument("--seed", type=int, default=0)
    s_.add_argument("--out", default=None, help="PNG path (default: <name>.png)")
    dsub.add_parser("list", help="list the built-in datasets")

    sub.add_parser("configs", help="list the packaged experiment configs")

    o = sub.add_parser("import-official", help="convert an official Slot Attention TF checkpoint into a run folder")
    o.add_argument("task", choices=["object_discovery", "set_prediction"])
    o.add_argument("checkpoint", help="folder with the TF `checkpoint` file (its latest is used) or a ckpt-N prefix")
    o.add_argument("--out", required=True, metavar="RUN_DIR", help="the run folder to write (new or empty)")
    o.add_argument("--resolution", type=int, default=128, help="image size (default 128, the official one)")
    o.add_argument("--num-slots", type=int, default=None, help="K (default: the official 7 / 10)")
    o.add_argument("--iters", type=int, default=None, help="T (default: the official 3)")

    sub.add_parser("models", help="list the trained models shipped in the zoo (name, task, dataset, score, size)")
    sg = sub.add_parser("segment", help="segment your own PNG/JPEG images with a trained model")
    sg.add_argument("images", nargs="+", metavar="IMAGE", help="PNG / JPEG files")
    sg.add_argument("--model", required=True, help="a zoo model name, a run folder or a .ckpt file")
    sg.add_argument("--out", default="segment_out", help="output folder (default: ./segment_out)")
    sg.add_argument("--num-slots", type=int, default=None, help="K (default: the training K)")
    sg.add_argument("--iters", type=int, default=None, help="T (default: the training T)")
    sg.add_argument("--seed", type=int, default=None, help="seed of the slot-init noise (default: eval's)")
    return p


def cmd_train(args: argparse.Namespace) -> int:
    from slotlab.config import load_config
    from slotlab.train.fit import RUN_DIR_ENV, launched_rank, new_run_dir, train

    if args.resume:
        run_dir = Path(args.resume)
        cfg_path = run_dir / "config.yaml"
        if not cfg_path.exists():
            print(f"error: {cfg_path} not found; is {run_dir} a slotlab run folder?", file=sys.stderr)
            return 2
        cfg = load_config(str(cfg_path), args.overrides)
        print(f"resuming {run_dir}")
    else:
        name = args.config or DEFAULT_CONFIG
        cfg = load_config(name, args.overrides)
        run_dir = new_run_dir(cfg, Path(name).stem, secondary=launched_rank() > 0)
        print(f"run folder: {run_dir}")
    # Processes that Lightning's DDP launcher starts re-run this command: they find the run folder here.
    previous = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        result = train(cfg, run_dir, resume=bool(args.resume))
        for attempt in range(1, cfg["trainer"]["failed_seed_restarts"] + 1):
            if not result.get("failed_seed"):
                break
            first = Path(str(run_dir).split("-restart")[0])
            cfg = {**cfg, "seed": cfg["seed"] + 1, "run": {**cfg["run"], "name": f"{first.name}-restart{attempt}"}}
            run_dir = new_run_dir(cfg, "")
            os.environ[RUN_DIR_ENV] = str(run_dir)
            print(f"failed seed detected; restarting with seed {cfg['seed']} in {run_dir}")
            result = train(cfg, run_dir)
    finally:
        if previous is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = previous
    if result.get("failed_seed"):
        print(f"error: {result['message']} (no restarts left; see {run_dir})", file=sys.stderr)
        return 2
    if cfg["task"] == "set_prediction":
        from slotlab.train.set_prediction import format_ap_table

        print(format_ap_table(result))
        print(f"(step {result.get('global_step')}; results: {run_dir / 'results.json'})")
        return 0
    if "fg_ari_mean" in result:
        print(
            f"FG-ARI on {result['num_images']} held-out {cfg['data']['name']} images: "
            f"{result['fg_ari_mean']:.4f} +- {result['fg_ari_std']:.4f}"
            f"{undefined_note(result.get('fg_ari_undefined', 0))} "
            f"(step {result['global_step']}, {result['train_seconds'] / 60:.1f} min training, "
            f"{result['wall_seconds'] / 60:.1f} min wall, precision {result['precision']})"
        )
        print(f"results: {run_dir / 'results.json'}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from slotlab.data.datamodule import data_from_config, to_tensors
    from slotlab.train.checkpoints import checkpoint_task, load_object_discovery
    from slotlab.train.object_discovery import EVAL_SEED, evaluate_fg_ari, summarize
    from slotlab.train.runtime import tune_malloc

    tune_malloc()
    if (code := use_pretrained(args, "eval")) is not None:
        return code
    if checkpoint_task(args.checkpoint) == "set_prediction":
        return eval_set_prediction(args)
    model, cfg, ckpt = load_object_discovery(args.checkpoint)
    d = cfg["data"] if args.data_path is None else {**cfg["data"], "path": args.data_path}
    n = args.num_images or d["eval_size"]
    data = to_tensors(data_from_config(d).load_split(args.split, n))
    ks = args.num_slots or [cfg["model"]["num_slots"]]
    ts = args.iters or [cfg["model"]["iters"]]
    seed = EVAL_SEED if args.seed is None else args.seed
    undefined = args.ari_undefined or cfg["eval"]["ari_undefined"]
    rows = []
    for k, t in itertools.product(ks, ts):
        scores = evaluate_fg_ari(
            model, data["image"], data["mask"], d["eval_batch_size"], k, t, seed=seed, undefined=undefined
        )
        s = summarize(scores)
        rows.append({"num_slots": k, "iters": t, **s})
        print(
            f"FG-ARI K={k} T={t} on {s['num_images']} {args.split} images of {d['name']}: "
            f"{s['fg_ari_mean']:.4f} +- {s['fg_ari_std']:.4f} (median {s['fg_ari_median']:.4f})"
            f"{undefined_note(s['fg_ari_undefined'])}"
        )
    ckpt_path = Path(ckpt["_path"])
    base = ckpt_path.parent.parent if ckpt_path.parent.name == "checkpoints" else ckpt_path.parent
    sweep = len(rows) > 1
    out = Path(args.out) if args.out else base / ("eval_sweep.csv" if sweep else "eval.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    if sweep:
        with open(out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        from slotlab.plots import plot_sweep

        png = plot_sweep(rows, out.with_suffix(".png"), metric="fg_ari_mean", title=f"{d['name']}: FG-ARI")
        print(f"wrote {out} and {png}")
    else:
        result = {
            "checkpoint": str(ckpt_path),
            "split": args.split,
            "step": ckpt.get("global_step"),
            **rows[0],
        }
        out.write_text(json.dumps(result, indent=2))
        print(f"wrote {out}")
    return 0


def eval_set_prediction(args: argparse.Namespace) -> int:
    """AP table of a set-prediction checkpoint; lists of K, T or --objects sweep (paper Figure 5)."""
    from slotlab.train.set_prediction import EVAL_SEED, evaluate_set_prediction, format_ap_table

    rows = []
    for k, t, n_obj in itertools.product(args.num_slots or [None], args.iters or [None], args.objects or [None]):
        res = evaluate_set_prediction(
            args.checkpoint,
            k,
            t,
            args.num_images,
            exact_objects=n_obj,
            seed=EVAL_SEED if args.seed is None else args.seed,
            ari_undefined=args.ari_undefined,
            data=None if args.data_path is None else {"source": "clevr_folder", "path": args.data_path},
        )
        print(f"K={k or 'train'} T={res.get('iters')} objects={n_obj or 'all'}")
        print(format_ap_table(res))
        rows.append(
            {
                "num_slots": k,
                "iters": res.get("iters"),
                "objects": n_obj,
                **{key: v for key, v in res.items() if key.startswith("ap_") or key.startswith("attn_ari")},
            }
        )
    path = Path(args.checkpoint)
    base = path if path.is_dir() else (path.parent.parent if path.parent.name == "checkpoints" else path.parent)
    if len(rows) == 1:
        out = Path(args.out) if args.out else base / "eval.json"
        out.write_text(json.dumps(res, indent=2, default=str))
    else:
        out = Path(args.out) if args.out else base / "eval_sweep.csv"
        with open(out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        from slotlab.plots import plot_ap_sweep

        print(f"wrote {plot_ap_sweep(rows, out.with_suffix('.png'))}")
    print(f"wrote {out}")
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    from slotlab.figures import make_figures
    from slotlab.train.checkpoints import checkpoint_task

    if (code := use_pretrained(args, "figures")) is not None:
        return code
    if checkpoint_task(args.checkpoint) == "set_prediction":
        from slotlab.train.set_prediction import set_prediction_figures

        paths = set_prediction_figures(
            args.checkpoint, Path(args.out) if args.out else None, args.num_images, args.num_slots, args.iters
        )
        for p in paths:
            print(f"wrote {p}")
        return 0
    paths = make_figures(
        args.checkpoint,
        Path(args.out) if args.out else None,
        args.num_images,
        args.num_slots,
        args.iters,
        args.split,
    )
    for p in paths:
        print(f"wrote {p}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from slotlab.report import write_report

    print(f"wrote {write_report(Path(args.run_dir))}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from slotlab.data.registry import dataset_names, get_dataset

    if args.data_command == "list":
        for name in dataset_names():
            info = get_dataset(name)
            print(f"{name:36s} {info.description}")
        return 0
    if args.data_command == "generate":
        from slotlab.data.cache import build

        get_dataset(args.name)

        def progress(done: int, total: int) -> None:
            width = 30
            bar = "#" * (width * done // max(total, 1))
            print(f"\r{args.name} {args.split}: [{bar:<{width}}] {done}/{total} shards", end="", flush=True)

        folder = build(args.name, args.split, args.num, args.seed, args.out, args.workers, progress)
        print(f"\n{args.num} images in {folder}")
        return 0
    from slotlab.data.preview import preview

    out = preview(args.source, args.dataset, args.num, args.seed, args.out)
    print(f"wrote {out}")
    return 0


def cmd_configs(_: argparse.Namespace) -> int:
    from slotlab.config import available_configs, config_dir

    for name in available_configs():
        first = (config_dir() / f"{name}.yaml").read_text().splitlines()[:1]
        print(f"{name:32s} {first[0].lstrip('# ') if first else ''}")
    return 0


def use_pretrained(args: argparse.Namespace, command: str) -> int | None:
    """``--pretrained NAME`` of eval / figures: use the zoo model's checkpoint, and (zoo folders being read-only
    package data) write to ``--out`` or ``./slotlab_out/NAME/``. Returns an exit status to stop with, else None."""
    if args.pretrained is None:
        if args.checkpoint is None:
            print(f"error: slotlab {command}: give a checkpoint or run folder, or --pretrained NAME", file=sys.stderr)
            return 2
        return None
    if args.checkpoint is not None:
        print(f"error: give a checkpoint ({args.checkpoint}) or --pretrained NAME, not both", file=sys.stderr)
        return 2
    from slotlab.zoo import get_model, output_dir

    entry = get_model(args.pretrained)
    args.checkpoint = str(entry.checkpoint)
    if args.out is None:
        folder = output_dir(entry.name)
        if command == "eval":
            lists = [args.num_slots, args.iters] + ([args.objects] if entry.task == "set_prediction" else [])
            sweep = any(v is not None and len(v) > 1 for v in lists)
            args.out = str(folder / ("eval_sweep.csv" if sweep else "eval.json"))
        else:
            args.out = str(folder)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"zoo model {entry.name} ({entry.source}): writing to {folder}/ (zoo folders are never written to)")
    return None


def cmd_models(_: argparse.Namespace) -> int:
    from slotlab.zoo import scan_zoo, zoo_dirs

    entries, problems = scan_zoo()
    for line in problems:
        print(f"warning: {line}", file=sys.stderr)
    if not entries:
        print(f"no models in the zoo yet (searched: {', '.join(str(d) for d in zoo_dirs())})")
        return 0
    print(f"{'name':28s} {'task':17s} {'dataset':18s} {'score':26s} {'size':>8s}  paper")
    for e in entries:
        metric, value = e.score()
        std = (e.card.get("scores") or {}).get("std")
        score = f"{metric} {value:.4f}" if isinstance(value, int | float) else f"{metric} ?"
        score += f" +- {std:.4f}" if isinstance(std, int | float) else ""
        paper = e.card.get("paper") or {}
        paper_text = f"{paper.get('metric', '')} {paper.get('value', '')}".strip() or "-"
        where = "" if e.source == "package" else f"  [{e.source}]"
        print(
            f"{e.name:28s} {e.task:17s} {e.dataset:18s} {score:26s} {e.size_bytes / 1e6:6.2f} MB  {paper_text}{where}"
        )
    print("use: slotlab eval --pretrained NAME, slotlab figures --pretrained NAME, slotlab segment IMAGE --model NAME")
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    from slotlab.segment import (
        SegmentInputError,
        SegmentModelError,
        check_model_runs,
        load_segment_model,
        segment_file,
        unique_stems,
    )
    from slotlab.train.object_discovery import EVAL_SEED
    from slotlab.zoo import resolve_model

    try:
        sm = load_segment_model(resolve_model(args.model))
        check_model_runs(sm, args.num_slots, args.iters)
    except SegmentModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"model: {sm.describe()}")
    for note in sm.notes:
        print(f"note: {note}")
    out = Path(args.out)
    seed = EVAL_SEED if args.seed is None else args.seed
    failed = 0
    for path, stem in zip(args.images, unique_stems(args.images), strict=True):
        try:
            res = segment_file(sm, path, out, stem, args.num_slots, args.iters, seed)
        except SegmentInputError as e:
            print(f"error: {path}: {e}", file=sys.stderr)
            failed += 1
            continue
        except OSError as e:
            print(f"error: {path}: cannot write the output into {out}: {e}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path}: {'; '.join(res.steps)}")
        print(f"  K={res.num_slots} T={res.iters} -> {', '.join(str(p) for p in res.paths)}")
    done = len(args.images) - failed
    print(f"{done} of {len(args.images)} images segmented into {out}/" + (f"; {failed} failed" if failed else ""))
    return 2 if failed else 0


def cmd_import_official(args: argparse.Namespace) -> int:
    from slotlab.official import OfficialCheckpointError, import_official

    try:
        run_dir = import_official(args.task, args.checkpoint, args.out, args.resolution, args.num_slots, args.iters)
    except OfficialCheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    info = json.loads((run_dir / "imported.json").read_text())
    moments = ", with its Adam moments" if info["adam_moments"] else ""
    print(f"imported {info['source']} (step {info['global_step']}{moments}) into {run_dir}")
    print(f"K={info['num_slots']} T={info['iters']}; evaluate with: slotlab eval {run_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from slotlab.config import ConfigError
    from slotlab.data.errors import DatasetFileError
    from slotlab.train.checkpoints import CheckpointError
    from slotlab.train.fit import RunDirError
    from slotlab.train.object_discovery import NonFiniteLossError

    commands = {
        "train": cmd_train,
        "eval": cmd_eval,
        "configs": cmd_configs,
        "figures": cmd_figures,
        "report": cmd_report,
        "data": cmd_data,
        "import-official": cmd_import_official,
        "models": cmd_models,
        "segment": cmd_segment,
    }
    try:
        return commands[args.command](args)
    except (ConfigError, CheckpointError, RunDirError, DatasetFileError, NonFiniteLossError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
