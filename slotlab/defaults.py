"""The config keys every task shares, each declared once with its default (the paper's / reference code's
setting: Section 4.1 and its appendix), rule, resume flag and doc: the top-level ``seed`` and the sections
``optim``, ``trainer``, ``run``, ``eval``; and catalogues of ``data`` / ``model`` keys (and the
``model.slot_attention`` / ``model.slot_mlp`` sections) that a task's own schema picks from.

A task's schema (:class:`slotlab.config_schema.TaskSchema`, declared next to the task in ``slotlab/tasks/``)
adds its ``data`` and ``model`` sections and its own defaults of shared keys; a config is that schema's defaults
<- a YAML file (``slotlab/configs/``, with its ``base:`` chain) <- ``key=value`` overrides
(:mod:`slotlab.config`). The key table of ``docs/configs.md`` is generated from these declarations
(``python tools/config_docs.py``).
"""

from __future__ import annotations

from slotlab.config_keys import Key, Section
from slotlab.config_rules import (
    ACCELERATORS,
    MAX_COUNT,
    MAX_ITERS,
    MAX_SEED,
    MAX_SLOTS,
    STRATEGIES,
    Bool,
    ChannelsLast,
    Choice,
    Devices,
    Float,
    Int,
    IntList,
    Precision,
    Text,
)

NONE = type(None)

SEED = Key(0, Int(0, MAX_SEED), "seed of the weights' initialisation and of the slot-initialisation noise")

# ------------------------------------------------------------------------------------------ data (catalogue)
#: ``data`` keys a task may pick (each task declares its own ``data`` section, in its order, with its defaults).
DATA: dict[str, Key] = {
    "train_size": Key(60000, Int(1, MAX_COUNT), "training images (a finite set, repeated over epochs)"),
    "eval_size": Key(320, Int(1, MAX_COUNT), "held-out images of every validation and of the final evaluation"),
    "batch_size": Key(64, Int(1, 10**6), "global training batch, split evenly over the processes"),
    "eval_batch_size": Key(64, Int(1, 10**6), "batch of held-out images (memory only)", resume=True),
    "seed": Key(
        0, Int(0, MAX_SEED), "seed of the images and of their order (a batch is a function of it and the step)"
    ),
    "path": Key(None, Text("path", nullable=True), "the dataset's files (null: generated)", types=(str, NONE)),
    "cache_dir": Key(
        None,
        Text("path", nullable=True),
        "folder of the cached images (null: $SLOTLAB_CACHE, else the user cache)",
        resume=True,
        types=(str, NONE),
    ),
    "workers": Key(0, Int(0, 1024), "processes preparing the data (the same images)", resume=True),
}

# ----------------------------------------------------------------------------------------- model (catalogue)
#: ``model.slot_attention``: Algorithm 1's options (appendix B ablations) and training options not in the paper.
SLOT_ATTENTION = Section(
    {
        "aggregation": Key(
            "mean",
            Choice(("mean", "sum", "sum_layernorm")),
            "updates: attention-weighted mean (paper), weighted sum, or sum + LayerNorm (appendix B)",
        ),
        "softmax_axis": Key(
            "slots", Choice(("slots", "inputs")), "softmax over slots (paper: slots compete) or over inputs"
        ),
        "slot_init": Key(
            "shared",
            Choice(("shared", "per_slot", "queries")),
            "initial slots: one shared Gaussian (paper), a Gaussian per slot, or learned queries (BO-QSA)",
        ),
        "update": Key("gru", Choice(("gru", "direct")), "slot update: GRU (paper) or the attention output directly"),
        "layer_norm": Key(True, Bool(), "LayerNorm of inputs and slots (paper: true)"),
        "mlp": Key(True, Bool(), "residual MLP after the slot update (paper: true)"),
        "temperature": Key(
            None,
            Float(0, 1e4, lo_open=True, nullable=True),
            "logits are divided by it (null: sqrt(slot_dim), the paper's)",
            types=(float, int, NONE),
        ),
        "eps": Key(1e-8, Float(0, 1), "epsilon of the attention renormalisation (paper: 1e-8)"),
        "eps_placement": Key(
            "attn", Choice(("attn", "denominator")), "where eps goes: added to the attention (paper) or the denominator"
        ),
        "identity_projections": Key(False, Bool(), "q, k, v projections are the identity (soft k-means, appendix B)"),
        "implicit_differentiation": Key(
            False, Bool(), "backpropagate through the last iteration only (Chang et al. 2022; not in the paper)"
        ),
    },
    doc="Slot Attention's options",
    arg="slot_attention",
    kinds=("slot_attention",),
)


def slot_mlp_section(prefix: str) -> Section:
    """``model.slot_mlp``: the Slot MLP baseline's sizes; its keys become the constructor arguments ``prefix`` +
    ``grid`` / ``hidden``."""
    return Section(
        {
            "grid": Key(8, Int(1, 128), "Slot MLP: the encoder's features are average-pooled to grid x grid"),
            "hidden": Key(512, Int(1, 65536), "Slot MLP: hidden units"),
        },
        doc="the Slot MLP baseline (model.kind slot_mlp)",
        prefix=prefix,
        kinds=("slot_mlp",),
    )


