"""Write the tiny TFRecord test fixtures for ``slotlab.data.tfrecord`` with an INDEPENDENT writer.

The fixtures mimic the DeepMind multi-object datasets (paper Section 4.1): Tetrominoes (35x35, K=4),
Multi-dSprites colored_on_grayscale (64x64, K=6, mask stored [H, W, K, 1]) and CLEVR with masks (240x320,
K=11, size/material/shape/color as raw bytes). Records are written exactly like the originals:
``tf.train.Example`` with every byte feature (image, mask, clevr attributes) as a BytesList of one-byte
strings (``FixedLenFeature(shape, tf.string)`` + ``decode_raw``) and float features as FloatLists.

Nothing from slotlab is imported: records and framing come from the ``tfrecord`` PyPI package
(protobuf ``example_pb2`` + ``crc32c``), GZIP files are the same byte stream compressed with Python's
``gzip`` module (what TensorFlow's GZIP TFRecordWriter produces), and every file is read back with the
``tfrecord`` package's reader to check it. Expected values (masks in canonical [K, H, W] order) go to
``expected.json``; image/mask arrays are stored as base64 of zlib-compressed raw uint8 bytes.

Usage:  python tools/make_tfrecord_fixtures.py [--out tests/fixtures]   (needs: pip install tfrecord)
"""

from __future__ import annotations

import argparse
import base64
import colorsys
import gzip
import json
import zlib
from pathlib import Path

import numpy as np
from tfrecord import example_pb2
from tfrecord.reader import tfrecord_iterator
from tfrecord.writer import TFRecordWriter


def _pack_array(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a, dtype=np.uint8)
    return {"shape": list(a.shape), "zlib_b64": base64.b64encode(zlib.compress(a.tobytes(), 9)).decode()}


def _one_byte_entries(a: np.ndarray) -> list[bytes]:
    """BytesList value as in the DeepMind files: one 1-byte string per element (C order)."""
    flat = np.ascontiguousarray(a, dtype=np.uint8).ravel().tobytes()
    return [flat[i : i + 1] for i in range(len(flat))]


def _f32(a: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=np.float32).ravel()]


def _masks_from_labels(labels: np.ndarray, k: int) -> np.ndarray:
    return (255 * (labels[None] == np.arange(k)[:, None, None])).astype(np.uint8)  # [K, H, W]


def make_tetrominoes(rng: np.random.Generator) -> tuple[dict, dict]:
    k, size, block = 4, 35, 5
    colors = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], np.float32)
    pieces = [[(0, 0), (0, 1), (0, 2), (0, 3)], [(0, 0), (0, 1), (1, 0), (1, 1)],
              [(0, 0), (0, 1), (0, 2), (1, 1)], [(0, 1), (0, 2), (1, 0), (1, 1)],
              [(0, 0), (1, 0), (2, 0), (2, 1)]]  # fmt: skip
    labels = np.zeros((size, size), np.int64)
    image = np.zeros((size, size, 3), np.uint8)
    x = np.zeros(k, np.float32)
    y = np.zeros(k, np.float32)
    shape = np.zeros(k, np.float32)
    color = np.zeros((k, 3), np.float32)
    for obj, (r0, c0) in zip(range(1, k), [(0, 0), (2, 3), (4, 1)], strict=True):
        s = int(rng.integers(len(pieces)))
        col = colors[rng.integers(len(colors))]
        for dr, dc in pieces[s]:
            r, c = (r0 + dr) * block, (c0 + dc) * block
            labels[r : r + block, c : c + block] = obj
            image[r : r + block, c : c + block] = (col * 255).astype(np.uint8)
        x[obj], y[obj], shape[obj], color[obj] = c0 * block + 7.5, r0 * block + 7.5, s, col
    visibility = np.ones(k, np.float32)
    mask = _masks_from_labels(labels, k)  # [K, H, W]
    record = {
        "image": (_one_byte_entries(image), "byte"),
        "mask": (_one_byte_entries(mask[..., None]), "byte"),  # stored [K, H, W, 1]
        "x": (_f32(x), "float"), "y": (_f32(y), "float"), "shape": (_f32(shape), "float"),
        "color": (_f32(color), "float"), "visibility": (_f32(visibility), "float"),
    }  # fmt: skip
    expected = {
        "image": _pack_array(image), "mask": _pack_array(mask), "x": _f32(x), "y": _f32(y),
        "shape": _f32(shape), "color": np.asarray(color, np.float32).tolist(), "visibility": _f32(visibility),
    }  # fmt: skip
    return record, expected


