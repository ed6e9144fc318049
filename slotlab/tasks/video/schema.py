"""The config keys of task 'video' (SAVi, Kipf et al. 2022): its ``data`` and ``model`` sections and its defaults of
shared keys. The defaults are SAVi-S's (``savi_conditional_small.py``; docs/video.md "SAVi facts"): 64x64 frames,
clips of 6, slot size 128, 1 corrector iteration, transformer predictor, first-frame boxes, Adam 2e-4 with 2,500
warm-up steps and a cosine decay over 100k steps, gradient-norm clipping at 0.05, batch 64. Two defaults are not
SAVi-S's, and say so: the data (the built-in generator; MOVi needs its files) and the target (RGB; SAVi-S
reconstructs optical flow, ``model.targets: [flow]``, which the MOVi presets set). Carried by the task class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slotlab.config_schema import Bool, Choice, Float, Int, IntList, Key, TaskSchema, kind_of, pick
from slotlab.defaults import DATA, MODEL
from slotlab.errors import ConfigError
from slotlab.modules.predictors import PREDICTORS
from slotlab.modules.slot_init import ABSENT_KINDS, INIT_KINDS

NONE = type(None)
DATASETS = ("moving_objects", "movi")
TARGETS = ("rgb", "flow")  # flow: optical flow drawn as RGB (SAVi's flow_to_rgb)


def _off_or_positive(doc: str) -> Key:
    """A model key that is null (SAVi) or a number > 0 (an option not in SAVi)."""
    return Key(None, Float(0, 1e6, lo_open=True, nullable=True), doc, types=(float, int, NONE))


@dataclass(frozen=True)
class OptionalIntList:
    """null, or a list of integers (:class:`~slotlab.config_rules.IntList`)."""

    items: IntList

    def check(self, path: str, value: Any) -> None:
        if value is not None:
            self.items.check(path, value)

    def describe(self) -> str:
        return f"null or {self.items.describe()}"


@dataclass(frozen=True)
class TargetList:
    """A non-empty list of distinct targets from :data:`TARGETS`."""

    def check(self, path: str, value: Any) -> None:
        ok = isinstance(value, list) and value and all(isinstance(v, str) and v in TARGETS for v in value)
        if not ok or len(set(value)) != len(value):
            raise ConfigError(f"{path} must be a list of distinct targets from {list(TARGETS)}, got {kind_of(value)}")

    def describe(self) -> str:
        return f"non-empty list of distinct {', '.join(TARGETS)}"


SCHEMA = TaskSchema(
    "video",
    doc="object-centric learning on videos with SAVi (Kipf et al. 2022), conditional or unconditional",
    data={
        "name": Key(
            "moving_objects",
            Choice(DATASETS),
            "moving_objects (the built-in generator of moving sprites) or movi (Kubric's MOVi TFRecords at data.path)",
        ),
        "path": DATA["path"].but(
            doc="movi: the TFDS folder of one MOVi dataset (e.g. movi_a/128x128/1.0.0) or one of its shard files"
        ),
        "image_size": Key(64, Int(8, 512), "frames are S x S: rendered at S, or MOVi's resized to S (SAVi-S: 64)"),
        "num_frames": Key(6, Int(1, 64), "frames of a training clip (SAVi: 6; MOVi: non-overlapping windows)"),
        "eval_num_frames": Key(
            None,
            Int(1, 256, nullable=True),
            "frames of a held-out clip (null: num_frames; SAVi on MOVi: 24, whole videos)",
            types=(int, NONE),
        ),
        "eval_slice": Key(
            None,
            Int(1, 256, nullable=True),
            "held-out clips run in slices of this many frames, the slots carried over (SAVi: 6; null: at once)",
            types=(int, NONE),
            resume=True,
        ),
        "max_objects": Key(
            5,
            Int(1, 64),
            "objects per video at most (generator); MOVi: the boxes kept (SAVi: 10 for A-C, 23 for D/E); a "
            "conditional model has max_objects + 1 slots",
        ),
        "min_objects": Key(2, Int(1, 8), "generator: objects per video at least"),
        "bounce": Key(False, Bool(), "generator: sprites bounce off the edges instead of entering and leaving"),
        "enter_prob": Key(0.15, Float(0, 1), "generator: chance that a sprite starts outside the frame and enters"),
        "train_size": DATA["train_size"].but(
            default=10000,
            doc="training clips; movi: the first videos of the train split, at most (each cut into clips)",
        ),
        "eval_size": DATA["eval_size"].but(
            default=256, doc="held-out clips; movi: the first videos of the validation split, at most"
        ),
        **pick(
            DATA, "batch_size", "eval_batch_size", "seed", "cache_dir", "workers", batch_size=64, eval_batch_size=32
        ),
    },
    model={
        "num_slots": Key(11, Int(1, 256), "K of the unconditional inits (conditional: data.max_objects + 1)"),
        "slot_dim": Key(128, Int(1, 4096), "D, the slot size (SAVi-S: 128)"),
        "init": Key(
            "boxes",
            Choice(INIT_KINDS),
            "initial slots: first-frame boxes or points through an MLP (conditional; SAVi-S: boxes), or "
            "unconditional: learned, gaussian (Slot Attention's), standard_normal",
        ),
        "init_hidden": Key(256, Int(1, 16384), "hidden units of the conditional init's MLP"),
        "prepend_background": Key(True, Bool(), "conditional init: a background slot before the objects' (SAVi)"),
        "absent_slots": Key(
            "box",
            Choice(ABSENT_KINDS),
            "conditional init: slots of objects absent from frame 0 (zero boxes): box (SAVi: encoded like any box, "
            "so alike) or learned (one learned slot per box position, free to take entering objects; not in SAVi)",
        ),
        "encoder_channels": Key([32, 32, 32, 32], IntList(1, 4096), "channels of the per-frame CNN (5x5 convs)"),
        "encoder_strides": Key([1, 1, 1, 1], IntList(1, 8), "strides of those convolutions (one per layer)"),
        "encoder_hidden": Key(64, Int(1, 16384), "hidden units of the encoder's output MLP"),
        "position_embedding": Key(True, Bool(), "position embedding of the encoder grid (SAVi: true)"),
        "corrector_iters": Key(1, Int(1, 32), "Slot Attention iterations per frame (SAVi: 1)"),
        "first_frame_iters": Key(
            None,
            Int(1, 32, nullable=True),
            "iterations on a clip's first frame when it starts from the initial slots (null: corrector_iters, "
            "SAVi; not in SAVi)",
            types=(int, NONE),
        ),
        "mask_entropy": MODEL["mask_entropy"],
        "corrector_mlp": Key(
            None,
            Int(1, 16384, nullable=True),
            "hidden units of a residual MLP after the corrector's GRU (null: none, SAVi-S)",
            types=(int, NONE),
        ),
        "corrector_evidence_gate": _off_or_positive(
            "null (SAVi) or c: the corrector's change of a slot is scaled by m / (m + c), m the inputs the slot holds "
            "(its attention summed over the frame); a slot holding none (occluded) keeps the predictor's; not in SAVi"
        ),
        "corrector_implicit_differentiation": Key(
            False,
            Bool(),
            "every frame's corrector iterations but the last run without a gradient, which reaches the frame's "
            "initial slots straight through (BO-QSA, Jia et al. 2023; with first_frame_iters > 1: BO-QSA on frame 0); "
            "not in SAVi",
        ),
        "attention_masks": MODEL["attention_masks"],
        "box_attention": _off_or_positive(
            "null (SAVi) or beta (init boxes): on a clip's first frame the corrector's attention logits of an "
            "object's slot are lowered by beta outside its box (background slot unbiased); not in SAVi"
        ),
        "predictor": Key("transformer", Choice(PREDICTORS), "slots of frame t -> initial slots of frame t + 1"),
        "predictor_heads": Key(4, Int(1, 64), "attention heads of the transformer predictor"),
        "predictor_mlp": Key(256, Int(1, 16384), "hidden units of the predictor's MLP"),
        "predictor_pre_norm": Key(False, Bool(), "pre-LayerNorm transformer block (SAVi: post-norm, false)"),
        "decoder_channels": Key([64, 64, 64, 64], IntList(1, 4096), "channels of the broadcast decoder's CNN"),
        "decoder_strides": Key(
            None,
            OptionalIntList(IntList(1, 8)),
            "their strides (null: SAVi's layout for the size: 64 -> 2, 2, 2, 1 from an 8x8 grid)",
            types=(list, NONE),
        ),
        "broadcast_resolution": Key(
            None,
            OptionalIntList(IntList(1, 512, 2, 2)),
            "(h, w) of the decoder's broadcast grid (null: the image size over the strides' product)",
            types=(list, NONE),
        ),
        "decoder_fourier_bands": MODEL["decoder_fourier_bands"],
        "weight_init": MODEL["weight_init"].but(default="flax"),
        "encoder_init": MODEL["encoder_init"],
        "targets": Key(["rgb"], TargetList(), "what the decoder reconstructs: rgb, flow (as RGB; SAVi-S's)", arg=None),
        "loss": Key(
            "sum",
            Choice(("sum", "mean")),
            "squared error summed over frames and pixels, batch mean (SAVi) or the mean over everything",
            arg=None,
        ),
        "layer_norm_eps": Key(1e-6, Float(0, 1, lo_open=True), "epsilon of every LayerNorm (flax's 1e-6)"),
    },
    shared_defaults={
        "optim.lr": 2e-4,
        "optim.warmup_steps": 2500,
        "optim.decay_steps": 100000,
        "optim.grad_clip": 0.05,
        "trainer.max_steps": 100000,
        "trainer.val_every": 1000,
        "optim.schedule": "cosine",
        "eval.ari_undefined": "one",
    },
)
