"""The one way slotlab draws a figure of images: `slotlab figures` (paper Figures 3 and 6), the figures written
after every validation during training (and sent to TensorBoard), and `slotlab segment`'s figure.

A figure is a :class:`LabelledGrid`: tiles (images in [0, 1]) in rows and columns, a title saying what it shows,
which model or checkpoint and which training step, a title per column (Image, Reconstruction, Mask, Slot k, ...),
a label per row (iteration t, ...) and a legend of the slot colours. :func:`render` lays it out with matplotlib
(Agg, nothing shown): the tiles are drawn pixel for pixel (no resampling in the PNG), the text sized to fit its
column. :func:`write` saves the PNG and, on request, vector PDF / SVG files whose text stays text.

An :class:`Animation` is a grid per time step (a video's frames: the same columns, rows and legend, the title saying
which frame), written as one animated GIF with Pillow (:func:`gif_bytes`): the frames share one palette (all frames
quantised together, no dithering), so a slot's colour is the same in every frame; frames of unequal size (a title
wrapping differently) are padded with white. It is a figure that writes itself (``write(path, formats)``, see
:func:`slotlab.figures.write_figure`), or, asked with ``video_format="mp4"``, an MP4 (:mod:`slotlab.mp4`, PyAV: the
optional extra ``video``), the frames padded with white to even sizes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from slotlab.atomic import atomic_open

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn (it takes a second): not by `slotlab eval`
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.figure import Figure

DPI = 100  # one tile pixel is one PNG pixel
TITLE_PT, LABEL_PT, LEGEND_PT, MIN_PT = 11.0, 9.0, 8.0, 6.0
MARGIN = 8  # pixels around the figure and between its parts
GROUP_GAP = 10  # extra pixels between groups of rows
VECTOR_FORMATS = ("pdf", "svg")
FORMATS = ("png", *VECTOR_FORMATS)
GIF_COLOURS = 256
# Text stays text in the vector files (editable, searchable); fixed metadata: the same figure gives the same bytes.
_VECTOR_RC = {"svg.fonttype": "none", "pdf.fonttype": 42, "svg.hashsalt": "slotlab"}


@dataclass
class LabelledGrid:
    """What one figure shows. ``tiles``: rows of [h, w, 3] float arrays in [0, 1] (None: an empty cell);
    ``columns``: one title per column; ``rows``: one label per row ("" for none); ``legend``: (label, RGB colour)
    of every slot."""

    tiles: list[list[np.ndarray | None]]
    columns: list[str]
    rows: list[str]
    title: str
    legend: list[tuple[str, Sequence[float]]] = field(default_factory=list)
    pad: int = 2  # white pixels between tiles
    group: int = 0  # rows per group (e.g. the iterations of one image), set apart by a wider gap; 0: none

    @property
    def tile_size(self) -> tuple[int, int]:
        """(h, w) of a cell: the largest tile."""
        present = [t for r in self.tiles for t in r if t is not None]
        if not present:
            raise ValueError("a figure needs at least one tile")
        return max(t.shape[0] for t in present), max(t.shape[1] for t in present)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of tiles."""
        return len(self.tiles), max(len(r) for r in self.tiles)

    def row_tops(self) -> list[int]:
        """The y pixel of each row's top edge in :meth:`canvas`, then the canvas height."""
        h = self.tile_size[0]
        tops, y = [], self.pad
        for i in range(len(self.tiles) + 1):
            if i and self.group and i % self.group == 0 and i < len(self.tiles):
                y += GROUP_GAP
            tops.append(y)
            y += h + self.pad
        return tops  # the last: below the last row and its padding

    def canvas(self) -> np.ndarray:
        """The tiles on a white background, uint8 [H, W, 3]; cell (i, j) starts at (row_tops()[i], pad + j * (w +
        pad))."""
        h, w = self.tile_size
        ncol = self.shape[1]
        p = self.pad
        tops = self.row_tops()
        out = np.ones((tops[-1], ncol * (w + p) + p, 3), dtype=np.float32)
        for i, row in enumerate(self.tiles):
            for j, t in enumerate(row):
                if t is not None:
                    y, x = tops[i], p + j * (w + p)
                    out[y : y + t.shape[0], x : x + t.shape[1]] = t[..., :3]
        return (out.clip(0, 1) * 255).round().astype(np.uint8)


