"""No file a user hands slotlab can run code: a checkpoint whose pickle calls ``os.system`` is planted in every
path that loads a model (eval, figures, segment, resume, report, a ``$SLOTLAB_ZOO`` folder, ``add_to_zoo``,
``slotlab.load_model``, ``export``). Each must refuse it (CLI: one ``error:`` line, exit 2) and the planted
command must never run (its marker file is never written)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import copy_run
from PIL import Image

from slotlab.cli import main
from slotlab.inference.checkpoint_io import UnsafeCheckpointError

ROOT = Path(__file__).resolve().parents[1]


class _RunsCode:
    """Unpickling this calls os.system(command): what a hostile checkpoint does."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def plant(good: Path, dest: Path, marker: Path) -> Path:
    """A copy of the real checkpoint ``good`` with a code-running object added (it still has state_dict and
    hyper_parameters, so only the pickle's payload can make a loader refuse it)."""
    ckpt = torch.load(good, map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["payload"] = _RunsCode(f"touch {marker}")
    torch.save(ckpt, dest)
    return dest


@pytest.fixture
def evil(tiny_od_run, tmp_path):
    marker = tmp_path / "PWNED"
    run = copy_run(tiny_od_run, tmp_path / "run")
    last = run / "checkpoints" / "last.ckpt"
    ckpt = plant(last, tmp_path / "evil.ckpt", marker)
    for c in (run / "checkpoints").glob("*.ckpt"):  # every checkpoint of the run holds the payload
        plant(c, c, marker)
    yield {"marker": marker, "run": run, "ckpt": ckpt, "tmp": tmp_path}
    assert not marker.exists(), "the planted pickle ran"


def _refused(capsys, argv: list[str]) -> str:
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err, err
    return err


def test_the_payload_really_runs_when_unpickled_unsafely(evil):
    # The test's own check: the planted file is hostile (so "nothing ran" below means something).
    code = f"import torch; torch.load({str(evil['ckpt'])!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT / "tests", check=False, capture_output=True)
    assert evil["marker"].exists()
    evil["marker"].unlink()


def test_eval_figures_report_refuse(evil, capsys):
    for argv in (
        ["eval", str(evil["ckpt"])],
        ["eval", str(evil["run"])],
        ["figures", str(evil["ckpt"]), "--out", str(evil["tmp"] / "fig")],
    ):
        assert "refused to load" in _refused(capsys, argv)
    # the report is still written (curves, figures), saying the checkpoint was refused; nothing of it runs
    assert main(["report", str(evil["run"])]) == 0
    assert "refused to load" in (evil["run"] / "report.html").read_text()


def test_segment_refuses(evil, capsys):
    img = evil["tmp"] / "a.png"
    Image.fromarray(np.zeros((35, 35, 3), np.uint8)).save(img)
    err = _refused(capsys, ["segment", str(img), "--model", str(evil["ckpt"]), "--out", str(evil["tmp"] / "seg")])
    assert "refused to load" in err


def test_resume_refuses(evil, capsys):
    err = _refused(capsys, ["train", "--resume", str(evil["run"]), "trainer.max_steps=8"])
    assert "refused to load" in err or "no usable checkpoint" in err.lower(), err


def test_export_refuses(evil, capsys):
    assert "refused to load" in _refused(capsys, ["export", str(evil["ckpt"]), "--out", str(evil["tmp"] / "m.pt2")])


def test_python_load_model_refuses(evil):
    import slotlab

    with pytest.raises(UnsafeCheckpointError, match="refused to load"):
        slotlab.load_model(evil["ckpt"])
    with pytest.raises(UnsafeCheckpointError):
        slotlab.load_model(evil["run"])


def test_zoo_folders_refuse(evil, capsys, monkeypatch):
    zoo = evil["tmp"] / "zoo"
    # (a) an old-layout entry (model.ckpt pickle + card): not an entry, its pickle never opened
    old = zoo / "oldstyle"
    old.mkdir(parents=True)
    shutil.copy(evil["ckpt"], old / "model.ckpt")
    (old / "card.yaml").write_text("name: oldstyle\ntask: object_discovery\n")
    # (b) a new-layout entry whose "safetensors" file is the pickle
    fake = zoo / "fake"
    fake.mkdir()
    shutil.copy(evil["ckpt"], fake / "model.safetensors")
    (fake / "config.json").write_text('{"config": {"task": "object_discovery"}}')
    (fake / "README.md").write_text("---\nslotlab:\n  name: fake\n  checkpoint: {sha256: '0'}\n---\n")
    monkeypatch.setenv("SLOTLAB_ZOO", str(zoo))
    assert main(["models"]) == 0
    assert "oldstyle" in capsys.readouterr().err  # named as a broken entry
    _refused(capsys, ["eval", "--pretrained", "oldstyle"])
    _refused(capsys, ["eval", "--pretrained", "fake"])
    _refused(capsys, ["segment", "x.png", "--model", "fake"])


def test_add_to_zoo_refuses(evil):
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "add_to_zoo.py"), str(evil["ckpt"]), "evil", "--dest",
         str(evil["tmp"] / "zoo2"), "--no-measure"],
        capture_output=True, text=True, cwd=evil["tmp"],
    )  # fmt: skip
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "refused to load" in r.stderr, r.stderr
    assert not (evil["tmp"] / "zoo2" / "evil").exists()
