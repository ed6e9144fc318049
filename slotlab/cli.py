"""The ``slotlab`` command line: train, evaluate (with test-time K/T sweeps) and list configs.

slotlab train                                # quick Tetrominoes preset (configs/tetrominoes_quick.yaml)
slotlab train --config tetrominoes trainer.max_steps=1000 optim.lr=2e-4
slotlab train --resume runs/RUN_DIR          # continue from RUN_DIR/checkpoints/last.ckpt
slotlab eval runs/RUN_DIR/checkpoints/last.ckpt --iters 1,3,5,7 --num-slots 4
slotlab configs                              # list the packaged experiment configs
slotlab models                               # the model zoo; eval / figures --pretrained NAME use one
slotlab segment img.png --model NAME         # segment your own images (zoo name, run folder or .ckpt)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from slotlab.errors import UserError
from slotlab.validate import (
    MAX_COUNT,
    MAX_ITERS,
    MAX_SLOTS,
    int_arg,
    int_list_arg,
    out_dir_arg,
    out_file_arg,
    seed_arg,
)

DEFAULT_CONFIG = "tetrominoes_quick"
CLEVR_VARIANTS = ("clevr10", "clevr3", "clevr6")  # slotlab.data.clevr_render.VARIANTS (checked in a test)
VECTOR_FORMATS = ("pdf", "svg")  # slotlab.drawing.VECTOR_FORMATS (not imported: it is not needed to parse)
FORMAT_HELP = "also write each figure as vector graphics (pdf or svg; repeat for both); the PNG is always written"
BUG_NOTE = (
    "this is a bug in slotlab: please report it with the command line and the traceback above "
    "(errors in your input are shown as one `error:` line, exit status 2)"
)
# Flag types: every number is range-checked while parsing (argparse prints `error: ...`, exit status 2).
_slots, _iters = int_list_arg(1, MAX_SLOTS), int_list_arg(1, MAX_ITERS)


class LazyChoices:
    """argparse ``choices`` read from the task registry only when an argument is checked against them (importing
    the tasks is not needed to parse the other commands)."""

    def __init__(self, load: Callable[[], Sequence[str]]) -> None:
        self._load = load

    def __contains__(self, value: object) -> bool:
        return value in self._load()

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


def _official_tasks() -> Sequence[str]:
    from slotlab.official import official_tasks

    return official_tasks()


def _add_merge_flag(parser: argparse.ArgumentParser) -> None:
    from slotlab.inference.merge_option import merge_slots_arg

    parser.add_argument(
        "--merge-slots",
        type=merge_slots_arg,
        default=None,
        metavar="TAU|off",
        help="object discovery: merge near-copy slots at evaluation (model.merge_slots; not in the paper): a cosine "
        "threshold such as 0.97, or off (the paper); default: the model's own setting",
    )


def _add_set_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help=f"a config key that acts at evaluation only, for this {what} (e.g. model.eval_spatial_prior=0.3, "
        "model.eval_iters=3); repeatable",
    )


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
    e.add_argument("--num-slots", type=_slots, default=None, help="K at test time; a list sweeps, e.g. 4,6,8")
    e.add_argument("--iters", type=_iters, default=None, help="T at test time; a list sweeps, e.g. 1,2,3,5")
    e.add_argument(
        "--num-images",
        type=int_arg(1, MAX_COUNT),
        default=None,
        help="held-out images (default: the config's); a --data-path with fewer is evaluated whole",
    )
    e.add_argument(
        "--split",
        default=None,
        choices=["eval", "test"],
        help="held-out split (recorded); default: test for --pretrained (the zoo cards' scores), eval for a run "
        "(the split its checkpoints were picked on) and for a CLEVR v1.0 --data-path (its val scenes)",
    )
    e.add_argument(
        "--out",
        type=out_file_arg,
        default=None,
        help="a .json (one setting) or .csv (a sweep) file; default: a file named after the settings in the run "
        "folder. Every evaluation is also appended to evals.jsonl next to it",
    )
    e.add_argument("--seed", type=seed_arg, default=None, help="seed of the slot-init noise")
    e.add_argument(
        "--ari-undefined",
        choices=["nan", "one"],
        default=None,
        help="FG-ARI where it is 0/0: nan (DeepMind, skipped in means) or one (scikit-learn); default: the run's",
    )
    e.add_argument(
        "--objects",
        type=int_list_arg(1, 10),
        default=None,
        help="set prediction: only images with exactly this many objects; a list sweeps (Figure 5)",
    )
    e.add_argument(
        "--data-path",
        default=None,
        help="real data instead of the config's: a DeepMind .tfrecords file (object discovery; the held-out "
        "images follow the first data.train_size) or a CLEVR v1.0 folder (set prediction)",
    )
    _add_merge_flag(e)
    _add_set_flag(e, "evaluation")

    f = sub.add_parser("figures", help="paper Figure 3 from a checkpoint (slots, attention, iterations)")
    f.add_argument("checkpoint", nargs="?", help="a .ckpt file or a run folder")
    f.add_argument("--pretrained", metavar="NAME", default=None, help="a zoo model instead (see `slotlab models`)")
    f.add_argument("--num-images", type=int_arg(1, 64), default=4)
    f.add_argument("--num-slots", type=int_arg(1, MAX_SLOTS), default=None)
    f.add_argument("--iters", type=int_arg(1, MAX_ITERS), default=None)
    f.add_argument("--split", default="eval", choices=["eval", "test"])
    f.add_argument("--out", type=out_dir_arg, default=None, help="output folder (default: RUN_DIR/figures)")
    f.add_argument("--format", choices=VECTOR_FORMATS, action="append", default=None, help=FORMAT_HELP, dest="formats")
    f.add_argument(
        "--video-format",
        choices=["gif", "mp4"],
        default="gif",
        help="a video model's animation: gif (default) or mp4 (H.264; needs the optional extra slotlab[video])",
    )
    _add_merge_flag(f)
    _add_set_flag(f, "drawing")

    r = sub.add_parser("report", help="write RUN_DIR/report.html (metrics, learning curves, figures)")
    r.add_argument("run_dir")

    d = sub.add_parser("data", help="generate or look at datasets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    g = dsub.add_parser("generate", help="generate a split into the on-disk cache (parallel, resumable)")
    g.add_argument("name", help="a built-in dataset name (see `slotlab data list`)")
    g.add_argument("--split", default="train", choices=["train", "eval", "test"])
    g.add_argument("--num", type=int_arg(1, MAX_COUNT), required=True, help="number of images")
    g.add_argument(
        "--out", type=out_dir_arg, default=None, help="cache folder (default: $SLOTLAB_CACHE or ~/.cache/slotlab)"
    )
    g.add_argument("--seed", type=seed_arg, default=0, help="data seed")
    g.add_argument("--workers", type=int_arg(0, 1024), default=0, help="processes (default: all cores)")
    s_ = dsub.add_parser("show", help="write a PNG grid of images with mask overlays")
    s_.add_argument("source", help="a built-in dataset name or a DeepMind .tfrecords file")
    s_.add_argument("--dataset", default=None, help="for a .tfrecords file: its dataset (e.g. tetrominoes)")
    s_.add_argument("--num", type=int_arg(1, 256), default=16)
    s_.add_argument("--seed", type=seed_arg, default=0)
    s_.add_argument("--out", type=out_file_arg, default=None, help="PNG path (default: <name>.png)")
    dsub.add_parser("list", help="list the built-in datasets")
    c = dsub.add_parser(
        "compare",
        help="built-in CLEVR renders vs real ones: statistics, the real scenes re-rendered, a picture; with --model "
        "a set-prediction model's AP on both",
    )
    c.add_argument("real", metavar="REAL_FOLDER", help="a CLEVR v1.0 folder (images + scenes JSON) or a folder of PNGs")
    c.add_argument("--num", type=int_arg(1, MAX_COUNT), default=64, help="built-in renders (default 64)")
    c.add_argument(
        "--variant",
        default=None,
        choices=CLEVR_VARIANTS,
        help="built-in scenes (default: the --model's variant, else clevr10)",
    )
    c.add_argument("--split", default="val", help="the CLEVR v1.0 folder's split (default val)")
    c.add_argument(
        "--seed",
        type=seed_arg,
        default=None,
        help="stream of the built-in renders (default 0; with --model: the model's test split, not settable)",
    )
    c.add_argument("--out", type=out_file_arg, default=None, help="PNG: real | same scene built-in | a built-in render")
    c.add_argument("--rows", type=int_arg(1, 64), default=3, help="scenes in the --out picture (default 3)")
    c.add_argument(
        "--model",
        default=None,
        help="a set-prediction model (zoo name, run folder or .ckpt): its AP on the real scenes vs on the built-in "
        "renders (transfer check)",
    )

    sub.add_parser("configs", help="list the packaged experiment configs")

    o = sub.add_parser("import-official", help="convert an official Slot Attention TF checkpoint into a run folder")
    o.add_argument("task", choices=LazyChoices(_official_tasks), help="the task whose official model it is")
    o.add_argument("checkpoint", help="folder with the TF `checkpoint` file (its latest is used) or a ckpt-N prefix")
    o.add_argument("--out", required=True, metavar="RUN_DIR", help="the run folder to write (new or empty)")
    o.add_argument(
        "--resolution", type=int_arg(8, 1024), default=128, help="image size (default 128, the official one)"
    )
    o.add_argument("--num-slots", type=int_arg(1, MAX_SLOTS), default=None, help="K (default: the official 7 / 10)")
    o.add_argument("--iters", type=int_arg(1, MAX_ITERS), default=None, help="T (default: the official 3)")

    sub.add_parser("models", help="list the trained models shipped in the zoo (name, task, dataset, score, size)")
    sg = sub.add_parser("segment", help="segment your own PNG/JPEG images (or videos, with a video model)")
    sg.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="PNG / JPEG files; for a video model: videos (a .gif, a folder of PNG / JPEG frames, or an .mp4 with "
        "the optional extra slotlab[video])",
    )
    sg.add_argument("--model", required=True, help="a zoo model name, a run folder or a .ckpt file")
    sg.add_argument("--out", default="segment_out", help="output folder (default: ./segment_out)")
    sg.add_argument("--num-slots", type=int_arg(1, MAX_SLOTS), default=None, help="K (default: the training K)")
    sg.add_argument(
        "--iters", type=int_arg(1, MAX_ITERS), default=None, help="T (default: model.eval_iters, else the training T)"
    )
    sg.add_argument("--seed", type=seed_arg, default=None, help="seed of the slot-init noise (default: eval's)")
    sg.add_argument("--format", choices=VECTOR_FORMATS, action="append", default=None, help=FORMAT_HELP, dest="formats")
    _add_merge_flag(sg)
    _add_set_flag(sg, "call")
    x = sub.add_parser("export", help="write a trained model as a torch.export program (.pt2) or ONNX file")
    x.add_argument("model", help="a zoo model name, a run folder, a .ckpt file or a pretrained folder")
    x.add_argument("--format", choices=["torch-export", "onnx"], default="torch-export", dest="export_format")
    x.add_argument("--out", type=out_file_arg, default=None, help="output file (default: ./slotlab_out/NAME.pt2|.onnx)")
    x.add_argument(
        "--frames",
        type=int_arg(1, 4096),
        default=None,
        help="video models: the clip length T the exported program takes (fixed; default: the training clip length)",
    )
    return p


def _note_compile(trainer_cfg: dict) -> None:
    """Say so when ``trainer.compile: auto`` would compile this run but torch.compile cannot run here."""
    from slotlab.train.fit import compile_plan

    _, reason = compile_plan(trainer_cfg)
    if reason:
        print(f"note: trainer.compile auto: running eager (slower), {reason}; trainer.compile=false silences this")


def cmd_train(args: argparse.Namespace) -> int:
    from slotlab.run_lock import locks_released_after

    with locks_released_after():  # the run folder locks this command takes are held until it ends
        return _train_command(args)


def _train_command(args: argparse.Namespace) -> int:
    from slotlab.config import load_config
    from slotlab.run_lock import acquire_run_lock
    from slotlab.runs import RUN_DIR_ENV, launched_rank, new_run_dir
    from slotlab.tasks import get_task
    from slotlab.train.fit import train
    from slotlab.train.init_from import check_initial_weights
    from slotlab.validate import preflight_train

    first = launched_rank() == 0  # the other processes of a DDP job re-run this command
    resume: bool | Path = False
    if args.resume:
        if args.config:
            print(
                f"error: --config does not apply with --resume: a resumed run keeps the config it was trained with "
                f"({Path(args.resume) / 'config.yaml'}); give only overrides such as trainer.max_steps=N",
                file=sys.stderr,
            )
            return 2
        from slotlab.train.resume import plan_resume, record_resume

        if first and Path(args.resume).is_dir():
            # Before anything is cleaned or recorded; held until training ends (RunInUseError: another process
            # trains into this folder now).
            acquire_run_lock(args.resume)
        plan = plan_resume(args.resume, args.overrides, cleanup=first)
        for note in plan.notes if first else []:
            print(f"note: {note}")
        if plan.finished:
            print(plan.finished)
            return 0
        cfg, run_dir = plan.cfg, plan.run_dir
        if first:
            preflight_train(cfg)
            record_resume(plan)
            for key, (old, new) in plan.changes.items():
                print(f"{key}: {old} -> {new} (recorded in {run_dir / 'config.yaml'})")
        resume = plan.checkpoint if plan.checkpoint is not None else False
        print(f"resuming {run_dir} from step {plan.step}")
    else:
        name = args.config or DEFAULT_CONFIG
        cfg = load_config(name, args.overrides)
        if first:
            preflight_train(cfg)
            check_initial_weights(cfg)  # model.init_from: exists, loads safely and fits, before any work
        run_dir = new_run_dir(cfg, Path(name).stem, secondary=not first)
        print(f"run folder: {run_dir}")
    if first:
        _note_compile(cfg["trainer"])
    # Processes that Lightning's DDP launcher starts re-run this command: they find the run folder here.
    previous = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        result = train(cfg, run_dir, resume=resume)
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
    task = get_task(cfg["task"])
    show = task.presenter
    summary = show.format_result(result, cfg)
    if summary:
        print(summary)
        if test := show.format_test(result, cfg, task.eval_grid(cfg, None, None, None)[0][0]):
            print(test)
        print(f"(step {result.get('global_step')}; results: {run_dir / 'results.json'})")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Every task: the held-out metrics of a checkpoint; lists of K, T (or --objects) sweep (Figures 2, 5)."""
    from slotlab.evaluate import evaluate_settings
    from slotlab.inference.domain_eval import domain_check
    from slotlab.inference.evaluation_keys import set_evaluation_options
    from slotlab.inference.loading import load_model
    from slotlab.inference.merge_option import applies as merge_applies
    from slotlab.inference.merge_option import describe as describe_merge
    from slotlab.inference.merge_option import set_merge_slots
    from slotlab.tasks import get_task
    from slotlab.tasks.common import EVAL_SEED
    from slotlab.train.runtime import tune_malloc
    from slotlab.validate import check_eval_flags, preflight_eval

    tune_malloc()
    if (code := use_pretrained(args, "eval")) is not None:
        return code
    model, cfg, ckpt = load_model(args.checkpoint)
    trained_merge = cfg["model"].get("merge_slots")
    if args.set:
        cfg = set_evaluation_options(model, cfg, args.set)
    if args.merge_slots is not None:
        cfg = set_merge_slots(model, cfg, args.merge_slots)
    task = get_task(cfg["task"])
    show = task.presenter
    check_eval_flags(cfg, args.num_slots, args.iters, args.objects, args.split, args.ari_undefined, args.data_path)
    grid, k_names, t_names = task.eval_grid(cfg, args.num_slots, args.iters, args.objects)
    check_out_suffix(args.out, len(grid) > 1)
    n = args.num_images or cfg["data"]["eval_size"]
    preflight_eval(cfg, n, list(dict.fromkeys(s.num_slots for s in grid)), list(dict.fromkeys(s.iters for s in grid)))
    seed = EVAL_SEED if args.seed is None else args.seed
    undefined = args.ari_undefined or cfg["eval"]["ari_undefined"]
    settings = eval_settings(args, ckpt, seed, undefined)
    if merge_applies(cfg):
        settings["merge_slots"] = cfg["model"]["merge_slots"]
    set_pairs = [(key.strip(), value.strip()) for key, value in (t.split("=", 1) for t in args.set or ())]
    settings.update(set_pairs)
    domain = domain_check(args.checkpoint, model, cfg) if args.data_path is not None else None
    results = evaluate_settings(
        model, cfg, grid, split=args.split, num_images=args.num_images, seed=seed, ari_undefined=undefined,
        data_path=args.data_path, domain=domain,
    )  # fmt: skip
    records = []
    for setting, res in zip(grid, results, strict=True):
        print(show.format_eval(res, setting, args.split, cfg))
        records.append({**settings, **show.eval_record(res, setting, cfg)})
    print_domain(results[0].get("domain"))
    extra = eval_extras(n, cfg["data"]["eval_size"], seed, EVAL_SEED, undefined, cfg["eval"]["ari_undefined"],
                        args.data_path)  # fmt: skip
    if merge_applies(cfg) and cfg["model"]["merge_slots"] != trained_merge:
        extra["merge"] = describe_merge(cfg["model"]["merge_slots"])
    extra.update((key.split(".")[-1], value) for key, value in set_pairs)  # ...-eval_spatial_prior0.3 in the name
    single = {**settings, **show.eval_file_row(results[0], records[0])} if len(records) == 1 else None
    save_eval(args, ckpt, k_names, t_names, args.objects, extra, records, single,
              lambda rows, png: show.plot_sweep(rows, png, cfg))  # fmt: skip
    return 0


