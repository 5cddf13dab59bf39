"""The documentation keeps up with the code: every public top-level name has an API entry."""

from __future__ import annotations

import re
from pathlib import Path

import ddiff

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_top_level_name_is_in_the_api_reference() -> None:
    text = "\n".join(p.read_text() for p in (DOCS / "api").glob("*.md"))
    documented = {m.split(".")[-1] for m in re.findall(r"^::: (ddiff[\w.]*)", text, flags=re.M)}
    missing = sorted(n for n in ddiff.__all__ if not n.startswith("__") and n not in documented)
    assert not missing, f"add these to docs/api/*.md: {missing}"