def make_multi_dsprites(rng: np.random.Generator) -> tuple[dict, dict]:
    k, size = 6, 64
    n = int(rng.integers(2, 6))  # 2..5 sprites
    gray = int(rng.integers(0, 256))
    image = np.full((size, size, 3), gray, np.uint8)
    labels = np.zeros((size, size), np.int64)
    yy, xx = np.mgrid[0:size, 0:size]
    x, y, shape, vis, orient, scale = (np.zeros(k, np.float32) for _ in range(6))
    color = np.zeros((k, 3), np.float32)
    color[0] = gray / 255.0
    vis[0] = 1.0
    for obj in range(1, n + 1):  # later sprites occlude earlier ones
        cx, cy = rng.uniform(10, 54, size=2)
        sc = rng.uniform(0.5, 1.0)
        shp = int(rng.integers(3))
        radius = 10 * sc
        if shp == 0:
            region = ((xx - cx) / radius) ** 2 + ((yy - cy) / (0.6 * radius)) ** 2 <= 1
        else:
            region = (np.abs(xx - cx) <= radius) & (np.abs(yy - cy) <= radius * (0.5 if shp == 1 else 1))
        hsv = (rng.uniform(), rng.uniform(0.5, 1), rng.uniform(0.5, 1))
        rgb = np.array(colorsys.hsv_to_rgb(*hsv), np.float32)
        labels[region] = obj
        image[region] = np.round(rgb * 255).astype(np.uint8)
        x[obj], y[obj], shape[obj], vis[obj] = cx / size, cy / size, shp + 1, 1.0
        orient[obj], scale[obj], color[obj] = rng.uniform(0, 2 * np.pi), sc, rgb
    mask = _masks_from_labels(labels, k)  # [K, H, W]
    stored_mask = mask.transpose(1, 2, 0)[..., None]  # [H, W, K, 1] as in the DeepMind file
    record = {
        "image": (_one_byte_entries(image), "byte"),
        "mask": (_one_byte_entries(stored_mask), "byte"),
        "x": (_f32(x), "float"), "y": (_f32(y), "float"), "shape": (_f32(shape), "float"),
        "color": (_f32(color), "float"), "visibility": (_f32(vis), "float"),
        "orientation": (_f32(orient), "float"), "scale": (_f32(scale), "float"),
    }  # fmt: skip
    expected = {
        "image": _pack_array(image), "mask": _pack_array(mask), "x": _f32(x), "y": _f32(y),
        "shape": _f32(shape), "color": np.asarray(color, np.float32).tolist(), "visibility": _f32(vis),
        "orientation": _f32(orient), "scale": _f32(scale),
    }  # fmt: skip
    return record, expected


