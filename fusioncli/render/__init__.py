"""Renderers: one module per output format, each taking the same :class:`Envelope`.

Renderers format; they do not compute (ratios come from the envelope).
"""

from __future__ import annotations

from typing import TextIO

from ..report import Envelope



def render(envelope: Envelope, fmt: str, out: TextIO, *, width: int | None = None, by_op: bool = False,
           by_module: bool = False) -> None:
    if fmt == "json":
        from .json import render_json

        render_json(envelope, out)
    elif fmt == "csv":
        from .csv import render_csv

        render_csv(envelope, out)
    elif fmt == "markdown":
        from .markdown import render_markdown

        render_markdown(envelope, out)
    else:
        from .table import render_table

        render_table(envelope, out, width=width, by_op=by_op, by_module=by_module)
