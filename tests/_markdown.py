"""The Python code blocks of the documentation pages, for the tests that run them."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"

_HEADING = re.compile(r"^(#{1,6}) +(.+?) *$", re.M)
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```[ \t]*$", re.S | re.M)


def python_blocks(page: str, section: str | None = None) -> list[str]:
    """The ```python blocks of `docs/<page>`, in order.

    Args:
        page: the page's path under `docs/`, e.g. `"getting-started.md"`.
        section: if given, only the blocks under the heading with exactly this text, up to the
            next heading of the same or a higher level.

    Raises:
        ValueError: if the section is not on the page, or holds no Python block.
    """
    text = (DOCS / page).read_text()
    if section is not None:
        headings = list(_HEADING.finditer(text))
        start = next((h for h in headings if h.group(2) == section), None)
        if start is None:
            raise ValueError(f"docs/{page} has no heading {section!r}")
        level = len(start.group(1))
        end = next(
            (h.start() for h in headings if h.start() > start.end() and len(h.group(1)) <= level),
            len(text),
        )
        text = text[start.end() : end]
    blocks = _PYTHON_BLOCK.findall(text)
    if not blocks:
        where = f"section {section!r} of " if section else ""
        raise ValueError(f"no ```python block in {where}docs/{page}")
    return blocks
