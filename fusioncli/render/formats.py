"""The output formats, named once (no imports: the command line reads them at start-up)."""

#: what :func:`fusioncli.render.render` writes
FORMATS = ("table", "json", "csv", "markdown")
#: written point by point as a sweep runs (``fusion sweep``/``merge`` only)
STREAM_FORMATS = ("jsonl",)
