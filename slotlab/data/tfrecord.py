"""Reader for the DeepMind multi-object datasets' TFRecord files, without TensorFlow.

The object-discovery experiments of Slot Attention (paper Section 4.1, Table 1) use the DeepMind
``multi_object_datasets`` files: Tetrominoes, Multi-dSprites (three variants), CLEVR (with masks) and
Objects Room. Each file is a (normally GZIP-compressed) TFRecord file whose records are serialized
``tf.train.Example`` protos with fixed-length features. This module implements:

* TFRecord framing: ``uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)``,
  both CRCs verified; the compression (GZIP or none) is detected from the file's first bytes.
* A small hand-written protobuf wire-format parser for ``tf.train.Example`` (``Features`` map of
  ``Feature`` = oneof ``bytes_list`` / ``float_list`` / ``int64_list``, packed and unpacked repeated fields).
* Per-dataset decoding into numpy arrays with the shapes of the DeepMind reader (``image`` [H, W, C],
  ``mask`` [K, H, W] with the background first, values 0/255 as stored) and the per-object fields.

CRC32C comes from ``google-crc32c`` (C extension) when installed, else from the ``crc32c`` package, else from
a vectorised numpy table implementation (see ``CRC32C_BACKEND``).

Example::

    for ex in read_tfrecords("tetrominoes_train.tfrecords", "tetrominoes"):
        ex["image"]  # uint8 [35, 35, 3]
        ex["mask"]   # uint8 [4, 35, 35], 0 or 255, index 0 = background
"""

from __future__ import annotations

import functools
import gzip
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

import numpy as np

from slotlab.data.errors import DatasetFileError

__all__ = [
    "CRC32C_BACKEND",
    "DATASET_NAMES",
    "DatasetFileError",
    "DatasetSpec",
    "dataset_spec",
    "instance_masks",
    "masked_crc32c",
    "read_tfrecords",
]

# ----------------------------------------------------------------------------------------------------------
# CRC32C (Castagnoli): library if available, numpy fallback otherwise.
# ----------------------------------------------------------------------------------------------------------

_CRC32C_POLY = 0x82F63B78  # reflected Castagnoli polynomial


def _make_crc_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)  # [256]
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_CRC32C_POLY), table >> 1).astype(np.uint32)
    return table


_CRC_TABLE = _make_crc_table()  # [256] uint32
_CRC_TABLE_LIST = [int(v) for v in _CRC_TABLE]


def _crc32c_bytewise(data: bytes, reg: int = 0xFFFFFFFF) -> int:
    """Plain table-driven CRC32C register update (no final xor); for short inputs and tails."""
    table = _CRC_TABLE_LIST
    for b in data:
        reg = table[(reg ^ b) & 0xFF] ^ (reg >> 8)
    return reg


