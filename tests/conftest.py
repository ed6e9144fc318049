"""Shared test setup: the machine kind in pytest's header (so a CI failure names the CPU it happened on); the
override lists of tiny runs of both tasks (``TINY_OD``, ``TINY_SP``: seconds per run on a CPU) and, made once per
session from them, a finished tiny run of each task (fixtures ``tiny_od_run``, ``tiny_sp_run``; copy them before
changing them: ``copy_run``)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from slotlab.train.runtime import machine_kind, tensorboard_without_tensorflow

# TensorFlow (the tf extra) and the `tfrecord` package of test_tfrecord.py register the same protobuf messages;
# TensorBoard logging must not import TensorFlow into the test process (the parity cases run in their own).
tensorboard_without_tensorflow()


def pytest_report_header(config) -> str:
    return f"slotlab machine: {machine_kind()}"


def pytest_terminal_summary(terminalreporter) -> None:
    """The machine line again at the end (the header is hidden under -q): a failure names the CPU kind."""
    terminalreporter.write_line(f"slotlab machine: {machine_kind()}")


# The pieces of the tiny runs the test files share (one place; each file composes what it needs).
# Object discovery (Tetrominoes): a tiny model, tiny data, no progress bar or per-validation figures.
TINY_OD_MODEL = [
    "model.encoder_channels=[8,8,8,8]",
    "model.decoder_channels=8",
    "model.slot_dim=16",
    "model.mlp_hidden=16",
]
TINY_OD_DATA = ["data.train_size=64", "data.eval_size=16", "data.batch_size=8", "data.eval_batch_size=8"]
QUIET = ["trainer.progress_bar=false", "trainer.figure_every_val=false"]
# The paper's slot initialisation (a shared learned Gaussian, every iteration differentiated), for tests that change
# the number of slots K at test time: the default preset's learned BO-QSA queries fix K.
PAPER_SLOT_INIT = ["model.slot_attention.slot_init=shared", "model.slot_attention.implicit_differentiation=false"]

# Object discovery with a short warmup and a loss row per step; fp32 so results are bit-identical across runs.
TINY_OD_AUTO_PRECISION = [*TINY_OD_MODEL, *TINY_OD_DATA, "optim.warmup_steps=5", *QUIET, "trainer.log_every=1"]
TINY_OD = [*TINY_OD_AUTO_PRECISION, "trainer.precision=32-true"]

# Set prediction (CLEVR6-like procedural scenes, 32x32); add data.cache_dir (or set SLOTLAB_CACHE).
TINY_SP = [
    "--config",
    "set_prediction_quick",
    "data.train_size=12",
    "data.eval_size=8",
    "data.batch_size=4",
    "data.eval_batch_size=4",
    "data.image_size=32",
    "data.render_size=[32,48]",
    "data.shard_size=6",
    "model.encoder_channels=[8,8,8,8]",
    "model.slot_dim=16",
    "model.mlp_hidden=16",
    "model.head_hidden=16",
    "trainer.max_minutes=null",
    "trainer.progress_bar=false",
    "trainer.precision=32-true",
    "trainer.accelerator=cpu",
    "trainer.num_figure_images=2",
    "trainer.log_every=1",
]

TINY_STEPS = ["trainer.max_steps=6", "trainer.val_every=3"]


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    """A data cache shared by the tests of a session (set-prediction scenes are rendered once)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def tiny_od_run(tmp_path_factory) -> Path:
    """A finished 6-step object-discovery run (checkpoints at steps 3 and 6). Copy it before changing it."""
    from slotlab.cli import main

    root = tmp_path_factory.mktemp("tiny_runs_od")
    assert main(["train", *TINY_OD, *TINY_STEPS, f"run.root={root}", "run.name=od"]) == 0
    return root / "od"


@pytest.fixture(scope="session")
def tiny_sp_run(tmp_path_factory, tiny_cache) -> Path:
    """A finished 6-step set-prediction run (checkpoints at steps 3 and 6). Copy it before changing it."""
    from slotlab.cli import main

    root = tmp_path_factory.mktemp("tiny_runs_sp")
    assert (
        main(["train", *TINY_SP, *TINY_STEPS, f"data.cache_dir={tiny_cache}", f"run.root={root}", "run.name=sp"]) == 0
    )
    return root / "sp"


def kill_at_checkpoint(p: subprocess.Popen, ckpt: Path, step: int, hang_s: float = 1800.0) -> int:
    """SIGKILL the training process ``p`` once its ``ckpt`` holds at least ``step``; return the checkpoint's step.
    ``hang_s`` only guards against a hung run: on a loaded machine a tiny run's start (imports, first checkpoint)
    can take minutes, and a short deadline turned a slow start into a failed kill test."""
    deadline = time.monotonic() + hang_s
    while p.poll() is None:
        if ckpt.exists() and torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"] >= step:
            break
        if time.monotonic() > deadline:
            p.kill()
            pytest.fail(f"the run wrote no checkpoint of step >= {step} within {hang_s:.0f} s (hung?)")
        time.sleep(0.1)
    assert p.poll() is None, "the run finished before it could be killed"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    return torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]


def copy_run(run: Path, dest: Path) -> Path:
    """A copy of a run folder (``dest``), to change without touching the shared one."""
    shutil.copytree(run, dest)
    return dest


@pytest.fixture(autouse=True)
def _no_tensorflow_in_the_test_process(request):
    """Name the test that imports TensorFlow into this process (it would break test_tfrecord.py's writer)."""
    import sys

    yield
    if request.node.path.name == "official_parity_cases.py":  # runs in its own process, with TensorFlow
        return
    assert "tensorflow" not in sys.modules, (
        f"{request.node.nodeid} imported TensorFlow into the pytest process; TF-using code runs in "
        "tests/official_parity_cases.py (its own process) only"
    )


def twin_od_models(**option):
    """A tiny object-discovery model with a loss ``option`` and one without it, sharing weights, run on the same
    image and slot-init noise. Returns (model, plain, out, ref, image, mse): ``mse`` is the paper's loss of ``ref``."""
    from slotlab.tasks.object_discovery.model import ObjectDiscoveryModel

    torch.manual_seed(0)
    kw = dict(num_slots=4, slot_dim=16, mlp_hidden=16)
    model = ObjectDiscoveryModel((35, 35), **option, **kw)
    plain = ObjectDiscoveryModel((35, 35), **kw)
    plain.load_state_dict(model.state_dict())
    image, noise = torch.rand(2, 3, 35, 35) * 2 - 1, torch.randn(2, 4, 16)  # the same slot-init noise for both
    out, ref = model(image, noise=noise), plain(image, noise=noise)
    mse = torch.nn.functional.mse_loss((ref.masks * ref.recons).sum(1), image)
    return model, plain, out, ref, image, mse
