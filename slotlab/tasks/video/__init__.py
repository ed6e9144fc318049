"""Task 'video': object-centric learning on moving scenes with SAVi (Kipf et al., ICLR 2022, "Conditional
Object-Centric Learning from Video"), conditional on first-frame boxes / points or unconditional.

One module: the config keys (:mod:`.schema`), the model (:class:`slotlab.models.savi.SAVi`, built in :mod:`.run`),
the data (:mod:`.data`: the built-in moving-objects generator or MOVi TFRecords), the loss (SAVi's squared error
summed over frames and pixels, batch mean; target RGB and / or optical flow drawn as RGB), the validation metrics
and evaluation (video FG-ARI and mBO with the first frame included and excluded, per-frame FG-ARI; held-out clips
run in slices with the state carried over, as SAVi), the pictures (:mod:`.presenter`, :mod:`.figures`: an
animated GIF or an MP4), ``slotlab segment`` of one's own video (:mod:`.segment`) and ``slotlab export``
(:mod:`.export`: clips of a fixed length).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from slotlab.checks import TRAIN_ADVICE
from slotlab.errors import ConfigError, UsageError
from slotlab.metrics.ari import nan_summary
from slotlab.modules.slot_init import CONDITIONAL
from slotlab.tasks.base import (
    DEFAULT_OPTIONS,
    DEFAULT_SETTING,
    EVAL_SEED,
    EvalFlags,
    EvalOptions,
    EvalSetting,
    ExportSpec,
    SegmentRequest,
    Task,
    ValidationBatch,
    ValidationContext,
)
from slotlab.tasks.video.presenter import VideoPresenter, shown_target
from slotlab.tasks.video.run import SAMPLED_INITS, build_model, clip_scores, target_of
from slotlab.tasks.video.schema import SCHEMA

if TYPE_CHECKING:
    import lightning as L

SCORE_KEYS = ("fg_ari_video", "fg_ari_video_skip_first", "mbo_video", "mbo_video_skip_first", "fg_ari_frame")


def _flow(cfg: dict[str, Any]) -> bool:
    return "flow" in cfg["model"]["targets"]


class Video(Task):
    name = SCHEMA.name
    schema = SCHEMA
    title = "video object discovery"
    defaults = SCHEMA.defaults()
    monitor = "val/fg_ari_video"
    metrics = (
        "val/fg_ari_video",
        "val/fg_ari_video_skip_first",
        "val/mbo_video",
        "val/mbo_video_skip_first",
        "val/fg_ari_frame",
        "val/mse_rgb",
        "val/fg_ari_video_undefined",
    )
    progress_metrics = ("val/fg_ari_video",)
    score = ("video FG-ARI", "fg_ari_video_mean")
    presenter_class = VideoPresenter

    # ------------------------------------------------------------------ config
    def check_config(self, cfg: dict[str, Any]) -> None:
        d, m = cfg["data"], cfg["model"]
        if d["name"] == "moving_objects":
            from slotlab.data.moving_objects import HUES

            if not d["min_objects"] <= d["max_objects"] <= HUES:
                raise ConfigError(f"data.min_objects {d['min_objects']} and data.max_objects {d['max_objects']}: the "
                                  f"generator needs min_objects <= max_objects <= {HUES}")  # fmt: skip
        if d["eval_slice"] is not None and d["eval_slice"] > (d["eval_num_frames"] or d["num_frames"]):
            raise ConfigError(f"data.eval_slice {d['eval_slice']} is longer than a held-out clip "
                              f"({d['eval_num_frames'] or d['num_frames']} frames)")  # fmt: skip
        if m["init"] == "learned" and m["num_slots"] < 1:
            raise ConfigError("model.num_slots must be >= 1")
        if m["absent_slots"] != "box" and m["init"] not in CONDITIONAL:
            raise ConfigError(f"model.absent_slots {m['absent_slots']} applies to the conditional inits "
                              f"({', '.join(CONDITIONAL)}); this model's init is {m['init']}")  # fmt: skip
        if m["box_attention"] is not None and m["init"] != "boxes":
            raise ConfigError(f"model.box_attention {m['box_attention']} needs the first-frame boxes (model.init "
                              f"boxes); this model's init is {m['init']}")  # fmt: skip

    def check_data_source(self, cfg: dict[str, Any]) -> None:
        """MOVi: the shards of the splits used exist; and the cache they are decoded into is writable."""
        d = cfg["data"]
        if d["name"] != "movi":
            return
        if not d.get("path"):  # checked here, not with the values: a MOVi preset names no path of its own
            raise ConfigError("data.name is movi but data.path is not set: give the TFDS folder of a MOVi dataset "
                              "(e.g. data.path=/data/movi_a/128x128/1.0.0) or one of its shard files")  # fmt: skip
        from slotlab.data.cache import check_cache_writable
        from slotlab.data.errors import DatasetFileError
        from slotlab.data.movi import shard_files
        from slotlab.tasks.video.data import MOVI_SPLITS

        for split in ("train", "eval"):
            try:
                shard_files(d["path"], MOVI_SPLITS[split])
            except DatasetFileError as e:
                raise ConfigError(f"data.path: {e}") from None
        check_cache_writable(d.get("cache_dir"))

    def example_bytes(self, cfg: dict[str, Any]) -> int:
        """A clip: frames and masks (uint8), boxes, and the flow drawn as RGB when it is a target."""
        d = cfg["data"]
        s, t = d["image_size"], max(d["num_frames"], d["eval_num_frames"] or 0)
        per_frame = s * s * (4 + (3 if _flow(cfg) else 0)) + d["max_objects"] * 16
        return t * per_frame

    def check_eval_flags(self, cfg: dict[str, Any], flags: EvalFlags) -> None:
        if flags.objects:
            raise UsageError("--objects applies to set prediction only; this checkpoint is a video model")
        if flags.iters:
            raise UsageError("--iters does not apply to a video model: its corrector runs model.corrector_iters "
                             "iterations per frame")  # fmt: skip
        if flags.num_slots and cfg["model"]["init"] not in SAMPLED_INITS:
            why = "one slot per first-frame object" if cfg["model"]["init"] in ("boxes", "points") else "learned slots"
            raise UsageError(f"--num-slots needs a sampled slot initialisation (gaussian, standard_normal); this "
                             f"model's is {cfg['model']['init']!r} ({why})")  # fmt: skip
        if flags.data_path is not None and cfg["data"]["name"] != "movi":
            raise UsageError("--data-path applies to models trained on MOVi (a MOVi TFDS folder or shard); this model "
                             f"was trained on the built-in {cfg['data']['name']} generator")  # fmt: skip

    # ------------------------------------------------------------------ model and data
    def image_size(self, cfg: dict[str, Any]) -> tuple[int, int]:
        s = int(cfg["data"]["image_size"])
        return s, s

    def build_model(self, cfg: dict[str, Any], image_size: tuple[int, int] | None = None) -> nn.Module:
        return build_model(cfg, tuple(image_size or self.image_size(cfg)))

    def datamodule(self, cfg: dict[str, Any]) -> L.LightningDataModule:
        from slotlab.tasks.video.data import VideoData  # a Lightning DataModule: imported when data is needed

        return VideoData(cfg["data"], flow=_flow(cfg))

    def heldout(self, data_cfg: dict[str, Any], split: str, count: int) -> dict[str, torch.Tensor]:
        """image uint8 [n, T, 3, S, S], mask uint8 [n, T, S, S], boxes float32 [n, T, M, 4] (no flow)."""
        from slotlab.tasks.video.data import load_split

        return load_split(data_cfg, split, count)

    # ------------------------------------------------------------------ training
    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor], image: torch.Tensor, noise: Any) -> Any:
        """The clips ``image`` [B, T, 3, H, W]; a conditional model gets the batch's boxes (frame 0 is used); the
        sampled inits draw their noise from torch's generator (saved in checkpoints)."""
        conditioning = batch["boxes"].to(image.device) if model.conditional else None
        return model(image, conditioning=conditioning)

    def probe(
        self, model: nn.Module, cfg: dict[str, Any], size: tuple[int, int], num_slots: int | None, iters: int | None
    ) -> torch.Tensor:
        """A training clip of zeros [1, T, 3, H, W] (with zero boxes for a conditional model)."""
        d = cfg["data"]
        boxes = torch.zeros(1, d["max_objects"], 4) if model.conditional else None
        return model(torch.zeros(1, d["num_frames"], 3, *size), conditioning=boxes, num_slots=num_slots).recon

    def loss(self, model: nn.Module, out: Any, batch: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        return model.loss(out, target_of(out, batch, image), self.loss_reduction(model))

    @staticmethod
    def loss_reduction(model: nn.Module) -> str:
        return getattr(model, "loss_reduction", "sum")

    def validation_step(
        self, model: nn.Module, batch: dict[str, torch.Tensor], batch_idx: int, ctx: ValidationContext
    ) -> ValidationBatch:
        cfg = ctx.config
        where = f"validation batch {batch_idx} at step {ctx.step}"
        scores, out, video = clip_scores(
            model, batch, batch["index"], cfg["eval"]["ari_undefined"], EVAL_SEED,
            slice_len=cfg["data"]["eval_slice"], where=where, advice=TRAIN_ADVICE,
        )  # fmt: skip
        values = {k: v.float() for k, v in scores.items()}
        values["index"] = batch["index"]
        figures = None
        if ctx.want_figures:
            recon, recons = shown_target(out)
            figures = {"video": video, "recon": recon, "recons": recons, "masks": out.masks, "mask": batch["mask"]}
        return ValidationBatch(values, figures)

    def validation_metrics(self, values: dict[str, torch.Tensor], ctx: ValidationContext) -> dict[str, Any]:
        if ctx.world_size > 1:  # every process's clips, each once (the sampler pads shards by repeating clips)
            index = ctx.gather(values["index"]).flatten()
            order = torch.argsort(index, stable=True)
            first = torch.ones_like(index, dtype=torch.bool)
            first[1:] = index[order][1:] != index[order][:-1]
            values = {k: ctx.gather(v).flatten()[order][first] for k, v in values.items()}
        nan = torch.tensor(float("nan"))
        out: dict[str, Any] = {}
        for key in (*SCORE_KEYS, "mse_rgb"):
            if key in values:
                v = values[key]
                ok = v[~v.isnan()]
                out[f"val/{key}"] = ok.mean() if len(ok) else nan
        ari = values["fg_ari_video"]
        out["val/fg_ari_video_undefined"] = float(ari.isnan().sum())
        return out

    # ------------------------------------------------------------------ evaluation
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
        batch_size = options.batch_size or cfg["data"]["eval_batch_size"]
        undefined = options.ari_undefined or cfg["eval"]["ari_undefined"]
        n = len(data["image"])
        parts: dict[str, list[torch.Tensor]] = {}
        for start in range(0, n, batch_size):
            batch = {k: data[k][start : start + batch_size] for k in ("image", "mask", "boxes")}
            index = torch.arange(start, start + len(batch["image"]))
            scores, _, _ = clip_scores(
                model, batch, index, undefined, options.seed, setting.num_slots, cfg["data"]["eval_slice"],
                where=f"held-out clips {start}..{start + len(index) - 1}",
            )  # fmt: skip
            for k, v in scores.items():
                parts.setdefault(k, []).append(v.cpu())
        result: dict[str, Any] = {}
        for key in (*SCORE_KEYS, "mse_rgb"):
            if key in parts:
                summary = nan_summary(torch.cat(parts[key]).numpy(), prefix=key)
                result.update({k: v for k, v in summary.items() if k != "num_images"})
        result["num_images"] = n
        result["clip_frames"] = int(data["image"].shape[1])
        return result

    def eval_grid(
        self, cfg: dict[str, Any], num_slots: list[int] | None, iters: list[int] | None, objects: list[int] | None
    ) -> tuple[list[EvalSetting], list[Any], list[Any]]:
        ks: list[int | None] = list(num_slots or [None])
        return [EvalSetting(k, None) for k in ks], ks, [None]

    def result_facts(self, cfg: dict[str, Any]) -> dict[str, Any]:
        d = cfg["data"]
        return {"dataset": self.zoo_dataset(cfg), "eval_slice": d["eval_slice"], "init": cfg["model"]["init"]}

    # ------------------------------------------------------------------ zoo, one's own videos
    def zoo_dataset(self, cfg: dict[str, Any]) -> str:
        d = cfg["data"]
        if d["name"] == "movi" and d.get("path"):
            parts = [p for p in Path(d["path"]).parts if p.startswith("movi_")]
            return parts[-1] if parts else "movi"
        return str(d["name"])

    def checks_domain(self, model: nn.Module) -> bool:
        """No out-of-domain check of ``eval --data-path`` for clips (it compares images' reconstruction errors)."""
        return False

    def describe_slots(self, model: nn.Module, cfg: dict[str, Any]) -> str:
        init = model.initializer
        if init.conditional:
            bg = "background + " if init.prepend_background else ""
            k = f"K={bg}one per first-frame object ({init.kind})"
        else:
            k = f"K={init.num_slots} ({init.kind})"
        first = model.first_frame_iters
        first_note = f" ({first} on a clip's first frame)" if first is not None else ""
        iters = f"{model.corrector.iters} corrector iteration(s) per frame{first_note}"
        boxed = ", first-frame attention kept to the boxes" if getattr(model, "box_attention", None) else ""
        return f"{k}, {iters}{boxed}, {cfg['model']['predictor']} predictor"

    clip_input = True

    def api_forward(
        self, model: nn.Module, cfg: dict[str, Any], x: torch.Tensor, num_slots: int | None, iters: int | None,
        seed: int,
    ) -> dict[str, torch.Tensor]:  # fmt: skip
        """Clips ``x`` [B, T, 3, H, W] in [-1, 1] run as ``slotlab segment`` runs a video (slices of the held-out
        slice length, slots carried over; clip i's slot-init noise is that of held-out clip i)."""
        from slotlab.tasks.video.run import clip_noise, run_clips
        from slotlab.tasks.video.segment import check

        check(model, cfg, num_slots, iters)
        noise = clip_noise(model, torch.arange(x.shape[0]), num_slots, seed)
        slice_len = cfg["data"].get("eval_slice") or cfg["data"]["num_frames"]
        out = run_clips(model, x.to(next(model.parameters()).device), None, noise, num_slots, slice_len)
        return {
            "slots": out.slots,  # [B, T, K, D]
            "masks": out.masks.float(),  # [B, T, K, H, W]
            "attn": out.attn.float(),  # [B, T, K, N]
            "recon": out.recon.float(),  # [B, T, C, H, W] (the targets in out.targets' order: rgb and/or flow)
            "recons": out.recons.float(),  # [B, T, K, C, H, W]
        }

    def export_spec(self, model: nn.Module, cfg: dict[str, Any], frames: int | None) -> ExportSpec:
        """Clips of ``frames`` frames (default ``data.num_frames``) and the init's input -> per-frame recon, masks,
        slots, attn (:mod:`.export`)."""
        from slotlab.tasks.video.export import export_spec

        return export_spec(model, cfg, frames)

    def segment_check(self, model: nn.Module, cfg: dict[str, Any], num_slots: int | None, iters: int | None) -> bool:
        from slotlab.tasks.video.segment import check

        check(model, cfg, num_slots, iters)
        return True

    def segment_file(self, model: nn.Module, cfg: dict[str, Any], request: SegmentRequest) -> dict[str, Any] | None:
        """A video: a GIF, a folder of frames, an .mp4 (:mod:`.segment`)."""
        from slotlab.tasks.video.segment import segment_video

        return segment_video(model, cfg, request)

    def image_preparation(self, model: nn.Module, cfg: dict[str, Any]) -> dict[str, Any]:
        notes = []
        if model.conditional:
            notes.append("conditional model: it needs first-frame boxes, which a user's video does not have")
        return {"dataset": self.zoo_dataset(cfg), "clevr_crop": False, "greyscale": False, "squash_aspect": None,
                "notes": notes}  # fmt: skip
