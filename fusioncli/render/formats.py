"""The output formats, named once (no imports: the command line reads them at start-up)."""

#: what :func:`fusioncli.render.render` writes
FORMATS = ("table", "json", "csv", "markdown")
#: written point by point as a sweep runs (``fusion sweep``/``merge`` only)
STREAM_FORMATS = ("jsonl",)


def printable(text) -> str:
    """``text`` with every control character (ESC, BEL, CR, the C1 range, ...) written as an escape
    (``\\x1b``): a preset's name or description never reaches a terminal or a document raw
    (``ESC[2J`` would clear the screen). Newlines and tabs become spaces. Non-strings pass through ``str``."""
    text = str(text)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch in "\n\t":
            out.append(" ")
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def option_text(value) -> str:
    """An option's value as ``--set`` takes it (``none``, ``true``, ``1,3,5``): the same words in ``inspect``'s
    options line and ``explain``'s defaults."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(map(option_text, value))
    return printable(value)


def counted(n: int, noun: str) -> str:
    """``1 thread``, ``4 threads``: a count with its noun in agreement."""
    return f"{n} {noun}" + ("" if n == 1 else "s")
