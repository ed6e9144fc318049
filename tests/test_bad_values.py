"""The generated bad-value grid: wrong values for every key of both config schemas and for every flag and positional
argument of every subcommand, derived from the schemas (``DEFAULTS``, ``defaults_for("set_prediction")``) and from the
argparse parser, each run in-process through ``slotlab.cli.main``.

Every case must end with ``error: ...`` on stderr and exit status 2, without a traceback, and before any data or
model is built: the functions that do the work (training, loading data, evaluating, drawing, generating) are
replaced by a sentinel, and a case that reaches one fails. A key or flag added later without a range check or
without bad values here fails ``test_every_key_and_flag_is_covered``.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import traceback
from pathlib import Path

import pytest
import torch
from conftest import TINY_OD, TINY_SP

from slotlab.cli import build_parser, main
from slotlab.config import _FLEXIBLE, DEFAULTS, defaults_for
from slotlab.validate import RULES, leaves

CLEVR_SCENES = Path(__file__).parent / "fixtures" / "clevr_real" / "CLEVR_val_scenes.json"
SCHEMAS = {"od": DEFAULTS, "sp": defaults_for("set_prediction")}
BASE = {"od": ["train", *TINY_OD, "trainer.max_steps=2"], "sp": ["train", *TINY_SP, "trainer.max_steps=2"]}

# What starts real work; the grid replaces each by a sentinel.
WORK = [
    ("slotlab.train.fit", "train"),
    ("slotlab.data.datamodule", "data_from_config"),
    ("slotlab.evaluate", "evaluate_settings"),
    ("slotlab.figures", "make_figures"),
    ("slotlab.data.cache", "build"),
    ("slotlab.data.preview", "preview"),
    ("slotlab.data.clevr_render", "generate"),
]

# ------------------------------------------------------------------------------------------ config grid
NULLABLE = {k for k, types in _FLEXIBLE.items() if type(None) in types}
# Values of the generic lists below that are valid for a key (0 seeds, no warmup, ...): left out of the grid.
VALID = {
    ("seed", "0"),
    ("data.seed", "0"),
    ("data.workers", "0"),
    ("optim.warmup_steps", "0"),
    ("optim.cooldown_steps", "0"),  # 0 = no cooldown
    ("trainer.failed_seed_after", "0"),
    ("trainer.failed_seed_restarts", "0"),
    ("model.slot_attention.eps", "0"),
    ("model.decoder_fourier_bands", "0"),  # 0 = the paper's linear grid
    ("model.encoder_fourier_bands", "0"),  # 0 = the paper's linear grid
    ("trainer.channels_last", "true"),
    ("trainer.compile", "true"),  # its default is the string "auto"; true and false are valid too
    ("run.root", "bogus"),  # a relative folder name
}
# Path- and name-like keys: values that are strings of the right type but unusable.
PATH_VALUES = {
    "run.name": ["a/b", "..", ".", "x" * 300],
    "run.root": ["{FILE}/runs"],
}
# Bad combinations and machine-dependent values (several overrides per case).
EXTRA = {
    "od": [
        ["data.path={MISSING}"],
        ["data.path={DIR}"],
        ["data.name=clevr6", "data.cache_dir={FILE}"],
        ["model.decoder=clevr"],  # 35x35 images, a 16x upsampling decoder
        ["data.batch_size=128", "data.train_size=100"],
        ["data.batch_size=9", "trainer.devices=2", "trainer.accelerator=cpu"],
        ["trainer.devices=[0, 1]", "trainer.accelerator=cpu"],
        ["trainer.precision=64-true"],
        ["trainer.precision=bf16-true"],
        ["data.train_size=1000000000", "data.batch_size=8"],  # terabytes of images: refused before allocating
        ["model.slot_attention.slot_init=per_slot", "model.kind=slot_mlp", "model.slot_mlp.grid=200"],
    ],
    "sp": [
        ["data.source=clevr_folder", "data.path=null"],
        ["data.source=clevr_folder", "data.path={MISSING}"],
        ["data.source=clevr_folder", "data.path={FILE}"],
        ["data.cache_dir={FILE}"],
        ["model.num_slots=7"],  # clevr6 has 6 target rows
        ["model.encoder_strides=[1, 2]"],  # 4 encoder layers
        ["data.batch_size=6", "trainer.devices=4", "trainer.accelerator=cpu"],
        ["trainer.precision=16-true"],
        ["data.train_size=1000000000"],
    ],
}
if not torch.cuda.is_available():
    EXTRA["od"].append(["trainer.accelerator=gpu"])
    EXTRA["sp"].append(["trainer.accelerator=cuda", "trainer.devices=2"])
if not torch.backends.mps.is_available():
    EXTRA["od"].append(["trainer.accelerator=mps"])


def config_values(path: str, default: object) -> list[str]:
    """Generic wrong values for a key with this default: wrong types, out of range (0, -1, huge, nan, inf), empty."""
    if isinstance(default, bool):
        values = ["2", "0.5", "abc", "[1]", "{a: 1}", "''"]
    elif isinstance(default, int):
        values = ["-1", "0", "1000000000000", "1.5", ".nan", "true", "abc", "[1]", "''"]
    elif isinstance(default, float):
        values = ["-1", "0", "1e12", ".nan", ".inf", "-.inf", "true", "abc", "[1]", "''"]
    elif isinstance(default, list):
        values = ["[]", "[0]", "[-1]", "[1000000000000]", "[1.5]", "[true]", "[a]", "abc", "1", "''"]
    elif isinstance(default, str):
        values = ["bogus", "1", "true", "[1]", "{a: 1}", "''"]
    elif any(t in _FLEXIBLE.get(path, ()) for t in (int, float)):  # an optional number
        values = ["-1", "0", "1e12", ".nan", ".inf", "abc", "[1]", "true"]
    else:  # an optional path or name
        values = ["1", "true", "[1]", "{a: 1}"]
    values += PATH_VALUES.get(path, [])
    if path in NULLABLE or default is None:
        values = [v for v in values if v != "''"]  # empty = null: allowed
    return [v for v in values if (path, v) not in VALID]


def config_cases(task: str) -> list[list[str]]:
    cases = [[f"{path}={v}"] for path, default in leaves(SCHEMAS[task]).items() for v in config_values(path, default)]
    return cases + EXTRA[task]


# --------------------------------------------------------------------------------------------- CLI grid
def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, its parser) of every subcommand, nested ones included."""
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield from commands(sub, (*path, name))
            return
    yield path, parser


def arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


# A valid command line per subcommand; {NAME} is filled from the slots (a positional's dest) or a path below.
TEMPLATES: dict[tuple[str, ...], tuple[list[str], dict[str, list[str]]]] = {
    ("train",): (["train", "{overrides}"], {"overrides": ["run.root={TMP}/runs"]}),
    ("eval",): (["eval", "{checkpoint}"], {"checkpoint": ["{OD}", "{SP}"]}),
    ("figures",): (["figures", "{checkpoint}"], {"checkpoint": ["{OD}", "{SP}"]}),
    ("report",): (["report", "{run_dir}"], {"run_dir": ["{OD}"]}),
    ("data", "generate"): (["data", "generate", "{name}", "--num", "4"], {"name": ["tetrominoes"]}),
    ("data", "show"): (["data", "show", "{source}"], {"source": ["tetrominoes"]}),
    ("data", "list"): (["data", "list"], {}),
    ("data", "compare"): (["data", "compare", "{real}"], {"real": ["{CLEVR}"]}),
    ("configs",): (["configs"], {}),
    ("models",): (["models"], {}),
    ("import-official",): (
        ["import-official", "{task}", "{checkpoint}", "--out", "{TMP}/imported"],
        {"task": ["object_discovery"], "checkpoint": ["{MISSING}"]},
    ),
    ("segment",): (["segment", "{images}", "--model", "{OD}"], {"images": ["{PNG}"]}),
    ("export",): (["export", "{model}", "--out", "{TMP}/m.pt2"], {"model": ["{OD}"]}),
}
# Bad values of --set KEY=VALUE (eval, figures, segment: keys that act at evaluation only).
SET_BAD = [
    "",
    "=1",
    "bogus=1",
    "model.iters=5",  # a training key: it would describe a model that was not trained
    "model.train_spatial_prior=0.3",  # a training key too
    "model.eval_spatial_prior",
    "model.eval_spatial_prior=-1",
    "model.eval_spatial_prior=0",
    "model.eval_spatial_prior=abc",
    "model.eval_spatial_prior=[1]",
    "model.eval_spatial_prior=1e9",
    "model.eval_iters=0",
    "model.merge_slots=2",
]
# Bad values of arguments whose type is a plain string (names, paths), per (command, dest).
STRING_BAD = {
    ("train", "config"): ["bogus_config", "{MISSING}.yaml", "{BADYAML}", "{LISTYAML}", "{DIR}"],
    ("train", "resume"): ["{MISSING}", "{FILE}", "{DIR}", "{BADRUN}"],
    ("train", "overrides"): ["novalue", "=1", "optim.lrr=1", "optim.lr=[", "model=3", "optim.lr.x=1", "seed=-1"],
    ("eval", "checkpoint"): ["{MISSING}", "{FILE}", "{DIR}", "{MISSING}.ckpt"],
    ("eval", "pretrained"): ["bogus"],
    ("eval", "data_path"): ["{MISSING}"],
    ("figures", "checkpoint"): ["{MISSING}", "{FILE}", "{DIR}"],
    ("figures", "pretrained"): ["bogus"],
    ("report", "run_dir"): ["{MISSING}", "{FILE}", "{DIR}"],
    ("eval", "set"): SET_BAD,
    ("figures", "set"): SET_BAD,
    ("segment", "set"): SET_BAD,
    ("data generate", "name"): ["bogus", ""],
    ("data show", "source"): ["bogus", "{MISSING}.tfrecords", "{FILE}"],
    ("data show", "dataset"): ["bogus"],
    ("data compare", "real"): ["{MISSING}", "{FILE}", "{DIR}"],
    ("data compare", "split"): ["bogus", "", "test"],
    ("data compare", "model"): ["bogus", "{MISSING}.ckpt", "{FILE}", "{OD}"],
    ("import-official", "checkpoint"): ["{MISSING}", "{FILE}"],
    ("import-official", "out"): ["{FILE}", "{NONEMPTY}"],
    ("segment", "images"): ["{MISSING}.png", "{FILE}"],
    ("segment", "model"): ["bogus", "{MISSING}.ckpt"],
    ("segment", "out"): ["{FILE}"],
    ("export", "model"): ["bogus", "{MISSING}.ckpt", "{FILE}", "{DIR}"],
}
EXTRA_CLI = [
    ["eval", "{OD}", "--objects", "3"],  # set prediction only
    ["eval", "{OD}", "--data-path", "{DIR}"],  # a folder, not a .tfrecords file
    ["eval", "{SP}", "--data-path", "{FILE}"],  # a file, not a CLEVR folder
    ["eval", "{SP}", "--objects", "9"],  # CLEVR6 scenes have 3 to 6 objects
    ["eval", "{OD}", "--iters", "1,2", "--out", "{TMP}/x.json"],  # a sweep is CSV
    ["eval", "{OD}", "--out", "{TMP}/x.csv"],  # one setting is JSON
    ["eval", "{OD}", "--num-images", "1000000000"],  # terabytes of images
    ["eval", "{SP}", "--merge-slots", "0.9"],  # object discovery only
    ["eval", "{SP}", "--set", "model.eval_spatial_prior=0.3"],  # object discovery only
    ["figures", "{SP}", "--merge-slots", "off"],  # object discovery only
    ["figures", "{SP}", "--set", "model.eval_spatial_prior=0.3"],  # object discovery only
    ["segment", "{PNG}", "--model", "{SP}", "--set", "model.eval_spatial_prior=0.3"],  # object discovery only
    ["segment", "{FILE}", "--model", "{SP}", "--merge-slots", "0.9"],  # object discovery only
    ["train", "--config", "tetrominoes_quick", "--resume", "{OD}"],  # --config does not apply to a resume
    ["data", "show", "tetrominoes", "--out", "{TMP}/x.txt"],  # a PNG
    ["data", "compare", "{CLEVR}", "--out", "{TMP}/x.jpg"],  # a PNG
    ["data", "compare", "{TMP}", "--model", "{SP}"],  # a folder of PNGs: no scene JSON to score against
    ["data", "compare", "{CLEVR}", "--model", "{SP}", "--variant", "clevr10"],  # the model's variant is clevr6
]