@functools.lru_cache(maxsize=8)
def _zero_shift_tables(length: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """Tables of the linear map 'feed `length` zero bytes into the CRC register', one per register byte."""
    shifts = (8 * np.arange(4, dtype=np.uint32))[:, None]  # [4, 1]
    # [1024]: every byte value at every byte position of the register
    reg = (np.arange(256, dtype=np.uint32)[None, :] << shifts).ravel().astype(np.uint32)
    for _ in range(length):
        reg = _CRC_TABLE[reg & 0xFF] ^ (reg >> 8)
    tables = reg.reshape(4, 256)
    return tuple(tables[i].tolist() for i in range(4))  # type: ignore[return-value]


def _crc32c_numpy(data: bytes) -> int:
    """CRC32C of ``data`` with numpy, no compiled extension needed.

    The CRC register update is linear over GF(2), so the input is cut into M equal chunks whose
    (zero-initialised) registers are computed in parallel as numpy lanes, then combined in order with a
    precomputed "shift by one chunk of zero bytes" map; the remaining tail is processed bytewise.
    """
    n = len(data)
    if n < 4096:
        return _crc32c_bytewise(data) ^ 0xFFFFFFFF
    chunk = max(256, int(np.sqrt(n)))
    m = n // chunk
    lanes = np.frombuffer(data, dtype=np.uint8, count=m * chunk).reshape(m, chunk)  # [M, L]
    lanes = lanes.T.astype(np.uint32)  # [L, M]
    regs = np.zeros(m, dtype=np.uint32)  # [M]
    table = _CRC_TABLE
    for j in range(chunk):
        regs = table[(regs ^ lanes[j]) & 0xFF] ^ (regs >> 8)
    t0, t1, t2, t3 = _zero_shift_tables(chunk)
    reg = 0xFFFFFFFF
    for lane_reg in regs.tolist():
        reg = t0[reg & 0xFF] ^ t1[(reg >> 8) & 0xFF] ^ t2[(reg >> 16) & 0xFF] ^ t3[reg >> 24] ^ lane_reg
    reg = _crc32c_bytewise(data[m * chunk :], reg)
    return reg ^ 0xFFFFFFFF


def _select_crc32c():
    try:
        import google_crc32c

        if getattr(google_crc32c, "implementation", "c") == "c":
            return google_crc32c.value, "google-crc32c"
    except ImportError:
        pass
    try:
        import crc32c as _crc32c_pkg

        return _crc32c_pkg.crc32c, "crc32c"
    except ImportError:
        pass
    return _crc32c_numpy, "numpy"


_crc32c, CRC32C_BACKEND = _select_crc32c()


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC32C: ``((crc >> 15) | (crc << 17)) + 0xa282ead8`` modulo 2**32."""
    crc = _crc32c(bytes(data))
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# ----------------------------------------------------------------------------------------------------------
# Dataset schemas (DeepMind multi_object_datasets readers).
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    """Feature layout of one dataset variant: image [H, W, C], K mask entities, per-object fields."""

    name: str
    image_shape: tuple[int, int, int]  # (H, W, C)
    num_entities: int  # K, background included
    mask_layout: str  # "KHW" (stored [K, H, W, 1]) or "HWK" (stored [H, W, K, 1], Multi-dSprites)
    float_fields: dict[str, tuple[int, ...]] = field(default_factory=dict)
    byte_fields: dict[str, tuple[int, ...]] = field(default_factory=dict)  # raw uint8 bytes


def _tetrominoes() -> DatasetSpec:
    k = 4
    return DatasetSpec(
        "tetrominoes", (35, 35, 3), k, "KHW",
        {"x": (k,), "y": (k,), "shape": (k,), "color": (k, 3), "visibility": (k,)},
    )  # fmt: skip


def _multi_dsprites(variant: str) -> DatasetSpec:
    k = {"binarized": 4, "colored_on_grayscale": 6, "colored_on_colored": 5}[variant]
    c = 1 if variant == "binarized" else 3
    floats = {
        "x": (k,), "y": (k,), "shape": (k,), "color": (k, c), "visibility": (k,), "orientation": (k,),
        "scale": (k,),
    }  # fmt: skip
    return DatasetSpec(f"multi_dsprites_{variant}", (64, 64, c), k, "HWK", floats)


def _clevr_with_masks() -> DatasetSpec:
    k = 11
    floats = {
        "x": (k,), "y": (k,), "z": (k,), "pixel_coords": (k, 3), "rotation": (k,), "visibility": (k,),
    }  # fmt: skip
    byte_fields = {"size": (k,), "material": (k,), "shape": (k,), "color": (k,)}
    return DatasetSpec("clevr_with_masks", (240, 320, 3), k, "KHW", floats, byte_fields)


def _objects_room(variant: str) -> DatasetSpec:
    k = {"train": 7, "six_objects": 10, "empty_room": 4, "identical_color": 10}[variant]
    name = "objects_room" if variant == "train" else f"objects_room_{variant}"
    return DatasetSpec(name, (64, 64, 3), k, "KHW")


_VARIANTS = {
    "multi_dsprites": ("binarized", "colored_on_grayscale", "colored_on_colored"),
    "objects_room": ("train", "six_objects", "empty_room", "identical_color"),
}

DATASET_NAMES: tuple[str, ...] = (
    "tetrominoes",
    "multi_dsprites_colored_on_grayscale",
    "multi_dsprites_colored_on_colored",
    "multi_dsprites_binarized",
    "clevr_with_masks",
    "objects_room",
    "objects_room_six_objects",
    "objects_room_empty_room",
    "objects_room_identical_color",
)


def dataset_spec(dataset: str, variant: str | None = None) -> DatasetSpec:
    """The feature layout for ``dataset`` (one of ``DATASET_NAMES``, or "multi_dsprites"/"objects_room"
    together with ``variant``). Raises ``DatasetFileError`` for an unknown name."""
    name = dataset.strip().lower()
    if name in _VARIANTS:
        if variant is None and name == "objects_room":
            variant = "train"
        if variant not in _VARIANTS[name]:
            raise DatasetFileError(f"unknown {name} variant {variant!r}; pass variant= one of {list(_VARIANTS[name])}")
        name = f"{name}_{variant}"
    elif variant is not None:
        raise DatasetFileError(
            f"dataset {dataset!r} has no variants (got variant={variant!r}); use one of {list(DATASET_NAMES)}"
        )
    if name == "tetrominoes":
        return _tetrominoes()
    if name == "clevr_with_masks":
        return _clevr_with_masks()
    for prefix, build in (("multi_dsprites_", _multi_dsprites), ("objects_room_", _objects_room)):
        if name.startswith(prefix) and name[len(prefix) :] in _VARIANTS[prefix[:-1]]:
            return build(name[len(prefix) :])
    raise DatasetFileError(
        f"unknown dataset name {dataset!r}; use one of {list(DATASET_NAMES)} "
        "(or 'multi_dsprites' / 'objects_room' with variant=...)"
    )


# ----------------------------------------------------------------------------------------------------------
# Minimal protobuf wire-format parser for tf.train.Example.
# ----------------------------------------------------------------------------------------------------------


class _ProtoError(Exception):
    """Malformed protobuf bytes (converted to DatasetFileError with file/record context)."""


_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5


def _read_varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise _ProtoError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _ProtoError("varint longer than 10 bytes")


def _iter_fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield (field_number, wire_type, a, b): varint -> (value, 0); LEN/fixed -> byte span [a, b)."""
    pos = start
    while pos < end:
        key, pos = _read_varint(buf, pos, end)
        fno, wt = key >> 3, key & 7
        if fno == 0:
            raise _ProtoError("field number 0")
        if wt == _VARINT:
            value, pos = _read_varint(buf, pos, end)
            yield fno, wt, value, 0
            continue
        if wt == _LEN:
            length, pos = _read_varint(buf, pos, end)
            stop = pos + length
        elif wt == _FIXED64:
            stop = pos + 8
        elif wt == _FIXED32:
            stop = pos + 4
        else:
            raise _ProtoError(f"unsupported wire type {wt} (field {fno})")
        if stop > end:
            raise _ProtoError(f"field {fno} runs past the end of its message")
        yield fno, wt, pos, stop
        pos = stop


@dataclass
class _BytesValue:
    """A decoded BytesList: number of entries, their common length (None if ragged), concatenated bytes."""

    count: int
    entry_len: int | None
    data: np.ndarray  # [sum of entry lengths] uint8


def _decode_bytes_list(buf: memoryview, spans: list[tuple[int, int]]) -> _BytesValue:
    counts, lens, parts = 0, set(), []
    for s, e in spans:
        n = e - s
        payload = np.frombuffer(buf[s:e], dtype=np.uint8)  # [n]
        if n and n % 3 == 0:
            # Fast path for DeepMind's layout: every entry is one byte -> repeated (0x0a, 0x01, value).
            triples = payload.reshape(-1, 3)  # [n / 3, 3]
            if (triples[:, 0] == 0x0A).all() and (triples[:, 1] == 1).all():
                counts += n // 3
                lens.add(1)
                parts.append(triples[:, 2])
                continue
        for fno, wt, a, b in _iter_fields(buf, s, e):
            if fno != 1:
                continue
            if wt != _LEN:
                raise _ProtoError(f"BytesList.value has wire type {wt}, expected 2")
            counts += 1
            lens.add(b - a)
            parts.append(payload[a - s : b - s])
    data = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)
    return _BytesValue(counts, lens.pop() if len(lens) == 1 else (0 if not lens else None), data)