def _loss_weight(what: str) -> Key:
    """A model key that is null (the papers' loss) or the weight in (0, 10] of a training price not in the papers."""
    return Key(
        None,
        Float(0, 10, lo_open=True, nullable=True),
        f"null (the papers' loss) or the weight of {what} (not in the papers)",
        types=(float, int, NONE),
    )


#: ``model`` keys a task may pick.
MODEL: dict[str, Key | Section] = {
    "kind": Key(
        "slot_attention", Choice(("slot_attention", "slot_mlp")), "the model, or the Slot MLP baseline", arg=None
    ),
    "num_slots": Key(4, Int(1, MAX_SLOTS), "K, the number of slots at training"),
    "iters": Key(3, Int(1, MAX_ITERS), "T, Slot Attention iterations at training", kinds=("slot_attention",)),
    "eval_iters": Key(
        None,
        Int(1, MAX_ITERS, nullable=True),
        "null (the paper's tables: model.iters) or the Slot Attention iterations in eval mode when a call names none "
        "(validation, checkpoint choice, eval, figures); more than trained with is the paper's Figure 2 (right)",
        kinds=("slot_attention",),
        types=(int, NONE),
        evaluation=True,
    ),
    "slot_dim": Key(64, Int(1, 4096), "D, the slot size"),
    "mlp_hidden": Key(128, Int(1, 16384), "hidden units of Slot Attention's MLP", kinds=("slot_attention",)),
    "encoder_channels": Key([32, 32, 32, 32], IntList(1, 4096), "channels of the encoder's convolutions"),
    "position_embedding": Key(
        True, Bool(), "soft position embedding of the encoder grid (paper: true)", kinds=("slot_attention",)
    ),
    "layer_norm_eps": Key(
        1e-3,
        Float(0, 1, lo_open=True),
        "epsilon of every LayerNorm (Keras' 1e-3, the reference code's)",
        kinds=("slot_attention",),
    ),
    "decoder_fourier_bands": Key(
        0,
        Int(0, 16),
        "F > 0: Fourier features sin/cos(2^f pi u), f < F, of the decoder's grid (Tancik et al. 2020; not in paper)",
    ),
    "encoder_fourier_bands": Key(
        0,
        Int(0, 16),
        "F > 0: Fourier features sin/cos(2^f pi u), f < F, of the encoder's position grid, so that an attention query "
        "can pick a place, not only a side of the image (Tancik et al. 2020; not in paper)",
        kinds=("slot_attention",),
    ),
    "weight_init": Key(
        "keras",
        Choice(("keras", "flax", "torch")),
        "initial weights: keras (Glorot, zero biases: the reference code's), flax (LeCun: SAVi's), or torch's defaults",
        arg=None,
    ),
    "mask_entropy": _loss_weight(
        "the decoder masks' per-pixel entropy over the slots, added to the loss and reduced like the reconstruction "
        "error: a duplicate slot sharing an object's pixels costs"
    ),
    "slot_mass_penalty": _loss_weight(
        "a concave price on each slot's share of the image (the sum over slots of sqrt(share), added to the loss): "
        "an object split over two slots costs more than one slot holding it"
    ),
    "slot_repulsion": _loss_weight(
        "a price on near-copy slots (each pair of an image's slots pays the amount by which their cosine similarity "
        "exceeds 0.5, added to the loss): duplicates are pushed apart"
    ),
    "attention_masks": Key(
        None,
        Float(0, 1e3, lo_open=True, nullable=True),
        "null (the papers) or w: the masks are the softmax over the slots of the decoder's alpha logits + w x log of "
        "Slot Attention's last attention (at the image's resolution), so they follow the inputs' features (as MONet's "
        "attention masks, Burgess et al. 2019) and the reconstruction trains the attention; not in the papers",
        types=(float, int, NONE),
    ),
    "encoder_init": Key(
        "weight_init",
        Choice(("weight_init", "he")),
        "initial weights of the encoder's CNN: as model.weight_init, or he (Kaiming-normal, fan-in, ReLU gain, zero "
        "biases: variance-preserving, so colour is not drowned by the position embedding; not in the papers)",
        arg=None,
    ),
    "init_from": Key(
        None,
        Text("path", nullable=True),
        "null (train from weight_init) or a trained model (zoo name, run folder, .ckpt) whose weights a new run "
        "starts from; tensors it lacks keep weight_init's",
        arg=None,
        types=(str, NONE),
    ),
    "slot_attention": SLOT_ATTENTION,
}