def _range(action: argparse.Action) -> tuple[int, int] | None:
    name = getattr(action.type, "__name__", "")
    if "integer" in name and ".." in name:
        lo, hi = name.split()[-1].split("..")
        return int(lo), int(hi)
    return None


def flag_values(cmd: tuple[str, ...], action: argparse.Action) -> list[str]:
    """Bad values of one argument: from its choices, its type (ranges, output paths), or STRING_BAD."""
    key = (" ".join(cmd), action.dest)
    if key in STRING_BAD:
        return STRING_BAD[key]
    if action.choices:
        return ["bogus", ""]
    name = getattr(action.type, "__name__", "")
    if (r := _range(action)) is not None:
        lo, hi = r
        values = ["", "abc", "1.5", "nan", "1e3", str(lo - 1), str(hi + 1), str(10**12), "-1"]
        if name.startswith("list"):
            values += [",", "1,,2", "2,2", "1,x"]
        return list(dict.fromkeys(v for v in values if v != "0" or lo > 0))
    if name == "merge_slots_arg":
        return ["", "abc", "0", "-0.5", "1.01", "nan", "inf", "1e3", "0.9,0.95"]
    if name == "out_file_arg":
        return ["", "{DIR}", "{MISSING}/x.json", "{FILE}/x.json"]
    if name == "out_dir_arg":
        return ["", "{FILE}", "{FILE}/sub"]
    return []


