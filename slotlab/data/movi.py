"""Reader of Kubric's MOVi-A..E TFRecord shards as released (TFDS layout), without TensorFlow (SAVi's datasets).

A MOVi record is a ``tf.train.Example`` that TFDS serialized from the builder's ``FeaturesDict``; sequence features
are flat in it (see ``tools/make_movi_fixture.py``). :func:`read_movi` returns, per video, what ``tfds.load`` decodes:

- ``video`` uint8 [T, H, W, 3], ``segmentations`` uint8 [T, H, W, 1] (0 = background, object ``i`` has id
  ``i + 1``), ``depth`` uint16 [T, H, W, 1] (PNG frames); ``forward_flow`` / ``backward_flow`` uint16 [T, H, W, 2]
  ((delta_row, delta_column), scaled to ``metadata/*_flow_range``: :func:`flow_pixels`).
- ``metadata`` (``video_name`` bytes, ``width`` / ``height`` / ``num_frames`` int32, ``num_instances`` uint16, the
  ranges float32 [2]), ``background`` bytes (MOVi-C..E), ``camera`` (float32, [T, 3] / [T, 4] tracks) and
  ``events`` / ``collisions`` ([C, ...] per collision).
- ``instances``: per object [N, ...] (``positions`` [N, T, 3], ``image_positions`` [N, T, 2] as kubric's (x, y) in
  [0, 1], ``visibility`` uint16 [N, T], class labels int64 [N], ``asset_id`` object array of bytes, ...); the ragged
  ``bboxes`` (a list of N float32 [n_i, 4], (ymin, xmin, ymax, xmax) normalised) and ``bbox_frames`` (N int32
  [n_i]: the frames where the object is visible).

Not decoded: ``normal`` and ``object_coordinates`` (16-bit RGB PNG, which Pillow cannot read; SAVi does not use
them) and keys this reader does not know. :func:`movi_sample` turns a record into slotlab's video sample (the
generator contract of :mod:`slotlab.data.moving_objects`).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from slotlab.data.errors import DatasetFileError
from slotlab.data.tfrecord import (
    _FIXED32,
    _LEN,
    _VARINT,
    _decode_float_list,
    _detect_compression,
    _iter_fields,
    _iter_records,
    _ProtoError,
)

F32, U16, I32, I64 = np.float32, np.uint16, np.int32, np.int64
PER_OBJECT, TRACK = -1, "T"  # leading count inferred from the values; the clip length
# TFDS key -> (stored as, dtype, shape). "int"/"float": an Int64List / FloatList of the flat values; "text": bytes
# strings; "png": one PNG per frame; "ragged_*": flat values + ragged_row_lengths_0 per object.
FEATURES: dict[str, tuple[str, type | None, tuple]] = {
    "metadata/video_name": ("text", None, ()),
    **{f"metadata/{k}": ("int", I32, ()) for k in ("width", "height", "num_frames")},
    "metadata/num_instances": ("int", U16, ()),
    **{f"metadata/{k}_range": ("float", F32, (2,)) for k in ("depth", "forward_flow", "backward_flow")},
    "background": ("text", None, ()),
    "video": ("png", np.uint8, (TRACK, "H", "W", 3)),
    "segmentations": ("png", np.uint8, (TRACK, "H", "W", 1)),
    "depth": ("png", U16, (TRACK, "H", "W", 1)),
    "forward_flow": ("int", U16, (TRACK, "H", "W", 2)),
    "backward_flow": ("int", U16, (TRACK, "H", "W", 2)),
    **{f"camera/{k}": ("float", F32, ()) for k in ("focal_length", "sensor_width", "field_of_view")},
    "camera/positions": ("float", F32, (TRACK, 3)),
    "camera/quaternions": ("float", F32, (TRACK, 4)),
    "events/collisions/instances": ("int", U16, (PER_OBJECT, 2)),
    "events/collisions/frame": ("int", I32, (PER_OBJECT,)),
    "events/collisions/force": ("float", F32, (PER_OBJECT,)),
    "events/collisions/position": ("float", F32, (PER_OBJECT, 3)),
    "events/collisions/image_position": ("float", F32, (PER_OBJECT, 2)),
    "events/collisions/contact_normal": ("float", F32, (PER_OBJECT, 3)),
    **{f"instances/{k}": ("float", F32, (PER_OBJECT,)) for k in ("mass", "friction", "restitution", "scale")},
    **{f"instances/{k}": ("float", F32, (PER_OBJECT, TRACK, 3)) for k in ("positions", "velocities")},
    "instances/angular_velocities": ("float", F32, (PER_OBJECT, TRACK, 3)),
    "instances/quaternions": ("float", F32, (PER_OBJECT, TRACK, 4)),
    "instances/bboxes_3d": ("float", F32, (PER_OBJECT, TRACK, 8, 3)),
    "instances/image_positions": ("float", F32, (PER_OBJECT, TRACK, 2)),
    "instances/visibility": ("int", U16, (PER_OBJECT, TRACK)),
    "instances/color": ("float", F32, (PER_OBJECT, 3)),
    **{
        f"instances/{k}": ("int", I64, (PER_OBJECT,))  # ClassLabel
        for k in ("shape_label", "size_label", "color_label", "material_label", "category")
    },
    "instances/asset_id": ("text", None, (PER_OBJECT,)),
    "instances/is_dynamic": ("int", bool, (PER_OBJECT,)),
    "instances/bboxes": ("ragged_float", F32, (4,)),
    "instances/bbox_frames": ("ragged_int", I32, ()),
}
_PNG_MODES = {(np.uint8, 3): "RGB", (np.uint8, 1): "L", (U16, 1): "I;16"}


def _varints(data: np.ndarray) -> np.ndarray:
    """Packed protobuf varints uint8 [n] -> int64 [m], vectorised (no loop over values)."""
    if data.size == 0:
        return np.zeros(0, dtype=I64)
    ends = np.flatnonzero((data & 0x80) == 0)  # [m] last byte of each value
    if ends.size == 0 or ends[-1] != data.size - 1:
        raise _ProtoError("truncated varint")
    starts = np.concatenate([[0], ends[:-1] + 1])  # [m]
    pos = np.arange(data.size) - np.repeat(starts, ends - starts + 1)  # [n] byte index within its value
    if pos.max() >= 10:
        raise _ProtoError("varint longer than 10 bytes")
    parts = (data & 0x7F).astype(np.uint64) << (7 * pos).astype(np.uint64)  # [n] disjoint bit groups
    return np.add.reduceat(parts, starts).view(I64)  # [m] (two's complement, as int64)


def _int64_list(buf: memoryview, span: tuple[int, int]) -> np.ndarray:
    parts = []
    for fno, wt, a, b in _iter_fields(buf, *span):
        if fno != 1:
            continue
        if wt == _LEN:  # packed (what TensorFlow writes)
            parts.append(_varints(np.frombuffer(buf[a:b], dtype=np.uint8)))
        elif wt == _VARINT:
            parts.append(np.array([a], dtype=np.uint64).view(I64))
        else:
            raise _ProtoError(f"Int64List.value has wire type {wt}")
    return np.concatenate(parts) if parts else np.zeros(0, dtype=I64)


def _bytes_list(buf: memoryview, span: tuple[int, int]) -> list[bytes]:
    out = []
    for fno, wt, a, b in _iter_fields(buf, *span):
        if fno == 1:
            if wt != _LEN:
                raise _ProtoError(f"BytesList.value has wire type {wt}")
            out.append(bytes(buf[a:b]))
    return out


def _features(data: bytes) -> tuple[memoryview, dict[str, tuple[int, tuple[int, int]]]]:
    """The Example's features, undecoded: {name: (kind field number 1 bytes / 2 float / 3 int64, list span)}."""
    buf = memoryview(data)
    out: dict[str, tuple[int, tuple[int, int]]] = {}
    for fno, wt, a, b in _iter_fields(buf, 0, len(buf)):
        if fno != 1 or wt != _LEN:
            continue
        for fno2, wt2, a2, b2 in _iter_fields(buf, a, b):  # Features.feature map entries
            if fno2 != 1 or wt2 != _LEN:
                continue
            key, value = "", None
            for fno3, wt3, a3, b3 in _iter_fields(buf, a2, b2):
                if fno3 == 1 and wt3 == _LEN:
                    key = bytes(buf[a3:b3]).decode("utf-8", errors="replace")
                elif fno3 == 2 and wt3 == _LEN:
                    value = (a3, b3)
            if value is None:
                continue
            for fno4, wt4, a4, b4 in _iter_fields(buf, *value):  # Feature: oneof bytes/float/int64 list
                if fno4 in (1, 2, 3) and wt4 in (_LEN, _FIXED32):
                    out[key] = (fno4, (a4, b4))
    return buf, out


