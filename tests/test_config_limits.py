"""Configs that expand or nest without limit (issue 25, item 7): YAML alias bombs, deep nesting, recursive aliases,
huge files and ``base:`` chains that loop or run long are refused fast (well under a second, a few MB) with a
ConfigError naming the file and the limit, through every way a config is read: ``--config`` (and its ``base:``
chain), ``key=value`` overrides, a run's ``config.yaml`` on ``--resume`` and in ``slotlab report``, and the
config stored in a checkpoint."""

from __future__ import annotations

import time
import tracemalloc

import pytest
import torch
from conftest import copy_run

from slotlab.cli import main
from slotlab.config import load_config
from slotlab.config_limits import MAX_BASE_CHAIN, MAX_DEPTH, MAX_VALUES, check_structure
from slotlab.errors import ConfigError


def laughs(levels: int = 9) -> str:
    """A "billion laughs" value: 10**levels strings once expanded, a few hundred bytes as YAML."""
    items = ["&a0 [x, x, x, x, x, x, x, x, x, x]"]
    items += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "[" + ", ".join(items) + "]"


DEEP_LIST = "[" * 100_000 + "]" * 100_000
DEEP_MAP = "{a: " * 100_000 + "1" + "}" * 100_000

BAD_FILES = {
    "laughs": (f"seed: {laughs()}\n", f"more than {MAX_VALUES} values"),
    "deep list": (f"seed: {DEEP_LIST}\n", f"nested deeper than {MAX_DEPTH} levels"),
    "deep mapping": (f"optim: {DEEP_MAP}\n", f"nested deeper than {MAX_DEPTH} levels"),
    "recursive alias": ("optim: &x {lr: 1, sub: *x}\n", "the alias \\*x is inside the value it names"),
    "many aliases": ("seed: [&a 1, " + ", ".join(["*a"] * 2000) + "]\n", "more than 1000 YAML aliases"),
    "huge file": ("# " + "x" * (2 << 20) + "\nseed: 1\n", "larger than 1048576 bytes"),
}


