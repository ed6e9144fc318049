"""Issue 25 item 4: every figure slotlab draws (``slotlab figures`` Figures 3 and 6, ``slotlab segment``, the
figures of each validation) is labelled by one drawing module (:mod:`slotlab.drawing`): a title with the model and
the training step, column titles, iteration rows and a slot legend, text that fits its column; PNG always, PDF /
SVG with ``--format``."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.patches import Rectangle
from PIL import Image

from slotlab.cli import main
from slotlab.drawing import LabelledGrid, render, to_array, write
from slotlab.viz import attention_grid, discovery_grid, slot_colors

K, T, B = 4, 3, 2


def texts(fig) -> list[str]:
    return [t.get_text() for t in fig.texts]


def valid_pdf(path: Path) -> bool:
    """A PDF header, an end marker, and a startxref offset that points at the cross-reference table."""
    data = path.read_bytes()
    offset = re.findall(rb"startxref\s+(\d+)", data)
    return data.startswith(b"%PDF-1.") and data.rstrip().endswith(b"%%EOF") and data[int(offset[-1]) :][:4] == b"xref"


def svg_texts(path: Path) -> list[str]:
    root = ET.parse(path).getroot()  # well-formed XML, or ParseError
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return ["".join(e.itertext()) for e in root.iter("{http://www.w3.org/2000/svg}text")]


def _discovery(scale: int = 4) -> LabelledGrid:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(B, 3, 35, 35, generator=g) * 2 - 1
    masks = torch.softmax(torch.randn(B, K, 1, 35, 35, generator=g), dim=1)
    recons = torch.rand(B, K, 3, 35, 35, generator=g) * 2 - 1
    return discovery_grid(image, image, masks, recons, scale, "Figure 3a: slots · run/last.ckpt · step 1200")


def test_labels_are_drawn_and_fit_their_columns():
    grid = _discovery()
    fig = render(grid)
    shown = texts(fig)
    assert "Figure 3a: slots · run/last.ckpt · step 1200" in shown  # what, which model, which step
    for label in ("Image", "Reconstruction", "Mask", *(f"Slot {j}" for j in range(1, K + 1))):
        assert label in shown  # column titles
    assert "image 1" in shown and "image 2" in shown  # row labels
    assert all(f"slot {j}" in shown for j in range(1, K + 1))  # the legend of slot colours
    boxes = [a.get_facecolor()[:3] for a in fig.artists if isinstance(a, Rectangle)]  # its colour boxes
    assert np.allclose(boxes, slot_colors(K), atol=1e-6)
    # Column titles: readable size, each within its column, none overlapping the next.
    renderer = fig.canvas.get_renderer()
    titles = [t for t in fig.texts if t.get_text() in grid.columns]
    boxes = [t.get_window_extent(renderer) for t in titles]
    assert all(t.get_fontsize() >= 8 for t in titles)
    tile_w = grid.tile_size[1]
    assert all(b.width <= tile_w for b in boxes)
    assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:], strict=False))
    # The tiles are drawn pixel for pixel (no resampling), below the titles.
    image, canvas = to_array(fig), grid.canvas()
    top = max(b.y1 for b in boxes)  # display coordinates: from the bottom
    y0 = image.shape[0] - int(round(fig.axes[0].get_window_extent(renderer).y1))
    x0 = int(round(fig.axes[0].get_window_extent(renderer).x0))
    assert np.array_equal(image[y0 : y0 + canvas.shape[0], x0 : x0 + canvas.shape[1]], canvas)
    assert image.shape[0] - top < y0  # the titles end above the tiles


def test_long_titles_wrap_and_small_tiles_shrink_the_text():
    grid = _discovery(scale=2)  # 70-pixel tiles: "Reconstruction" does not fit at 9 pt
    grid.title = " · ".join(["a very long model name"] * 6)
    fig = render(grid)
    renderer = fig.canvas.get_renderer()
    width = fig.bbox.width
    title = next(t for t in fig.texts if t.get_text().startswith("a very long"))
    assert "\n" in title.get_text() and title.get_window_extent(renderer).width <= width
    recon = next(t for t in fig.texts if t.get_text().replace("\n", " ") == "Reconstruction")
    assert recon.get_window_extent(renderer).width <= grid.tile_size[1]


def test_png_pdf_and_svg_are_written_and_valid(tmp_path):
    g = torch.Generator().manual_seed(1)
    attn = torch.softmax(torch.randn(B, T, K, 35 * 35, generator=g), dim=2)
    grid = attention_grid(torch.zeros(B, 3, 35, 35), attn, (35, 35), 4, "Figure 3b · step 7")
    assert grid.rows == [f"image {i}, iteration {t}" for i in (1, 2) for t in (1, 2, 3)]
    paths = write(grid, tmp_path / "fig.png", ["pdf", "svg"])
    assert [p.name for p in paths] == ["fig.png", "fig.pdf", "fig.svg"]
    with Image.open(paths[0]) as im:
        im.verify()
    assert valid_pdf(paths[1])
    words = svg_texts(paths[2])  # the text stays text (editable, searchable)
    assert "Figure 3b · step 7" in words and "image 2, iteration 3" in words and "Slot 4" in words
    assert write(grid, tmp_path / "again.png", ["pdf", "svg"])[1].read_bytes() == paths[1].read_bytes()  # no dates
    with pytest.raises(ValueError, match="figure format 'eps'"):
        write(grid, tmp_path / "x.png", ["eps"])


def test_figures_command_writes_labelled_png_pdf_and_svg(tiny_od_run, tmp_path, capsys):
    out = tmp_path / "figs"
    argv = ["figures", str(tiny_od_run), "--num-images", "1", "--out", str(out), "--format", "pdf", "--format", "svg"]
    assert main(argv) == 0
    names = sorted(p.name for p in out.iterdir())
    stems = ("figure3a_slots", "figure3b_attention", "figure3c_iterations")
    assert names == sorted(f"{s}.{ext}" for s in stems for ext in ("png", "pdf", "svg"))
    assert all(valid_pdf(out / f"{s}.pdf") for s in stems)
    a = svg_texts(out / "figure3a_slots.svg")
    assert any(t.startswith("Figure 3a: slots · od/last.ckpt · step 6") for t in a)  # model and step
    assert {"Image", "Reconstruction", "Mask", "Slot 1"} <= set(a)
    b = svg_texts(out / "figure3b_attention.svg")
    assert {"iteration 1", "iteration 3", "slot 1"} <= set(b)  # iteration rows, slot legend
    assert f"wrote {out / 'figure3a_slots.pdf'}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:  # argparse: not one of pdf, svg
        main(["figures", str(tiny_od_run), "--format", "eps"])
    assert stop.value.code == 2 and "invalid choice: 'eps'" in capsys.readouterr().err


def test_set_prediction_figure_6_is_labelled(tiny_sp_run, tmp_path):
    from slotlab.figures import figure_grids

    grids, _ = figure_grids(tiny_sp_run, num_images=1)
    grid = grids["figure6_attention.png"]
    assert grid.columns[0] == "Image" and grid.columns[1:] == [f"Slot {j}" for j in range(1, 7)]
    assert grid.rows == ["iteration 1", "iteration 2", "iteration 3"]
    assert grid.title.startswith("Figure 6: attention masks per iteration · sp/last.ckpt · step 6")
    assert main(["figures", str(tiny_sp_run), "--num-images", "1", "--out", str(tmp_path), "--format", "svg"]) == 0
    assert "iteration 3" in svg_texts(tmp_path / "figure6_attention.svg")


def test_segment_figure_is_labelled_and_written_as_svg(tiny_od_run, tmp_path, capsys):
    from slotlab.data.splits import generate_split

    img = tmp_path / "shapes.png"
    Image.fromarray(generate_split("tetrominoes", "test", 1, 0)["image"][0]).save(img)
    out = tmp_path / "seg"
    assert main(["segment", str(img), "--model", str(tiny_od_run), "--out", str(out), "--format", "svg"]) == 0
    svg = next(out.glob("*_figure.svg"))
    assert svg.with_suffix(".png").exists() and svg.with_suffix(".png") in [*out.glob("*_figure.png")]
    words = svg_texts(svg)
    assert any(w.startswith("shapes.png · od/last.ckpt · K=4, T=3") for w in words)
    assert {"Image", "Reconstruction", "Mask (argmax)", "Overlay", "Slot 4"} <= set(words)
    assert {"attention, iteration 1", "attention, iteration 3", "slot 1"} <= set(words)
    assert "_figure.svg" in capsys.readouterr().out
