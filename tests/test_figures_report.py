"""Paper Figure 3 from a checkpoint (slotlab.figures), the offline HTML run report (slotlab.report) and the
test-time K/T sweep of ``slotlab eval`` (paper Figure 2 right), on one tiny training run made through the CLI."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import PAPER_SLOT_INIT
from PIL import Image

from slotlab.cli import main
from slotlab.drawing import GROUP_GAP
from slotlab.figures import figure_grids, make_figures
from slotlab.report import write_report
from slotlab.tasks.object_discovery.presenter import FIGURE_NAMES

H = W = 35  # Tetrominoes
K, T = 4, 3
PAD = 2  # drawing.LabelledGrid padding


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    rc = main(
        [
            "train",
            *PAPER_SLOT_INIT,  # figures at another K below
            "trainer.max_steps=2",
            "trainer.val_every=2",
            "trainer.num_figure_images=2",
            "trainer.log_every=1",
            "trainer.progress_bar=false",
            "data.train_size=16",
            "data.eval_size=4",
            "data.batch_size=4",
            f"run.root={root}",
            "run.name=r",
        ]
    )
    assert rc == 0
    return root / "r"


def grid_size(rows: int, cols: int, scale: int, groups: int = 1) -> tuple[int, int]:
    """(width, height) of the tiles of a figure (drawing.LabelledGrid.canvas) of rows x cols tiles of H*scale x
    W*scale pixels, in ``groups`` groups of rows (one per image: its iterations) set apart by GROUP_GAP."""
    return cols * (W * scale + PAD) + PAD, rows * (H * scale + PAD) + PAD + (groups - 1) * GROUP_GAP


def find(image: np.ndarray, part: np.ndarray) -> tuple[int, int] | None:
    """(y, x) where ``part`` [h, w, 3] appears pixel for pixel in ``image`` [H, W, 3], or None."""
    h, w = part.shape[:2]
    colours, counts = np.unique(part.reshape(-1, 3), axis=0, return_counts=True)
    rare = colours[np.argmin([np.all(image == c, axis=-1).sum() for c in colours])]  # the fewest candidates
    py, px = np.argwhere(np.all(part == rare, axis=-1))[0]
    for y, x in np.argwhere(np.all(image == rare, axis=-1)):
        y0, x0 = y - py, x - px
        if 0 <= y0 <= image.shape[0] - h and 0 <= x0 <= image.shape[1] - w:
            if np.array_equal(image[y0 : y0 + h, x0 : x0 + w], part):
                return int(y0), int(x0)
    return None


def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_make_figures_writes_figure_3(run_dir, tmp_path):
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    paths = make_figures(ckpt, num_images=2)
    assert [p.name for p in paths] == list(FIGURE_NAMES)
    assert all(p.parent == run_dir / "figures" for p in paths)  # default: the run's figures/
    scale = 4  # 35 px images are drawn >= 128 px tall
    grids, _ = figure_grids(ckpt, num_images=2)
    canvases = [grids[n].canvas() for n in FIGURE_NAMES]
    sizes = [c.shape[1::-1] for c in canvases]
    assert sizes[0] == grid_size(2, 3 + K, scale)  # (a) image, recon, combined mask, K slots
    assert sizes[1] == grid_size(2 * T, 1 + K, scale, groups=2)  # (b) per image and iteration: image + K maps
    assert sizes[2] == grid_size(2 * T, 3 + K, scale, groups=2)  # (c) per image and iteration: as (a)
    for path, canvas in zip(paths, canvases, strict=True):  # the PNG holds the tiles pixel for pixel, and more
        image = png(path)
        assert find(image, canvas) is not None and image.shape[0] > canvas.shape[0] + 20

    # Test-time K and T, another folder, no upscaling; and deterministic (same bytes twice).
    other = make_figures(run_dir, out_dir=tmp_path / "f", num_images=1, num_slots=6, iters=2, scale=1)
    grids, _ = figure_grids(run_dir, num_images=1, num_slots=6, iters=2, scale=1)
    assert grids[FIGURE_NAMES[0]].canvas().shape[1::-1] == grid_size(1, 3 + 6, 1)
    assert grids[FIGURE_NAMES[1]].canvas().shape[1::-1] == grid_size(2, 1 + 6, 1)
    assert find(png(other[1]), grids[FIGURE_NAMES[1]].canvas()) is not None
    again = make_figures(run_dir, out_dir=tmp_path / "g", num_images=1, num_slots=6, iters=2, scale=1)
    assert [p.read_bytes() for p in other] == [p.read_bytes() for p in again]
    with Image.open(other[0]) as im:
        assert im.mode == "RGB"


def test_make_figures_last_iteration_matches_the_model(run_dir):
    """Figure 3c's last row per image is the model's ordinary T-iteration output from the same initial slots."""
    import torch

    from slotlab.data.datamodule import to_tensors
    from slotlab.data.splits import generate_split
    from slotlab.inference.loading import load_model
    from slotlab.tasks.common import image_to_model
    from slotlab.tasks.object_discovery.presenter import per_iteration_outputs

    model, cfg, _ = load_model(run_dir, "object_discovery")
    image = image_to_model(to_tensors(generate_split("tetrominoes", "eval", 2, cfg["data"]["seed"]))["image"], False)
    res = per_iteration_outputs(model, image, None, T, seed=3)
    with torch.no_grad():
        inputs = model.encoder(image)
        init = model.slot_attention.initial_slots(2, generator=torch.Generator().manual_seed(3))
        sa = model.slot_attention(inputs, slots=init)
        dec = model.decoder(sa.slots)
    torch.testing.assert_close(res["attn"], sa.attn)
    torch.testing.assert_close(res["recon"][-1], dec.recon)
    assert len(res["masks"]) == T and res["masks"][0].shape == (2, K, 1, H, W)
    # With masks that follow the attention and a prior at evaluation, the figures draw what the model is scored on.
    model.attention_masks, model.eval_spatial_prior = 1.0, 0.3
    res = per_iteration_outputs(model, image, None, T, seed=3)
    with torch.no_grad():
        out = model(image, slots=init)
    torch.testing.assert_close(res["masks"][-1], out.masks)
    torch.testing.assert_close(res["recon"][-1], out.recon)
    assert (res["masks"][-1] - dec.masks).abs().max() > 1e-3  # not the decoder's own masks


def test_report_is_self_contained(run_dir):
    if not all((run_dir / "figures" / n).exists() for n in FIGURE_NAMES):
        make_figures(run_dir, num_images=1)
    out = write_report(run_dir)
    assert out == run_dir / "report.html"
    page = out.read_text()
    assert not re.search(r"https?://", page)  # nothing to fetch: opens offline
    assert not re.search(r"<(script|link)\b", page)
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 5  # learning curves, latest, attention, Figure 3 a/b/c
    for b64 in images:
        Image.open(io.BytesIO(base64.b64decode(b64))).verify()
    assert "fg_ari_mean" in page and "tetrominoes" in page and "Learning curves" in page
    assert "Figure 3a" in page and "slot_attention:" in page  # figures and the full config
    test = json.loads((run_dir / "results.json").read_text())["test"]  # the best checkpoint on the test split
    assert "Best checkpoint on the test split" in page and f"<td>{test['checkpoint']}</td>" in page


def test_report_skips_missing_pieces(run_dir, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(run_dir / "config.yaml", partial / "config.yaml")
    page = write_report(partial).read_text()
    assert "no results.json" in page and "no learning curves" in page and "no figures/latest.png" in page
    not_a_run = tmp_path / "not_a_run"
    not_a_run.mkdir()
    (not_a_run / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="not a slotlab run folder"):
        write_report(not_a_run)
    with pytest.raises(ValueError, match="does not exist"):
        write_report(tmp_path / "missing")


def test_report_concatenates_resumed_logs(run_dir, tmp_path):
    resumed = tmp_path / "resumed"
    shutil.copytree(run_dir, resumed)
    logs = resumed / "logs"
    (logs / "version_1").mkdir()
    with open(logs / "version_1" / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "step", "train/loss", "val/fg_ari"])
        w.writerows([[0, 3, 0.5, ""], [0, 4, 0.4, 0.9], [0, 5, 0.3, ""]])
    from slotlab.report import read_metrics

    rows = read_metrics(resumed)
    steps = [r["step"] for r in rows]
    assert max(steps) == 5 and steps.count(3) == 1  # version 0 is cut where version 1 starts
    assert steps == sorted(steps) and min(steps) == 1  # logged after the first optimizer step
    assert [r["train/loss"] for r in rows if r["step"] >= 3 and "train/loss" in r] == [0.5, 0.4, 0.3]
    assert "resumed at steps 3" in write_report(resumed).read_text()


def test_eval_sweep_writes_csv_and_plot(run_dir):
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert main(["eval", str(ckpt), "--iters", "1,2", "--num-slots", "3,4", "--num-images", "2"]) == 0
    sweep = run_dir / "eval_sweep-eval-step2-K3_4-T1_2-n2.csv"  # named after its settings
    with open(sweep, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert {(int(r["num_slots"]), int(r["iters"])) for r in rows} == {(3, 1), (3, 2), (4, 1), (4, 2)}
    assert all(0.0 <= float(r["fg_ari_mean"]) <= 1.0 for r in rows)
    Image.open(sweep.with_suffix(".png")).verify()
    page = write_report(run_dir).read_text()
    assert sweep.name in page and "evals.jsonl" in page


def test_figures_of_a_tfrecord_run_show_the_files_images(tmp_path):
    """Issue 10: `slotlab figures` on a run trained from ``data.path`` (a DeepMind TFRecord file) draws the file's
    held-out images (those after ``data.train_size``), the ones training validated on, not procedural ones."""
    from conftest import QUIET, TINY_OD_MODEL

    from slotlab.data.splits import generate_split
    from slotlab.data.tfrecord import read_tfrecords

    path = Path(__file__).parent / "fixtures" / "tetrominoes_plain.tfrecords"  # 3 records
    data = ["data.train_size=2", "data.eval_size=1", "data.batch_size=2", "data.eval_batch_size=1", f"data.path={path}"]
    steps = ["trainer.max_steps=1", "trainer.val_every=1", "trainer.precision=32-true"]
    assert main(["train", *TINY_OD_MODEL, *data, *steps, *QUIET, f"run.root={tmp_path}", "run.name=tf"]) == 0
    run = tmp_path / "tf"
    assert "test" not in json.loads((run / "results.json").read_text())  # 3 records: none left for a test split
    assert main(["figures", str(run), "--num-images", "1"]) == 0
    figure = png(run / "figures" / FIGURE_NAMES[0])
    scale = 4  # 35 px images are drawn >= 128 px tall
    held_out = list(read_tfrecords(path, "tetrominoes"))[2]["image"]  # [35, 35, 3]: the record after train_size
    at = find(figure, held_out.repeat(scale, 0).repeat(scale, 1))  # drawn pixel for pixel
    assert at is not None
    grids, _ = figure_grids(run, num_images=1)
    canvas_at = find(figure, grids[FIGURE_NAMES[0]].canvas())
    assert canvas_at is not None and at == (canvas_at[0] + PAD, canvas_at[1] + PAD)  # row 1, column 1: the image
    procedural = generate_split("tetrominoes", "eval", 1, 0)["image"][0]
    assert not np.array_equal(held_out, procedural)  # what the figure showed before the fix


def test_report_of_a_set_prediction_run_draws_its_ap_curves(tiny_sp_run, tmp_path):
    """Issue 10: `slotlab report` on a set-prediction run draws the task's curves from its metrics.csv: AP per
    distance threshold over steps (and the attention-mask ARI), not object discovery's FG-ARI."""
    from conftest import copy_run

    run = copy_run(tiny_sp_run, tmp_path / "sp")
    assert main(["figures", str(run), "--num-images", "1"]) == 0
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "held-out AP per distance threshold" in page
    for name in ("inf", "1", "0.5", "0.25", "0.125"):
        assert f"val/ap_{name}" in page  # each threshold's column is drawn (listed under the curves)
    assert "val/attn_ari" in page and "not logged yet" not in page
    assert "held-out FG-ARI" not in page  # no object-discovery panel on a set-prediction run
    assert "Figure 6" in page and "ap_inf" in page  # its figure and its final AP


def test_figures_set_evaluation_keys(run_dir, capsys):
    """``--set`` draws with keys that act at evaluation only (here T at test time), says so in the titles, and
    refuses other keys before any work."""
    grids, _ = figure_grids(run_dir, num_images=1, scale=1, settings=["model.eval_iters=2"])
    assert grids[FIGURE_NAMES[1]].canvas().shape[1::-1] == grid_size(2, 1 + K, 1)  # (b): 2 iterations, not T=3
    assert "model.eval_iters=2" in grids[FIGURE_NAMES[0]].title
    capsys.readouterr()
    assert main(["figures", str(run_dir), "--set", "model.iters=2"]) == 2
    assert "only keys that act at evaluation" in capsys.readouterr().err