def refused_fast(fn, match: str) -> ConfigError:
    """``fn()`` raises a ConfigError matching ``match`` in under 2 s and 50 MB of Python allocations."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(ConfigError, match=match) as info:
            fn()
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 2.0, f"took {elapsed:.1f} s"
    assert peak < 50 << 20, f"allocated {peak >> 20} MB"
    return info.value


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_config_file_over_a_limit_is_refused_fast(kind, tmp_path):
    text, match = BAD_FILES[kind]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    err = refused_fast(lambda: load_config(str(path)), match)
    assert str(path) in str(err)


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_base_file_over_a_limit_is_refused_naming_it(kind, tmp_path):
    text, match = BAD_FILES[kind]
    (tmp_path / "bad_base.yaml").write_text(text)
    (tmp_path / "top.yaml").write_text("base: bad_base.yaml\nseed: 1\n")
    err = refused_fast(lambda: load_config(str(tmp_path / "top.yaml")), match)
    assert str(tmp_path / "bad_base.yaml") in str(err)


def test_base_chains_that_loop_are_refused(tmp_path):
    (tmp_path / "self.yaml").write_text("base: self.yaml\n")
    refused_fast(lambda: load_config(str(tmp_path / "self.yaml")), r"makes a loop \(.*self.yaml -> .*self.yaml\)")
    (tmp_path / "a.yaml").write_text("base: b.yaml\nseed: 1\n")
    (tmp_path / "b.yaml").write_text("base: ./a.yaml\nseed: 2\n")  # another spelling of the same file
    err = refused_fast(lambda: load_config(str(tmp_path / "a.yaml")), "makes a loop")
    assert "a.yaml -> " in str(err) and "b.yaml -> " in str(err)


def test_long_base_chain_is_refused(tmp_path):
    n = 3 * MAX_BASE_CHAIN
    for i in range(n):
        (tmp_path / f"c{i}.yaml").write_text(f"base: c{i + 1}.yaml\n" if i < n - 1 else "seed: 1\n")
    refused_fast(lambda: load_config(str(tmp_path / "c0.yaml")), f"chain of more than {MAX_BASE_CHAIN} files")
    # a chain within the limit still loads, the nearest file winning
    (tmp_path / f"c{MAX_BASE_CHAIN - 1}.yaml").write_text("seed: 7\n")
    (tmp_path / "c0.yaml").write_text("base: c1.yaml\n")
    assert load_config(str(tmp_path / "c0.yaml"))["seed"] == 7


def test_base_that_is_not_a_name_is_refused(tmp_path):
    (tmp_path / "x.yaml").write_text("base: [1, 2]\n")
    refused_fast(lambda: load_config(str(tmp_path / "x.yaml")), "base must be a config name or a path")


def test_config_that_is_not_a_regular_text_file(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    refused_fast(lambda: load_config(str(tmp_path / "dir.yaml")), "not a regular file")
    (tmp_path / "bin.yaml").write_bytes(b"seed: \xff\xfe\n")
    refused_fast(lambda: load_config(str(tmp_path / "bin.yaml")), "not a text \\(UTF-8\\) file")


@pytest.mark.parametrize(
    ("override", "match"),
    [
        (f"seed={laughs()}", f"more than {MAX_VALUES} values"),
        (f"seed={DEEP_LIST}", f"nested deeper than {MAX_DEPTH} levels"),
        ("seed=&x [*x]", "the alias \\*x is inside the value it names"),
        ("." * 100 + "x=1", f"more than {MAX_DEPTH} levels"),
    ],
)
def test_override_over_a_limit_is_refused_fast(override, match):
    err = refused_fast(lambda: load_config("tetrominoes_quick", [override]), match)
    assert str(err).startswith("override ") and len(str(err)) < 400  # the override is named, shortened


@pytest.mark.parametrize("kind", ["laughs", "deep list", "recursive alias"])
def test_cli_says_error_and_exits_2(kind, tmp_path, capsys):
    text, match = BAD_FILES[kind]
    (tmp_path / "bad.yaml").write_text(text)
    assert main(["train", "--config", str(tmp_path / "bad.yaml"), f"run.root={tmp_path}/runs"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and str(tmp_path / "bad.yaml") in err
    assert not (tmp_path / "runs").exists()


def test_resume_and_report_refuse_a_bomb_in_config_yaml(tiny_od_run, tmp_path, capsys):
    run = copy_run(tiny_od_run, tmp_path / "run")
    (run / "config.yaml").write_text(f"seed: {laughs()}\n")
    assert main(["train", "--resume", str(run), "trainer.max_steps=8"]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'config.yaml'}: its aliases expand to more than {MAX_VALUES} values" in err
    assert main(["report", str(run)]) == 2
    assert f"{run / 'config.yaml'}: its aliases expand" in capsys.readouterr().err


def test_resume_refuses_a_bomb_in_the_checkpoint_config(tiny_od_run, tmp_path, capsys):
    """A checkpoint's pickled config can share one list 10**9 times (pickle keeps shared references): refused
    before it is compared with config.yaml or printed."""
    run = copy_run(tiny_od_run, tmp_path / "run")
    for path in (run / "checkpoints").glob("*.ckpt"):
        ckpt = torch.load(path, weights_only=False)
        bomb: list = ["x"] * 10
        for _ in range(8):
            bomb = [bomb] * 10
        ckpt["hyper_parameters"]["config"]["seed"] = bomb
        torch.save(ckpt, path)
    assert main(["train", "--resume", str(run), "trainer.max_steps=8"]) == 2
    err = capsys.readouterr().err
    assert f"the config stored in {run / 'checkpoints' / 'last.ckpt'}: more than {MAX_VALUES} values" in err


def test_check_structure_counts_shared_and_nested_values():
    deep: list = []
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(ConfigError, match="nested deeper"):
        check_structure({"seed": deep}, "x")
    loop: dict = {}
    loop["a"] = loop
    with pytest.raises(ConfigError, match="contains itself"):
        check_structure(loop, "x")
    check_structure(load_config("clevr6_set_prediction"), "x")  # a real config passes


def test_every_packaged_config_is_within_the_limits():
    from slotlab.config import available_configs

    for name in available_configs():
        load_config(name)
