"""The run folder lock (slotlab.run_lock): a second `slotlab train` of a folder another process trains into is
refused with the holder's pid (resume and a new run of the same run.name); the lock of a killed process does not
block; reading the run (eval) and the other processes of a multi-process job take no lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TINY_OD, copy_run

from slotlab.cli import main
from slotlab.run_lock import LOCK_NAME, RunInUseError, acquire_run_lock, holder, release_run_lock, run_lock
from slotlab.runs import RunDirError, new_run_dir

HOLD = """
import sys, time
from slotlab.run_lock import acquire_run_lock
acquire_run_lock(sys.argv[1])
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture
def hold():
    """hold(folder) -> a process of its own that holds the folder's lock until killed."""
    procs: list[subprocess.Popen] = []

    def start(folder: Path) -> subprocess.Popen:
        folder.mkdir(parents=True, exist_ok=True)
        p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout.readline().strip() == "locked"
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def kill(p: subprocess.Popen) -> None:
    os.kill(p.pid, signal.SIGKILL)
    p.wait()


def files(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


@pytest.fixture
def run(tmp_path, tiny_od_run) -> Iterator[Path]:
    yield copy_run(tiny_od_run, tmp_path / "od")


def test_resume_of_a_run_in_training_is_refused_and_a_killed_holder_does_not_block(run, hold, capsys):
    p = hold(run)
    before = files(run)
    assert main(["train", "--resume", str(run), "trainer.max_steps=9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert f"run folder {run} is in use by another slotlab process (pid {p.pid}" in err[0]
    assert f"kill {p.pid}" in err[0] and f"slotlab train --resume {run}" in err[0]
    assert files(run) == before  # nothing cleaned, recorded or trained
    kill(p)  # SIGKILL: the OS releases the lock; the lock file stays behind with the dead holder's record
    assert holder(run)["pid"] == p.pid
    assert main(["train", "--resume", str(run)]) == 0  # the stale lock file does not block
    assert "is finished" in capsys.readouterr().out


def test_a_new_run_into_a_folder_in_training_says_in_use_not_resume(tmp_path, hold, capsys):
    p = hold(tmp_path / "same")
    args = ["train", *TINY_OD, "trainer.max_steps=2", f"run.root={tmp_path}", "run.name=same"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"is in use by another slotlab process (pid {p.pid}" in err
    assert "choose another run.name" in err and "--resume" not in err
    assert sorted(x.name for x in (tmp_path / "same").iterdir()) == [LOCK_NAME]  # nothing of a second run
    kill(p)
    cfg = {"run": {"root": str(tmp_path), "name": "same"}, "seed": 0}
    folder = new_run_dir(cfg, "x")  # the killed holder's folder holds only its lock file: claimed as empty
    try:
        assert (folder / "config.yaml").is_file()
        assert holder(folder)["pid"] == os.getpid()
    finally:
        release_run_lock(folder)


def test_new_run_dir_holds_the_lock_and_the_other_ranks_take_none(tmp_path):
    cfg = {"run": {"root": str(tmp_path), "name": "r"}, "seed": 0}
    folder = new_run_dir(cfg, "x")
    try:
        out = subprocess.run(
            [sys.executable, "-c", HOLD, str(folder)], capture_output=True, text=True, timeout=60, check=False
        )
        assert out.returncode != 0 and "RunInUseError" in out.stderr and f"pid {os.getpid()}" in out.stderr
        assert new_run_dir(cfg, "x", secondary=True) == folder  # a non-zero rank uses the folder rank 0 locked
        with pytest.raises(RunDirError, match="already exists and is not empty"):
            new_run_dir(cfg, "x")  # this process again: the folder is not empty (no in-use claim about itself)
    finally:
        release_run_lock(folder)
    assert holder(folder) == {}  # released: no holder recorded


def test_run_lock_is_reentrant_and_released(tmp_path, hold):
    with run_lock(tmp_path):
        with run_lock(tmp_path):  # train() inside a command that already holds it
            pass
        assert acquire_run_lock(tmp_path) is False  # still held by this process
    p = hold(tmp_path)  # released: another process can take it
    with pytest.raises(RunInUseError, match=f"pid {p.pid}"):
        acquire_run_lock(tmp_path)


def test_eval_reads_a_run_in_training(run, hold, capsys):
    hold(run)
    assert main(["eval", str(run), "--out", str(run.parent / "e.json")]) == 0
    assert "FG-ARI" in capsys.readouterr().out
