"""model.eval_iters: Slot Attention's iterations at evaluation (the paper's Figure 2, right: a model trained with
T = 3 evaluated with more), training unchanged; validation, `slotlab eval`, figures and the final line use it and
say so."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY_OD
from PIL import Image

from slotlab.cli import main
from slotlab.config import load_config
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
    # Figure 3b draws one row of attention maps per iteration: T=5 for the run, T=3 for the paper's protocol.
    heights = []
    for name in ("r", "p"):
        assert main(["figures", str(tmp_path / name), "--num-images", "2", "--out", str(tmp_path / f"fig_{name}")]) == 0
        heights.append(Image.open(tmp_path / f"fig_{name}" / "figure3b_attention.png").size[1])
    assert heights[0] > heights[1]