def print_domain(record: dict | None) -> None:
    """The ``domain:`` line of an evaluation on a data file, and its ``warning:`` when the images are far outside
    the model's training images (:mod:`slotlab.inference.domain`)."""
    from slotlab.inference.domain_eval import record_lines

    if record is None:
        return
    line, warning = record_lines(record)
    print(f"domain: {line}")
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


def check_out_suffix(out: str | Path | None, sweep: bool) -> None:
    """--out must end in .csv for a sweep and in .json for one setting (checked before evaluating)."""
    from slotlab.validate import UsageError

    want = ".csv" if sweep else ".json"
    if out is not None and Path(out).suffix.lower() != want:
        what = "a sweep (several settings) is written as CSV" if sweep else "one setting is written as JSON"
        raise UsageError(f"--out {out}: {what}; give a path ending in {want}")


def eval_settings(args: argparse.Namespace, ckpt: dict, seed: int, undefined: str) -> dict:
    """The settings recorded with every evaluated row."""
    return {
        "checkpoint": str(ckpt["_path"]),
        "step": ckpt.get("global_step"),
        "split": args.split,
        "seed": seed,
        "ari_undefined": undefined,
        "data_path": args.data_path,
    }


def eval_extras(
    n: int, default_n: int, seed: int, default_seed: int, undefined: str, default_undefined: str, data_path
) -> dict:
    """Settings that differ from the run's defaults, for the result file's name."""
    extra: dict = {}
    if n != default_n:
        extra["n"] = n
    if seed != default_seed:
        extra["seed"] = seed
    if undefined != default_undefined:
        extra["ari"] = undefined
    if data_path is not None:
        extra["data-"] = Path(data_path).name
    return extra


