"""Write the tiny MOVi TFRecord fixtures of ``slotlab.data.movi`` with TensorFlow Datasets, and what TFDS reads back.

Kubric's MOVi-A..E datasets are TFDS datasets: each record is a ``tf.train.Example`` serialized by TFDS from the
builder's ``FeaturesDict``. Sequence features are stored flat in that Example (TFDS does not use SequenceExample):
``video``/``segmentations``/``depth`` one encoded PNG per frame, ``forward_flow``/``backward_flow`` (uint16 tensors) as
one int64 list, ``instances/<field>`` the per-object fields concatenated over objects, ragged ones (``bboxes``,
``bbox_frames``) as ``ragged_flat_values`` + ``ragged_row_lengths_0``. This tool declares the MOVi-A and MOVi-E
feature specs (the released builders' ``_info``, at a tiny size), encodes two random videos with TFDS's own
encoder and serializer, writes them as a TFDS shard, and reads the shard back with TFDS's decoder
(``FeaturesDict.deserialize_example``, what ``tfds.load`` runs). The decoded arrays go to an ``.npz`` beside the
shard: key ``{video index}/{feature path}``; ragged features as ``.../flat_values`` and ``.../row_lengths``.

Usage (TensorFlow is needed here only, never by slotlab or its tests):
    python3 -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu tensorflow-datasets pillow
    /tmp/tfenv/bin/python tools/make_movi_fixture.py [--out tests/fixtures/movi]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core import example_serializer

F = tfds.features
FLOAT, U16, I32 = tf.float32, tf.uint16, tf.int32


def instance_spec(t: int, variant: str) -> dict:
    spec = {
        "mass": FLOAT, "friction": FLOAT, "restitution": FLOAT,
        "positions": F.Tensor(shape=(t, 3), dtype=FLOAT), "quaternions": F.Tensor(shape=(t, 4), dtype=FLOAT),
        "velocities": F.Tensor(shape=(t, 3), dtype=FLOAT), "angular_velocities": F.Tensor(shape=(t, 3), dtype=FLOAT),
        "bboxes_3d": F.Tensor(shape=(t, 8, 3), dtype=FLOAT), "image_positions": F.Tensor(shape=(t, 2), dtype=FLOAT),
        "bboxes": F.Sequence(F.BBoxFeature()), "bbox_frames": F.Sequence(F.Tensor(shape=(), dtype=I32)),
        "visibility": F.Tensor(shape=(t,), dtype=U16),
    }  # fmt: skip
    if variant == "a":
        spec |= {
            "shape_label": F.ClassLabel(names=["cube", "cylinder", "sphere"]),
            "size_label": F.ClassLabel(names=["small", "large"]), "color": F.Tensor(shape=(3,), dtype=FLOAT),
            "color_label": F.ClassLabel(names=["blue", "brown", "cyan", "gray", "green", "purple", "red", "yellow"]),
            "material_label": F.ClassLabel(names=["metal", "rubber"]),
        }  # fmt: skip
    else:
        spec |= {"asset_id": F.Text(), "category": F.ClassLabel(num_classes=17), "scale": FLOAT, "is_dynamic": tf.bool}
    return spec


def movi_spec(t: int, h: int, w: int, variant: str) -> F.FeaturesDict:
    spec = {
        "metadata": {
            "video_name": F.Text(), "width": I32, "height": I32, "num_frames": I32, "num_instances": U16,
            "depth_range": F.Tensor(shape=(2,), dtype=FLOAT), "forward_flow_range": F.Tensor(shape=(2,), dtype=FLOAT),
            "backward_flow_range": F.Tensor(shape=(2,), dtype=FLOAT),
        },
        "instances": F.Sequence(feature=instance_spec(t, variant)),
        "camera": {
            "focal_length": FLOAT, "sensor_width": FLOAT, "field_of_view": FLOAT,
            "positions": F.Tensor(shape=(t, 3), dtype=FLOAT), "quaternions": F.Tensor(shape=(t, 4), dtype=FLOAT),
        },
        "events": {"collisions": F.Sequence({
            "instances": F.Tensor(shape=(2,), dtype=U16), "frame": I32, "force": FLOAT,
            "position": F.Tensor(shape=(3,), dtype=FLOAT), "image_position": F.Tensor(shape=(2,), dtype=FLOAT),
            "contact_normal": F.Tensor(shape=(3,), dtype=FLOAT),
        })},
        "video": F.Video(shape=(t, h, w, 3)),
        "segmentations": F.Sequence(F.Image(shape=(h, w, 1), dtype=tf.uint8), length=t),
        "forward_flow": F.Sequence(F.Tensor(shape=(h, w, 2), dtype=U16), length=t),
        "backward_flow": F.Sequence(F.Tensor(shape=(h, w, 2), dtype=U16), length=t),
        "depth": F.Sequence(F.Image(shape=(h, w, 1), dtype=U16), length=t),
        "normal": F.Video(shape=(t, h, w, 3), dtype=U16),
        "object_coordinates": F.Video(shape=(t, h, w, 3), dtype=U16),
    }  # fmt: skip
    if variant == "e":
        spec["background"] = F.Text()
    return F.FeaturesDict(spec)


def random_video(rng: np.random.Generator, index: int, t: int, h: int, w: int, variant: str) -> dict:
    n = 3 + index  # objects; the last one never visible (empty bbox track)
    f32 = np.float32

    def r(*shape):
        return rng.normal(size=shape).astype(f32)

    seg = rng.integers(0, n, (t, h, w, 1)).astype(np.uint8)  # ids 0..n-1: object n (id n) never appears
    instances = []
    for k in range(n):
        frames = np.flatnonzero((seg[..., 0] == k + 1).any(axis=(1, 2)))
        lo = np.sort(rng.random((len(frames), 2, 2)).astype(f32), axis=1)  # [F, (min, max), (y, x)]
        inst = {
            "mass": float(rng.random()), "friction": float(rng.random()), "restitution": float(rng.random()),
            "positions": r(t, 3), "quaternions": r(t, 4), "velocities": r(t, 3), "angular_velocities": r(t, 3),
            "bboxes_3d": r(t, 8, 3), "image_positions": rng.random((t, 2)).astype(f32),
            "bboxes": [F.BBox(float(b[0, 0]), float(b[0, 1]), float(b[1, 0]), float(b[1, 1])) for b in lo],
            "bbox_frames": frames.astype(np.int32),
            "visibility": (seg[..., 0] == k + 1).sum(axis=(1, 2)).astype(np.uint16),
        }  # fmt: skip
        if variant == "a":
            inst |= {"shape_label": int(rng.integers(3)), "size_label": int(rng.integers(2)),
                     "color": rng.random(3).astype(f32), "color_label": int(rng.integers(8)),
                     "material_label": int(rng.integers(2))}  # fmt: skip
        else:
            inst |= {"asset_id": f"asset_{k}", "category": int(rng.integers(17)), "scale": float(rng.random()),
                     "is_dynamic": bool(k % 2)}  # fmt: skip
        instances.append(inst)
    collisions = [  # video 0 has no collisions: empty sequences
        {"instances": rng.integers(0, n, 2).astype(np.uint16), "frame": int(rng.integers(t)),
         "force": float(rng.random()), "position": r(3), "image_position": r(2), "contact_normal": r(3)}
        for _ in range(2 * index)
    ]  # fmt: skip
    u16 = np.uint16
    ex = {
        "metadata": {
            "video_name": f"{index}", "width": w, "height": h, "num_frames": t, "num_instances": n,
            "depth_range": [0.5, 20.0], "forward_flow_range": [-3.25, 4.5], "backward_flow_range": [-4.0, 2.75],
        },
        "instances": instances,
        "camera": {"focal_length": 35.0, "sensor_width": 32.0, "field_of_view": 0.86, "positions": r(t, 3),
                   "quaternions": r(t, 4)},
        "events": {"collisions": collisions},
        "video": rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8),
        "segmentations": list(seg),
        "forward_flow": list(rng.integers(0, 65536, (t, h, w, 2), dtype=u16)),
        "backward_flow": list(rng.integers(0, 65536, (t, h, w, 2), dtype=u16)),
        "depth": list(rng.integers(0, 65536, (t, h, w, 1), dtype=u16)),
        "normal": rng.integers(0, 65536, (t, h, w, 3), dtype=u16),
        "object_coordinates": rng.integers(0, 65536, (t, h, w, 3), dtype=u16),
    }  # fmt: skip
    if variant == "e":
        ex["background"] = "hdri_17"
    return ex


def flatten(decoded: dict, prefix: str, out: dict) -> None:
    """TFDS's decoded tensors as numpy arrays under 'a/b/c' keys; ragged tensors as flat values + row lengths."""
    for key, value in decoded.items():
        name = f"{prefix}/{key}"
        if isinstance(value, dict):
            flatten(value, name, out)
        elif isinstance(value, tf.RaggedTensor):
            out[f"{name}/flat_values"] = value.flat_values.numpy()
            out[f"{name}/row_lengths"] = value.row_lengths().numpy()
        else:
            a = np.asarray(value.numpy())
            string = a.dtype == object or a.dtype.kind == "S"
            out[name] = a.astype("S") if string else a  # strings as fixed bytes: no pickle in the npz


