"""Every default of slotlab in one place: the config schema of each task, with the paper's / reference code's
settings (object discovery: Section 4.1 and appendix; set prediction: Section 4.2).

A config is these defaults <- a YAML file (``slotlab/configs/``, with its ``base:`` chain) <- ``key=value``
overrides; :mod:`slotlab.config` loads and type-checks it against the schema below (a key not listed here is
unknown; a value must have the default's type unless :data:`FLEXIBLE` says otherwise), :mod:`slotlab.validate`
checks ranges and the constraints between keys. The YAML files state only what differs from these.
"""

from __future__ import annotations

import copy
from typing import Any

# Object discovery defaults = paper / reference code (Tetrominoes sizes; CLEVR configs override the model).
OBJECT_DISCOVERY: dict[str, Any] = {
    "task": "object_discovery",
    "seed": 0,
    "data": {
        "name": "tetrominoes",
        "train_size": 60000,
        "eval_size": 320,
        "batch_size": 64,
        "eval_batch_size": 64,
        "seed": 0,
        "path": None,
        "cache_dir": None,
        "workers": 0,
    },
    "model": {
        "kind": "slot_attention",
        "num_slots": 4,
        "iters": 3,
        "slot_dim": 64,
        "mlp_hidden": 128,
        "encoder_channels": [32, 32, 32, 32],
        "decoder": "full_resolution",
        "decoder_channels": 32,
        "position_embedding": True,
        "factorize_decoder": True,
        "decoder_frame": "absolute",  # ISA-style slot frames (translation / translation_scale): not in the paper
        "layer_norm_eps": 1e-3,  # Keras' default, used by every LayerNorm of the reference code
        "slot_attention": {
            "aggregation": "mean",
            "softmax_axis": "slots",
            "slot_init": "shared",
            "update": "gru",
            "layer_norm": True,
            "mlp": True,
            "temperature": None,
            "eps": 1e-8,
            "eps_placement": "attn",
            "identity_projections": False,
            # Not in the paper (Chang et al. 2022): backpropagate through the last iteration only.
            "implicit_differentiation": False,
        },
        "slot_mlp": {"grid": 8, "hidden": 512},  # the Slot MLP baseline (model.kind: slot_mlp)
    },
    "optim": {
        "lr": 4e-4,
        "warmup_steps": 10000,
        "decay_rate": 0.5,
        "decay_steps": 100000,
        # Not in the paper: the last cooldown_steps steps before trainer.max_steps ramp the lr linearly to 0.
        "cooldown_steps": 0,
        "grad_clip": None,
        # Exponential moving average of the weights (not in the paper): validated, checkpointed and evaluated
        # weights are the average, updated every step after the warmup. null = off (the paper).
        "ema_decay": None,
    },
    "trainer": {
        "max_steps": 500000,
        "max_minutes": None,
        "val_every": 5000,
        "log_every": 50,
        "precision": "auto",
        "channels_last": "auto",
        # torch.compile the model (the same function): true, false, or "auto" = true for runs of >= 1000 steps where
        # torch.compile can run (a C++ compiler for CPUs, Triton for GPUs); a runtime choice, like precision.
        "compile": "auto",
        "accelerator": "auto",
        "devices": 1,
        "num_nodes": 1,
        "strategy": "auto",
        "progress_bar": True,
        "figure_every_val": True,
        "num_figure_images": 8,
        "tune_malloc": True,
        "threads": None,
        "failed_seed": "warn",
        "failed_seed_threshold": 0.85,
        "failed_seed_after": None,
        "failed_seed_restarts": 2,
    },
    "run": {"root": "runs", "name": None},
    # FG-ARI where it is 0 / 0: "nan" (DeepMind's segmentation_metrics; means skip those images and say how many)
    # or "one" (scikit-learn's adjusted_rand_score convention).
    "eval": {"ari_undefined": "nan"},
}

# Keys whose value may be None or a value of another type than the default's.
FLEXIBLE = {
    "model.slot_attention.temperature": (float, int, type(None)),
    "optim.grad_clip": (float, int, type(None)),
    "optim.ema_decay": (float, type(None)),
    "trainer.compile": (bool, str),
    "trainer.max_minutes": (float, int, type(None)),
    "trainer.precision": (str, int),
    "trainer.channels_last": (str, bool),
    "trainer.devices": (int, str, list),
    "trainer.threads": (int, type(None)),
    "trainer.failed_seed_after": (int, type(None)),
    "run.name": (str, type(None)),
    "data.path": (str, type(None)),
    "data.cache_dir": (str, type(None)),
}

# Full config schema of task 'set_prediction' = paper / reference-code settings for CLEVR10 (Section 4.2).
SET_PREDICTION: dict[str, Any] = {
    "task": "set_prediction",
    "seed": 0,
    "data": {
        "source": "procedural",  # "procedural" (CLEVR-like renderer) or "clevr_folder" (CLEVR v1.0 at data.path)
        "path": None,  # CLEVR v1.0 folder (source clevr_folder)
        # clevr10 (3-10 objects, K = 10 target rows), clevr6 (at most 6 objects, 6 rows) or, not a paper set,
        # clevr3 (procedural only: 1-3 objects, 3 rows)
        "variant": "clevr10",
        "train_size": 70000,
        "eval_size": 15000,
        "batch_size": 512,
        "eval_batch_size": 256,
        "seed": 0,
        "image_size": 128,  # the full image resized to image_size x image_size (no crop)
        "render_size": [160, 240],  # procedural only: (H, W) rendered before the resize (CLEVR v1.0: 320x480)
        "cache_dir": None,  # shard cache of the rendered / decoded images (default: $SLOTLAB_CACHE or the user cache)
        "shard_size": 1000,
        "workers": 0,  # DataLoader workers decoding CLEVR v1.0 PNGs while building the cache
    },
    "model": {
        "kind": "slot_attention",  # or "slot_mlp" (the Slot MLP baseline)
        "num_slots": 10,
        "iters": 3,
        "slot_dim": 64,
        "mlp_hidden": 128,
        "encoder_channels": [64, 64, 64, 64],
        "encoder_strides": [1, 2, 2, 1],
        "head_hidden": 64,
        "position_embedding": True,
        "layer_norm_eps": OBJECT_DISCOVERY["model"]["layer_norm_eps"],
        "slot_attention": copy.deepcopy(OBJECT_DISCOVERY["model"]["slot_attention"]),
        "slot_mlp": {"grid": 8, "hidden": 512},
    },
    "optim": {
        "lr": 4e-4,
        "warmup_steps": 1000,
        "decay_rate": 0.5,
        "decay_steps": 50000,
        # Not in the paper: the last cooldown_steps steps before trainer.max_steps ramp the lr linearly to 0.
        "cooldown_steps": 0,
        "grad_clip": None,
        # Exponential moving average of the weights (not in the paper): validated, checkpointed and evaluated
        # weights are the average, updated every step after the warmup. null = off (the paper).
        "ema_decay": None,
    },
    "trainer": {**copy.deepcopy(OBJECT_DISCOVERY["trainer"]), "max_steps": 150000, "val_every": 5000},
    "run": copy.deepcopy(OBJECT_DISCOVERY["run"]),
    "eval": copy.deepcopy(OBJECT_DISCOVERY["eval"]),
}

#: The schema of each task (``task:`` of a config selects one; object discovery when absent).
TASK_DEFAULTS: dict[str, dict[str, Any]] = {"object_discovery": OBJECT_DISCOVERY, "set_prediction": SET_PREDICTION}
