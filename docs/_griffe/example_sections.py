"""Griffe extension for the API reference: `Example:` docstring sections hold doctests.

ddiff's docstrings head their runnable doctests with `Example:` (singular). Griffe's Google
parser only reads `Examples:` as an examples section; it renders `Example:` as a generic
admonition, where Markdown turns the `>>>` prompts into nested block quotes and reads outputs
such as `[0.25, 0.5]` as cross-reference links. This renames the section title before the
docstrings are parsed, so the doctests render as code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE_HEADING = re.compile(r"^(\s*)Example:[ \t]*$", re.M)


class ExampleSections(griffe.Extension):
    """Read `Example:` sections as `Examples:` (doctest code blocks)."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE_HEADING.sub(r"\1Examples:", obj.docstring.value)