# ------------------------------------------------------------------------------------------- shared sections
OPTIM = Section(
    {
        "lr": Key(4e-4, Float(0, 10, lo_open=True), "Adam's peak learning rate"),
        "warmup_steps": Key(10000, Int(0, MAX_COUNT), "linear warmup of the learning rate"),
        "decay_rate": Key(
            0.5,
            Float(0, 1, lo_open=True),
            "the learning rate is multiplied by decay_rate every decay_steps steps (continuously)",
        ),
        "decay_steps": Key(100000, Int(1, MAX_COUNT), "see decay_rate (cosine: the step the learning rate reaches 0)"),
        "schedule": Key(
            "exponential",
            Choice(("exponential", "cosine")),
            "after the warmup: the paper's exponential decay, or SAVi's cosine decay to 0 at decay_steps",
        ),
        "cooldown_steps": Key(
            0, Int(0, MAX_COUNT), "the last steps before max_steps ramp the lr linearly to 0 (0: off; not in the paper)"
        ),
        "grad_clip": Key(
            None,
            Float(0, 1e6, lo_open=True, nullable=True),
            "clip the gradient norm (null: off, the paper)",
            types=(float, int, NONE),
        ),
        "ema_decay": Key(
            None,
            Float(0, 0.99999, lo_open=True, nullable=True),
            "exponential moving average of the weights, used for validation and checkpoints (null: off; not in "
            "the paper)",
            types=(float, NONE),
        ),
    },
    doc="Adam and the learning-rate schedule",
)

TRAINER = Section(
    {
        "max_steps": Key(500000, Int(1, MAX_COUNT), "training steps", resume=True),
        "max_minutes": Key(
            None,
            Float(0, 1e7, lo_open=True, nullable=True),
            "stop after this many minutes of training steps, over all sessions, validation excluded (null: no limit)",
            resume=True,
            types=(float, int, NONE),
        ),
        "val_every": Key(5000, Int(1, MAX_COUNT), "steps between validations (and checkpoints)", resume=True),
        "keep_every": Key(
            None,
            Int(1, MAX_COUNT, nullable=True),
            "keep the checkpoint of every this many steps too, checkpoints/kept-stepNNNNNNN.ckpt (null: best, last)",
            resume=True,
            types=(int, NONE),
        ),
        "log_every": Key(50, Int(1, MAX_COUNT), "steps between logged training metrics", resume=True),
        "precision": Key(
            "auto",
            Precision(),
            "numeric precision (auto: bf16-mixed where fast, else 32)",
            resume=True,
            types=(str, int),
        ),
        "channels_last": Key(
            "auto",
            ChannelsLast(),
            "channels-last memory layout of images and convolutions (auto: on)",
            resume=True,
            types=(str, bool),
        ),
        "compile": Key(
            "auto",
            Choice((True, False, "auto")),
            "torch.compile the model (auto: runs of >= 1000 steps where it can run)",
            resume=True,
            types=(bool, str),
        ),
        "accelerator": Key("auto", Choice(ACCELERATORS), "device type (auto: a GPU if there is one)", resume=True),
        "devices": Key(1, Devices(), "devices per node, or a list of GPU ids", resume=True, types=(int, str, list)),
        "num_nodes": Key(1, Int(1, 4096), "machines", resume=True),
        "strategy": Key("auto", Choice(STRATEGIES), "Lightning's distribution strategy", resume=True),
        "progress_bar": Key(True, Bool(), "show a progress bar", resume=True),
        "figure_every_val": Key(True, Bool(), "draw figures at every validation", resume=True),
        "num_figure_images": Key(8, Int(1, 64), "held-out images in those figures", resume=True),
        "tune_malloc": Key(
            True, Bool(), "keep freed large blocks in glibc's heap (fewer page faults; CPU speed)", resume=True
        ),
        "threads": Key(
            None, Int(1, 1024, nullable=True), "CPU threads (null: torch's default)", resume=True, types=(int, NONE)
        ),
        "failed_seed": Key(
            "warn",
            Choice(("warn", "restart", "off")),
            "a run stuck in a content-independent segmentation: warn, restart from a new seed, or off",
            resume=True,
        ),
        "failed_seed_threshold": Key(
            0.85, Float(0, 1, lo_open=True), "layout ARI above which a run counts as stuck", resume=True
        ),
        "failed_seed_after": Key(
            None,
            Int(0, MAX_COUNT, nullable=True),
            "steps before the failed-seed check starts (null: twice the warmup)",
            resume=True,
            types=(int, NONE),
        ),
        "failed_seed_restarts": Key(2, Int(0, 100), "at most this many restarts (failed_seed: restart)", resume=True),
    },
    doc="how long and how a run is executed",
)

RUN = Section(
    {
        "root": Key("runs", Text("path"), "folder of the run folders"),
        "name": Key(
            None,
            Text("name", nullable=True),
            "the run folder's name (null: <config>-seed<seed>-<date>-<time>)",
            types=(str, NONE),
        ),
    },
    doc="where the run folder is",
)

EVAL = Section(
    {
        "ari_undefined": Key(
            "nan",
            Choice(("nan", "one")),
            "FG-ARI where it is 0/0: nan (skip those images and count them; DeepMind's) or one (scikit-learn's)",
        ),
    },
    doc="evaluation conventions",
)

#: The sections after ``data`` and ``model``, in config order.
SHARED_SECTIONS: dict[str, Section] = {"optim": OPTIM, "trainer": TRAINER, "run": RUN, "eval": EVAL}
