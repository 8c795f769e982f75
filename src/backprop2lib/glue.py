"""Numbers in a chapter's prose come from its run: glue them (myst-nb) instead of typing them.

A chapter driver's ``findings(results)`` returns ``{name: text}``; the notebook calls
:func:`glue_all` on it, and the Markdown quotes ``{glue:text}`name```. Re-running the notebook
updates the text; the book renders the stored values.
"""

from __future__ import annotations

import re
from typing import Mapping

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def glue_all(values: Mapping[str, str]) -> list[str]:
    """Glue every ``name -> text`` pair (hidden: the prose shows them); returns the names, sorted."""
    for name, value in values.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"values: glue names must be identifiers, got {name!r}")
        if not isinstance(value, str):
            raise ValueError(f"values: {name!r} must be text (format the number first), got {type(value).__name__}")
    from myst_nb import glue  # lazy: only notebooks need it

    for name, value in values.items():
        glue(name, value, display=False)
    return sorted(values)
