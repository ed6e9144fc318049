"""Config loading: defaults = paper, inheritance, overrides, and clear errors for bad keys and values."""

import math

import pytest

from slotlab.config import ConfigError, load_config
from slotlab.train.schedule import lr_factor


def test_paper_defaults():
    cfg = load_config("tetrominoes")
    assert cfg["optim"] == {
        "lr": 4e-4,
        "warmup_steps": 10000,
        "decay_rate": 0.5,
        "decay_steps": 100000,
        "schedule": "exponential",  # the paper's decay (cosine: SAVi's)
        "cooldown_steps": 0,  # no cooldown in the paper
        "grad_clip": None,
        "ema_decay": None,  # no weight averaging in the paper
    }
    assert cfg["trainer"]["compile"] == "auto"  # a runtime choice (the same function), on for long runs
    assert cfg["data"]["batch_size"] == 64 and cfg["model"]["num_slots"] == 4 and cfg["model"]["iters"] == 3
    assert cfg["trainer"]["max_steps"] == 500000
    assert cfg["model"]["slot_attention"]["softmax_axis"] == "slots"


def test_inheritance_and_overrides():
    cfg = load_config("tetrominoes_quick", ["optim.lr=2e-4", "model.num_slots=5", "trainer.max_minutes=3"])
    assert cfg["optim"]["lr"] == 2e-4 and cfg["model"]["num_slots"] == 5
    assert cfg["optim"]["decay_rate"] == 0.5  # inherited from the defaults
    assert cfg["trainer"]["max_minutes"] == 3


def test_unknown_key_suggests_nearest():
    with pytest.raises(ConfigError, match=r"unknown config key 'optim.lrr'.*Did you mean optim.lr\?"):
        load_config("tetrominoes", ["optim.lrr=1"])


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match="model.num_slots.*must be int"):
        load_config("tetrominoes", ["model.num_slots=four"])
    with pytest.raises(ConfigError, match="must be >= 1"):
        load_config("tetrominoes", ["model.iters=0"])
    with pytest.raises(ConfigError, match="larger than the dataset"):
        load_config("tetrominoes", ["data.batch_size=128", "data.train_size=100"])


def test_missing_config_suggests_name():
    with pytest.raises(ConfigError, match="tetrominoes_quick"):
        load_config("tetrominoes_quik")


def test_schedule_matches_reference_formula():
    assert lr_factor(0, 10000, 0.5, 100000) == 0.0
    assert lr_factor(5000, 10000, 0.5, 100000) == pytest.approx(0.5 * 0.5**0.05)
    assert lr_factor(100000, 10000, 0.5, 100000) == pytest.approx(0.5)
    assert lr_factor(0, 0, 0.5, 100000) == 1.0  # no warmup
    assert lr_factor(50000, 10000, 1.0, 100000) == 1.0  # no decay


def test_cooldown_ramps_the_last_steps_to_zero():
    # optim.cooldown_steps (not in the paper): 0 = the reference schedule exactly, whatever max_steps is.
    for step in (0, 500, 5000, 11999, 12000):
        assert lr_factor(step, 1000, 0.5, 10000, 0, 12000) == lr_factor(step, 1000, 0.5, 10000)
    ref = lambda s: lr_factor(s, 1000, 0.5, 10000)  # noqa: E731
    assert lr_factor(8000, 1000, 0.5, 10000, 4000, 12000) == pytest.approx(ref(8000))  # ramp starts
    assert lr_factor(10000, 1000, 0.5, 10000, 4000, 12000) == pytest.approx(0.5 * ref(10000))
    assert lr_factor(11000, 1000, 0.5, 10000, 4000, 12000) == pytest.approx(0.25 * ref(11000))
    assert lr_factor(12000, 1000, 0.5, 10000, 4000, 12000) == 0.0
    assert lr_factor(13000, 1000, 0.5, 10000, 4000, 12000) == 0.0  # past max_steps (a resume with fewer steps)
    cfg = load_config("tetrominoes_quick", ["optim.cooldown_steps=3000"])
    assert cfg["optim"]["cooldown_steps"] == 3000
    with pytest.raises(ConfigError, match="cooldown_steps"):
        load_config("tetrominoes_quick", ["optim.cooldown_steps=-1"])


def test_compile_auto_needs_a_long_run_and_a_working_compiler(monkeypatch):
    import slotlab.train.fit as fit

    t = load_config("clevr6")["trainer"]
    assert t["compile"] == "auto" and t["max_steps"] >= 1000
    monkeypatch.setattr(fit, "compile_support", lambda accelerator: None)
    assert fit.compile_enabled(t)
    assert not fit.compile_enabled({**t, "max_steps": 999})  # short runs (tests, smoke runs) stay eager
    assert not fit.compile_enabled({**t, "compile": False})
    monkeypatch.setattr(fit, "compile_support", lambda accelerator: "no C++ compiler found")
    assert not fit.compile_enabled(t)  # auto steps aside where inductor cannot build kernels
    assert fit.compile_enabled({**t, "compile": True})  # an explicit true is obeyed (and fails loudly if it must)


def test_compile_support_names_what_is_missing(monkeypatch):
    import torch._inductor.cpp_builder as cpp_builder

    from slotlab.train.runtime import compile_support

    def no_compiler():
        raise RuntimeError("no working C++ compiler")

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    reason = compile_support("cpu")
    assert reason is not None and "C++ compiler" in reason


def test_train_says_when_compile_auto_cannot_compile(monkeypatch, capsys):
    import slotlab.train.fit as fit
    from slotlab.cli import _note_compile

    t = load_config("clevr6")["trainer"]
    monkeypatch.setattr(fit, "compile_support", lambda accelerator: "no C++ compiler found")
    _note_compile(t)
    assert "running eager" in capsys.readouterr().out
    _note_compile({**t, "max_steps": 10})  # a short run would not compile anyway: nothing to say
    _note_compile({**t, "compile": False})
    assert capsys.readouterr().out == ""


def test_cosine_schedule_is_savis_warmup_cosine_decay():
    """optax.warmup_cosine_decay_schedule(0, 1, warmup_steps=2500, decay_steps=100000, end_value=0), by hand."""
    assert lr_factor(0, 2500, 0.5, 100000, schedule="cosine") == 0.0
    assert lr_factor(1250, 2500, 0.5, 100000, schedule="cosine") == pytest.approx(0.5)
    assert lr_factor(2500, 2500, 0.5, 100000, schedule="cosine") == pytest.approx(1.0)
    half = 2500 + (100000 - 2500) // 2
    assert lr_factor(half, 2500, 0.5, 100000, schedule="cosine") == pytest.approx(0.5)
    quarter = 2500 + (100000 - 2500) / 4
    assert lr_factor(quarter, 2500, 0.5, 100000, schedule="cosine") == pytest.approx(0.5 * (1 + 2**-0.5))
    assert lr_factor(100000, 2500, 0.5, 100000, schedule="cosine") == pytest.approx(0.0)
    assert lr_factor(150000, 2500, 0.5, 100000, schedule="cosine") == pytest.approx(0.0)  # stays at 0
    assert lr_factor(10, 0, 0.5, 100, schedule="cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.1)))
    with pytest.raises(ValueError, match="schedule must be one of"):
        lr_factor(0, 10, 0.5, 100, schedule="linear")
