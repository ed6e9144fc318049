"""The MOVi reader returns exactly what TFDS decodes from shards TFDS wrote (fixtures of tools/make_movi_fixture.py)."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from slotlab.data.errors import DatasetFileError
from slotlab.data.movi import _int64_list, _varints, flow_pixels, movi_sample, read_movi, shard_files

FIXTURES = Path(__file__).parent / "fixtures" / "movi"
NOT_DECODED = ("normal", "object_coordinates")  # 16-bit RGB PNG: documented as not decoded


def shard(variant: str) -> Path:
    return FIXTURES / f"movi_{variant}-train.tfrecord-00000-of-00001"


def flatten(example: dict, prefix: str, out: dict) -> None:
    """The reader's nested dict under the npz's keys: 'video/feature/path', ragged as flat values + row lengths."""
    for key, value in example.items():
        name = f"{prefix}/{key}"
        if isinstance(value, dict):
            flatten(value, name, out)
        elif isinstance(value, list):  # ragged: one array per object
            out[f"{name}/flat_values"] = np.concatenate(value)
            out[f"{name}/row_lengths"] = np.array([len(v) for v in value], dtype=np.int64)
        else:
            out[name] = value


@pytest.mark.parametrize("variant", ["a", "e"])
def test_reader_returns_exactly_what_tfds_decodes(variant):
    expected = np.load(FIXTURES / f"movi_{variant}_expected.npz")
    got: dict = {}
    for i, example in enumerate(read_movi(shard(variant))):
        flatten(example, str(i), got)
    assert i == 1  # two videos
    assert set(got) == {k for k in expected.files if k.split("/")[1] not in NOT_DECODED}
    for key, value in got.items():
        want = expected[key]
        if want.dtype.kind == "S":  # strings: TF gives bytes (object arrays for [N])
            assert np.asarray(value, dtype=object).tolist() == np.asarray(want, dtype=object).tolist(), key
            continue
        value = np.asarray(value)
        assert value.dtype == want.dtype, (key, value.dtype, want.dtype)
        assert value.shape == want.shape, (key, value.shape, want.shape)
        np.testing.assert_array_equal(value, want, err_msg=key)
    # the fixture covers what matters: an object never visible, a video without collisions, MOVi-E's extras
    assert expected["0/instances/bboxes/row_lengths"][-1] == 0
    assert expected["0/events/collisions/frame"].shape == (0,)
    if variant == "e":
        assert got["1/instances/is_dynamic"].dtype == bool and got["0/background"] == b"hdri_17"


def test_folder_reads_the_split_shards_in_order(tmp_path):
    for variant in "ae":  # two TFDS-named shards of one split in a folder
        shutil.copy(shard(variant), tmp_path / f"movi-train.tfrecord-0000{'ae'.index(variant)}-of-00002")
    videos = list(read_movi(tmp_path))
    assert [v["video"].shape for v in videos] == [(3, 16, 16, 3)] * 2 + [(2, 8, 12, 3)] * 2
    with pytest.raises(DatasetFileError, match=r"no 'test' shards .*splits found: \['train'\]"):
        shard_files(tmp_path, "test")


def test_movi_sample_densifies_boxes_and_scales_flow():
    expected = np.load(FIXTURES / "movi_a_expected.npz")
    example = list(read_movi(shard("a")))[1]
    s = movi_sample(example)
    t, n = 3, 4
    assert s["boxes"].shape == (t, n, 4) and s["visible"].shape == (t, n) and s["centers"].shape == (t, n, 2)
    boxes = np.zeros((t, n, 4), np.float32)  # SAVi's sparse-to-dense: boxes at bbox_frames, zeros elsewhere
    flat = expected["1/instances/bboxes/flat_values"]
    frames = expected["1/instances/bbox_frames/flat_values"]
    owner = np.repeat(np.arange(n), expected["1/instances/bboxes/row_lengths"])
    for box, f, i in zip(flat, frames, owner, strict=True):
        boxes[f, i] = box
    np.testing.assert_array_equal(s["boxes"], boxes)
    np.testing.assert_array_equal(s["visible"], boxes.any(axis=2))
    np.testing.assert_array_equal(s["mask"], expected["1/segmentations"][..., 0])
    np.testing.assert_array_equal(s["centers"][:, 0], expected["1/instances/image_positions"][0][:, ::-1])
    lo, hi = expected["1/metadata/forward_flow_range"]
    flow = expected["1/forward_flow"].astype(np.float32) / 65535.0 * (hi - lo) + lo  # SAVi's uint16 -> float
    np.testing.assert_allclose(s["flow"], flow, rtol=0, atol=1e-6)
    assert flow_pixels(np.array([0, 65535], np.uint16), np.array([lo, hi])).tolist() == [lo, hi]


def encode_varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((v & 0x7F) | (0x80 if v > 0x7F else 0))
        v >>= 7
        if not out[-1] & 0x80:
            return bytes(out)


def test_vectorised_varints_match_a_byte_loop():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.integers(-(2**63), 2**63 - 1, 200, dtype=np.int64), [0, 1, 127, 128, -1, 65535]])
    data = b"".join(encode_varint(int(v)) for v in values)
    np.testing.assert_array_equal(_varints(np.frombuffer(data, np.uint8)), values)
    # unpacked (one varint field per value) and packed lists give the same values
    unpacked = b"".join(b"\x08" + encode_varint(int(v)) for v in values[:5])
    packed = b"\x0a" + encode_varint(len(data)) + data
    np.testing.assert_array_equal(_int64_list(memoryview(unpacked), (0, len(unpacked))), values[:5])
    np.testing.assert_array_equal(_int64_list(memoryview(packed), (0, len(packed))), values)


def test_files_that_are_not_movi_are_named(tmp_path):
    with pytest.raises(DatasetFileError, match=r"tetrominoes_plain.tfrecords: record 0: no 'video' feature"):
        next(read_movi(FIXTURES.parent / "tetrominoes_plain.tfrecords"))
    cut = tmp_path / "movi_a-train.tfrecord-00000-of-00001"
    cut.write_bytes(shard("a").read_bytes()[:-100])
    with pytest.raises(DatasetFileError, match="record 1: file ends inside the record"):
        list(read_movi(cut))
    with pytest.raises(DatasetFileError, match="no such file or folder"):
        shard_files(tmp_path / "missing")


def test_read_movi_start_and_count_take_a_slice_in_shard_order():
    videos = [e["metadata"]["video_name"] for e in read_movi(shard("a"))]
    assert len(videos) >= 2
    sliced = [e["metadata"]["video_name"] for e in read_movi(shard("a"), start=1, count=1)]
    assert sliced == videos[1:2]
    assert [e["metadata"]["video_name"] for e in read_movi(shard("a"), start=1)] == videos[1:]
    assert list(read_movi(shard("a"), start=len(videos))) == []