def make_clevr(rng: np.random.Generator) -> tuple[dict, dict]:
    k, h, w = 11, 240, 320
    n = int(rng.integers(3, 7))
    image = np.full((h, w, 3), 120, np.uint8)
    labels = np.zeros((h, w), np.int64)
    yy, xx = np.mgrid[0:h, 0:w]
    floats = {name: np.zeros(k, np.float32) for name in ("x", "y", "z", "rotation", "visibility")}
    pixel_coords = np.zeros((k, 3), np.float32)
    attrs = {name: np.zeros(k, np.uint8) for name in ("size", "material", "shape", "color")}
    floats["visibility"][0] = 1.0
    for obj in range(1, n + 1):
        px, py, depth = rng.uniform(30, 290), rng.uniform(30, 210), rng.uniform(8, 14)
        radius = rng.uniform(8, 25)
        region = (xx - px) ** 2 + (yy - py) ** 2 <= radius**2
        labels[region] = obj
        image[region] = rng.integers(0, 256, size=3).astype(np.uint8)
        floats["x"][obj], floats["y"][obj] = rng.uniform(-3, 3, size=2)
        floats["z"][obj] = rng.choice([0.35, 0.7])
        floats["rotation"][obj] = rng.uniform(0, 360)
        floats["visibility"][obj] = 1.0
        pixel_coords[obj] = (px, py, depth)
        attrs["size"][obj] = rng.integers(1, 3)
        attrs["material"][obj] = rng.integers(1, 3)
        attrs["shape"][obj] = rng.integers(1, 4)
        attrs["color"][obj] = rng.integers(1, 9)
    mask = _masks_from_labels(labels, k)  # [K, H, W]
    record = {
        "image": (_one_byte_entries(image), "byte"),
        "mask": (_one_byte_entries(mask[..., None]), "byte"),  # stored [K, H, W, 1]
    }
    record.update({name: (_f32(v), "float") for name, v in floats.items()})
    record["pixel_coords"] = (_f32(pixel_coords), "float")
    record.update({name: (_one_byte_entries(v), "byte") for name, v in attrs.items()})
    expected = {"image": _pack_array(image), "mask": _pack_array(mask)}
    expected.update({name: _f32(v) for name, v in floats.items()})
    expected["pixel_coords"] = np.asarray(pixel_coords, np.float32).tolist()
    expected.update({name: [int(a) for a in v] for name, v in attrs.items()})
    return record, expected


def _write(path: Path, records: list[dict], compress: bool) -> None:
    plain = path.with_name(path.name + ".tmp")
    writer = TFRecordWriter(str(plain))
    for rec in records:
        writer.write(rec)
    writer.close()
    raw = plain.read_bytes()
    plain.unlink()
    path.write_bytes(gzip.compress(raw, compresslevel=9, mtime=0) if compress else raw)
    # Read back with the tfrecord package (independent of slotlab) and check every feature.
    it = tfrecord_iterator(str(path), compression_type="gzip" if compress else None)
    n = 0
    for rec, blob in zip(records, it, strict=True):
        ex = example_pb2.Example()
        ex.ParseFromString(bytes(blob))
        for key, (value, kind) in rec.items():
            feat = ex.features.feature[key]
            got = list(feat.bytes_list.value if kind == "byte" else feat.float_list.value)
            assert got == list(value), (path, key)
        n += 1
    assert n == len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "tests" / "fixtures"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20200615)
    expected: dict = {"files": {}, "examples": {}}
    plan = [
        ("tetrominoes", make_tetrominoes, 3, [("tetrominoes_gzip.tfrecords", True),
                                              ("tetrominoes_plain.tfrecords", False)]),
        ("multi_dsprites_colored_on_grayscale", make_multi_dsprites, 3,
         [("multi_dsprites_colored_on_grayscale_gzip.tfrecords", True)]),
        ("clevr_with_masks", make_clevr, 2, [("clevr_with_masks_gzip.tfrecords", True)]),
    ]  # fmt: skip
    for dataset, make, count, files in plan:
        pairs = [make(rng) for _ in range(count)]
        expected["examples"][dataset] = [e for _, e in pairs]
        for name, compress in files:
            _write(out / name, [r for r, _ in pairs], compress)
            expected["files"][name] = {
                "dataset": dataset, "compression": "gzip" if compress else "none", "num_records": count,
            }  # fmt: skip
    (out / "tfrecord_expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"wrote {len(expected['files'])} TFRecord files + tfrecord_expected.json to {out} ({total} bytes)")


if __name__ == "__main__":
    main()
