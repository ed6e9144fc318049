"""The docs point only at what the repository holds: every relative link and every repository path named in
README.md, docs/*.md, benchmarks/*.md and the comment headers of the packaged configs exists, and README.md stays
a front page (<= 10,240 bytes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_LIMIT = 10_240

# Top-level entries of the repository a doc may name a path under ("configs" is a symlink to slotlab/configs).
REPO_PREFIXES = ("slotlab", "configs", "benchmarks", "docs", "tests", "tools", ".ci")
# Paths under these first components never exist in a checkout; a doc naming one points outside the repository.
NOT_IN_REPO = ("shared", "work")

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
PATH_CHARS = r"[A-Za-z0-9_.*<>-]"
REPO_PATH = re.compile(rf"(?<![\w./<>~$-])((?:{'|'.join(re.escape(p) for p in REPO_PREFIXES)})(?:/{PATH_CHARS}+)+/?)")
OUTSIDE_PATH = re.compile(rf"(?<![\w./<>~$-])/?((?:{'|'.join(NOT_IN_REPO)})(?:/{PATH_CHARS}+)+)")
CONFIG_NAME = re.compile(r"(?<![\w/.-])([a-z0-9_]+\.yaml)\b")


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "benchmarks").glob("*.md"))]


def config_files() -> list[Path]:
    return sorted((ROOT / "slotlab" / "configs").glob("*.yaml"))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(md: Path) -> set[str]:
    found: set[str] = set()
    in_code = False
    for line in md.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"#{1,6}\s+(.*)", line)):
            base = slug(m.group(1))
            name, n = base, 0
            while name in found:
                n += 1
                name = f"{base}-{n}"
            found.add(name)
    return found


def exists(path_text: str, base: Path) -> bool:
    pattern = re.sub(r"<[^>]*>", "*", path_text.rstrip("/"))
    if "*" in pattern:
        return any(base.glob(pattern))
    return (base / pattern).exists()


def problems_in_links(md: Path, text: str) -> list[str]:
    bad = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (md.parent / path).resolve() if path else md
        if not dest.exists():
            bad.append(f"link ({target}): no {path}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"link ({target}): no heading #{anchor} in {dest.name}")
    return bad


def problems_in_paths(text: str) -> list[str]:
    bad = []
    for raw in REPO_PATH.findall(text):
        path = raw.rstrip(".")
        last = path.rstrip("/").rsplit("/", 1)[-1]
        if not (path.endswith("/") or re.search(r"[.*<]", last)):  # `slotlab/Lightning checkpoint`: words, not a path
            continue
        if not exists(path, ROOT):
            bad.append(f"path {path}: not in the repository")
    for raw in OUTSIDE_PATH.findall(text):
        bad.append(f"path {raw}: outside the repository")
    return bad


@pytest.mark.parametrize("md", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_and_repository_path_in_the_docs_exists(md: Path) -> None:
    text = md.read_text(encoding="utf-8")
    bad = problems_in_links(md, text) + problems_in_paths(text)
    assert not bad, f"{md.relative_to(ROOT)}:\n" + "\n".join(bad)


@pytest.mark.parametrize("cfg", config_files(), ids=lambda p: p.name)
def test_config_headers_name_only_files_that_exist(cfg: Path) -> None:
    comments = "\n".join(line for line in cfg.read_text(encoding="utf-8").splitlines() if line.lstrip().startswith("#"))
    bad = problems_in_paths(comments)
    for name in CONFIG_NAME.findall(comments):
        if not (cfg.parent / name).exists():
            bad.append(f"config {name}: not in slotlab/configs")
    assert not bad, f"{cfg.name}:\n" + "\n".join(bad)


def test_readme_is_a_front_page() -> None:
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_LIMIT, f"README.md is {size} bytes; move detail into docs/ (limit {README_LIMIT})"


def test_the_checker_finds_what_is_missing(tmp_path: Path) -> None:
    md = tmp_path / "x.md"
    text = "\n".join(
        [
            "# Title",
            "[a](nowhere.md) [b](x.md#no-such-heading) `configs/no_such.yaml` see benchmarks/nothing.py,",
            "/work/shared/notes/m.md and `docs/*.nothing`.",
            "Fine: [c](x.md#title) `configs/tetrominoes.yaml` `slotlab/zoo/<name>/README.md` configs/ablation_*.yaml",
            "`tests/test_docs_links.py::test_readme_is_a_front_page` a slotlab/Lightning checkpoint RUN/config.yaml",
            "https://example.org/docs/x.md https://github.com/shared/notes.md [d](https://example.org)",
        ]
    )
    md.write_text(text)
    assert problems_in_links(md, text) + problems_in_paths(text) == [
        "link (nowhere.md): no nowhere.md",
        "link (x.md#no-such-heading): no heading #no-such-heading in x.md",
        "path configs/no_such.yaml: not in the repository",
        "path benchmarks/nothing.py: not in the repository",
        "path docs/*.nothing: not in the repository",
        "path work/shared/notes/m.md: outside the repository",
    ]


def test_anchors_follow_github() -> None:
    assert (
        slug("2026-11-30, AMX: tetrominoes_long, 0.99 at 32 minutes")
        == "2026-11-30-amx-tetrominoes_long-099-at-32-minutes"
    )
    assert slug("Why 80 % `AP_inf` was not reached") == "why-80--ap_inf-was-not-reached"