# File names of the pretrained (Hugging Face style) folder layout: the folder names the model.
_PRETRAINED_NAMES = ("model.safetensors", "config.json", "README.md")


def checkpoint_label(path: str | Path, step: int | None = None) -> str:
    """How a figure's title names a checkpoint: ``RUN/last.ckpt`` for a run's checkpoint, the folder's name for a
    pretrained folder, the file name otherwise; then `` · step N``."""
    p = Path(path)
    if p.is_dir() or p.name in _PRETRAINED_NAMES:
        name = (p if p.is_dir() else p.parent).name
    elif p.parent.name == "checkpoints":
        name = f"{p.parent.parent.name}/{p.name}"
    else:
        name = p.name
    return name if step is None else f"{name} · step {step}"


# ------------------------------------------------------------------------------------------------ layout


def _measure(text: str, points: float, renderer: RendererAgg) -> tuple[float, float]:
    """(width, height) in pixels of ``text`` (one or more lines) at ``points``."""
    from matplotlib.font_manager import FontProperties

    prop = FontProperties(size=points)
    lines = text.split("\n")
    widths = [renderer.get_text_width_height_descent(line or " ", prop, ismath=False)[0] for line in lines]
    return max(widths), len(lines) * points * DPI / 72 * 1.25


def _wrap_in_two(text: str) -> str:
    """Break ``text`` at the space nearest its middle (unchanged without a space)."""
    spaces = [i for i, c in enumerate(text) if c == " "]
    if not spaces:
        return text
    cut = min(spaces, key=lambda i: abs(i - len(text) / 2))
    return text[:cut] + "\n" + text[cut + 1 :]


def _fit(text: str, width: float, renderer: RendererAgg, points: float = LABEL_PT) -> tuple[str, float]:
    """``text`` at the largest size <= ``points`` (>= MIN_PT) that fits ``width`` pixels, on two lines if that
    keeps it larger. Returns (text, size)."""
    options = [text] if " " not in text else [text, _wrap_in_two(text)]
    size = points
    while size > MIN_PT:
        for t in options:
            if _measure(t, size, renderer)[0] <= width:
                return t, size
        size -= 0.5
    return min(options, key=lambda t: _measure(t, MIN_PT, renderer)[0]), MIN_PT


def _wrap_title(title: str, width: float, renderer: RendererAgg) -> str:
    """Break a title at its " · " separators into lines no wider than ``width`` pixels (where possible)."""
    parts = title.split(" · ")
    lines = [parts[0]]
    for part in parts[1:]:
        candidate = f"{lines[-1]} · {part}"
        if _measure(candidate, TITLE_PT, renderer)[0] <= width:
            lines[-1] = candidate
        else:
            lines.append(part)
    return "\n".join(lines)


