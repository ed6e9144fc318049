"""Set prediction (paper Sections 2.3, 4.2): model shapes, Hungarian-loss training, the procedural shard cache
(incl. partial-cache detection), and an end-to-end train + evaluate run with tiny sizes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from slotlab.config import defaults_for, load_config
from slotlab.evaluate import evaluate_checkpoint as evaluate_set_prediction
from slotlab.tasks.set_prediction.data import (
    MANIFEST,
    SetPredictionData,
    build_cache,
    cache_folder,
    cache_spec,
    cache_status,
    load_cache,
)
from slotlab.tasks.set_prediction.model import SetPredictionModel
from slotlab.tasks.set_prediction.presenter import format_ap_table
from slotlab.train.fit import train

THRESHOLDS = ("inf", "1", "0.5", "0.25", "0.125")


def tiny_data_cfg(tmp_path, **kw):
    d = dict(defaults_for("set_prediction")["data"])
    d.update(
        variant="clevr6",
        train_size=12,
        eval_size=8,
        batch_size=4,
        eval_batch_size=4,
        image_size=32,
        render_size=[32, 48],
        cache_dir=str(tmp_path / "cache"),
        shard_size=5,
    )
    d.update(kw)
    return d


def test_model_shapes_paper_config():
    torch.manual_seed(0)
    model = SetPredictionModel()  # 128x128, K = 10, strides 1,2,2,1 -> 32x32
    out = model(torch.rand(2, 3, 128, 128) * 2 - 1)
    assert out.pred.shape == (2, 10, 19)
    assert out.slots.shape == (2, 10, 64)
    assert out.attn.shape == (2, 3, 10, 1024)
    assert model.encoder.feature_resolution == (32, 32)
    assert ((out.pred >= 0) & (out.pred <= 1)).all()
    out = model(torch.zeros(1, 3, 128, 128), num_slots=12, iters=5)
    assert out.pred.shape == (1, 12, 19) and out.attn.shape == (1, 5, 12, 1024)
    with pytest.raises(ValueError):
        model(torch.zeros(1, 3, 64, 64))


def test_hungarian_training_decreases_loss():
    torch.manual_seed(0)
    model = SetPredictionModel(resolution=(32, 32), num_slots=4, encoder_channels=(16,) * 4, slot_dim=32)
    image = torch.rand(4, 3, 32, 32) * 2 - 1
    target = torch.zeros(4, 4, 19)
    target[:, :2] = torch.rand(4, 2, 19).round()
    target[:, :2, :3] = torch.rand(4, 2, 3)
    target[:, :2, 18] = 1
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss_at():
        torch.manual_seed(1)
        with torch.no_grad():
            return model.loss(model(image), target).item()

    before = loss_at()
    for step in range(15):
        torch.manual_seed(100 + step)
        loss = model.loss(model(image), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss_at() < 0.8 * before


def test_data_module_batches(tmp_path):
    d = tiny_data_cfg(tmp_path)
    data = SetPredictionData(d)
    data.prepare_data()
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["image"].dtype == torch.uint8
    assert batch["target"].shape == (4, 6, 19) and batch["target"].dtype == torch.float32
    val = next(iter(data.val_dataloader()))
    assert val["mask"].shape == (4, 32, 32) and val["mask"].dtype == torch.uint8
    assert {"image", "target", "mask"} <= set(val)
    # Targets: real-object flags = number of objects; masks label objects 1..n.
    n = data.eval["num_objects"]
    assert torch.equal(data.eval["target"][..., 18].sum(1).long(), n)
    assert 3 <= int(n.min()) and int(n.max()) <= 6
    assert int(data.eval["mask"].max()) <= 6
    # Train and eval streams differ.
    assert not torch.equal(data.train["image"][:8], data.eval["image"])
    with pytest.raises(ValueError):
        SetPredictionData(tiny_data_cfg(tmp_path, batch_size=64))


def test_small_scene_variant_has_three_target_rows(tmp_path):
    # data.variant clevr3 (not a paper set): 1-3 objects per scene, K = 3 target rows.
    data = SetPredictionData(tiny_data_cfg(tmp_path, variant="clevr3", eval_size=20))
    data.prepare_data()
    data.setup("fit")
    assert data.train["target"].shape == (12, 3, 19)
    n = data.eval["num_objects"]
    assert torch.equal(data.eval["target"][..., 18].sum(1).long(), n)
    assert 1 <= int(n.min()) and int(n.max()) <= 3


def test_partial_cache_detected_and_rebuilt(tmp_path):
    d = tiny_data_cfg(tmp_path)
    spec = cache_spec(d, "eval")
    folder = cache_folder(d["cache_dir"], spec)
    assert cache_status(folder, spec) == "missing"
    build_cache(folder, spec, 8, shard_size=5)
    assert cache_status(folder, spec, 8) == "complete"
    reference = load_cache(folder, 8)
    assert len(reference["image"]) == 8

    # A killed generation: no manifest, a leftover .tmp shard and a truncated shard.
    (folder / MANIFEST).unlink()
    (folder / "shard_00002.npz.tmp").write_bytes(b"half a shard")
    shard = folder / "shard_00001.npz"
    shard.write_bytes(shard.read_bytes()[:100])
    assert cache_status(folder, spec, 8) == "partial"
    with pytest.raises(Exception, match="manifest"):
        load_cache(folder, 8)
    build_cache(folder, spec, 8, shard_size=5)
    assert cache_status(folder, spec, 8) == "complete"
    assert not list(folder.glob("*.tmp"))
    rebuilt = load_cache(folder, 8)
    for k in reference:
        assert torch.equal(reference[k], rebuilt[k]), k

    # Asking for more images extends the cache; the first images stay the same.
    assert cache_status(folder, spec, 11) == "partial"
    build_cache(folder, spec, 11, shard_size=5)
    more = load_cache(folder, 11)
    assert len(more["image"]) == 11 and torch.equal(more["image"][:8], reference["image"])
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["count"] == 11 and [s["count"] for s in manifest["shards"]] == [5, 5, 1]


def test_quick_preset_is_small():
    cfg = load_config("set_prediction_quick")
    assert cfg["task"] == "set_prediction" and cfg["model"]["num_slots"] == 6
    assert cfg["data"]["train_size"] <= 10000 and cfg["trainer"]["max_minutes"] <= 15
    paper = load_config("clevr10_set_prediction")
    assert paper["data"]["batch_size"] == 512 and paper["optim"]["decay_steps"] == 50000
    assert paper["trainer"]["max_steps"] == 150000 and paper["model"]["encoder_strides"] == [1, 2, 2, 1]


def test_train_then_evaluate_end_to_end(tmp_path):
    cfg = load_config(
        "set_prediction_quick",
        [
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.train_size=12",
            "data.eval_size=8",
            "data.batch_size=4",
            "data.eval_batch_size=4",
            "data.image_size=32",
            "data.render_size=[32, 48]",
            "data.shard_size=6",
            "model.encoder_channels=[8, 8, 8, 8]",
            "model.slot_dim=16",
            "model.mlp_hidden=16",
            "model.head_hidden=16",
            "trainer.max_steps=3",
            "trainer.val_every=3",
            "trainer.max_minutes=null",
            "trainer.progress_bar=false",
            "trainer.precision=32-true",
            "trainer.accelerator=cpu",
            "trainer.num_figure_images=2",
        ],
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = train(cfg, run_dir, resume=False)
    assert result["global_step"] == 3
    assert set(result["ap"]) == set(THRESHOLDS)
    assert all(0.0 <= v <= 1.0 for v in result["ap"].values())
    assert 0.0 <= result["attn_ari_mean"] <= 1.0 or np.isclose(result["attn_ari_mean"], 1.0)
    assert json.loads((run_dir / "results.json").read_text())["ap"] == result["ap"]
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    assert (run_dir / "figures" / "attention_latest.png").exists()
    metrics = (next((run_dir / "logs").glob("version_*")) / "metrics.csv").read_text()
    for name in THRESHOLDS:
        assert f"val/ap_{name}" in metrics
    assert "val/attn_ari" in metrics

    ev = evaluate_set_prediction(run_dir, num_images=8)
    assert list(ev["ap"]) == list(THRESHOLDS) and ev["num_images"] == 8 and ev["num_slots"] == 6
    table = format_ap_table(ev)
    assert len([line for line in table.splitlines() if line.split()[0] in THRESHOLDS]) == 5
    # CLEVR6 model tested with more slots: evaluated on CLEVR10 scenes with K = 10.
    ev10 = evaluate_set_prediction(run_dir, num_slots=10, iters=4, num_images=4)
    assert ev10["variant"] == "clevr10" and ev10["num_slots"] == 10 and ev10["iters"] == 4

    # Through the CLI: eval prints the AP table and writes JSON; a sweep over T writes CSV + plot (Figure 5);
    # `slotlab figures` draws Figure 6 from the checkpoint.
    from slotlab.cli import main

    assert main(["eval", str(run_dir), "--num-images", "8"]) == 0
    assert json.loads((run_dir / "eval-eval-step3-K6-T3.json").read_text())["num_images"] == 8
    assert main(["eval", str(run_dir), "--num-images", "8", "--iters", "1,2"]) == 0
    rows = (run_dir / "eval_sweep-eval-step3-K6-T1_2.csv").read_text().splitlines()
    assert len(rows) == 3 and "ap_inf" in rows[0] and (run_dir / "eval_sweep-eval-step3-K6-T1_2.png").exists()
    # --split test evaluates the test split (its own images) and records it; nothing earlier is replaced.
    assert main(["eval", str(run_dir), "--split", "test"]) == 0
    assert json.loads((run_dir / "eval-test-step3-K6-T3.json").read_text())["split"] == "test"
    assert list((tmp_path / "cache").glob("procedural-clevr6-test-32px-*"))
    records = [json.loads(line) for line in (run_dir / "evals.jsonl").read_text().splitlines()]
    assert [r["split"] for r in records] == ["eval", "eval", "eval", "test"]
    assert main(["figures", str(run_dir), "--num-images", "2"]) == 0
    from PIL import Image

    fig = Image.open(run_dir / "figures" / "figure6_attention.png")
    assert fig.size[0] > 32 * 6 and fig.size[1] > 32 * 2 * 3  # 1 + K tiles per row, T rows per image


def _fake_clevr(root, split, counts):
    from PIL import Image

    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "scenes").mkdir(exist_ok=True)
    scenes = []
    for i, n in enumerate(counts):
        name = f"CLEVR_{split}_{i:06d}.png"
        Image.fromarray(np.full((32, 48, 3), 20 * i, np.uint8)).save(root / "images" / split / name)
        obj = {"shape": "cube", "size": "small", "material": "metal", "color": "red", "3d_coords": [1.0, -2.0, 0.35]}
        scenes.append({"image_index": i, "image_filename": name, "objects": [obj] * n})
    (root / "scenes" / f"CLEVR_{split}_scenes.json").write_text(json.dumps({"info": {}, "scenes": scenes}))


def test_clevr_folder_source(tmp_path):
    from slotlab.data.errors import DatasetFileError

    root = tmp_path / "CLEVR_v1.0"
    _fake_clevr(root, "train", [3, 8, 5, 6])
    _fake_clevr(root, "val", [7, 4, 3])
    d = tiny_data_cfg(tmp_path, source="clevr_folder", path=str(tmp_path), train_size=3, eval_size=2, batch_size=2)
    data = SetPredictionData(d)  # clevr6: scenes with at most 6 objects
    data.prepare_data()
    data.setup("fit")
    assert data.train["image"].shape == (3, 3, 32, 32) and data.train["target"].shape == (3, 6, 19)
    assert data.eval["num_objects"].tolist() == [4, 3] and "mask" not in data.eval
    assert float(data.eval["target"][0, 0, 0]) == pytest.approx(4.0 / 6.0)
    assert {"image", "target"} <= set(next(iter(data.val_dataloader())))
    with pytest.raises(DatasetFileError, match="fewer"):
        SetPredictionData(dict(d, train_size=4)).prepare_data()