def cli_cases() -> list[list[str]]:
    cases = []
    for cmd, parser in commands(build_parser()):
        template, slots = TEMPLATES[cmd]
        for action in arguments(parser):
            for value in flag_values(cmd, action):
                if action.option_strings:
                    for filled in fill_slots(template, slots):
                        cases.append([*filled, action.option_strings[0], value])
                else:
                    cases += fill_slots(template, {**slots, action.dest: [value]})
    return cases + EXTRA_CLI


def fill_slots(template: list[str], slots: dict[str, list[str]]) -> list[list[str]]:
    out = [[]]
    for part in template:
        names = [n for n in slots if part == "{" + n + "}"]
        choices = slots[names[0]] if names else [part]
        out = [[*argv, c] for argv in out for c in choices]
    return out


# ------------------------------------------------------------------------------------------------ running
class ReachedWork(BaseException):
    """A bad value got past validation to the work (a BaseException: the CLI reports any Exception as a bug,
    exit 1, and this must reach the test instead)."""


@pytest.fixture
def paths(tmp_path, monkeypatch, tiny_od_run, tiny_sp_run) -> dict[str, str]:
    """Placeholders of the grid, with the work functions replaced by a sentinel."""
    for module, name in WORK:

        def sentinel(*args, _where=f"{module}.{name}", **kwargs):
            raise ReachedWork(_where)

        monkeypatch.setattr(importlib.import_module(module), name, sentinel)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLOTLAB_CACHE", str(tmp_path / "cache"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_bytes(b"not what was asked for")
    (tmp_path / "bad.yaml").write_text("seed: [unclosed\n")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "badrun").mkdir()
    (tmp_path / "badrun" / "config.yaml").write_text("{{{")
    (tmp_path / "nonempty").mkdir()
    (tmp_path / "nonempty" / "x").write_text("x")
    from PIL import Image

    Image.new("RGB", (35, 35)).save(tmp_path / "img.png")
    clevr = tmp_path / "clevr"  # a CLEVR v1.0 folder of one scene (the real scene of tests/fixtures/clevr_real)
    (clevr / "images" / "val").mkdir(parents=True)
    (clevr / "scenes").mkdir()
    scene = json.loads(CLEVR_SCENES.read_text())["scenes"][0]
    (clevr / "scenes" / "CLEVR_val_scenes.json").write_text(json.dumps({"scenes": [scene]}))
    Image.new("RGB", (320, 240)).save(clevr / "images" / "val" / scene["image_filename"])
    return {
        "TMP": str(tmp_path),
        "FILE": str(tmp_path / "file"),
        "DIR": str(tmp_path / "empty"),
        "MISSING": str(tmp_path / "missing"),
        "BADYAML": str(tmp_path / "bad.yaml"),
        "LISTYAML": str(tmp_path / "list.yaml"),
        "BADRUN": str(tmp_path / "badrun"),
        "NONEMPTY": str(tmp_path / "nonempty"),
        "PNG": str(tmp_path / "img.png"),
        "CLEVR": str(clevr),
        "OD": str(tiny_od_run),
        "SP": str(tiny_sp_run),
    }


