"""model.eval_iters: Slot Attention's iterations at evaluation (the paper's Figure 2, right: a model trained with
T = 3 evaluated with more), training unchanged; validation, `slotlab eval`, figures and the final line use it and
say so."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY_OD, TINY_SP, TINY_STEPS
from PIL import Image

from slotlab.cli import main
from slotlab.config import load_config, task_schema
from slotlab.errors import ConfigError
from slotlab.tasks import get_task


def _model(eval_iters: int | None):
    cfg = load_config("tetrominoes", [f"model.eval_iters={'null' if eval_iters is None else eval_iters}"])
    torch.manual_seed(0)
    return get_task("object_discovery").build_model(cfg)


def test_eval_mode_runs_eval_iters_unless_a_call_names_t():
    paper, seven = _model(None), _model(7)
    seven.load_state_dict(paper.state_dict())
    image = torch.rand(2, 3, 35, 35) * 2 - 1
    noise = torch.randn(2, 4, 64)
    for model in (paper, seven):
        model.train()
    a, b = paper(image, noise=noise), seven(image, noise=noise)
    assert a.attn.shape[1] == b.attn.shape[1] == 3  # training: the trained T
    assert torch.equal(a.masks, b.masks)
    paper.eval()
    seven.eval()
    with torch.no_grad():
        assert paper(image, noise=noise).attn.shape[1] == 3  # null: Table 1's protocol
        b7 = seven(image, noise=noise)
        assert b7.attn.shape[1] == 7
        torch.testing.assert_close(b7.masks, paper(image, noise=noise, iters=7).masks)  # the same function
        assert seven(image, noise=noise, iters=2).attn.shape[1] == 2  # a call's T wins (eval --iters sweeps)


def test_the_key_is_checked():
    for bad in ("0", "1.5", "'7'"):
        with pytest.raises(ConfigError, match="eval_iters"):
            load_config("tetrominoes_quick", [f"model.eval_iters={bad}"])
    assert load_config("tetrominoes_quick")["model"]["eval_iters"] is None  # the paper's protocol by default
    assert load_config("set_prediction_quick")["model"]["eval_iters"] is None
    # The keys that act in eval mode only, and so may be set on a zoo entry after training:
    assert task_schema("object_discovery").evaluation_only() == {
        "model.eval_iters",
        "model.merge_slots",
        "model.eval_spatial_prior",
    }
    assert task_schema("set_prediction").evaluation_only() == {"model.eval_iters"}


def test_validation_eval_and_figures_use_it(tmp_path, capsys):
    common = [*TINY_OD, "trainer.max_steps=2", "trainer.val_every=2", f"run.root={tmp_path}"]
    assert main(["train", *common, "model.eval_iters=5", "run.name=r"]) == 0
    out = capsys.readouterr().out
    assert "T=5 at evaluation (model.eval_iters; trained with T=3" in out  # the final line says so
    run = tmp_path / "r"
    assert main(["eval", str(run), "--num-images", "4"]) == 0
    assert "FG-ARI K=4 T=5 on 4 eval images" in capsys.readouterr().out
    assert main(["eval", str(run), "--num-images", "4", "--iters", "2"]) == 0
    assert "T=2 on 4 eval images" in capsys.readouterr().out
    # The same weights (fp32, same seed: training is unchanged) scored by a run without the option at --iters 5
    # give the run's own default score: eval_iters is T at evaluation and nothing else.
    assert main(["train", *common, "run.name=p"]) == 0
    capsys.readouterr()
    p5, r5 = tmp_path / "p5.json", tmp_path / "r.json"
    assert main(["eval", str(tmp_path / "p"), "--num-images", "16", "--iters", "5", "--out", str(p5)]) == 0
    assert main(["eval", str(run), "--num-images", "16", "--out", str(r5)]) == 0
    score = [json.loads(f.read_text()) for f in (p5, r5)]
    assert score[0]["iters"] == score[1]["iters"] == 5
    assert score[0]["fg_ari_mean"] == score[1]["fg_ari_mean"]
    # Validation logs FG-ARI at the trained T beside it (equal to the plain run's), and failed-seed detection
    # reads the layout ARI at the trained T (early in training, T=7 can put every image into one slot).
    r_val, p_val = (_validation_row(tmp_path / name) for name in ("r", "p"))
    assert "val/fg_ari_trained_t" not in p_val
    assert float(r_val["val/fg_ari_trained_t"]) == pytest.approx(float(p_val["val/fg_ari"]), abs=1e-6)
    assert float(r_val["val/layout_ari"]) == pytest.approx(float(p_val["val/layout_ari"]), abs=1e-6)
    # Figure 3b draws one row of attention maps per iteration: T=5 for the run, T=3 for the paper's protocol.
    heights = []
    for name in ("r", "p"):
        assert main(["figures", str(tmp_path / name), "--num-images", "2", "--out", str(tmp_path / f"fig_{name}")]) == 0
        heights.append(Image.open(tmp_path / f"fig_{name}" / "figure3b_attention.png").size[1])
    assert heights[0] > heights[1]


def _validation_row(run) -> dict[str, str]:
    """The last validation row of a run's metrics.csv (the columns that row has)."""
    import csv

    (path,) = run.glob("logs/version_*/metrics.csv")
    rows = [r for r in csv.DictReader(path.open()) if r.get("val/fg_ari")]
    return {k: v for k, v in rows[-1].items() if v != ""}


