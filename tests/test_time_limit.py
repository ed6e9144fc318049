"""``trainer.max_minutes`` counts minutes of training steps over all sessions, validation excluded (the minutes
slotlab prints as ``time/train_minutes``), and a resumed run reads the same clock from its checkpoint."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from conftest import TINY_OD

from slotlab.cli import main
from slotlab.train import callbacks as cb
from slotlab.train.resume import timer_seconds


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _trainer() -> SimpleNamespace:
    return SimpleNamespace(should_stop=False, strategy=SimpleNamespace(broadcast=lambda x: x))


def _module() -> SimpleNamespace:
    return SimpleNamespace(log=lambda *a, **k: None)


def _step(timer: cb.StepTimer, trainer, clock: _Clock, seconds: float) -> None:
    timer.on_train_batch_start(trainer, _module(), None, 0)
    clock.now += seconds
    timer.on_train_batch_end(trainer, _module(), None, None, 0)


def test_validation_time_does_not_count(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(cb.time, "perf_counter", clock)
    timer, trainer = cb.StepTimer(max_minutes=1.0), _trainer()
    for _ in range(5):  # 5 steps of 10 s, each followed by 100 s of "validation" (between batches)
        _step(timer, trainer, clock, 10.0)
        clock.now += 100.0
        assert not trainer.should_stop
    assert timer.train_seconds == pytest.approx(50.0)
    _step(timer, trainer, clock, 10.0)  # the 60th second of training
    assert trainer.should_stop and timer.train_seconds == pytest.approx(60.0)


def test_no_limit_never_stops(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(cb.time, "perf_counter", clock)
    timer, trainer = cb.StepTimer(), _trainer()
    _step(timer, trainer, clock, 1e9)
    assert not trainer.should_stop


def test_resumed_clock_counts_earlier_sessions(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(cb.time, "perf_counter", clock)
    timer, trainer = cb.StepTimer(max_minutes=2.0), _trainer()
    timer.load_state_dict({"train_seconds": 115.0, "wall_seconds": 300.0})
    _step(timer, trainer, clock, 4.0)
    assert not trainer.should_stop
    _step(timer, trainer, clock, 1.0)
    assert trainer.should_stop


def test_resume_reads_slotlabs_clock_before_lightnings_timer():
    both = {"callbacks": {"StepTimer": {"train_seconds": 7200.0}, "Timer": {"time_elapsed": {"train": 7700.0}}}}
    assert timer_seconds(both) == 7200.0
    older = {"callbacks": {"Timer": {"time_elapsed": {"train": 7700.0}}}}
    assert timer_seconds(older) == 7700.0
    assert timer_seconds({"callbacks": {}}) is None


def test_a_real_run_stops_on_the_training_clock_and_resume_says_finished(tmp_path, capsys):
    """A tiny run with a limit of ~0 minutes stops after its first step; resuming it with the same limit runs
    nothing, and the message names the time budget."""
    args = [*TINY_OD, "trainer.max_steps=40", "trainer.val_every=3", f"run.root={tmp_path}", "run.name=r"]
    assert main(["train", *args, "trainer.max_minutes=1e-6"]) == 0
    result = json.loads((tmp_path / "r" / "results.json").read_text())
    assert result["global_step"] == 1, result["global_step"]
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "is finished" in out and "trainer.max_minutes" in out