def save_eval(
    args: argparse.Namespace,
    ckpt: dict,
    ks: list,
    ts: list,
    objects: list | None,
    extra: dict,
    records: list[dict],
    single: dict | None,
    plot,
) -> None:
    """Write the result file (one setting: JSON; a sweep: CSV + PNG) named after the settings, and append every
    row to evals.jsonl next to it: no earlier result is replaced by another setting's."""
    from slotlab.eval_output import append_records, eval_tag, write_csv_file, write_json_file
    from slotlab.runs import run_dir_of

    base = getattr(args, "out_dir", None) or run_dir_of(ckpt["_path"])  # --pretrained: ./slotlab_out/NAME/
    tag = eval_tag(args.split, ckpt.get("global_step"), ks, ts, objects, extra)
    sweep = len(records) > 1
    out = Path(args.out) if args.out else base / (f"eval_sweep-{tag}.csv" if sweep else f"eval-{tag}.json")
    if sweep:
        replaced = write_csv_file(out, records)
        png = plot(records, out.with_suffix(".png"))
        print(f"{'replaced' if replaced else 'wrote'} {out} and {png}")
    else:
        replaced = write_json_file(out, single if single is not None else records[0])
        print(f"{'replaced (same settings)' if replaced else 'wrote'} {out}")
    print(f"appended {len(records)} row{'s' if sweep else ''} to {append_records(out.parent, records)}")