def run_case(argv: list[str], capsys) -> str | None:
    """None when ``argv`` ends in `error: ...` with exit status 2 and no traceback, else what went wrong."""
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    except ReachedWork as e:
        return f"reached the work ({e}) without an error"
    except BaseException:
        buf = io.StringIO()
        traceback.print_exc(file=buf)
        return "traceback: " + buf.getvalue().strip().splitlines()[-1]
    out, err = capsys.readouterr()
    if rc != 2 or "error:" not in err or "Traceback" in out + err:
        return f"exit {rc}, stderr {err.strip()[-300:]!r}"
    return None


def fill(argv: list[str], paths: dict[str, str]) -> list[str]:
    return [a.format(**paths) if "{" in a and "}" in a and "{a: 1}" not in a else a for a in argv]


def check_grid(cases: list[list[str]], paths: dict[str, str], capsys) -> int:
    failures = []
    for case in cases:
        argv = fill(case, paths)
        problem = run_case(argv, capsys)
        if problem:
            failures.append(f"slotlab {' '.join(argv)}\n    -> {problem}")
    assert not failures, f"{len(failures)} of {len(cases)} bad inputs not refused cleanly:\n" + "\n".join(failures)
    return len(cases)


@pytest.mark.parametrize("task", ["od", "sp"])
def test_config_grid(task, paths, capsys):
    """Every key of the task's schema with wrong types and out-of-range values, plus bad combinations."""
    base = [*fill(BASE[task], paths), f"run.root={paths['TMP']}/runs"]
    sane = run_case([*base, f"run.root={paths['TMP']}/base"], capsys)
    assert sane == "reached the work (slotlab.train.fit.train) without an error"  # the base is valid
    n = check_grid([[*base, *case] for case in config_cases(task)], paths, capsys)
    assert n > 300
    assert not list(Path(paths["TMP"], "runs").glob("*")), "a refused run left a run folder"


def test_cli_grid(paths, capsys):
    """Every flag and positional of every subcommand with bad values (types, ranges, paths, names)."""
    valid = [
        ["eval", "{OD}"],
        ["eval", "{SP}"],
        ["figures", "{OD}"],
        ["figures", "{SP}"],
        ["data", "generate", "tetrominoes", "--num", "4"],
        ["data", "show", "tetrominoes"],
        ["data", "compare", "{CLEVR}", "--model", "{SP}"],
    ]
    for argv in valid:  # the templates are valid: the grid's refusals come from the bad values
        assert run_case(fill(argv, paths), capsys).startswith("reached the work"), argv
    assert check_grid(cli_cases(), paths, capsys) > 150


def test_every_key_and_flag_is_covered():
    """A schema key without a rule, or a CLI argument without bad values, would escape the grid."""
    for task, schema in SCHEMAS.items():
        missing = [p for p in leaves(schema) if p not in RULES]
        assert not missing, f"config keys of {task} without a rule in slotlab.validate.RULES: {missing}"
        assert all(config_values(p, d) for p, d in leaves(schema).items())
    uncovered = []
    for cmd, parser in commands(build_parser()):
        assert cmd in TEMPLATES, f"no template for `slotlab {' '.join(cmd)}` in this test"
        uncovered += [f"{' '.join(cmd)} {a.dest}" for a in arguments(parser) if not flag_values(cmd, a)]
    assert not uncovered, f"CLI arguments without bad values in this grid: {uncovered}"


def grid_size() -> dict[str, int]:
    """Number of generated cases (for the README / closing notes)."""
    return {"config od": len(config_cases("od")), "config sp": len(config_cases("sp")), "cli": len(cli_cases())}
