"""What the chapter generators share: collecting cells and writing the notebook next to the drafts.

A generator does ``from cells import md, code, write`` (it runs as a script from this folder),
adds its cells in order, then calls ``write("NN_name.ipynb")``.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = []


def md(s):
    cells.append(new_markdown_cell(s.strip("\n")))


def code(s, tags=None, figure=None):
    """A code cell; ``figure=(name, caption)`` makes its single output a numbered, captioned figure."""
    c = new_code_cell(s.strip("\n"))
    if tags:
        c.metadata["tags"] = tags
    if figure:
        c.metadata["mystnb"] = {"figure": {"caption": figure[1], "name": figure[0]}}
    cells.append(c)


def write(name: str) -> None:
    """Write the collected cells to ``notebooks/<name>`` (outputs come from the runner)."""
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    })
    nbformat.write(nb, Path(__file__).resolve().parents[1] / name)
    print("written", len(cells))