def cmd_figures(args: argparse.Namespace) -> int:
    from slotlab.figures import make_figures
    from slotlab.mp4 import check_video_format

    check_video_format(args.video_format)  # mp4 without PyAV: said before any work
    if (code := use_pretrained(args, "figures")) is not None:
        return code
    check_figure_flags(args)
    out = Path(args.out) if args.out else None
    paths = make_figures(
        args.checkpoint, out, args.num_images, args.num_slots, args.iters, args.split,
        formats=args.formats or (), video_format=args.video_format, name=getattr(args, "model_name", None),
        merge_slots=args.merge_slots, settings=args.set or (),
    )  # fmt: skip
    for p in paths:
        print(f"wrote {p}")
    if not paths:
        print("no figures: the model's task draws none (its presenter has no figures)")
    elif args.video_format != "gif" and not any(p.suffix == f".{args.video_format}" for p in paths):
        print(f"note: --video-format {args.video_format} applies to animations; this model's figures are images")
    return 0


def check_figure_flags(args: argparse.Namespace) -> None:
    """K / T / split of `slotlab figures` apply to the checkpoint's model, and the model runs with them."""
    from slotlab.config import defaults_for, validate
    from slotlab.inference.checkpoint_io import load_checkpoint
    from slotlab.inference.merge_option import applies as merge_applies
    from slotlab.inference.merge_option import refusal as merge_refusal
    from slotlab.tasks import get_task, task_name
    from slotlab.validate import UsageError, check_eval_flags, preflight_eval

    raw = load_checkpoint(args.checkpoint)["hyper_parameters"].get("config")
    if not isinstance(raw, dict):
        return  # load_model names the problem
    cfg = validate(raw, defaults_for(task_name(raw)))
    k = None if args.num_slots is None else [args.num_slots]
    t = None if args.iters is None else [args.iters]
    check_eval_flags(cfg, k, t, None, args.split)
    if args.set:
        from slotlab.inference.evaluation_keys import evaluation_overrides

        evaluation_overrides(cfg, args.set, prefix="--set ")  # keys and values, before the model is loaded
    if args.merge_slots is not None and not merge_applies(cfg):
        raise UsageError(merge_refusal(cfg))
    if (problem := get_task(cfg["task"]).presenter.figure_problem(cfg)) is not None:
        raise UsageError(problem)
    preflight_eval(cfg, args.num_images, [args.num_slots], [args.iters])