def _decode_float_list(buf: memoryview, spans: list[tuple[int, int]]) -> np.ndarray:
    parts = []
    for s, e in spans:
        for fno, wt, a, b in _iter_fields(buf, s, e):
            if fno != 1:
                continue
            if wt == _LEN:  # packed
                if (b - a) % 4:
                    raise _ProtoError("packed FloatList length is not a multiple of 4")
                parts.append(np.frombuffer(buf[a:b], dtype="<f4"))
            elif wt == _FIXED32:  # unpacked
                parts.append(np.frombuffer(buf[a:b], dtype="<f4"))
            else:
                raise _ProtoError(f"FloatList.value has wire type {wt}")
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, dtype=np.float32)


def _to_int64(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >= (1 << 63) else v


def _decode_int64_list(buf: memoryview, spans: list[tuple[int, int]]) -> np.ndarray:
    values: list[int] = []
    for s, e in spans:
        for fno, wt, a, b in _iter_fields(buf, s, e):
            if fno != 1:
                continue
            if wt == _VARINT:  # unpacked
                values.append(_to_int64(a))
            elif wt == _LEN:  # packed
                pos = a
                while pos < b:
                    v, pos = _read_varint(buf, pos, b)
                    values.append(_to_int64(v))
            else:
                raise _ProtoError(f"Int64List.value has wire type {wt}")
    return np.asarray(values, dtype=np.int64)


_KINDS = {1: "bytes", 2: "float", 3: "int64"}


def _parse_feature(buf: memoryview, start: int, end: int) -> tuple[str | None, object]:
    kind: str | None = None
    spans: list[tuple[int, int]] = []
    for fno, wt, a, b in _iter_fields(buf, start, end):
        if fno not in _KINDS:
            continue
        if wt != _LEN:
            raise _ProtoError(f"Feature field {fno} has wire type {wt}, expected 2")
        if _KINDS[fno] != kind:  # oneof: a different member replaces the previous one
            kind, spans = _KINDS[fno], []
        spans.append((a, b))  # the same member repeated: messages merge (lists concatenate)
    if kind == "bytes":
        return kind, _decode_bytes_list(buf, spans)
    if kind == "float":
        return kind, _decode_float_list(buf, spans)
    if kind == "int64":
        return kind, _decode_int64_list(buf, spans)
    return None, None


def _parse_example(data: bytes) -> dict[str, tuple[str | None, object]]:
    """Parse a serialized tf.train.Example into {feature name: (kind, decoded value)}."""
    buf = memoryview(data)
    features: dict[str, tuple[str | None, object]] = {}
    for fno, wt, a, b in _iter_fields(buf, 0, len(buf)):
        if fno != 1:
            continue
        if wt != _LEN:
            raise _ProtoError(f"Example.features has wire type {wt}, expected 2")
        for fno2, wt2, a2, b2 in _iter_fields(buf, a, b):  # Features
            if fno2 != 1:
                continue
            if wt2 != _LEN:
                raise _ProtoError(f"Features.feature has wire type {wt2}, expected 2")
            key, value_span = "", None
            for fno3, wt3, a3, b3 in _iter_fields(buf, a2, b2):  # map entry
                if fno3 == 1 and wt3 == _LEN:
                    try:
                        key = bytes(buf[a3:b3]).decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise _ProtoError("feature name is not valid UTF-8") from exc
                elif fno3 == 2 and wt3 == _LEN:
                    value_span = (a3, b3)
                elif fno3 in (1, 2):
                    raise _ProtoError(f"map entry field {fno3} has wire type {wt3}, expected 2")
            features[key] = _parse_feature(buf, *value_span) if value_span else (None, None)
    return features


# ----------------------------------------------------------------------------------------------------------
# Record framing and compression detection.
# ----------------------------------------------------------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b"
_REDOWNLOAD = "The file is corrupt or incomplete (e.g. an interrupted download or copy): download it again."


def _header_is_valid(header: bytes) -> bool:
    return len(header) >= 12 and masked_crc32c(header[:8]) == struct.unpack("<I", header[8:12])[0]


def _detect_compression(path: str) -> str:
    """'none' or 'gzip', from the first bytes of the file."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError as exc:
        raise DatasetFileError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    if not head:
        raise DatasetFileError(f"{path}: the file is empty (0 bytes). {_REDOWNLOAD}")
    if _header_is_valid(head):  # a valid uncompressed first record header (gzip magic collision-proof)
        return "none"
    if head[:2] == _GZIP_MAGIC:
        return "gzip"
    if len(head) < 12:
        raise DatasetFileError(
            f"{path}: record 0: file is truncated ({len(head)} bytes, shorter than one record header). {_REDOWNLOAD}"
        )
    (length,) = struct.unpack("<Q", head[:8])
    if length + 16 <= os.path.getsize(path):
        # A plausible record length with a bad length CRC: read it as uncompressed so that the record
        # loop reports the CRC mismatch of record 0.
        return "none"
    hint = ""
    if head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        hint = " It looks ZLIB-compressed, which is not supported: decompress it (python zlib) first."
    raise DatasetFileError(
        f"{path}: record 0: not a TFRecord file (neither GZIP magic bytes nor a valid uncompressed record "
        f"header with a matching length CRC).{hint} Check the path; if it is a dataset file, {_REDOWNLOAD}"
    )


def _read_exact(f: IO[bytes], n: int) -> bytes:
    data = f.read(n)
    if len(data) == n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = f.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _iter_records(path: str, compression: str) -> Iterator[tuple[int, bytes]]:
    """Yield (record index, serialized record) with both CRCs checked."""
    opener = gzip.open if compression == "gzip" else open
    index = 0
    try:
        with opener(path, "rb") as f:
            while True:
                header = _read_exact(f, 12)
                if not header:
                    break
                if len(header) < 12:
                    raise DatasetFileError(
                        f"{path}: record {index}: file ends inside the record header "
                        f"({len(header)} of 12 bytes). {_REDOWNLOAD}"
                    )
                (length,) = struct.unpack("<Q", header[:8])
                if not _header_is_valid(header):
                    raise DatasetFileError(f"{path}: record {index}: CRC mismatch in the length header. {_REDOWNLOAD}")
                data = _read_exact(f, length)
                footer = _read_exact(f, 4)
                if len(data) < length or len(footer) < 4:
                    raise DatasetFileError(
                        f"{path}: record {index}: file ends inside the record (expected {length} data bytes "
                        f"+ 4 CRC bytes, got {len(data)} + {len(footer)}). {_REDOWNLOAD}"
                    )
                if masked_crc32c(data) != struct.unpack("<I", footer)[0]:
                    raise DatasetFileError(
                        f"{path}: record {index}: CRC mismatch in the record data ({length} bytes). {_REDOWNLOAD}"
                    )
                yield index, data
                index += 1
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DatasetFileError(
            f"{path}: record {index}: the GZIP stream is truncated or corrupt ({exc}). {_REDOWNLOAD}"
        ) from exc
    except OSError as exc:
        raise DatasetFileError(f"{path}: record {index}: cannot read it ({exc.strerror or exc})") from exc
    if index == 0:
        raise DatasetFileError(f"{path}: the file contains no records. {_REDOWNLOAD}")


# ----------------------------------------------------------------------------------------------------------
# Public API.
# ----------------------------------------------------------------------------------------------------------


def _decode_record(path: str, index: int, data: bytes, spec: DatasetSpec) -> dict[str, np.ndarray]:
    where = f"{path}: record {index}"
    fix = f"Check that dataset={spec.name!r} matches this file (known names: {list(DATASET_NAMES)})."
    try:
        features = _parse_example(data)
    except _ProtoError as exc:
        raise DatasetFileError(f"{where}: malformed tf.train.Example ({exc}). {_REDOWNLOAD}") from exc

    def get(name: str, kind: str) -> object:
        if name not in features:
            raise DatasetFileError(f"{where}: feature {name!r} is missing (present: {sorted(features)}). {fix}")
        got_kind, value = features[name]
        if got_kind != kind:
            raise DatasetFileError(f"{where}: feature {name!r} is a {got_kind} list, expected {kind}. {fix}")
        return value

    def raw_bytes(name: str, shape: tuple[int, ...]) -> np.ndarray:
        value = get(name, "bytes")
        assert isinstance(value, _BytesValue)
        n = int(np.prod(shape))
        # DeepMind layout: n entries of 1 byte (FixedLenFeature(shape, tf.string) + decode_raw);
        # a single n-byte entry is accepted as well.
        if not ((value.count == n and value.entry_len == 1) or (value.count == 1 and value.data.size == n)):
            raise DatasetFileError(
                f"{where}: feature {name!r} has {value.count} byte strings ({value.data.size} bytes in all), "
                f"expected {n} one-byte values for shape {list(shape)}. {fix}"
            )
        return value.data.reshape(shape)

    h, w, c = spec.image_shape
    k = spec.num_entities
    out: dict[str, np.ndarray] = {"image": raw_bytes("image", (h, w, c))}  # [H, W, C] uint8
    if spec.mask_layout == "HWK":
        mask = np.ascontiguousarray(raw_bytes("mask", (h, w, k)).transpose(2, 0, 1))  # [H, W, K] -> [K, H, W]
    else:
        mask = raw_bytes("mask", (k, h, w))  # [K, H, W]
    out["mask"] = mask
    for name, shape in spec.float_fields.items():
        value = get(name, "float")
        assert isinstance(value, np.ndarray)
        if value.size != int(np.prod(shape)):
            raise DatasetFileError(
                f"{where}: feature {name!r} has {value.size} floats, expected shape {list(shape)}. {fix}"
            )
        out[name] = value.reshape(shape)
    for name, shape in spec.byte_fields.items():
        out[name] = raw_bytes(name, shape)  # uint8
    return out


def _generate(path: str, compression: str, spec: DatasetSpec) -> Iterator[dict[str, np.ndarray]]:
    for index, data in _iter_records(path, compression):
        yield _decode_record(path, index, data, spec)


def read_tfrecords(
    path: str | os.PathLike[str], dataset: str, variant: str | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Iterate over the examples of one DeepMind multi-object TFRecord file.

    Args:
        path: the ``.tfrecords`` file (GZIP-compressed or not; detected from the file).
        dataset: "tetrominoes", "multi_dsprites_colored_on_grayscale", "multi_dsprites_colored_on_colored",
            "multi_dsprites_binarized", "clevr_with_masks", "objects_room" (or "multi_dsprites" /
            "objects_room" with ``variant``; objects_room variants: train, six_objects, empty_room,
            identical_color).
        variant: see ``dataset``.

    Yields:
        dicts of numpy arrays: ``image`` uint8 [H, W, C] (C = 1 for multi_dsprites_binarized, as stored),
        ``mask`` uint8 [K, H, W] (0/255, index 0 = background) and the dataset's per-object fields
        (float32, or uint8 for clevr_with_masks' size/material/shape/color).

    Raises:
        DatasetFileError: unknown dataset name, missing file (both raised at call time), or, during
        iteration, a CRC mismatch, a truncated file or a record whose features do not match the dataset.
    """
    spec = dataset_spec(dataset, variant)
    path_str = os.fspath(path)
    if not os.path.exists(path_str):
        raise DatasetFileError(
            f"{path_str}: file not found. Download the {spec.name} TFRecord file from the DeepMind "
            "multi-object-datasets bucket and pass its path."
        )
    if not os.path.isfile(path_str):
        raise DatasetFileError(f"{path_str}: not a regular file; pass the path of one .tfrecords file.")
    compression = _detect_compression(path_str)
    return _generate(path_str, compression, spec)


def instance_masks(mask: np.ndarray) -> np.ndarray:
    """Turn a [..., K, H, W] stack of 0/255 (or 0/1) masks into an int64 [..., H, W] label map.

    The label of a pixel is the index of its (largest) mask; index 0 is the background, and pixels that no
    mask covers are background as well.
    """
    mask = np.asarray(mask)
    if mask.ndim < 3:
        raise ValueError(f"expected masks of shape [..., K, H, W], got shape {mask.shape}")
    return np.argmax(mask, axis=-3).astype(np.int64)  # [..., H, W]