def render(grid: LabelledGrid) -> Figure:
    """The matplotlib Figure of ``grid`` (not attached to pyplot; nothing to close)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    renderer = RendererAgg(1, 1, DPI)
    canvas = grid.canvas()
    ch, cw = canvas.shape[:2]
    th, tw = grid.tile_size
    p, m = grid.pad, MARGIN

    columns = [_fit(c, tw - 2, renderer) for c in grid.columns]
    col_h = max((_measure(t, s, renderer)[1] for t, s in columns), default=0.0)
    row_w = max((_measure(r, LABEL_PT, renderer)[0] for r in grid.rows if r), default=0.0)
    left = m + (row_w + m if row_w else 0.0)

    legend_items = [(label, _measure(label, LEGEND_PT, renderer)[0]) for label, _ in grid.legend]
    box = LEGEND_PT * DPI / 72
    item_w = [box + 4 + w + 12 for _, w in legend_items]
    width = max(left + cw + m, min(sum(item_w) + 2 * m, 1000.0), 360.0)
    legend_lines: list[list[int]] = [[]]
    used = 0.0
    for i, w in enumerate(item_w):  # flow the legend into lines of the figure's width
        if legend_lines[-1] and used + w > width - 2 * m:
            legend_lines.append([])
            used = 0.0
        legend_lines[-1].append(i)
        used += w
    line_h = box * 1.6
    legend_h = (len(legend_lines) * line_h + m) if legend_items else 0.0

    title = _wrap_title(grid.title, width - 2 * m, renderer)
    title_h = _measure(title, TITLE_PT, renderer)[1]
    top = m + title_h + m + col_h + 2  # the canvas's top edge
    height = top + ch + m + legend_h
    width, height = float(np.ceil(width)), float(np.ceil(height))
    left, top = float(round(left)), float(round(top))

    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)

    def fx(x: float) -> float:
        return x / width

    def fy(y: float) -> float:  # y in pixels from the top
        return 1.0 - y / height

    ax = fig.add_axes((fx(left), fy(top + ch), fx(cw), ch / height))
    ax.imshow(canvas, interpolation="none", aspect="auto", extent=(0, cw, ch, 0))
    ax.set_axis_off()
    fig.text(fx(width / 2), fy(m), title, ha="center", va="top", fontsize=TITLE_PT, fontweight="bold")
    for j, (text, size) in enumerate(columns):
        x = left + p + j * (tw + p) + tw / 2
        fig.text(fx(x), fy(top - 2), text, ha="center", va="bottom", fontsize=size, linespacing=1.0)
    tops = grid.row_tops()
    for i, text in enumerate(grid.rows):
        if text:
            y = top + tops[i] + th / 2
            fig.text(fx(left - m), fy(y), text, ha="right", va="center", fontsize=LABEL_PT)
    y = top + ch + m
    for line in legend_lines if legend_items else []:
        x = m
        for i in line:
            label, color = grid.legend[i]
            rect = Rectangle((fx(x), fy(y + box)), fx(box), box / height, transform=fig.transFigure)
            rect.set(facecolor=tuple(float(c) for c in color[:3]), edgecolor="black", linewidth=0.5)
            fig.add_artist(rect)
            fig.text(fx(x + box + 4), fy(y + box / 2), label, ha="left", va="center", fontsize=LEGEND_PT)
            x += item_w[i]
        y += line_h
    return fig


def to_array(fig: Figure) -> np.ndarray:
    """The figure drawn as uint8 RGB [H, W, 3] (what the PNG holds; TensorBoard images)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def check_formats(formats: Sequence[str]) -> list[str]:
    """The vector formats asked for (lower case, each once); ValueError for one slotlab cannot write."""
    out = []
    for f in formats:
        f = f.lower().lstrip(".")
        if f not in FORMATS:
            raise ValueError(f"figure format {f!r}: slotlab writes {', '.join(FORMATS)}")
        if f != "png" and f not in out:
            out.append(f)
    return out


def write(grid: LabelledGrid, path: str | Path, formats: Sequence[str] = ()) -> list[Path]:
    """Write ``grid`` to ``path`` (a .png) and, for each of ``formats`` ("pdf", "svg"), to the same name with
    that suffix. Every file is written atomically. Returns the paths written, the PNG first."""
    import matplotlib
    from PIL import Image

    path = Path(path).with_suffix(".png")
    vector = check_formats(formats)
    fig = render(grid)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        Image.fromarray(to_array(fig)).save(f, format="PNG")
    paths = [path]
    for fmt in vector:
        out = path.with_suffix(f".{fmt}")
        buf = io.BytesIO()
        with matplotlib.rc_context(_VECTOR_RC):
            fig.savefig(buf, format=fmt, dpi=DPI, metadata=_metadata(fmt))
        with atomic_open(out, "wb") as f:
            f.write(buf.getvalue())
        paths.append(out)
    return paths


