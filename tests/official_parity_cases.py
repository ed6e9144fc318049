"""`slotlab import-official`: checkpoints of the official Slot Attention code (google-research ``slot_attention``)
become slotlab runs that compute what the official TF model computes.

The official models are rebuilt here as Keras layers with the official architecture, layer names and nesting
(``SlotAttentionAutoEncoder`` / ``SlotAttentionClassifier`` around the ``SlotAttention`` layer; written for this
test, with one change: the slot-init noise can be passed in instead of drawn inside the layer). They get random
weights (biases and LayerNorm parameters too, so no mapping hides behind a zero or a one), run in TF at the
official 128x128, and are saved as the official training scripts save them:
``tf.train.Checkpoint(network=model, optimizer=Adam, global_step=...)`` through a ``CheckpointManager``.

The checkpoint's object graph must be the one the official code's Keras 2 (TF 2.x ``tf.keras``) writes
(``network/layer_with_weights-0/encoder_cnn/layer_with_weights-0/kernel/...``). TF >= 2.16 ships Keras 3, whose
object graph differs, so the variables are saved through a tree of ``tf.Module`` objects named as Keras 2 names
them; ``KERAS2_NAMES`` below was recorded from real Keras 2 (``tf_keras``) models of the official classes, and
``test_keras2_writes_the_same_names`` re-checks it wherever ``tf_keras`` is installed.
"""

from __future__ import annotations

import json
import os
import sys
import types

import numpy as np
import pytest
import torch

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")  # run through test_official_parity.py (own process)

from slotlab.cli import main  # noqa: E402
from slotlab.inference.checkpoint_io import load_checkpoint  # noqa: E402
from slotlab.inference.loading import load_model  # noqa: E402
from slotlab.official import TF_MISSING  # noqa: E402

RESOLUTION = 128  # the official size (the official decoder always outputs 128x128)
BATCH = 2
TOL = 1e-4

# Variable names below the model layer in a Keras 2 checkpoint of the official classes (recorded with tf_keras).
ENCODER_NAMES = [
    *(f"encoder_cnn/layer_with_weights-{i}/{w}" for i in range(4) for w in ("kernel", "bias")),
    "encoder_pos/dense/kernel",
    "encoder_pos/dense/bias",
    "layer_norm/gamma",
    "layer_norm/beta",
    *(f"mlp/layer_with_weights-{i}/{w}" for i in range(2) for w in ("kernel", "bias")),
    "slot_attention/slots_mu",
    "slot_attention/slots_log_sigma",
    *(f"slot_attention/{n}/{w}" for n in ("norm_inputs", "norm_slots", "norm_mlp") for w in ("gamma", "beta")),
    *(f"slot_attention/project_{n}/kernel" for n in "qkv"),
    "slot_attention/gru/kernel",
    "slot_attention/gru/recurrent_kernel",
    "slot_attention/gru/bias",
    *(f"slot_attention/mlp/layer_with_weights-{i}/{w}" for i in range(2) for w in ("kernel", "bias")),
]
KERAS2_NAMES = {
    "object_discovery": sorted(
        ENCODER_NAMES
        + ["decoder_pos/dense/kernel", "decoder_pos/dense/bias"]
        + [f"decoder_cnn/layer_with_weights-{i}/{w}" for i in range(6) for w in ("kernel", "bias")]
    ),
    "set_prediction": sorted(
        ENCODER_NAMES + [f"mlp_classifier/layer_with_weights-{i}/{w}" for i in range(2) for w in ("kernel", "bias")]
    ),
}
MODEL_ROOT = "network/layer_with_weights-0/"  # the functional tf.keras.Model wrapping the autoencoder/classifier


# ------------------------------------------------------------------ the official architecture, as Keras layers


