"""The config keys of task 'set_prediction' (paper Section 4.2; the defaults are the reference code's settings
for CLEVR10: batch 512, 150k steps, warmup 1k, decay 0.5 per 50k steps): its ``data`` and ``model`` sections,
and its defaults of shared keys. Carried by the task class (``Task.schema``).
"""

from __future__ import annotations

from slotlab.config_schema import Choice, Int, IntList, Key, TaskSchema, pick
from slotlab.defaults import DATA, MODEL, slot_mlp_section

SCHEMA = TaskSchema(
    "set_prediction",
    doc="supervised object property prediction (Section 4.2)",
    data={
        "source": Key(
            "procedural",
            Choice(("procedural", "clevr_folder")),
            "procedural (the built-in CLEVR-like renderer) or clevr_folder (CLEVR v1.0 at data.path)",
        ),
        "path": DATA["path"].but(doc="the CLEVR v1.0 folder, with images/ and scenes/ (source clevr_folder)"),
        "variant": Key(
            "clevr10",
            Choice(("clevr3", "clevr6", "clevr10")),
            "clevr10 (3-10 objects, 10 target rows), clevr6 (at most 6 objects, 6 rows) or, not a paper set, "
            "clevr3 (procedural only: 1-3 objects, 3 rows)",
        ),
        **pick(
            DATA,
            "train_size",
            "eval_size",
            "batch_size",
            "eval_batch_size",
            "seed",
            train_size=70000,
            eval_size=15000,
            batch_size=512,
            eval_batch_size=256,
        ),
        "image_size": Key(128, Int(8, 1024), "the full image resized to image_size x image_size (no crop)"),
        "render_size": Key(
            [160, 240], IntList(16, 4096, 2, 2), "procedural only: (H, W) rendered before the resize (CLEVR: 320x480)"
        ),
        "cache_dir": DATA["cache_dir"],
        "shard_size": Key(1000, Int(1, 10**6), "images per file of the cache"),
        "workers": DATA["workers"].but(doc="processes decoding CLEVR v1.0 PNGs while the cache is built"),
    },
    model={
        **pick(
            MODEL,
            "kind",
            "num_slots",
            "iters",
            "eval_iters",
            "slot_dim",
            "mlp_hidden",
            "encoder_channels",
            num_slots=10,
            encoder_channels=[64, 64, 64, 64],
        ),
        "encoder_strides": Key([1, 2, 2, 1], IntList(1, 8), "strides of the encoder's convolutions (one per layer)"),
        "head_hidden": Key(64, Int(1, 16384), "hidden units of the per-slot property head"),
        **pick(MODEL, "position_embedding", "layer_norm_eps", "weight_init", "slot_attention"),
        "slot_mlp": slot_mlp_section(""),
    },
    shared_defaults={
        "optim.warmup_steps": 1000,
        "optim.decay_steps": 50000,
        "trainer.max_steps": 150000,
    },
)