def _metadata(fmt: str) -> dict[str, str | None]:
    """No dates in the vector files (the same figure gives the same bytes)."""
    return {"Creator": "slotlab", "CreationDate": None} if fmt == "pdf" else {"Creator": "slotlab", "Date": None}


# ---------------------------------------------------------------------------------------------- animations
@dataclass
class Animation:
    """``frames``: one figure per time step, shown ``duration_ms`` each, looping forever (``loop=0``) or
    ``loop`` times; ``still``: an optional static figure of the same content (e.g. every frame in rows), written
    next to the GIF as a PNG (and ``formats``) so that a report or a PDF can show it."""

    frames: Sequence[LabelledGrid]
    duration_ms: int = 500
    loop: int = 0
    still: LabelledGrid | None = None

    def arrays(self) -> list[np.ndarray]:
        """Every frame drawn: uint8 [H, W, 3] each, all the same size (white padding right and below)."""
        if not self.frames:
            raise ValueError("an animation needs at least one frame")
        drawn = [to_array(render(grid)) for grid in self.frames]
        h = max(a.shape[0] for a in drawn)
        w = max(a.shape[1] for a in drawn)
        out = []
        for a in drawn:
            canvas = np.full((h, w, 3), 255, dtype=np.uint8)
            canvas[: a.shape[0], : a.shape[1]] = a
            out.append(canvas)
        return out

    def write(self, path: str | Path, formats: Sequence[str] = (), video_format: str = "gif") -> list[Path]:
        """Write ``path`` as an animated GIF or, with ``video_format="mp4"``, an MP4 (the suffix becomes the
        format's) and, with :attr:`still`, the still as ``<stem>_still.png`` plus its ``formats`` ("pdf", "svg").
        Atomic writes; returns the paths, the animation first."""
        from slotlab.mp4 import check_video_format, mp4_bytes

        vector = check_formats(formats)
        fmt = check_video_format(video_format)
        path = Path(path).with_suffix(f".{fmt}")
        path.parent.mkdir(parents=True, exist_ok=True)
        frames = self.arrays()
        data = mp4_bytes(frames, self.duration_ms) if fmt == "mp4" else gif_bytes(frames, self.duration_ms, self.loop)
        with atomic_open(path, "wb") as f:
            f.write(data)
        paths = [path]
        if self.still is not None:
            paths += write(self.still, path.with_name(f"{path.stem}_still.png"), vector)
        return paths


def gif_bytes(frames: Sequence[np.ndarray], duration_ms: int = 500, loop: int = 0) -> bytes:
    """uint8 RGB frames [H, W, 3] (one size) -> the bytes of an animated GIF with one shared palette."""
    import io

    from PIL import Image

    if not frames:
        raise ValueError("a GIF needs at least one frame")
    shape = frames[0].shape
    if any(f.shape != shape for f in frames) or len(shape) != 3 or shape[2] != 3:
        raise ValueError(f"GIF frames must all be uint8 [H, W, 3] of one size, got {[f.shape for f in frames]}")
    # One palette for all frames: quantise them stacked (a colour keeps its palette entry in every frame).
    stacked = Image.fromarray(np.concatenate([np.asarray(f, dtype=np.uint8) for f in frames], axis=0))
    palette = stacked.quantize(GIF_COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    images = [
        Image.fromarray(np.asarray(f, dtype=np.uint8)).quantize(palette=palette, dither=Image.Dither.NONE)
        for f in frames
    ]
    buf = io.BytesIO()
    images[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=max(int(duration_ms), 20),
        loop=int(loop),
        disposal=1,
        optimize=False,
    )
    return buf.getvalue()
