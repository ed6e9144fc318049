"""Side by side with TensorFlow: a benchmark-only Keras port of slotlab's object-discovery models, timed against
slotlab's training step on the same machine.

The port is the reference architecture (google-research ``slot_attention``, TF2/Keras) at slotlab's two model sizes:

- ``35``: Tetrominoes 35x35, K=4, T=3: 4 x Conv(5x5, 32, ReLU) encoder, soft position embedding, LayerNorm +
  MLP(64, 64), Slot Attention (D=64, MLP 128), full-resolution spatial broadcast decoder 3 x Conv(5x5, 32, ReLU) +
  Conv(3x3, 4) (slotlab's ``configs/tetrominoes*.yaml`` / config defaults);
- ``128``: CLEVR6 128x128, K=7, T=3: 4 x Conv(5x5, 64, ReLU) encoder, 8x8 broadcast + 4 x ConvT(5x5, stride 2, 64) +
  ConvT(5x5, 64) + ConvT(3x3, 4) (``configs/clevr6.yaml``, the reference code's model);

masks by softmax over slots, MSE loss, ``keras.optimizers.Adam`` (lr 4e-4), one training step per call on a fixed
uint8 batch converted to [-1, 1] inside the step (as slotlab's step does). TensorFlow runs every variant in graph
mode (``tf.function``), with XLA (``jit_compile=True``) or without, in fp32 or under Keras' ``mixed_bfloat16``
policy; slotlab's step is the one ``benchmarks/throughput.py`` times (``Variant("slotlab", ...)``: the dataset's
config with ``precision: auto``, channels_last, tuned malloc, factorised decoder, ``trainer.compile``, Adam).
``baseline`` (throughput.py's plain fp32 PyTorch model, tuned malloc too) can run as a worker as well, so that the
speed-up over it is also measured with one process per variant.

Every variant lives in its own worker process (TensorFlow never shares a process with slotlab: TF and the
``tfrecord`` package register the same protobufs, and the two runtimes' thread pools would compete); the parent
starts them together (build + 2 warm-up steps; the first step's time includes tracing/XLA compilation, measured
while the other workers start too), then runs
interleaved rounds (one step per worker per round, order reversed every other round, only one worker busy at a
time) and prints a markdown table of median step times with the speed-up of slotlab over every TF variant and over
the fastest one.

TensorFlow is a benchmark extra, never a slotlab dependency: ``pip install -e ".[bench]"`` (tensorflow-cpu).

Usage::

    python benchmarks/keras_port.py --sizes 35 --batch 64 --rounds 5
    python benchmarks/keras_port.py --sizes 128 --batch 8 --rounds 3
    python benchmarks/keras_port.py --sizes 35 --batch 16 --rounds 3 --variants tf-bf16,tf-bf16-xla   # subset
    python benchmarks/keras_port.py --sizes 128 --batch 4 --variants slotlab,slotlab-eager,tf-bf16

``slotlab`` is ``slotlab train``'s step, ``trainer.compile`` included (the default ``auto`` compiles the paper's
configs with torch.compile where it can run); ``slotlab-eager`` is the same step without torch.compile and
``slotlab+compile`` with it forced on. Each one's ratio to the fastest TF variant is printed on its own line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SLOTLAB_VARIANTS = ("slotlab", "slotlab-eager", "slotlab+compile")  # throughput.Variant names
TORCH_VARIANTS = (*SLOTLAB_VARIANTS, "baseline")  # + throughput.py's plain fp32 baseline, in its own process too
TF_VARIANTS = {  # name: (mixed_bfloat16, jit_compile)
    "tf-fp32": (False, False),
    "tf-fp32-xla": (False, True),
    "tf-bf16": (True, False),
    "tf-bf16-xla": (True, True),
}
SIZES = {
    "35": dict(name="tetrominoes 35x35", resolution=35, slots=4, enc=32, decoder="full", dec_channels=32),
    "128": dict(name="clevr6 128x128", resolution=128, slots=7, enc=64, decoder="clevr", dec_channels=64),
}
SLOT_DIM, MLP_HIDDEN, ITERS = 64, 128, 3


# ----------------------------------------------------------------------------------------------- Keras port
def build_tf_step(size_key: str, batch: int, bf16: bool, xla: bool, seed: int = 0, threads: int | None = None):
    """The Keras model, Adam and a ``tf.function`` training step on a fixed uint8 batch; returns ``step()``."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import numpy as np
    import tensorflow as tf
    from tensorflow import keras
    from tensorflow.keras import layers

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)

    cfg = SIZES[size_key]
    res, k_slots = cfg["resolution"], cfg["slots"]
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if bf16 else "float32")
    tf.random.set_seed(seed)

    def build_grid(h: int, w: int) -> np.ndarray:
        ys, xs = np.meshgrid(np.linspace(0.0, 1.0, h), np.linspace(0.0, 1.0, w), indexing="ij")
        grid = np.stack([ys, xs], axis=-1)[None].astype(np.float32)
        return np.concatenate([grid, 1.0 - grid], axis=-1)  # [1, h, w, 4]

    class SoftPositionEmbed(layers.Layer):
        def __init__(self, hidden: int, resolution: tuple[int, int], **kw) -> None:
            super().__init__(**kw)
            self.dense = layers.Dense(hidden)
            self.grid = tf.constant(build_grid(*resolution))

        def call(self, x):
            return x + self.dense(self.grid)

    class SlotAttention(layers.Layer):
        """The reference code's SlotAttention layer (LayerNorm eps = Keras' 1e-3 default)."""

        def __init__(self, iters: int, num_slots: int, dim: int, hidden: int, eps: float = 1e-8, **kw) -> None:
            super().__init__(**kw)
            self.iters, self.num_slots, self.dim, self.eps = iters, num_slots, dim, eps
            self.norm_inputs = layers.LayerNormalization()
            self.norm_slots = layers.LayerNormalization()
            self.norm_mlp = layers.LayerNormalization()
            self.project_q = layers.Dense(dim, use_bias=False)
            self.project_k = layers.Dense(dim, use_bias=False)
            self.project_v = layers.Dense(dim, use_bias=False)
            self.gru = layers.GRUCell(dim)
            self.mlp = keras.Sequential([layers.Dense(hidden, activation="relu"), layers.Dense(dim)])

        def build(self, input_shape):
            self.slots_mu = self.add_weight(shape=(1, 1, self.dim), initializer="glorot_uniform", name="mu")
            self.slots_log_sigma = self.add_weight(shape=(1, 1, self.dim), initializer="glorot_uniform", name="ls")

        def call(self, inputs):
            inputs = self.norm_inputs(inputs)
            k, v = self.project_k(inputs), self.project_v(inputs)  # [B, N, D]
            noise = tf.random.normal([tf.shape(inputs)[0], self.num_slots, self.dim], dtype=inputs.dtype)
            mu = tf.cast(self.slots_mu, inputs.dtype)
            slots = mu + tf.exp(tf.cast(self.slots_log_sigma, inputs.dtype)) * noise
            for _ in range(self.iters):
                slots_prev = slots
                q = self.project_q(self.norm_slots(slots)) * (self.dim**-0.5)
                attn = tf.nn.softmax(tf.einsum("bnd,bkd->bnk", k, q), axis=-1) + self.eps  # [B, N, K]
                attn = attn / tf.reduce_sum(attn, axis=-2, keepdims=True)
                updates = tf.einsum("bnk,bnd->bkd", attn, v)
                flat, _ = self.gru(tf.reshape(updates, [-1, self.dim]), [tf.reshape(slots_prev, [-1, self.dim])])
                slots = tf.reshape(flat, tf.shape(slots_prev))
                slots = slots + self.mlp(self.norm_mlp(slots))
            return slots

    class Autoencoder(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            c = cfg["enc"]
            self.encoder = keras.Sequential([layers.Conv2D(c, 5, padding="same", activation="relu") for _ in range(4)])
            self.encoder_pos = SoftPositionEmbed(c, (res, res))
            self.norm = layers.LayerNormalization()
            self.mlp = keras.Sequential([layers.Dense(SLOT_DIM, activation="relu"), layers.Dense(SLOT_DIM)])
            self.slot_attention = SlotAttention(ITERS, k_slots, SLOT_DIM, MLP_HIDDEN)
            d = cfg["dec_channels"]
            if cfg["decoder"] == "full":
                self.broadcast = (res, res)
                self.decoder = keras.Sequential(
                    [layers.Conv2D(d, 5, padding="same", activation="relu") for _ in range(3)]
                    + [layers.Conv2D(4, 3, padding="same")]
                )
            else:
                self.broadcast = (8, 8)
                self.decoder = keras.Sequential(
                    [layers.Conv2DTranspose(d, 5, strides=2, padding="same", activation="relu") for _ in range(4)]
                    + [
                        layers.Conv2DTranspose(d, 5, padding="same", activation="relu"),
                        layers.Conv2DTranspose(4, 3, padding="same"),
                    ]
                )
            self.decoder_pos = SoftPositionEmbed(SLOT_DIM, self.broadcast)

        def call(self, image):
            x = self.encoder_pos(self.encoder(image))
            x = tf.reshape(x, [-1, x.shape[1] * x.shape[2], x.shape[-1]])
            slots = self.slot_attention(self.mlp(self.norm(x)))  # [B, K, D]
            x = tf.reshape(slots, [-1, 1, 1, SLOT_DIM])
            x = tf.tile(x, [1, self.broadcast[0], self.broadcast[1], 1])
            x = self.decoder(self.decoder_pos(x))  # [B*K, H, W, 4]
            x = tf.cast(tf.reshape(x, [-1, k_slots, res, res, 4]), tf.float32)
            recons, masks = x[..., :3], tf.nn.softmax(x[..., 3:], axis=1)
            return tf.reduce_sum(recons * masks, axis=1)  # [B, H, W, 3]

    model = Autoencoder()
    opt = keras.optimizers.Adam(learning_rate=4e-4)
    rng = np.random.default_rng(seed)
    images = tf.constant(rng.integers(0, 256, (batch, res, res, 3), dtype=np.uint8))
    model(tf.zeros([1, res, res, 3]))  # build the variables

    @tf.function(jit_compile=xla)
    def train_step(img_u8):
        image = tf.cast(img_u8, tf.float32) / 127.5 - 1.0
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(image, training=True) - image))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    def step() -> None:
        train_step(images).numpy()  # .numpy() waits for the step

    return step


