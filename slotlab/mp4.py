"""Writing frames as an MP4 video with PyAV (the optional extra ``video``): what ``slotlab figures --video-format
mp4`` writes for a video model instead of the animated GIF.

H.264 (``libx264``) when PyAV's FFmpeg has it (the PyPI wheels do), else FFmpeg's own MPEG-4 Part 2 encoder
(``mpeg4``); pixel format yuv420p (what players expect), so frames of odd width or height are padded with white to
even sizes (right and below). Quality is set high (x264 CRF 12; mpeg4 quantiser 1..2): a figure is text and flat
colours, which a low bit rate smears. Not part of the paper.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from fractions import Fraction
from types import ModuleType

import numpy as np

from slotlab.errors import UserError

VIDEO_FORMATS = ("gif", "mp4")
EXTRA = "pip install 'slotlab[video]'"
CODECS = ("libx264", "mpeg4")  # in order of preference
_OPTIONS = {"libx264": {"crf": "12", "preset": "medium"}, "mpeg4": {"qmin": "1", "qmax": "2"}}


class VideoEncoderMissingError(UserError, RuntimeError):
    """MP4 output was asked for but PyAV (the optional extra ``video``) is not installed."""


def check_video_format(video_format: str) -> str:
    """``video_format`` ("gif" or "mp4", any case) in lower case; ValueError for another, and
    :class:`VideoEncoderMissingError` for "mp4" without PyAV (checked before any work is done)."""
    fmt = str(video_format).lower().lstrip(".")
    if fmt not in VIDEO_FORMATS:
        raise ValueError(f"video format {video_format!r}: slotlab writes {', '.join(VIDEO_FORMATS)}")
    if fmt == "mp4":
        require_av()
    return fmt


def require_av() -> ModuleType:
    """The ``av`` module; :class:`VideoEncoderMissingError` naming the extra when it is not installed."""
    try:
        import av
    except ImportError:
        raise VideoEncoderMissingError(f"MP4 output needs PyAV, an optional extra: {EXTRA}") from None
    return av


def mp4_codec() -> str:
    """The encoder used: the first of :data:`CODECS` that PyAV's FFmpeg has."""
    av = require_av()
    for name in CODECS:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # av.codec.codec.UnknownCodecError (its module path differs between PyAV versions)
            continue
        return name
    raise VideoEncoderMissingError(f"PyAV's FFmpeg has none of the encoders {', '.join(CODECS)}; reinstall: {EXTRA}")


def even_frames(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """uint8 RGB frames [H, W, 3] of one size, padded with white to even H and W (yuv420p's 2x2 chroma blocks)."""
    if not frames:
        raise ValueError("an MP4 needs at least one frame")
    shape = frames[0].shape
    if any(f.shape != shape for f in frames) or len(shape) != 3 or shape[2] != 3:
        raise ValueError(f"MP4 frames must all be uint8 [H, W, 3] of one size, got {[f.shape for f in frames]}")
    h, w = shape[0] + shape[0] % 2, shape[1] + shape[1] % 2
    out = []
    for f in frames:
        canvas = np.full((h, w, 3), 255, dtype=np.uint8)
        canvas[: shape[0], : shape[1]] = np.asarray(f, dtype=np.uint8)
        out.append(canvas)
    return out


def mp4_bytes(frames: Sequence[np.ndarray], duration_ms: int = 500, codec: str | None = None) -> bytes:
    """uint8 RGB frames [H, W, 3] (one size) -> the bytes of an MP4, each frame shown ``duration_ms``; ``codec``:
    one of :data:`CODECS` (default: :func:`mp4_codec`)."""
    av = require_av()
    codec = codec or mp4_codec()
    frames = even_frames(frames)
    h, w = frames[0].shape[:2]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=Fraction(1000, max(int(duration_ms), 1)))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = dict(_OPTIONS.get(codec, {}))
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode(None))  # flush the encoder
    return buf.getvalue()
