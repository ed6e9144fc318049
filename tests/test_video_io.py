"""Video in and out: the animated GIF of a figure (slotlab.drawing.Animation, the video task's figure tiles) and reading
one's own video (slotlab.data.video_files: GIF, a folder of frames, .mp4 through the optional PyAV extra)."""

from __future__ import annotations

import builtins
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from slotlab.data.video_files import VideoInputError, read_video
from slotlab.drawing import Animation, LabelledGrid, gif_bytes
from slotlab.tasks.video.figures import video_animation
from slotlab.viz import slot_colors


def _frames(t: int = 4, h: int = 12, w: int = 16) -> np.ndarray:
    """uint8 [T, H, W, 3]: a red square moving right on blue, one colour per frame in a corner."""
    out = np.zeros((t, h, w, 3), dtype=np.uint8)
    out[..., 2] = 200
    for i in range(t):
        out[i, 2:6, 2 * i : 2 * i + 4] = (255, 0, 0)
        out[i, -2:, -2:] = (0, 20 * i, 0)
    return out


def _save_gif(frames: np.ndarray, path) -> None:
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)


def test_gif_round_trip_keeps_frames_in_order(tmp_path):
    frames = _frames()
    (tmp_path / "clip.gif").write_bytes(gif_bytes(list(frames)))
    video, steps = read_video(tmp_path / "clip.gif")
    assert video.shape == frames.shape and video.dtype == np.uint8
    np.testing.assert_array_equal(video, frames)  # few colours: the shared palette is exact
    assert "4 frames" in steps[0]


def test_gif_written_by_pillow_with_disposal_is_composited(tmp_path):
    _save_gif(_frames(), tmp_path / "p.gif")
    video, _ = read_video(tmp_path / "p.gif")
    assert video.shape == (4, 12, 16, 3)
    np.testing.assert_array_equal(video[3, 2:6, 6:10], np.full((4, 4, 3), (255, 0, 0)))


def test_folder_of_frames_in_natural_order(tmp_path):
    frames = _frames(t=11)
    for i, f in enumerate(frames):  # frame_1 .. frame_11: name order would put 10, 11 before 2
        Image.fromarray(f).save(tmp_path / f"frame_{i + 1}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    video, steps = read_video(tmp_path)
    np.testing.assert_array_equal(video, frames)
    assert "frame_1.png .. frame_11.png" in steps[0]
    assert any("ignored 1 file" in s for s in steps)


def test_folder_greyscale_frames_become_rgb(tmp_path):
    for i in range(2):
        Image.fromarray(np.full((5, 5), 10 * i, np.uint8), mode="L").save(tmp_path / f"{i}.png")
    video, steps = read_video(tmp_path)
    assert video.shape == (2, 5, 5, 3)
    assert video[1, 0, 0].tolist() == [10, 10, 10]
    assert any("L -> RGB" in s for s in steps)


def test_max_frames_cuts_and_says_so(tmp_path):
    (tmp_path / "clip.gif").write_bytes(gif_bytes(list(_frames(t=5))))
    video, steps = read_video(tmp_path / "clip.gif", max_frames=2)
    assert len(video) == 2
    assert any("first 2 of 5" in s for s in steps)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "no such file or folder"),
        (lambda p: (p.mkdir(), p)[1], "a folder without frames"),
        (lambda p: (p.with_suffix(".txt").write_text("hello"), p.with_suffix(".txt"))[1], "not a video slotlab reads"),
    ],
    ids=["missing", "empty folder", "text file"],
)
def test_unreadable_inputs_are_named_errors(tmp_path, make, message):
    with pytest.raises(VideoInputError, match=message):
        read_video(make(tmp_path / "clip"))


def test_frames_of_different_sizes_are_refused(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(VideoInputError, match="b.png is 6x4 but a.png is 4x4"):
        read_video(tmp_path)


def test_mp4_without_pyav_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    real_import = builtins.__import__

    def no_av(name, *args, **kwargs):
        if name == "av":
            raise ImportError("No module named 'av'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "av", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_av)
    with pytest.raises(VideoInputError, match=r"needs PyAV, an optional extra: pip install 'slotlab\[video\]'"):
        read_video(tmp_path / "clip.mp4")


def _grid(colour: tuple[float, float, float], title: str) -> LabelledGrid:
    tile = np.ones((8, 8, 3), np.float32) * np.array(colour, np.float32)
    return LabelledGrid([[tile, tile]], ["A", "B"], ["row"], title, [("slot 1", colour)])


def test_animation_writes_a_gif_and_its_still(tmp_path):
    anim = Animation([_grid((1, 0, 0), "t 1/2"), _grid((0, 0, 1), "t 2/2")], still=_grid((1, 0, 0), "still"))
    paths = anim.write(tmp_path / "fig.png", formats=("svg",))
    assert [p.name for p in paths] == ["fig.gif", "fig_still.png", "fig_still.svg"]
    with Image.open(paths[0]) as gif:
        assert gif.n_frames == 2 and gif.info["loop"] == 0
    assert (tmp_path / "fig.gif").read_bytes() == gif_bytes(anim.arrays())  # deterministic bytes


def test_video_figure_slot_colours_are_stable_over_time(tmp_path):
    b, t, k, h, w = 2, 3, 3, 8, 8
    video = torch.rand(b, t, 3, h, w) * 2 - 1
    masks = torch.zeros(b, t, k, h, w)
    masks[:, :, 1] = 1.0  # slot 2 takes every pixel of every frame
    recons = torch.zeros(b, t, k, 3, h, w)
    truth = torch.zeros(b, t, h, w, dtype=torch.long)
    truth[:, :, :4] = 1
    anim = video_animation(video, video, masks, recons, 1, "test", truth, slot_names=["slot 1: background"])
    assert len(anim.frames) == t
    assert anim.frames[0].columns[:4] == ["Frame", "Ground truth", "Reconstruction", "Mask"]
    assert anim.frames[0].legend[0][0] == "slot 1: background" and anim.frames[0].legend[1][0] == "slot 2"
    assert anim.still is not None and len(anim.still.tiles) == b * t and anim.still.group == t
    mask_tiles = [frame.tiles[0][3] for frame in anim.frames]  # the Mask column of video 1, every frame
    for tile in mask_tiles:
        np.testing.assert_allclose(tile[0, 0], slot_colors(k)[1])
    gif = anim.write(tmp_path / "video.gif")[0]
    video_back, _ = read_video(gif)
    assert video_back.shape[0] == t


def test_mp4_through_pyav_when_installed(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(5):
            frame = np.zeros((32, 32, 3), np.uint8)
            frame[..., 0] = 50 * i
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    video, steps = read_video(path)
    assert video.shape == (5, 32, 32, 3)
    np.testing.assert_allclose(video[:, 16, 16, 0], [0, 50, 100, 150, 200], atol=3)  # lossy codec
    assert "decoded 5 frames" in steps[0]