class _Record:
    """Decodes the features of one record, naming the file, record and feature in every error."""

    def __init__(self, path: str, index: int, data: bytes) -> None:
        self.where = f"{path}: record {index}"
        try:
            self.buf, self.fields = _features(data)
        except _ProtoError as exc:
            raise DatasetFileError(f"{self.where}: malformed tf.train.Example ({exc})") from exc
        self.sizes: dict[str, int] = {}

    def fail(self, key: str, what: str) -> DatasetFileError:
        return DatasetFileError(f"{self.where}: feature {key!r} {what}; this is not a MOVi (TFDS) record as released")

    def values(self, key: str, kind: str) -> np.ndarray | list[bytes]:
        if key not in self.fields:
            raise self.fail(key, "is missing")
        fno, span = self.fields[key]
        want = {"text": 1, "png": 1, "float": 2, "int": 3}[kind]
        if fno != want:
            raise self.fail(key, f"is a {['bytes', 'float', 'int64'][fno - 1]} list, expected {kind}")
        try:
            if fno == 1:
                return _bytes_list(self.buf, span)
            return _decode_float_list(self.buf, [span]) if fno == 2 else _int64_list(self.buf, span)
        except _ProtoError as exc:
            raise self.fail(key, f"is malformed ({exc})") from exc

    def shape(self, key: str, shape: tuple, count: int) -> tuple[int, ...]:
        dims = [self.sizes[d] if isinstance(d, str) else d for d in shape]
        inner = int(np.prod([d for d in dims if d != PER_OBJECT]))
        if PER_OBJECT in dims:
            dims[dims.index(PER_OBJECT)] = count // inner if inner else 0
        if int(np.prod(dims)) != count:
            raise self.fail(key, f"has {count} values, expected shape {shape} with {self.sizes}")
        return tuple(dims)

    def png(self, key: str, dtype: type, channels: int) -> np.ndarray:
        mode = _PNG_MODES[(dtype, channels)]
        frames = []
        for t, data in enumerate(self.values(key, "png")):
            try:
                with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
                    if im.mode != mode:
                        raise self.fail(key, f"frame {t} is a {im.mode} PNG, expected {mode}")
                    frames.append(np.asarray(im, dtype=dtype).reshape(im.size[1], im.size[0], channels))
            except (OSError, SyntaxError, ValueError) as exc:
                if isinstance(exc, DatasetFileError):
                    raise
                raise self.fail(key, f"frame {t} is not a readable PNG ({exc})") from exc
        if not frames or len({f.shape for f in frames}) != 1:
            raise self.fail(key, f"has frames of sizes {sorted({f.shape for f in frames})}")
        return np.stack(frames)  # [T, H, W, C]

    def decode(self, key: str) -> object:
        kind, dtype, shape = FEATURES[key]
        if kind == "png":
            return self.png(key, dtype, shape[-1])
        if kind == "text":
            text = self.values(key, kind)
            if shape:
                return np.array(text, dtype=object)  # [N] bytes, as TensorFlow gives strings
            if len(text) != 1:
                raise self.fail(key, f"has {len(text)} strings, expected 1")
            return text[0]
        if kind.startswith("ragged_"):
            lengths = self.values(f"{key}/ragged_row_lengths_0", "int")
            flat = self.values(f"{key}/ragged_flat_values", kind[7:])
            width = int(np.prod(shape))
            if (lengths < 0).any() or lengths.sum() * width != len(flat):
                raise self.fail(key, f"has {len(flat)} values for row lengths {lengths.tolist()}")
            flat = np.asarray(flat).astype(dtype).reshape(-1, *shape)
            return np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []
        flat = self.values(key, kind)
        return np.asarray(flat).astype(dtype).reshape(self.shape(key, shape, len(flat)))