def official_classes(keras) -> types.SimpleNamespace:
    """Keras layers with the official classes' structure and attribute names (for Keras 2 or Keras 3)."""
    layers = keras.layers

    class SlotAttention(layers.Layer):
        def __init__(self, num_iterations, num_slots, slot_size, mlp_hidden_size, epsilon=1e-8):
            super().__init__()
            self.num_iterations, self.num_slots, self.slot_size, self.epsilon = (
                num_iterations,
                num_slots,
                slot_size,
                epsilon,
            )
            self.norm_inputs = layers.LayerNormalization()
            self.norm_slots = layers.LayerNormalization()
            self.norm_mlp = layers.LayerNormalization()
            self.slots_mu = self.add_weight(
                initializer="glorot_uniform", shape=[1, 1, slot_size], dtype="float32", name="slots_mu"
            )
            self.slots_log_sigma = self.add_weight(
                initializer="glorot_uniform", shape=[1, 1, slot_size], dtype="float32", name="slots_log_sigma"
            )
            self.project_q = layers.Dense(slot_size, use_bias=False, name="q")
            self.project_k = layers.Dense(slot_size, use_bias=False, name="k")
            self.project_v = layers.Dense(slot_size, use_bias=False, name="v")
            self.gru = layers.GRUCell(slot_size)
            self.mlp = keras.Sequential(
                [layers.Dense(mlp_hidden_size, activation="relu"), layers.Dense(slot_size)], name="mlp"
            )

        def call(self, inputs, noise=None):
            inputs = self.norm_inputs(inputs)  # [B, N, C]
            k = self.project_k(inputs)  # [B, N, D]
            v = self.project_v(inputs)  # [B, N, D]
            if noise is None:
                noise = tf.random.normal([tf.shape(inputs)[0], self.num_slots, self.slot_size])
            slots = self.slots_mu + tf.exp(self.slots_log_sigma) * noise  # [B, K, D]
            for _ in range(self.num_iterations):
                slots_prev = slots
                q = self.project_q(self.norm_slots(slots)) * self.slot_size**-0.5  # [B, K, D]
                attn = tf.nn.softmax(tf.einsum("bnd,bkd->bnk", k, q), axis=-1) + self.epsilon  # over slots
                attn /= tf.reduce_sum(attn, axis=-2, keepdims=True)  # weighted mean over inputs
                updates = tf.einsum("bnk,bnd->bkd", attn, v)  # [B, K, D]
                # The official code feeds [B, K, D] to the cell (Keras 2 accepts it); Keras 3's GRUCell wants
                # [batch, D], so the rows go through as [B*K, D] (the cell acts on each row alone: same values).
                flat, _ = self.gru(
                    tf.reshape(updates, [-1, self.slot_size]), [tf.reshape(slots_prev, [-1, self.slot_size])]
                )
                slots = tf.reshape(flat, tf.shape(slots_prev))
                slots += self.mlp(self.norm_mlp(slots))
            return slots

    class SoftPositionEmbed(layers.Layer):
        def __init__(self, hidden_size, resolution):
            super().__init__()
            self.dense = layers.Dense(hidden_size, use_bias=True)
            ys, xs = np.meshgrid(*(np.linspace(0.0, 1.0, n) for n in resolution), indexing="ij")
            grid = np.stack([ys, xs], axis=-1)[None].astype(np.float32)
            self.grid = np.concatenate([grid, 1.0 - grid], axis=-1)  # [1, H, W, 4]

        def call(self, inputs):
            return inputs + self.dense(self.grid)

    def encoder(strides):
        return keras.Sequential(
            [layers.Conv2D(64, 5, strides=s, padding="SAME", activation="relu") for s in strides], name="encoder_cnn"
        )

    def encode(model, image, noise):
        x = model.encoder_pos(model.encoder_cnn(image))
        x = tf.reshape(x, [-1, x.shape[1] * x.shape[2], x.shape[-1]])
        return model.slot_attention(model.mlp(model.layer_norm(x)), noise=noise)

    class SlotAttentionAutoEncoder(layers.Layer):
        def __init__(self, resolution, num_slots, num_iterations):
            super().__init__()
            self.encoder_cnn = encoder((1, 1, 1, 1))
            self.decoder_initial_size = (8, 8)
            self.decoder_cnn = keras.Sequential(
                [layers.Conv2DTranspose(64, 5, strides=2, padding="SAME", activation="relu") for _ in range(4)]
                + [
                    layers.Conv2DTranspose(64, 5, strides=1, padding="SAME", activation="relu"),
                    layers.Conv2DTranspose(4, 3, strides=1, padding="SAME", activation=None),
                ],
                name="decoder_cnn",
            )
            self.encoder_pos = SoftPositionEmbed(64, resolution)
            self.decoder_pos = SoftPositionEmbed(64, self.decoder_initial_size)
            self.layer_norm = layers.LayerNormalization()
            self.mlp = keras.Sequential([layers.Dense(64, activation="relu"), layers.Dense(64)], name="feedforward")
            self.slot_attention = SlotAttention(num_iterations, num_slots, 64, 128)

        def call(self, image, noise=None):
            slots = encode(self, image, noise)  # [B, K, D]
            x = tf.reshape(slots, [-1, slots.shape[-1]])[:, None, None, :]
            x = tf.tile(x, [1, *self.decoder_initial_size, 1])  # [B*K, 8, 8, D]
            x = self.decoder_cnn(self.decoder_pos(x))  # [B*K, 128, 128, 4]
            x = tf.reshape(x, [image.shape[0], -1, *x.shape[1:]])  # [B, K, H, W, 4]
            recons, masks = tf.split(x, [3, 1], axis=-1)
            masks = tf.nn.softmax(masks, axis=1)
            return tf.reduce_sum(recons * masks, axis=1), recons, masks, slots

    class SlotAttentionClassifier(layers.Layer):
        def __init__(self, resolution, num_slots, num_iterations):
            super().__init__()
            self.encoder_cnn = encoder((1, 2, 2, 1))
            self.encoder_pos = SoftPositionEmbed(64, (resolution[0] // 4, resolution[1] // 4))
            self.layer_norm = layers.LayerNormalization()
            self.mlp = keras.Sequential([layers.Dense(64, activation="relu"), layers.Dense(64)], name="feedforward")
            self.slot_attention = SlotAttention(num_iterations, num_slots, 64, 128)
            self.mlp_classifier = keras.Sequential(
                [layers.Dense(64, activation="relu"), layers.Dense(19, activation="sigmoid")], name="mlp_classifier"
            )

        def call(self, image, noise=None):
            return self.mlp_classifier(encode(self, image, noise))

    return types.SimpleNamespace(
        SlotAttention=SlotAttention,
        SlotAttentionAutoEncoder=SlotAttentionAutoEncoder,
        SlotAttentionClassifier=SlotAttentionClassifier,
    )


def keras2_tree(layer, keras) -> tf.Module:
    """The layer's variables as ``tf.Module`` objects named as Keras 2 names them in a checkpoint: attributes
    of a layer by attribute name, the layers of a Sequential as ``layer_with_weights-i``, a built-in layer's
    variables by their own name (kernel, bias, gamma, ...)."""
    node = tf.Module()
    if isinstance(layer, keras.Sequential):
        for i, child in enumerate(c for c in layer.layers if c.weights):
            setattr(node, f"layer_with_weights-{i}", keras2_tree(child, keras))
    elif type(layer).__module__ == __name__:  # the official classes above
        for attr, value in vars(layer).items():
            if attr.startswith("_"):
                continue
            if isinstance(value, keras.layers.Layer):
                setattr(node, attr, keras2_tree(value, keras))
            elif hasattr(value, "assign") and hasattr(value, "numpy"):
                setattr(node, attr, tf.Variable(value.numpy()))
    else:
        for w in layer.weights:
            setattr(node, w.name.split("/")[-1].split(":")[0], tf.Variable(w.numpy()))
    return node


def randomize(layer, rng: np.random.Generator) -> None:
    """Random values in every weight: kernels ~ U(+-sqrt(3 / fan_in)), everything else ~ N(0, 0.3) (gammas
    around 1), so that a swapped bias, gate or LayerNorm parameter changes the output."""
    for w in layer.weights:
        name = w.name.split("/")[-1].split(":")[0]
        shape = tuple(w.shape)
        if "kernel" in name:
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 2 else shape[0]
            if len(shape) == 4 and "transpose" in (w.path if hasattr(w, "path") else w.name):
                fan_in = shape[0] * shape[1] * shape[3]
            value = rng.uniform(-1, 1, shape) * np.sqrt(3.0 / fan_in)
        elif name == "gamma":
            value = 1.0 + 0.3 * rng.standard_normal(shape)
        elif name == "slots_log_sigma":
            value = 0.3 * rng.standard_normal(shape) - 0.5
        else:
            value = 0.3 * rng.standard_normal(shape)
        w.assign(value.astype(np.float32))


def save_official(model, keras, directory, optimizer=None, moments_steps: int = 0) -> str:
    """Save as the official training scripts do (network / optimizer / global_step, via a CheckpointManager)."""
    network = tf.Module()
    setattr(network, "layer_with_weights-0", keras2_tree(model, keras))
    if optimizer is None:
        optimizer = tf.keras.optimizers.Adam()
    else:  # an optimizer with slot variables (Adam moments), as the TF 2.x Keras optimizer saves them
        variables = network.trainable_variables
        rng = np.random.default_rng(1)
        for _ in range(moments_steps):
            grads = [tf.constant(rng.standard_normal(v.shape).astype(np.float32)) for v in variables]
            optimizer.apply_gradients(zip(grads, variables, strict=True))
    ckpt = tf.train.Checkpoint(network=network, optimizer=optimizer, global_step=tf.Variable(123, dtype=tf.int64))
    return tf.train.CheckpointManager(ckpt, str(directory), max_to_keep=3).save()


def max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


def checkpoint_names(prefix: str) -> list[str]:
    suffix = "/.ATTRIBUTES/VARIABLE_VALUE"
    keys = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    names = (k[len(MODEL_ROOT) : -len(suffix)] for k in keys if k.startswith(MODEL_ROOT) and k.endswith(suffix))
    return sorted(n for n in names if "/.OPTIMIZER_SLOT/" not in n)  # the variables, not their Adam moments


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def keras():
    return tf.keras


@pytest.fixture(scope="module")
def object_discovery(tmp_path_factory, keras):
    """An official-architecture autoencoder (K=5, T=2), its TF outputs, and its checkpoint imported."""
    tmp = tmp_path_factory.mktemp("official_od")
    num_slots, iters = 5, 2
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (BATCH, RESOLUTION, RESOLUTION, 3)).astype(np.float32)
    noise = rng.standard_normal((BATCH, num_slots, 64)).astype(np.float32)
    model = official_classes(keras).SlotAttentionAutoEncoder((RESOLUTION, RESOLUTION), num_slots, iters)
    model(image, noise=noise)  # build
    randomize(model, rng)
    recon, recons, masks, slots = (t.numpy() for t in model(image, noise=noise))
    prefix = save_official(model, keras, tmp / "tf_ckpt")
    run = tmp / "imported"
    args = ["import-official", "object_discovery", str(tmp / "tf_ckpt"), "--out", str(run)]
    assert main([*args, "--num-slots", str(num_slots), "--iters", str(iters)]) == 0
    return types.SimpleNamespace(
        run=run, prefix=prefix, image=image, noise=noise, recon=recon, recons=recons, masks=masks, slots=slots
    )


@pytest.fixture(scope="module")
def set_prediction(tmp_path_factory, keras):
    """An official-architecture classifier (K=6, the CLEVR6 variant; T=3), saved with Adam moments, imported."""
    tmp = tmp_path_factory.mktemp("official_sp")
    num_slots = 6
    rng = np.random.default_rng(2)
    image = rng.uniform(-1, 1, (BATCH, RESOLUTION, RESOLUTION, 3)).astype(np.float32)
    noise = rng.standard_normal((BATCH, num_slots, 64)).astype(np.float32)
    model = official_classes(keras).SlotAttentionClassifier((RESOLUTION, RESOLUTION), num_slots, 3)
    model(image, noise=noise)
    randomize(model, rng)
    pred = model(image, noise=noise).numpy()
    # lr 0: the moments change, the weights do not (so the TF outputs above stay those of the saved weights)
    prefix = save_official(model, keras, tmp / "tf_ckpt", tf.compat.v1.train.AdamOptimizer(0.0), moments_steps=2)
    run = tmp / "imported"
    assert main(["import-official", "set_prediction", prefix, "--out", str(run), "--num-slots", str(num_slots)]) == 0
    return types.SimpleNamespace(run=run, prefix=prefix, image=image, noise=noise, pred=pred)


def nchw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(0, 3, 1, 2).contiguous()


# ------------------------------------------------------------------------------------------------ tests


def test_checkpoint_names_are_those_of_keras2(object_discovery, set_prediction):
    assert checkpoint_names(object_discovery.prefix) == KERAS2_NAMES["object_discovery"]
    assert checkpoint_names(set_prediction.prefix) == KERAS2_NAMES["set_prediction"]


def test_object_discovery_matches_tf(object_discovery, capsys):
    od = object_discovery
    model, cfg, ckpt = load_model(od.run, "object_discovery")
    assert (cfg["model"]["num_slots"], cfg["model"]["iters"], cfg["data"]["name"]) == (5, 2, "clevr6")
    assert ckpt["global_step"] == 123
    with torch.no_grad():
        out = model(nchw(od.image), noise=torch.from_numpy(od.noise))
    diffs = {
        "recon": max_diff(out.recon.permute(0, 2, 3, 1), od.recon),
        "masks": max_diff(out.masks.permute(0, 1, 3, 4, 2), od.masks),
        "recons": max_diff(out.recons.permute(0, 1, 3, 4, 2), od.recons),
        "slots": max_diff(out.slots, od.slots),
    }
    with capsys.disabled():
        print(f"\nobject discovery, slotlab vs TF, max |diff|: {diffs}")
    assert max(diffs.values()) <= TOL, diffs
    assert float(np.abs(od.recon).max()) > 0.1 and float(od.masks.max()) < 0.999  # not a trivial output


def test_set_prediction_matches_tf(set_prediction, capsys):
    sp = set_prediction
    model, cfg, ckpt = load_model(sp.run, "set_prediction")
    assert (cfg["model"]["num_slots"], cfg["model"]["iters"], cfg["data"]["image_size"]) == (6, 3, 128)
    assert cfg["data"]["variant"] == "clevr6"
    with torch.no_grad():
        out = model(nchw(sp.image), noise=torch.from_numpy(sp.noise))
    diff = max_diff(out.pred, sp.pred)
    with capsys.disabled():
        print(f"\nset prediction, slotlab vs TF, max |diff| of the predictions: {diff:.3g}")
    assert diff <= TOL
    assert float(sp.pred.std()) > 0.05


def test_run_folder_and_adam_moments(set_prediction):
    sp = set_prediction
    info = json.loads((sp.run / "imported.json").read_text())
    assert info["source"] == os.path.abspath(sp.prefix) and info["task"] == "set_prediction"
    assert info["global_step"] == 123 and info["adam_moments"] is True
    ckpt = load_checkpoint(sp.run)
    assert ckpt["slotlab_task"] == "set_prediction" and ckpt["global_step"] == 123
    optim_progress = ckpt["loops"]["fit_loop"]["epoch_loop.automatic_optimization.optim_progress"]
    assert optim_progress["optimizer"]["step"]["total"]["completed"] == 123  # where Lightning resumes
    # weights-only loadable, as Lightning loads it when resuming
    torch.load(sp.run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    # the GRU input kernel's first Adam moment, reordered from Keras' (z, r, h) to torch's (r, z, n)
    reader = tf.train.load_checkpoint(sp.prefix)
    m = reader.get_tensor(
        MODEL_ROOT + "slot_attention/gru/kernel/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/VARIABLE_VALUE"
    )
    z, r, h = np.split(m, 3, axis=-1)
    names = [k for k in ckpt["state_dict"]]
    index = names.index("model.slot_attention.gru.weight_ih")
    state = ckpt["optimizer_states"][0]["state"][index]
    assert max_diff(state["exp_avg"], np.concatenate([r, z, h], axis=-1).T) == 0.0
    assert float(state["step"]) == 123 and float(np.abs(m).max()) > 0


def test_eval_figures_report_and_resume(object_discovery, tmp_path, monkeypatch, capsys):
    """The imported run works with `slotlab eval`, `figures`, `report` and `train --resume` (fine-tuning)."""
    import slotlab.data.cache

    monkeypatch.setenv("SLOTLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(slotlab.data.cache, "SHARD", 4)  # render 4 CLEVR-like scenes per split, not 512
    run = object_discovery.run
    assert main(["eval", str(run), "--num-images", "4"]) == 0
    assert "FG-ARI K=5 T=2 on 4 eval images of clevr6" in capsys.readouterr().out
    assert main(["figures", str(run), "--num-images", "2"]) == 0
    assert list((run / "figures").glob("*.png"))
    assert main(["report", str(run)]) == 0
    # --data-path replaces the config's data (here a 2-scene file: too short for the held-out offset)
    fixture = os.path.join(os.path.dirname(__file__), "fixtures", "clevr_with_masks_gzip.tfrecords")
    assert main(["eval", str(run), "--num-images", "1", "--data-path", fixture]) == 2
    assert "clevr_with_masks_gzip.tfrecords has only" in capsys.readouterr().err
    tiny = ["data.train_size=1", "data.batch_size=1", "data.eval_size=1", "data.eval_batch_size=1"]
    tiny += ["trainer.val_every=100", "trainer.progress_bar=false", "trainer.figure_every_val=false"]
    assert main(["train", "--resume", str(run), "trainer.max_steps=124", *tiny]) == 0
    assert json.loads((run / "results.json").read_text())["global_step"] == 124
    assert load_checkpoint(run)["lr_schedulers"][0]["last_epoch"] == 124  # the schedule went on from step 123


def test_errors_name_the_variable(tmp_path, keras, capsys):
    """A missing, an unknown and a wrongly shaped variable: exit 2 with `error: ...` naming each."""
    rng = np.random.default_rng(3)
    image = rng.uniform(-1, 1, (1, RESOLUTION, RESOLUTION, 3)).astype(np.float32)
    model = official_classes(keras).SlotAttentionClassifier((RESOLUTION, RESOLUTION), 2, 1)
    model(image)
    network = tf.Module()
    tree = keras2_tree(model, keras)
    setattr(network, "layer_with_weights-0", tree)
    del tree.slot_attention.norm_mlp.beta  # missing
    tree.slot_attention.extra = tf.Variable(np.zeros(3, np.float32))  # unknown
    tree.layer_norm.gamma = tf.Variable(np.ones(65, np.float32))  # wrong shape
    prefix = tf.train.CheckpointManager(tf.train.Checkpoint(network=network), str(tmp_path / "bad"), 1).save()
    assert main(["import-official", "set_prediction", str(tmp_path / "bad"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "missing variables: network/layer_with_weights-0/slot_attention/norm_mlp/beta/" in err
    assert "unknown variables: network/layer_with_weights-0/slot_attention/extra/" in err
    assert "wrong shape of network/layer_with_weights-0/layer_norm/gamma/.ATTRIBUTES/VARIABLE_VALUE: [65]" in err
    assert not (tmp_path / "r" / "checkpoints").exists()
    # the wrong task: an object-discovery model's decoder is unknown to set prediction, its head missing
    assert main(["import-official", "object_discovery", prefix, "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "network/layer_with_weights-0/decoder_pos/dense/kernel/" in err.split("unknown variables:")[0]
    assert "network/layer_with_weights-0/mlp_classifier/" in err.split("unknown variables:")[1]
    assert "variables say it is for `slotlab import-official set_prediction`" in err
    assert main(["import-official", "set_prediction", str(tmp_path / "none"), "--out", str(tmp_path / "r3")]) == 2
    assert "no TF checkpoint there" in capsys.readouterr().err


def test_missing_tensorflow_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # `import tensorflow` raises ImportError
    folder = tmp_path / "ckpt"  # looks like a checkpoint folder (the file checks come before the TF import)
    folder.mkdir()
    (folder / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
    assert main(["import-official", "object_discovery", str(folder), "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {TF_MISSING}"
    assert TF_MISSING == 'reading official TF checkpoints needs TensorFlow: pip install "slotlab[tf]"'


def test_keras2_writes_the_same_names(tmp_path):
    """Where Keras 2 is installed (``tf_keras``): a real Keras 2 functional model of the official classes, saved
    as the official scripts save it, has exactly the names of KERAS2_NAMES (and imports)."""
    keras2 = pytest.importorskip("tf_keras")
    classes = official_classes(keras2)
    for task, cls in (
        ("object_discovery", classes.SlotAttentionAutoEncoder),
        ("set_prediction", classes.SlotAttentionClassifier),
    ):
        image = keras2.Input([RESOLUTION, RESOLUTION, 3], 1)
        network = keras2.Model(inputs=image, outputs=cls((RESOLUTION, RESOLUTION), 3, 1)(image))
        optimizer = keras2.optimizers.legacy.Adam()
        ckpt = tf.train.Checkpoint(network=network, optimizer=optimizer, global_step=tf.Variable(7, dtype=tf.int64))
        prefix = tf.train.CheckpointManager(ckpt, str(tmp_path / task), 1).save()
        assert checkpoint_names(prefix) == KERAS2_NAMES[task]
        assert main(["import-official", task, prefix, "--out", str(tmp_path / f"run_{task}")]) == 0
