"""A task is one module: a third task, defined and registered in this file alone (its config keys, model, data,
loss, metric and evaluation; no presenter of its own), is trained, evaluated and reported through the CLI
(``slotlab train --config <yaml>``, ``slotlab eval RUN``, ``slotlab report RUN``) in-process, in seconds.

The toy task: predict the colour of a flat-coloured image (regression; the metric is the held-out MSE, lower is
better, so the best checkpoint is the one of the lowest MSE). Nothing in ``slotlab/`` knows it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from slotlab.cli import main
from slotlab.config_schema import Int, Key, TaskSchema, pick
from slotlab.data.datamodule import StepDataModule
from slotlab.defaults import DATA
from slotlab.tasks import TASKS, register, unregister
from slotlab.tasks.base import DEFAULT_OPTIONS, DEFAULT_SETTING, EvalOptions, EvalSetting, Task
from slotlab.tasks.common import ValidationBatch, ValidationContext, image_to_model

NAME = "toy_colour"
SPLITS = {"train": 0, "eval": 1, "test": 2}


def toy_split(data_cfg: dict[str, Any], split: str, count: int) -> dict[str, torch.Tensor]:
    """``count`` flat-coloured images uint8 [n, 3, S, S] and their colour in [-1, 1] (``target`` [n, 3])."""
    g = torch.Generator().manual_seed(1000 * data_cfg["seed"] + SPLITS[split])
    colour = torch.randint(0, 256, (count, 3), generator=g, dtype=torch.uint8)  # [n, 3]
    s = data_cfg["size"]
    image = colour[:, :, None, None].expand(count, 3, s, s).contiguous()  # [n, 3, S, S]
    return {"image": image, "target": colour.float() / 127.5 - 1.0}


class ToyData(StepDataModule):
    def __init__(self, data_cfg: dict[str, Any]) -> None:
        super().__init__(data_cfg["batch_size"], data_cfg["eval_batch_size"], data_cfg["seed"])
        self.data_cfg = data_cfg

    def setup(self, stage: str | None = None) -> None:
        if self.eval is None:
            self.eval = toy_split(self.data_cfg, "eval", self.data_cfg["eval_size"])
        if stage in (None, "fit") and self.train is None:
            self.train = toy_split(self.data_cfg, "train", self.data_cfg["train_size"])


@dataclass
class ToyOutput:
    pred: torch.Tensor  # [B, 3]


class ColourNet(nn.Module):
    """image [B, 3, S, S] in [-1, 1] -> its colour [B, 3]."""

    def __init__(self, size: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, hidden), nn.ReLU(), nn.Linear(hidden, 3))

    def forward(self, image: torch.Tensor, num_slots: int | None = None, iters: int | None = None) -> ToyOutput:
        return ToyOutput(self.net(image))


SCHEMA = TaskSchema(
    NAME,
    doc="toy: the colour of a flat-coloured image (tests/test_toy_task.py)",
    data={
        "size": Key(8, Int(2, 64), "side of the square images"),
        **pick(
            DATA,
            "train_size",
            "eval_size",
            "batch_size",
            "eval_batch_size",
            "seed",
            train_size=64,
            eval_size=16,
            batch_size=8,
            eval_batch_size=8,
        ),
    },
    model={"hidden": Key(16, Int(1, 1024), "hidden units of the regression MLP")},
)


class ToyColour(Task):
    name = NAME
    title = "colour regression"
    schema = SCHEMA
    defaults = SCHEMA.defaults()
    monitor = "val/mse"
    monitor_mode = "min"
    metrics = ("val/mse",)
    score = ("MSE", "mse")

    def image_size(self, cfg: dict[str, Any]) -> tuple[int, int]:
        return cfg["data"]["size"], cfg["data"]["size"]

    def build_model(self, cfg: dict[str, Any], image_size: tuple[int, int] | None = None) -> nn.Module:
        return ColourNet(cfg["data"]["size"], cfg["model"]["hidden"])

    def datamodule(self, cfg: dict[str, Any]) -> ToyData:
        return ToyData(cfg["data"])

    def heldout(self, data_cfg: dict[str, Any], split: str, count: int) -> dict[str, torch.Tensor]:
        return toy_split(data_cfg, split, count)

    def loss(self, model: nn.Module, out: Any, batch: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out.pred, batch["target"].float())

    def validation_step(
        self, model: nn.Module, batch: dict[str, torch.Tensor], batch_idx: int, ctx: ValidationContext
    ) -> ValidationBatch:
        out = model(image_to_model(batch["image"], ctx.channels_last))
        return ValidationBatch({"se": ((out.pred - batch["target"].float()) ** 2).mean(dim=1)})  # [B]

    def validation_metrics(self, values: dict[str, torch.Tensor], ctx: ValidationContext) -> dict[str, Any]:
        return {"val/mse": ctx.gather(values["se"]).mean()}

    @torch.no_grad()
    def evaluate(
        self,
        model: nn.Module,
        data: dict[str, torch.Tensor],
        cfg: dict[str, Any],
        setting: EvalSetting = DEFAULT_SETTING,
        options: EvalOptions = DEFAULT_OPTIONS,
    ) -> dict[str, Any]:
        model.eval()
        pred = model(image_to_model(data["image"], options.channels_last)).pred
        return {"mse": float(F.mse_loss(pred, data["target"].float())), "num_images": len(pred)}


@pytest.fixture
def toy_task():
    assert NAME not in TASKS
    task = register(ToyColour())
    yield task
    unregister(NAME)


def toy_yaml(tmp_path: Path) -> Path:
    """A user's config of the toy task: its own data / model keys and the shared trainer / run keys."""
    cfg = {
        "task": NAME,
        "data": {"size": 6, "train_size": 32, "eval_size": 12, "batch_size": 8, "eval_batch_size": 4},
        "model": {"hidden": 8},
        "optim": {"lr": 1e-2, "warmup_steps": 1, "decay_steps": 100},
        "trainer": {"max_steps": 6, "val_every": 3, "log_every": 1, "precision": "32-true", "progress_bar": False},
        "run": {"root": str(tmp_path / "runs"), "name": "toy"},
    }
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_a_task_registered_here_trains_evaluates_and_reports_through_the_cli(toy_task, tmp_path, capsys):
    config = toy_yaml(tmp_path)
    assert main(["train", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "runs" / "toy"
    assert f"run folder: {run}" in out
    assert "MSE of the last step on 12 eval images: " in out  # the default presenter's line, from the task's score
    results = json.loads((run / "results.json").read_text())
    step = results["test"]["step"]  # and the eval-picked checkpoint on the test split, through the same presenter
    assert f"best checkpoint (step {step}, chosen on the eval split; " in out and " on 12 test images" in out
    assert results["task"] == NAME and results["global_step"] == 6 and results["num_images"] == 12
    assert 0 <= results["mse"] < 1.0
    best = sorted((run / "checkpoints").glob("best-*.ckpt"))
    assert len(best) == 1 and best[0].name.startswith("best-step") and "-mse" in best[0].name  # mode "min"
    assert (run / "config.yaml").exists() and "hidden: 8" in (run / "config.yaml").read_text()

    assert main(["eval", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"colour regression: mse {results['mse']:.4f} on 12 eval images" in out  # same weights, same images
    evaluated = json.loads((run / "eval-eval-step6.json").read_text())
    assert evaluated["mse"] == pytest.approx(results["mse"]) and evaluated["num_images"] == 12
    assert json.loads((run / "evals.jsonl").read_text().splitlines()[-1])["mse"] == evaluated["mse"]

    assert main(["figures", str(run)]) == 0  # a task without figures of its own: said, nothing written
    assert "no figures" in capsys.readouterr().out and not (run / "figures").exists()

    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert f"<td>{NAME}</td>" in page  # the summary's task row
    assert "held-out MSE" in page  # the default presenter's summary row, from the task's score
    assert "val/mse" in page  # the learning curves drew the task's metric
    assert "no logs/version_*/metrics.csv" not in page


def test_the_toy_tasks_own_config_keys_are_checked(toy_task, tmp_path, capsys):
    config = toy_yaml(tmp_path)
    assert main(["train", "--config", str(config), "model.hidden=0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "model.hidden" in err and len(err.splitlines()) == 1
    assert main(["train", "--config", str(config), "model.hiddn=4"]) == 2
    assert "model.hidden" in capsys.readouterr().err  # the nearest key is suggested
    assert not (tmp_path / "runs").exists()


def test_an_unregistered_task_is_a_config_error(tmp_path, capsys):
    assert NAME not in TASKS
    assert main(["train", "--config", str(toy_yaml(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert NAME in err and "object_discovery" in err  # names the known tasks
