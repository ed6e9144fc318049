"""The config keys of task 'object_discovery' (paper Section 4.1 and appendix; the defaults are the reference
code's, with Tetrominoes sizes: the CLEVR presets override the model): its ``data`` and ``model`` sections, and
the shared keys of :mod:`slotlab.defaults` as they are. Carried by the task class (``Task.schema``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slotlab.config_keys import Section
from slotlab.config_schema import Bool, Choice, Float, Int, Key, TaskSchema, kind_of, pick
from slotlab.defaults import DATA, MODEL, NONE, slot_mlp_section
from slotlab.errors import ConfigError
from slotlab.modules.invariant_slot_attention import SLOT_FRAMES


@dataclass(frozen=True)
class DatasetName:
    """A built-in object-discovery dataset (see ``slotlab data list``)."""

    def check(self, path: str, value: Any) -> None:
        from slotlab.data.registry import get_dataset

        if not isinstance(value, str):
            raise ConfigError(f"{path} must be a dataset name, got {kind_of(value)}")
        try:
            get_dataset(value)
        except ValueError as e:
            raise ConfigError(f"{path}: {e}") from e

    def describe(self) -> str:
        return "a built-in dataset (`slotlab data list`)"


def _with_frames(section: Section) -> Section:
    """Slot Attention's section plus object discovery's ``frame`` (Invariant Slot Attention, Biza et al. 2023)."""
    frame = Key(
        "absolute",
        Choice(("absolute", *SLOT_FRAMES)),
        "inputs in the image's frame (paper) or, Invariant Slot Attention (Biza et al. 2023; not in the paper), "
        "keys and values relative to each slot's position (translation) and scale (translation_scale); set "
        "model.position_embedding false as ISA",
    )
    return section.but(keys={**section.keys, "frame": frame})


def _off_or_number(hi: float, doc: str, evaluation: bool = False) -> Key:
    """A Slot Attention model key that is null (the paper) or a number in (0, hi] (an option not in the paper)."""
    return Key(
        None,
        Float(0, hi, lo_open=True, nullable=True),
        doc,
        kinds=("slot_attention",),
        types=(float, int, NONE),
        evaluation=evaluation,
    )


SCHEMA = TaskSchema(
    "object_discovery",
    doc="unsupervised object discovery (Section 4.1)",
    data={
        "name": Key("tetrominoes", DatasetName(), "the dataset"),
        **pick(DATA, "train_size", "eval_size", "batch_size", "eval_batch_size", "seed"),
        "path": DATA["path"].but(doc="DeepMind's TFRecord file of the dataset (null: generated, or the cache)"),
        **pick(DATA, "cache_dir", "workers"),
    },
    model={
        **pick(MODEL, "kind", "num_slots", "iters", "slot_dim", "mlp_hidden", "encoder_channels"),
        "decoder": Key(
            "full_resolution",
            Choice(("full_resolution", "clevr")),
            "spatial broadcast decoder: at full resolution (small images) or 8x8 upsampled 16x (CLEVR)",
        ),
        "decoder_channels": Key(32, Int(1, 4096), "channels of the decoder's convolutions"),
        "position_embedding": MODEL["position_embedding"],
        "encoder_fourier_bands": MODEL["encoder_fourier_bands"],
        "factorize_decoder": Key(
            True, Bool(), "compute the decoder's first layer per slot, then broadcast (the same function, faster)"
        ),
        "decoder_frame": Key(
            "absolute",
            Choice(("absolute", "translation", "translation_scale")),
            "position frame of the decoder's broadcast grid: absolute (paper) or relative to each slot's attention "
            "centre / spread (ISA; not in the paper)",
            kinds=("slot_attention",),
        ),
        "decoder_fourier_bands": MODEL["decoder_fourier_bands"].but(kinds=("slot_attention",)),
        "merge_slots": _off_or_number(
            1,
            "null (paper) or a cosine threshold: at evaluation, slots this similar are merged into one (DIAS-like; "
            "not in the paper)",
            evaluation=True,
        ),
        "eval_iters": MODEL["eval_iters"].but(
            doc="null (Table 1: model.iters) or the Slot Attention iterations at evaluation (validation, checkpoint "
            "choice, eval, figures, segment); more than trained with is the paper's Figure 2 (right)"
        ),
        "eval_spatial_prior": _off_or_number(
            1e6,
            "null (paper) or a weight: at evaluation, from the second iteration on, each slot's attention logits are "
            "raised near its previous attention by the weight x a Gaussian's log-density (not in the paper)",
            evaluation=True,
        ),
        "train_spatial_prior": _off_or_number(
            1e6,
            "null (paper) or a weight: the same prior as model.eval_spatial_prior in training (evaluation keeps "
            "model.eval_spatial_prior) (not in the paper)",
        ),
        "slot_keep": _off_or_number(
            10,
            "null (paper: every slot decoded) or the loss's price of a kept slot: AdaSlot's keep / drop gate per slot, "
            "a dropped slot's mask removed (not in the paper)",
        ),
        "mask_entropy": MODEL["mask_entropy"].but(kinds=("slot_attention",)),
        "slot_mass_penalty": MODEL["slot_mass_penalty"].but(kinds=("slot_attention",)),
        "slot_repulsion": MODEL["slot_repulsion"].but(kinds=("slot_attention",)),
        "attention_masks": MODEL["attention_masks"].but(kinds=("slot_attention",)),
        "layer_norm_eps": MODEL["layer_norm_eps"],
        "weight_init": MODEL["weight_init"],
        "encoder_init": MODEL["encoder_init"].but(kinds=("slot_attention",)),
        "init_from": MODEL["init_from"],
        "slot_attention": _with_frames(MODEL["slot_attention"]),
        "slot_mlp": slot_mlp_section("slot_mlp_"),
    },
)