# ---------------------------------------------------------------------------------------------- set prediction
def test_set_prediction_model_runs_eval_iters_in_eval_mode():
    """The same key on the set-prediction model: T in eval mode when a call names none; training unchanged."""
    cfgs = [load_config("set_prediction_quick", [f"model.eval_iters={t}", "data.image_size=32"]) for t in ("null", 6)]
    models = []
    for cfg in cfgs:
        torch.manual_seed(0)
        models.append(get_task("set_prediction").build_model(cfg))
    paper, six = models
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    noise = torch.randn(2, paper.num_slots, cfgs[0]["model"]["slot_dim"])
    paper.train()
    six.train()
    assert paper(image).attn.shape[1] == six(image).attn.shape[1] == cfgs[0]["model"]["iters"]
    paper.eval()
    six.eval()
    with torch.no_grad():
        assert paper(image).attn.shape[1] == cfgs[0]["model"]["iters"]
        out = six(image, noise=noise)
        assert out.attn.shape[1] == 6
        torch.testing.assert_close(out.pred, paper(image, iters=6, noise=noise).pred)  # the same function
        assert six(image, iters=2).attn.shape[1] == 2


def test_set_prediction_eval_and_final_table_use_it(tmp_path, tiny_cache, capsys):
    """A run with model.eval_iters=5 scores, by default, what the same weights without the key score at --iters 5;
    the final table names T."""
    common = [*TINY_SP, *TINY_STEPS, f"data.cache_dir={tiny_cache}", f"run.root={tmp_path}"]
    assert main(["train", *common, "model.eval_iters=5", "run.name=r"]) == 0
    out = capsys.readouterr().out
    assert "K=6, T=5)" in out and "T=5 at evaluation (model.eval_iters; trained with T=3" in out
    assert main(["train", *common, "run.name=p"]) == 0
    capsys.readouterr()
    p5, r5 = tmp_path / "p5.json", tmp_path / "r.json"
    assert main(["eval", str(tmp_path / "p"), "--iters", "5", "--out", str(p5)]) == 0
    assert main(["eval", str(tmp_path / "r"), "--out", str(r5)]) == 0
    assert "K=6 T=5 objects=all" in capsys.readouterr().out
    score = [json.loads(f.read_text()) for f in (p5, r5)]
    assert score[0]["iters"] == score[1]["iters"] == 5
    keys = [k for k in score[0] if k.startswith("ap_")]
    assert keys and all(score[0][k] == score[1][k] for k in keys)


# ---------------------------------------------------------------------------------------------- zoo entries
def test_a_zoo_entry_may_set_evaluation_keys_only(tiny_od_run, tmp_path, monkeypatch, capsys):
    """The test-time T chosen on the eval split can be given to a zoo entry after training (the weights are the
    run's, byte for byte); a key that would describe another model is refused, as is a bad value."""
    from safetensors.torch import load_file

    from slotlab.inference.checkpoint_io import load_checkpoint
    from slotlab.zoo import ZOO_ENV, ZooEntryError, make_entry, read_card, set_evaluation_keys

    zoo = tmp_path / "zoo"
    plain = make_entry(tiny_od_run, "plain", dest=zoo, measure_score=False)
    entry = make_entry(tiny_od_run, "seven", dest=zoo, measure_score=False, evaluation=["model.eval_iters=7"])
    config = json.loads((entry.folder / "config.json").read_text())["config"]
    before = json.loads((plain.folder / "config.json").read_text())["config"]
    assert config["model"].pop("eval_iters") == 7 and before["model"].pop("eval_iters", None) is None
    assert config == before  # nothing else changed
    # A run from before a key existed keeps its config as trained (a missing model.weight_init means torch's
    # weights, and today's default is Keras'): the new key is added, nothing is filled in.
    ckpt = load_checkpoint(plain.folder)
    del ckpt["hyper_parameters"]["config"]["model"]["weight_init"]
    assert set_evaluation_keys(ckpt, ["model.eval_iters=9"]) == {"model.eval_iters": 9}
    assert "weight_init" not in ckpt["hyper_parameters"]["config"]["model"]
    assert "model.eval_iters 7" in read_card(entry.folder)["notes"]
    a, b = (load_file(str(e.folder / "model.safetensors")) for e in (plain, entry))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for bad, why in (("model.num_slots=5", "act at evaluation"), ("model.eval_iters=0", "eval_iters"),
                     ("model.eval_iters", "act at evaluation")):  # fmt: skip
        with pytest.raises(ZooEntryError, match=why):
            make_entry(tiny_od_run, "bad", dest=zoo, measure_score=False, evaluation=[bad])
    assert not (zoo / "bad").exists()
    monkeypatch.setenv(ZOO_ENV, str(zoo))
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "--pretrained", "seven", "--num-images", "2", "--split", "test"]) == 0
    assert "T=7 on 2 test images" in capsys.readouterr().out