def cmd_report(args: argparse.Namespace) -> int:
    from slotlab.report import write_report

    print(f"wrote {write_report(Path(args.run_dir))}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from slotlab.data.registry import dataset_names, get_dataset

    if args.data_command == "list":
        for name in dataset_names():
            info = get_dataset(name, kind=None)
            print(f"{name:36s} {info.kind:6s} {info.description}")
        return 0
    if args.data_command == "generate":
        from slotlab.data.cache import build

        get_dataset(args.name, kind=None)

        def progress(done: int, total: int) -> None:
            width = 30
            bar = "#" * (width * done // max(total, 1))
            print(f"\r{args.name} {args.split}: [{bar:<{width}}] {done}/{total} shards", end="", flush=True)

        folder = build(args.name, args.split, args.num, args.seed, args.out, args.workers, progress)
        print()
        print(f"{args.num} images in {folder}")
        return 0
    if args.data_command == "compare":
        return cmd_data_compare(args)
    from slotlab.data.preview import preview

    if args.out is not None and args.out.suffix.lower() != ".png":
        print(f"error: --out {args.out}: the preview is a PNG image; give a path ending in .png", file=sys.stderr)
        return 2
    from slotlab.validate import UsageError

    if args.source in dataset_names():
        if args.dataset is not None:
            raise UsageError(f"--dataset applies to a .tfrecords file; {args.source} is a built-in dataset")
    elif Path(args.source).is_file():
        from slotlab.data.tfrecord import dataset_spec

        if args.dataset is None:
            raise UsageError(f"{args.source} is a file: pass --dataset (e.g. tetrominoes, clevr_with_masks)")
        dataset_spec(args.dataset)  # an unknown name raises DatasetFileError naming the known ones
    elif Path(args.source).suffix in (".tfrecords", ".tfrecord") or os.sep in args.source:
        raise UsageError(f"{args.source}: no such file")
    else:
        get_dataset(args.source, kind=None)  # an unknown name: UnknownDatasetError naming the nearest built-in ones
    out = preview(args.source, args.dataset, args.num, args.seed, args.out)
    print(f"wrote {out}")
    return 0


def cmd_data_compare(args: argparse.Namespace) -> int:
    """``slotlab data compare``: the report of :mod:`slotlab.data.clevr_compare_report` and, with ``--model``, the
    model's transfer check (:mod:`slotlab.inference.transfer`; set prediction: AP on real vs built-in renders)."""
    from slotlab.data.clevr_compare_report import compare_renders
    from slotlab.validate import UsageError

    if args.out is not None and args.out.suffix.lower() != ".png":
        raise UsageError(f"--out {args.out}: the picture is a PNG image; give a path ending in .png")
    check = None
    variant = args.variant or "clevr10"
    stream, stream_name = (0 if args.seed is None else args.seed), None
    if args.model is not None:
        from slotlab.inference.loading import load_model
        from slotlab.inference.transfer import builtin_stream, require_scenes, transfer_check
        from slotlab.tasks import get_task
        from slotlab.zoo import resolve_model

        if args.seed is not None:
            raise UsageError("--seed: with --model the built-in renders are the model's own test split (held out from "
                             "its training); leave --seed out")  # fmt: skip
        if args.split != "val":
            raise UsageError(f"--split {args.split}: the transfer check (--model) scores the val scenes, as "
                             "`slotlab eval --data-path` does")  # fmt: skip
        model, cfg, _ = load_model(resolve_model(args.model))
        task = get_task(cfg["task"])
        check = task.transfer_check(model, cfg)
        if check is None:
            raise UsageError(f"--model {args.model}: this is {task.adjective} model, which has no transfer check "
                             "(a set-prediction model has one)")  # fmt: skip
        require_scenes(args.real)
        variant = args.variant or check.variant
        stream, stream_name = builtin_stream(cfg)
        if variant != check.variant:
            raise UsageError(f"--variant {variant}: the model {args.model} predicts {check.variant} scenes; "
                             "the transfer check renders its variant (leave --variant out)")  # fmt: skip
    report = compare_renders(
        args.real, split=args.split, num=args.num, variant=variant, seed=stream, out=args.out, rows=args.rows,
        stream_name=stream_name,
    )  # fmt: skip
    print(report.text)
    if check is not None:
        print()
        print(transfer_check(model, cfg, args.real, report.renders, stream).text())
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
    if command == "eval" and args.split is None:  # scores of zoo models are measured on images that chose nothing
        args.split = "test" if args.pretrained is not None else "eval"
        from slotlab.data.clevr_folder import is_clevr_folder

        if args.data_path is not None and is_clevr_folder(args.data_path):
            args.split = "eval"  # CLEVR v1.0 ships scenes for val, not test: its held-out split is val
    if args.pretrained is None:
        if args.checkpoint is None:
            print(f"error: slotlab {command}: give a checkpoint or run folder, or --pretrained NAME", file=sys.stderr)
            return 2
        return None
    if args.checkpoint is not None:
        print(f"error: give a checkpoint ({args.checkpoint}) or --pretrained NAME, not both", file=sys.stderr)
        return 2
    from slotlab.zoo import get_model, output_dir, resolve_model

    entry = get_model(args.pretrained)
    args.checkpoint = str(resolve_model(entry.name))  # the entry's folder, its weights checked against the card
    args.model_name = f"{entry.name} (zoo)"
    if args.out is None:
        folder = output_dir(entry.name)
        if command == "eval":
            args.out_dir = folder  # save_eval names the file after the settings there, as in a run folder
        else:
            args.out = str(folder)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"zoo model {entry.name} ({entry.source}): writing to {folder}/ (zoo folders are never written to)")
    return None


def cmd_export(args: argparse.Namespace) -> int:
    from slotlab.inference.api import load_model
    from slotlab.inference.export import FORMATS, export_model, export_spec
    from slotlab.validate import UsageError
    from slotlab.zoo import OUTPUT_ROOT

    model = load_model(args.model)
    spec = export_spec(model, args.frames)  # what the program takes, in words (and --frames checked)
    out = args.out or Path(OUTPUT_ROOT) / f"{Path(args.model).name}{FORMATS[args.export_format]}"
    if Path(out).exists():
        raise UsageError(f"{out} exists; choose another --out (slotlab never replaces a file it did not just write)")
    path = export_model(model, args.export_format, out, args.frames)
    print(f"wrote {path} ({args.export_format}; {spec.about})")
    return 0


def cmd_models(_: argparse.Namespace) -> int:
    from slotlab.zoo import scan_zoo, zoo_dirs

    entries, problems = scan_zoo()
    for line in problems:
        print(f"warning: {line}", file=sys.stderr)
    if not entries:
        print(f"no models in the zoo yet (searched: {', '.join(str(d) for d in zoo_dirs())})")
        return 0
    w = max(28, *(len(e.name) for e in entries))  # the name column fits the longest name
    print(f"{'name':{w}s} {'task':17s} {'dataset':18s} {'score':26s} {'size':>8s}  paper")
    for e in entries:
        metric, value = e.score()
        std = (e.card.get("scores") or {}).get("std")
        score = f"{metric} {value:.4f}" if isinstance(value, int | float) else f"{metric} ?"
        score += f" +- {std:.4f}" if isinstance(std, int | float) else ""
        paper = e.card.get("paper") or {}
        paper_text = f"{paper.get('metric', '')} {paper.get('value', '')}".strip() or "-"
        where = "" if e.source == "package" else f"  [{e.source}]"
        print(
            f"{e.name:{w}s} {e.task:17s} {e.dataset:18s} {score:26s} {e.size_bytes / 1e6:6.2f} MB  {paper_text}{where}"
        )
    print("use: slotlab eval --pretrained NAME, slotlab figures --pretrained NAME, slotlab segment IMAGE --model NAME")
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    from slotlab.inference.evaluation_keys import set_evaluation_options
    from slotlab.inference.merge_option import set_merge_slots
    from slotlab.segment import (
        SegmentInputError,
        SegmentModelError,
        check_model_runs,
        load_segment_model,
        segment_file,
        unique_stems,
    )
    from slotlab.tasks.common import EVAL_SEED
    from slotlab.zoo import resolve_model

    try:
        sm = load_segment_model(resolve_model(args.model))
        if args.set:
            sm.cfg = set_evaluation_options(sm.model, sm.cfg, args.set)
        if args.merge_slots is not None:
            sm.cfg = set_merge_slots(sm.model, sm.cfg, args.merge_slots)
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
    for path, stem in zip(args.images, unique_stems(args.images, out), strict=True):
        if stem != (Path(path).stem or "image"):
            print(f"note: {path}: writing {stem}_* (another input's or an earlier call's outputs use its name)")
        try:
            res = segment_file(sm, path, out, stem, args.num_slots, args.iters, seed, args.formats or ())
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
        if res.domain is not None:
            print(
                f"{'warning' if res.far_outside else '  domain'}: {path}: {res.domain}",
                file=sys.stderr if res.far_outside else sys.stdout,
            )
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
    from slotlab.train.runtime import tensorboard_without_tensorflow

    tensorboard_without_tensorflow()  # TensorBoard logs need no TensorFlow import (see its docstring)
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
        "export": cmd_export,
    }
    try:
        return commands[args.command](args)
    except UserError as e:
        # Input the user must fix, named where it was checked: one line, exit status 2 (SLOTLAB_DEBUG=1 also
        # shows where it was raised).
        if os.environ.get("SLOTLAB_DEBUG"):
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception:
        # Anything else is a bug: never disguised as the user's mistake.
        traceback.print_exc()
        print(BUG_NOTE, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
