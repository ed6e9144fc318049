"""The report of ``slotlab data compare REAL_FOLDER`` (and ``benchmarks/clevr_compare.py``): built-in CLEVR renders
against real CLEVR renders (:mod:`slotlab.data.clevr_compare` computes the numbers; this module lays them out).

It holds, as Markdown: the statistics of the real images and of ``num`` built-in renders of the same size; where the
real scenes' JSON exists, the same scenes rendered by the built-in renderer (camera fitted from ``pixel_coords``)
with their statistics and pixel-wise errors; and, with ``out``, a PNG: one row per real scene (at most ``rows``):
the real render, the same scene by the built-in renderer, a random built-in render. Library code: nothing is
printed; the caller prints :attr:`CompareReport.text`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from slotlab.data import clevr_compare as cc
from slotlab.data import clevr_render
from slotlab.errors import file_access_error


@dataclass
class CompareReport:
    """The report's text (Markdown), the real images uint8 [n, H, W, 3] and their scene dicts (None: a folder of
    PNGs), the built-in renders (``clevr_render.generate``'s output, at the real images' size) and the picture
    written (None: none asked for)."""

    text: str
    real: np.ndarray
    scenes: list[dict[str, Any]] | None
    renders: dict[str, np.ndarray]
    variant: str
    seed: int
    picture: Path | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the real images (and of the built-in renders)."""
        return int(self.real.shape[1]), int(self.real.shape[2])


def compare_renders(
    real_folder: str | os.PathLike[str],
    *,
    split: str = "val",
    num: int = 64,
    variant: str = "clevr10",
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    rows: int = 3,
    stream_name: str | None = None,
) -> CompareReport:
    """Compare the real renders in ``real_folder`` (a CLEVR v1.0 folder: its ``split``; or a folder of PNGs) with
    ``num`` built-in ``variant`` renders of stream ``seed`` at the same size (see the module docstring);
    ``stream_name`` says in the heading what that stream is (default: ``seed N``).

    Raises :class:`slotlab.data.errors.DatasetFileError` for a folder that is missing, holds no readable image or
    images of different sizes."""
    real, scenes = cc.read_real(real_folder, split)
    size = (int(real.shape[1]), int(real.shape[2]))
    t0 = time.perf_counter()
    ours = clevr_render.generate(seed, 0, num, variant=variant, image_size=size)
    secs = time.perf_counter() - t0
    rs = cc.image_stats(real)
    parts = [
        f"## {len(real)} real renders ({real_folder}) vs {num} built-in {variant} renders "
        f"({size[1]}x{size[0]}, {stream_name or f'seed {seed}'}; rendered in {secs:.1f} s)\n",
        cc.markdown_table(cc.stats_rows(rs, cc.image_stats(ours["image"])), ("statistic", "real", "built-in")),
    ]
    same = None
    if scenes is not None:
        mine = [cc.scene_from_json(s, size) for s in scenes]
        rms = [cc.fit_camera(s["objects"], size)[1] for s in scenes]
        same = clevr_render.render_scenes(mine, size)
        err = cc.pixel_errors(real, same["image"], same["mask"])
        parts += [
            f"\n## The same {len(scenes)} scenes rendered from their JSON (camera fitted: RMS "
            f"{np.mean(rms):.2f} px; lights un-jittered)\n",
            cc.markdown_table(
                cc.stats_rows(rs, cc.image_stats(same["image"])), ("statistic", "real", "built-in, same scenes")
            ),
            "\nPixel-wise, built-in minus real (levels 0-255):\n",
            cc.markdown_table([(k, f"{v:.1f}") for k, v in err.items()], ("error", "value")),
        ]
    picture = None
    if out is not None:
        n = min(rows, len(real), num)
        cols = [real[:n]] + ([same["image"][:n]] if same is not None else []) + [ours["image"][:n]]
        picture = Path(out)
        try:
            picture.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(cc.side_by_side(cols)).save(picture, optimize=True)
        except OSError as e:
            raise file_access_error(picture, "write", e) from e
        parts.append(f"\nwrote {picture}: rows = scenes; columns = real" + (", same scene built-in" if same else "")
                     + ", a random built-in render")  # fmt: skip
    return CompareReport("\n".join(parts), real, scenes, ours, variant, seed, picture)
