"""MP4 output of a video model's figure (``slotlab figures --video-format mp4``, :mod:`slotlab.mp4`): known frames
written and read back with PyAV (frame count, size, pixels within the codec's tolerance), odd sizes padded to even,
both encoders; without PyAV, a named error and one ``error:`` line naming the extra."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from slotlab.cli import main
from slotlab.drawing import Animation, LabelledGrid
from slotlab.mp4 import CODECS, VideoEncoderMissingError, check_video_format, mp4_bytes


def known_frames(n: int = 4, h: int = 33, w: int = 47) -> list[np.ndarray]:
    """White frames of odd size with a red square moving right and a blue / green block switching colour."""
    frames = []
    for i in range(n):
        f = np.full((h, w, 3), 255, dtype=np.uint8)
        f[4:20, 4 + 5 * i : 24 + 5 * i] = (200, 30, 30)
        f[20:30, 30:44] = (30, 30, 200) if i % 2 else (30, 180, 30)
        frames.append(f)
    return frames


def decode(data: bytes) -> tuple[list[np.ndarray], str]:
    av = pytest.importorskip("av")
    with av.open(io.BytesIO(data)) as container:
        codec = container.streams.video[0].codec_context.name
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)], codec


@pytest.mark.parametrize("codec", CODECS)
def test_mp4_round_trip_keeps_frames_size_and_pixels(codec):
    av = pytest.importorskip("av")
    try:
        av.codec.Codec(codec, "w")
    except Exception:
        pytest.skip(f"this FFmpeg has no {codec} encoder")
    frames = known_frames()
    got, used = decode(mp4_bytes(frames, duration_ms=500, codec=codec))
    assert used == {"libx264": "h264", "mpeg4": "mpeg4"}[codec]
    assert len(got) == 4
    assert got[0].shape == (34, 48, 3)  # 33 x 47 padded to even sizes (yuv420p)
    for i, (g, f) in enumerate(zip(got, frames, strict=True)):
        diff = np.abs(g[:33, :47].astype(int) - f.astype(int))
        assert diff.mean() < 6  # lossy: the chroma is subsampled 2x2, so colour edges blur
        inner = (slice(7, 17), slice(8 + 5 * i, 20 + 5 * i))  # inside the red square, away from its edges
        assert diff[inner].max() <= 12
    assert (got[0][33:] >= 240).all() and (got[0][:, 47:] >= 240).all()  # the padding is white


def test_animation_writes_mp4_and_its_still(tmp_path):
    pytest.importorskip("av")
    grids = [
        LabelledGrid([[f.astype(np.float32) / 255]], ["Frame"], [""], f"frame {i + 1}")
        for i, f in enumerate(known_frames(3))
    ]
    paths = Animation(grids, still=grids[0]).write(tmp_path / "clip.gif", video_format="mp4")
    assert [p.name for p in paths] == ["clip.mp4", "clip_still.png"]
    got, _ = decode(paths[0].read_bytes())
    assert len(got) == 3 and got[0].shape[0] % 2 == 0 and got[0].shape[1] % 2 == 0


def test_mp4_without_pyav_is_a_named_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError
    with pytest.raises(VideoEncoderMissingError, match=r"pip install 'slotlab\[video\]'"):
        check_video_format("mp4")
    assert check_video_format("GIF") == "gif"  # a GIF needs nothing
    code = main(["figures", "--pretrained", "savi_moving_objects", "--video-format", "mp4", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "pip install 'slotlab[video]'" in err[0]
    assert not list(tmp_path.iterdir())  # refused before any work


def test_figures_cli_writes_mp4_of_a_video_model(tmp_path, capsys):
    pytest.importorskip("av")
    args = ["figures", "--pretrained", "savi_moving_objects", "--num-images", "1", "--out", str(tmp_path)]
    assert main([*args, "--video-format", "mp4"]) == 0
    assert f"wrote {tmp_path / 'video_slots.mp4'}" in capsys.readouterr().out
    got, _ = decode((tmp_path / "video_slots.mp4").read_bytes())
    assert len(got) == 6  # one per frame of the zoo model's 6-frame held-out clips
    assert (tmp_path / "video_slots_still.png").is_file() and not (tmp_path / "video_slots.gif").exists()
