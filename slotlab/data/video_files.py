"""Reading one's own video for ``slotlab segment``: an animated GIF (or animated PNG / WebP) with Pillow, a folder of
PNG / JPEG frames, or an .mp4 / .mov / .webm / .mkv / .avi file through PyAV, an optional extra
(``pip install 'slotlab[video]'``). Frames come back as 8-bit RGB, in order, all of one size; each conversion is
said in the returned steps (as :func:`slotlab.segment.read_image` does for an image).

Nothing here runs code from the file: Pillow and FFmpeg (through PyAV) decode pixels only.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from slotlab.errors import UserError

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
FFMPEG_SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi")
MAX_FRAMES = 1000  # frames read at most (a longer video is cut, and the cut said)
EXTRA = "pip install 'slotlab[video]' (PyAV)"


class VideoInputError(UserError, ValueError):
    """A video that cannot be read: missing, an unknown kind, no frames, frames of different sizes, unreadable, or an
    .mp4 without the optional PyAV extra."""


def _natural_key(path: Path) -> list:
    """frame_2.png before frame_10.png: digits compare as numbers."""
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", path.name)]


def _rgb(img: Image.Image) -> tuple[np.ndarray, str | None]:
    """A Pillow image -> (uint8 [H, W, 3], what was converted or None)."""
    if img.mode == "RGB":
        return np.asarray(img, dtype=np.uint8).copy(), None
    note = f"{img.mode} -> RGB"
    if "A" in img.mode or "transparency" in img.info:
        note += " (transparency dropped)"
    if img.mode.startswith("I;16") or img.mode == "I":
        a = np.asarray(img).astype(np.float64)
        grey = np.round(a / 257.0) if (img.mode.startswith("I;16") or a.max() > 255) else a
        g = grey.clip(0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=-1), f"{img.mode} -> 8-bit RGB"
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy(), note


def _open(path: Path, what: str = "an image Pillow can read (PNG or JPEG)") -> Image.Image:
    try:
        img = Image.open(path)
        img.load()
    except UnidentifiedImageError:
        raise VideoInputError(f"{path}: not {what}") from None
    except Image.DecompressionBombError as e:
        raise VideoInputError(f"{path}: refused by Pillow as too large ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise VideoInputError(f"{path}: cannot read it ({type(e).__name__}: {e})") from None
    return img


def _read_animated(path: Path, max_frames: int) -> tuple[np.ndarray, list[str]]:
    kinds = f"a video slotlab reads: give a GIF, a folder of PNG / JPEG frames or an {'/'.join(FFMPEG_SUFFIXES)}"
    img = _open(path, f"{kinds} file (the last with {EXTRA})")
    total = getattr(img, "n_frames", 1)
    steps = [f"read {img.format or '?'} {img.width}x{img.height}, {total} frame{'s' if total != 1 else ''}"]
    frames, notes = [], set()
    try:
        for frame in ImageSequence.Iterator(img):  # Pillow composites each frame onto the canvas (disposal)
            if len(frames) == max_frames:
                break
            rgb, note = _rgb(frame)
            frames.append(rgb)
            if note:
                notes.add(note)
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        if not frames:
            raise VideoInputError(f"{path}: cannot read its frames ({type(e).__name__}: {e})") from None
        steps.append(f"frame {len(frames) + 1} unreadable ({type(e).__name__}): kept the first {len(frames)}")
    steps += sorted(notes)
    if total > max_frames:
        steps.append(f"kept the first {max_frames} of {total} frames")
    return _stack(frames, [f"frame {i + 1}" for i in range(len(frames))], path), steps


def _read_folder(path: Path, max_frames: int) -> tuple[np.ndarray, list[str]]:
    files = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES), key=_natural_key)
    if not files:
        raise VideoInputError(f"{path}: a folder without frames; put the frames in it as PNG or JPEG files "
                              "(their names in order, e.g. 0001.png, 0002.png, ...)")  # fmt: skip
    steps = [f"read {len(files)} frames from the folder {path} in name order ({files[0].name} .. {files[-1].name})"]
    other = sum(1 for p in path.iterdir() if p.is_file() and p.suffix.lower() not in FRAME_SUFFIXES)
    if other:
        steps.append(f"ignored {other} file{'s' if other != 1 else ''} that are not PNG / JPEG")
    if len(files) > max_frames:
        steps.append(f"kept the first {max_frames} of {len(files)} frames")
        files = files[:max_frames]
    frames, notes = [], set()
    for f in files:
        img = _open(f)
        if getattr(img, "n_frames", 1) > 1:
            notes.add(f"{f.name} and others: animated images in a frame folder, used their first frame")
        rgb, note = _rgb(img)
        frames.append(rgb)
        if note:
            notes.add(note)
    return _stack(frames, [f.name for f in files], path), steps + sorted(notes)


def _read_ffmpeg(path: Path, max_frames: int) -> tuple[np.ndarray, list[str]]:
    try:
        import av  # the optional extra
    except ImportError:
        raise VideoInputError(
            f"{path}: reading {path.suffix} files needs PyAV, an optional extra: {EXTRA}; or give the video as a "
            "GIF or as a folder of PNG frames (e.g. ffmpeg -i clip.mp4 frames/%04d.png)"
        ) from None
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoInputError(f"{path}: has no video stream")
            for frame in container.decode(video=0):
                if len(frames) == max_frames:
                    break
                frames.append(frame.to_ndarray(format="rgb24"))
    except VideoInputError:
        raise
    except Exception as e:  # PyAV's FFmpeg errors (av.error.*), by many names
        if not frames:
            raise VideoInputError(f"{path}: cannot decode it ({type(e).__name__}: {e})") from None
    steps = [f"decoded {len(frames)} frames of {path.name} with PyAV"]
    if len(frames) == max_frames:
        steps.append(f"kept the first {max_frames} frames")
    return _stack(frames, [f"frame {i + 1}" for i in range(len(frames))], path), steps


def _stack(frames: list[np.ndarray], names: list[str], path: Path) -> np.ndarray:
    if not frames:
        raise VideoInputError(f"{path}: no frames")
    size = frames[0].shape
    for name, f in zip(names, frames, strict=True):
        if f.shape != size:
            raise VideoInputError(
                f"{path}: {name} is {f.shape[1]}x{f.shape[0]} but {names[0]} is {size[1]}x{size[0]}; the frames of "
                "a video must all have one size"
            )
    return np.stack(frames)  # [T, H, W, 3]


def read_video(path: str | Path, max_frames: int = MAX_FRAMES) -> tuple[np.ndarray, list[str]]:
    """The frames of ``path`` -> (uint8 RGB [T, H, W, 3], steps taken). ``path``: an animated GIF / PNG / WebP, a
    folder of PNG / JPEG frames (in name order, numbers compared as numbers), or an .mp4 / .mov / .webm / .mkv /
    .avi file (with the optional PyAV extra). At most ``max_frames`` frames are read. Raises
    :class:`VideoInputError`."""
    path = Path(path)
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if not path.exists():
        raise VideoInputError(f"{path}: no such file or folder")
    if path.is_dir():
        return _read_folder(path, max_frames)
    if path.suffix.lower() in FFMPEG_SUFFIXES:
        return _read_ffmpeg(path, max_frames)
    return _read_animated(path, max_frames)
