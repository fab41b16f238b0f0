"""Find the generated blocks in the pages and rewrite (or check) them.

A table is everything between ``<!-- table:NAME -->`` and ``<!-- /table -->``; a figure
between ``<!-- figure:NAME -->`` and ``<!-- /figure -->`` (the image link and a digest of
the CSV it was drawn from, so a changed CSV makes the page out of date even where the
image itself is not compared byte for byte across Matplotlib versions).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from . import accuracy, bn_momentum, figures, lab, pick, skip, speed
from .core import DocsError

TABLES: dict[str, Callable[[Path], str]] = {
    **accuracy.TABLES,
    **skip.TABLES,
    **speed.TABLES,
    **lab.TABLES,
    **bn_momentum.TABLES,
    **pick.TABLES,
}
BLOCK = re.compile(r"(<!-- (table|figure):([\w.-]+) -->\n)(.*?)(<!-- /\2 -->)", re.DOTALL)
PAGE_GLOBS = ("README.md", "docs/**/*.md", "benchmarks/*.md")


def pages(root: Path) -> list[Path]:
    found = {p for pattern in PAGE_GLOBS for p in root.glob(pattern) if p.is_file()}
    return sorted(found)


def render_page(root: Path, page: Path, draw: bool) -> str:
    """The page's text with every block regenerated; figures drawn when ``draw``."""
    text = page.read_text()
    opened = len(re.findall(r"<!-- (?:table|figure):", text))
    closed = len(re.findall(r"<!-- /(?:table|figure) -->", text))
    if opened != closed:
        raise DocsError(f"{page.relative_to(root)}: {opened} opening markers, {closed} closing")

    def block(m: re.Match) -> str:
        kind, name = m.group(2), m.group(3)
        where = f"{page.relative_to(root)}: {kind} {name!r}"
        if kind == "table":
            if name not in TABLES:
                raise DocsError(f"{where} is not a known table")
            body = TABLES[name](root)
        else:
            if name not in figures.FIGURES:
                raise DocsError(f"{where} is not a known figure")
            body = figures.block(root, page, name, draw)
        return f"{m.group(1)}{body.rstrip()}\n{m.group(5)}"

    return BLOCK.sub(block, text)


def run(root: Path, check: bool) -> list[str]:
    """Regenerate every page under ``root`` (or, with ``check``, only compare); the pages
    that were (or would be) changed, relative to root."""
    changed, drawn = [], set()
    for page in pages(root):
        old = page.read_text()
        drawn |= {m.group(3) for m in BLOCK.finditer(old) if m.group(2) == "figure"}
        text = render_page(root, page, draw=not check)
        if text != old:
            changed.append(str(page.relative_to(root)))
            if not check:
                page.write_text(text)
    return changed + (figures.missing(root, drawn) if check else [])