def plain_tf_check(record: bytes, decoded: dict, t: int, h: int, w: int) -> None:
    """An independent reading with plain tf.io.parse_single_example + decode_png agrees with TFDS on the images."""
    spec = {
        "video": tf.io.FixedLenFeature([t], tf.string),
        "segmentations": tf.io.FixedLenFeature([t], tf.string),
        "forward_flow": tf.io.FixedLenFeature([t * h * w * 2], tf.int64),
    }
    ex = tf.io.parse_single_example(record, spec)
    video = tf.stack([tf.io.decode_png(p, channels=3) for p in ex["video"]])
    seg = tf.stack([tf.io.decode_png(p, channels=1) for p in ex["segmentations"]])
    flow = tf.cast(tf.reshape(ex["forward_flow"], (t, h, w, 2)), tf.uint16)
    for got, key in ((video, "video"), (seg, "segmentations"), (flow, "forward_flow")):
        np.testing.assert_array_equal(got.numpy(), decoded[key].numpy())


def write_fixture(out: Path, variant: str, t: int, h: int, w: int, seed: int) -> None:
    features = movi_spec(t, h, w, variant)
    serializer = example_serializer.ExampleSerializer(features.get_serialized_info())
    rng = np.random.default_rng(seed)
    shard = out / f"movi_{variant}-train.tfrecord-00000-of-00001"
    expected: dict[str, np.ndarray] = {}
    with tf.io.TFRecordWriter(str(shard)) as writer:
        for i in range(2):
            record = serializer.serialize_example(features.encode_example(random_video(rng, i, t, h, w, variant)))
            writer.write(record)
    for i, record in enumerate(tf.data.TFRecordDataset(str(shard))):  # read back from the file
        decoded = features.deserialize_example(record)
        plain_tf_check(record, decoded, t, h, w)
        flatten(decoded, str(i), expected)
    np.savez_compressed(out / f"movi_{variant}_expected.npz", **expected)
    print(f"{shard}: {shard.stat().st_size} bytes; {len(expected)} arrays")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tests/fixtures/movi")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_fixture(out, "a", t=3, h=16, w=16, seed=0)
    write_fixture(out, "e", t=2, h=8, w=12, seed=1)


if __name__ == "__main__":
    main()