def settings_of(name: str) -> str:
    """The settings column of a TF variant (torch variants report ``throughput.Variant.settings``)."""
    bf16, xla = TF_VARIANTS[name]
    return f"tf.function graph, {'mixed_bfloat16' if bf16 else 'fp32'}, XLA {'on' if xla else 'off'}"


# ----------------------------------------------------------------------------------------------- worker
def worker(name: str, size_key: str, batch: int, threads: int | None) -> None:
    """Build the variant, warm up (2 steps), print READY; then one timed step per 'run' line on stdin."""
    if name in TORCH_VARIANTS:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from throughput import Variant

        from slotlab.train.runtime import tune_malloc

        tune_malloc()  # as slotlab train (and throughput.py) do
        if threads:
            import torch

            torch.set_num_threads(threads)
        v = Variant(name, size_key, batch)
        step = v.step
        settings = v.settings
    else:
        bf16, xla = TF_VARIANTS[name]
        step = build_tf_step(size_key, batch, bf16, xla, threads=threads)
        settings = settings_of(name)
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    step()
    print("READY " + json.dumps({"first_step_s": first, "settings": settings}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        t0 = time.perf_counter()
        step()
        print("TIME " + json.dumps(time.perf_counter() - t0), flush=True)


def _read(proc: subprocess.Popen, prefix: str) -> str:
    for line in proc.stdout:
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
    raise RuntimeError(f"worker exited (status {proc.wait()}) before printing {prefix.strip()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="35", help="comma list of 35, 128")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default 64 at 35x35, 8 at 128x128)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--variants", default=",".join(["slotlab", *TF_VARIANTS]), help="comma list")
    ap.add_argument(
        "--threads", type=int, default=None, help="threads of both runtimes (default: each library's own default)"
    )
    ap.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="seconds to wait before each timed step: OpenMP (torch) and Eigen (TF) worker threads spin-wait for a "
        "while after a step, and would take cores from the next worker's step (default 1.0)",
    )
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    sizes = args.sizes.split(",")
    if args.worker:
        worker(args.worker, sizes[0], args.batch, args.threads)
        return
    names = args.variants.split(",")
    unknown = set(names) - {*TORCH_VARIANTS, *TF_VARIANTS}
    if unknown:
        ap.error(f"unknown variants {sorted(unknown)}")

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from module import machine_line  # torch only, no TensorFlow in this process
    from peaks import host_state

    print(f"machine: {machine_line()}")
    print(
        f"date: {time.strftime('%Y-%m-%d %H:%M')}; load average {os.getloadavg()[0]:.1f}; threads "
        f"{args.threads or 'library defaults'}; one worker process per "
        f"variant, {args.rounds} interleaved rounds of one step after 2 warm-up steps; medians"
    )
    print(f"host state before: {host_state()}", flush=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    rows = []
    for s in sizes:
        batch = args.batch or (64 if s == "35" else 8)
        procs, info = {}, {}
        for n in names:  # started together (imports and compilations overlap); timed strictly one at a time
            procs[n] = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--worker", n, "--sizes", s, "--batch", str(batch)]
                + (["--threads", str(args.threads)] if args.threads else []),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
        for n in names:
            info[n] = json.loads(_read(procs[n], "READY "))
            print(f"  {SIZES[s]['name']} {n}: ready (first step {info[n]['first_step_s']:.1f} s)", flush=True)
        times = {n: [] for n in names}
        for r in range(args.rounds):
            for n in names if r % 2 == 0 else list(reversed(names)):
                time.sleep(args.settle)  # let the previous worker's spinning thread pools go idle first
                procs[n].stdin.write("run\n")
                procs[n].stdin.flush()
                times[n].append(json.loads(_read(procs[n], "TIME ")))
        for p in procs.values():
            p.stdin.close()
            p.wait()
        med = {n: statistics.median(t) for n, t in times.items()}
        tf_names = [n for n in names if n not in TORCH_VARIANTS]
        fastest = min(tf_names, key=med.get) if tf_names else None
        for n in names:
            ratio = f"{med[n] / med['slotlab']:.2f}x" if "slotlab" in med else ""
            label = n + (" (fastest TF)" if n == fastest else "")
            rows.append(
                f"| {SIZES[s]['name']} | {batch} | {label} | {info[n]['settings']} "
                f"| {med[n]:.3f} | {batch / med[n]:.1f} | {ratio} | {info[n]['first_step_s']:.1f} |"
            )
        for ours in (n for n in SLOTLAB_VARIANTS if n in med and fastest):
            rows.append(
                f"| {SIZES[s]['name']} | {batch} | **{ours} vs fastest TF ({fastest})** | | | | "
                f"**{med[fastest] / med[ours]:.2f}x** | |"
            )
    print(f"host state after: {host_state()}")
    print(
        "\n| size | batch | variant | settings | step s | img/s | slotlab speed-up (variant s / slotlab s) "
        "| first step s (incl. compile) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