def decode_record(path: str, index: int, data: bytes) -> dict:
    """One serialized MOVi record -> nested dict of numpy arrays (see the module docstring)."""
    rec = _Record(path, index, data)
    for key in ("video", "segmentations"):
        if key not in rec.fields:
            raise DatasetFileError(f"{rec.where}: no {key!r} feature (present: {sorted(rec.fields)[:12]}); "
                                   "this is not a MOVi (TFDS) record as released")  # fmt: skip
    video = rec.decode("video")  # [T, H, W, 3]
    rec.sizes = dict(zip((TRACK, "H", "W"), video.shape[:3], strict=True))
    out: dict = {}
    present = set(rec.fields) | {k.rsplit("/", 1)[0] for k in rec.fields if "/ragged_" in k}
    for key in FEATURES:
        if key not in present:
            continue
        node = out
        *parents, leaf = key.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = video if key == "video" else rec.decode(key)
    if out["segmentations"].shape != video.shape[:3] + (1,):
        raise rec.fail("segmentations", f"has shape {out['segmentations'].shape}, the video {video.shape}")
    return out


def shard_files(path: str | os.PathLike[str], split: str = "train") -> list[Path]:
    """The shards to read: ``path`` itself if it is a file, else ``path``'s ``*-{split}.tfrecord-*`` files in order."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise DatasetFileError(f"{p}: no such file or folder; pass a MOVi TFRecord shard or its TFDS folder")
    files = sorted(p.glob(f"*-{split}.tfrecord-*"))
    if not files:
        splits = sorted({f.name.split("-")[1].split(".")[0] for f in p.glob("*-*.tfrecord-*")})
        raise DatasetFileError(f"{p}: no '{split}' shards (*-{split}.tfrecord-*); splits found: {splits or 'none'}")
    return files


def read_movi(
    path: str | os.PathLike[str], split: str = "train", start: int = 0, count: int | None = None
) -> Iterator[dict]:
    """Iterate over the videos of a MOVi shard file, or of every ``split`` shard of a TFDS folder
    (e.g. ``movi_a/128x128/1.0.0``): videos ``start`` .. ``start + count - 1`` in shard order (all from ``start``
    with ``count=None``; the ones before ``start`` are skipped undecoded). Raises DatasetFileError naming the file
    and record when one is not MOVi."""
    position, stop = 0, None if count is None else start + count
    for file in shard_files(path, split):
        name = os.fspath(file)
        for index, data in _iter_records(name, _detect_compression(name)):
            if stop is not None and position >= stop:
                return
            if position >= start:
                yield decode_record(name, index, data)
            position += 1


def count_videos(path: str | os.PathLike[str], split: str = "train") -> int:
    """The videos of a split: from the TFDS folder's ``dataset_info.json`` (its split's ``shardLengths``) when it
    has one, else by counting the records of the shards (read, not decoded)."""
    p = Path(path)
    info = p / "dataset_info.json"
    if p.is_dir() and info.is_file():
        try:
            splits = json.loads(info.read_text()).get("splits", [])
            lengths = next(s["shardLengths"] for s in splits if s.get("name") == split)
            return sum(int(n) for n in lengths)
        except (ValueError, KeyError, StopIteration, TypeError, AttributeError):
            pass  # an unusual info file: count the records
    total = 0
    for file in shard_files(path, split):
        name = os.fspath(file)
        total += sum(1 for _ in _iter_records(name, _detect_compression(name)))
    return total


def flow_pixels(flow: np.ndarray, flow_range: np.ndarray) -> np.ndarray:
    """uint16 flow [..., 2] -> float32 pixels per frame (delta_row, delta_column): ``v / 65535 * (max - min) + min``."""
    lo, hi = float(flow_range[0]), float(flow_range[1])
    return (flow.astype(F32) / 65535.0 * (hi - lo) + lo).astype(F32)


def movi_sample(example: dict) -> dict[str, np.ndarray]:
    """A decoded MOVi video in slotlab's video-sample form (N = the video's objects):
    video uint8 [T, H, W, 3]; mask uint8 [T, H, W] (0 = background, object i -> id i + 1); boxes float32
    [T, N, 4] (ymin, xmin, ymax, xmax) in [0, 1], zeros where not visible (SAVi's NOTRACK_BOX); visible bool
    [T, N] (from bbox_frames); centers float32 [T, N, 2] (y, x) in [0, 1] (image_positions, reordered); flow
    float32 [T, H, W, 2] forward flow in pixels (delta_row, delta_column)."""
    video = example["video"]
    t, n = video.shape[0], len(example["instances"]["bboxes"])
    boxes = np.zeros((t, n, 4), dtype=F32)
    visible = np.zeros((t, n), dtype=bool)
    for i, (b, f) in enumerate(zip(example["instances"]["bboxes"], example["instances"]["bbox_frames"], strict=True)):
        if f.size and (f.min() < 0 or f.max() >= t):
            raise DatasetFileError(f"video {example['metadata'].get('video_name')!r}: object {i} has boxes for "
                                   f"frames {f.tolist()}, outside its {t} frames")  # fmt: skip
        boxes[f, i], visible[f, i] = b, True  # loop over the few objects
    centers = example["instances"]["image_positions"][..., ::-1].transpose(1, 0, 2)  # [N, T, (x, y)] -> [T, N, 2]
    return {
        "video": video,
        "mask": example["segmentations"][..., 0],
        "boxes": boxes,
        "visible": visible,
        "centers": np.ascontiguousarray(centers, dtype=F32),
        "flow": flow_pixels(example["forward_flow"], example["metadata"]["forward_flow_range"]),
    }
