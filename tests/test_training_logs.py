"""Issue 25 items 6-7: what a training run records and how ``slotlab report`` shows it. One step convention (the
number of optimizer steps done) in metrics.csv, figures, checkpoints and TensorBoard; TensorBoard gets the
validation figures and the config as hyper-parameters; piped output is plain lines; the report plots every
logged held-out metric with readable axes, shows the figures of each validation and the config the model was
trained with (flagging an edited config.yaml), and its sweep hint runs on a learned-queries model."""

from __future__ import annotations

import contextlib
import csv
import html
import io
import re
import shlex
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import TINY_OD

from slotlab.cli import main

STEPS, VAL = 6, 3


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, str]:
    """A 6-step run validating every 3 steps, with figures and progress output (stdout is not a terminal)."""
    root = tmp_path_factory.mktemp("logs_run")
    overrides = [f"trainer.max_steps={STEPS}", f"trainer.val_every={VAL}", "trainer.log_every=1"]
    shown = ["trainer.progress_bar=true", "trainer.figure_every_val=true"]  # after TINY_OD's QUIET: these win
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["train", *TINY_OD, *overrides, *shown, f"run.root={root}", "run.name=logs"]) == 0
    return root / "logs", out.getvalue()


def _events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(next(folder.glob("tb/version_0"))), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc


def test_one_step_convention_everywhere(run):
    folder, _ = run
    with open(folder / "logs" / "version_0" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    train = [int(r["step"]) for r in rows if r["train/loss"]]
    val = [int(r["step"]) for r in rows if r["val/fg_ari"]]
    assert train == list(range(1, STEPS + 1))  # the loss of the first step is logged at step 1
    assert val == [3, 6]  # validations after 3 and 6 steps (Lightning logged them at 2 and 5)
    figures = sorted(p.name for p in (folder / "figures").glob("step_*.png"))
    assert figures == ["step_0000003.png", "step_0000006.png"]
    best = [p.name for p in (folder / "checkpoints").glob("best-*.ckpt")]
    assert len(best) == 1 and int(re.search(r"step(\d+)", best[0]).group(1)) in val
    last = torch.load(folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == STEPS
    events = _events(folder)
    assert [e.step for e in events.Scalars("val/fg_ari")] == val
    assert [e.step for e in events.Scalars("train/loss")] == train


def test_tensorboard_gets_the_figures_and_the_config(run):
    from tensorboard.plugins.hparams import plugin_data_pb2

    folder, _ = run
    events = _events(folder)
    assert {"figures/slots", "figures/attention"} <= set(events.Tags()["images"])
    assert [e.step for e in events.Images("figures/slots")] == [3, 6]
    assert events.Images("figures/slots")[0].width > 500  # the labelled figure, not a thumbnail
    content = events.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    hparams = {h.name for h in experiment.hparam_infos}
    assert {"config/model/num_slots", "config/optim/lr", "config/seed"} <= hparams
    metrics = {m.name.tag for m in experiment.metric_infos}
    assert {"val/fg_ari", "val/mse", "val/layout_ari"} <= metrics
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["config/model/num_slots"].number_value == 4


def test_piped_output_is_one_line_per_log(run):
    _, out = run
    assert "\r" not in out and "Epoch" not in out
    lines = out.splitlines()
    assert sum(line.startswith("step ") and "train/loss" in line for line in lines) == STEPS
    assert "step 6/6 | train/loss " in out
    validation = [line for line in lines if " validation: " in line]
    assert [line.split()[1] for line in validation] == ["3", "6"] and "val/fg_ari " in validation[0]


def test_terminal_progress_bar_counts_steps_not_epochs():
    from slotlab.train.progress import LineProgress, StepProgressBar, progress_callbacks

    bar = StepProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=-1, max_steps=500, global_step=120)
    description = bar._get_train_description(0)
    assert description.strip() == "steps" and "-2" not in description  # Lightning's: "Epoch 0/-2"
    assert bar.total_train_batches == 500
    tty = SimpleNamespace(isatty=lambda: True)
    assert progress_callbacks(False, 10, tty) == []
    assert isinstance(progress_callbacks(True, 10, io.StringIO())[0], LineProgress)


def _report(folder: Path) -> str:
    assert main(["report", str(folder)]) == 0
    return (folder / "report.html").read_text()


def test_report_plots_every_held_out_metric_and_the_figures_of_each_validation(run, tmp_path):
    folder = shutil.copytree(run[0], tmp_path / "r")
    page = _report(folder)
    plotted = re.search(r"logged rows of logs/version_\*/metrics\.csv \(([^)]*)\)", page).group(1)
    for metric in ("val/fg_ari", "val/mse", "val/layout_ari", "val/fg_ari_undefined", "train/loss", "train/lr"):
        assert metric in plotted.split(", ")
    assert "not logged yet" not in page
    assert "2 of 2 validations (steps 3 to 6)" in page
    for caption in ("step 3: slots", "step 3: attention", "step 6: slots", "step 6: attention"):
        assert f"<figcaption>{caption} (" in page


def test_report_hint_runs_on_a_learned_queries_model(run, tmp_path, capsys):
    folder = shutil.copytree(run[0], tmp_path / "r")
    page = _report(folder)
    hint = html.unescape(re.search(r"make one with: (slotlab eval [^)]*)\)", page).group(1))
    assert "--num-slots" not in hint  # learned queries: K is fixed
    assert main([*shlex.split(hint)[1:], "--num-images", "2"]) == 0
    assert main(["eval", str(folder), "--iters", "1,3,5", "--num-slots", "4,6"]) == 2  # the old hint
    assert "runs with exactly K=4" in capsys.readouterr().err


def test_report_shows_the_trained_config_and_flags_an_edited_config_yaml(run, tmp_path):
    folder = shutil.copytree(run[0], tmp_path / "r")
    text = (folder / "config.yaml").read_text()
    assert "  num_slots: 4\n" in text
    (folder / "config.yaml").write_text(text.replace("  num_slots: 4\n", "  num_slots: 9\n"))
    page = html.unescape(_report(folder))
    assert "model.num_slots: 4 in the checkpoint, 9 in config.yaml" in page
    trained = re.search(r"Trained config .*?<pre>(.*?)</pre>", page, re.S).group(1)
    assert "num_slots: 4" in trained and "num_slots: 9" not in trained
    assert "<th>slots K / iterations T</th><td>4 / 3</td>" in page  # the summary: the trained K


def test_learning_curve_axes_are_readable():
    from matplotlib.transforms import Bbox

    from slotlab.plots import Panel, plot_learning_curves

    steps = range(0, 500_001, 5_000)
    rows = [{"step": float(s), "val/ap_inf": s / 5e5, "val/ap_1": s / 1e6, "train/loss": 1 / (1 + s)} for s in steps]
    panels = [Panel("AP", ("val/ap_inf", "val/ap_1"), "AP"), Panel("loss", ("train/loss",), "loss", log_scale=True)]
    fig = plot_learning_curves(rows, panels)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ap, loss = fig.axes[:2]
    for ax in (ap, loss):
        labels = [t for t in ax.get_xticklabels() if t.get_text() and t.get_visible()]
        boxes = [t.get_window_extent(renderer) for t in labels]
        assert 2 <= len(boxes) <= 8
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])  # no overlapping ticks
        assert all(len(t.get_text()) <= 5 for t in labels)  # 500k, not 500000
    legend = ap.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["AP inf", "AP 1"]  # readable names
    assert not Bbox.intersection(legend.get_window_extent(renderer), ap.get_window_extent(renderer))  # below
    assert loss.get_yscale() == "log"


def test_report_of_a_folder_that_is_not_a_run_is_a_user_error(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    assert main(["report", str(tmp_path)]) == 2
    assert "is not a slotlab run folder" in capsys.readouterr().err
