"""What goes to stderr besides errors: warnings and progress bars. stdout carries data only."""

from __future__ import annotations

import contextlib

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from .state import state

T = TypeVar("T")


def warn(message: str) -> None:
    """One ``fusion: warning:`` line on stderr (silenced by ``--quiet``)."""
    if state.quiet:
        return
    from rich.console import Console  # rich loads on first use: listings and --help do without it
    from rich.markup import escape  # names and values come from users: never markup

    from ..render.formats import printable

    console = state.live or Console(stderr=True, highlight=False, soft_wrap=True)  # above a bar, not on its line
    console.print(f"[yellow]fusion: warning:[/yellow] {escape(printable(message))}", highlight=False, soft_wrap=True)


def progress(total: int, label: str, *, name_items: bool = False) -> Callable[[Iterable[T]], Iterator[T]]:
    """A transient progress bar on stderr while several items run (terminals only, not with ``--quiet``)."""
    if state.quiet or total < 2:
        return lambda items: iter(items)
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        return lambda items: iter(items)

    def wrap(items: Iterable[T]) -> Iterator[T]:
        from rich.progress import Progress

        with Progress(console=console, transient=True) as bar:
            state.live = console
            try:
                task = bar.add_task(label, total=total)
                for item in items:
                    if name_items:
                        bar.update(task, description=f"{label} {item[0] if isinstance(item, tuple) else item}")
                    yield item
                    bar.advance(task)
            finally:
                state.live = None

    return wrap


@contextlib.contextmanager
def activity(label: str) -> Iterator[None]:
    """A transient spinner on stderr while one long step runs (``inspect``; terminals only, not with
    ``--quiet``); warnings meanwhile print above it, and it is gone before the report prints."""
    if state.quiet:
        yield
        return
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with console.status(label, refresh_per_second=4):  # a slow spinner: its thread barely competes with timing
        state.live = console
        try:
            yield
        finally:
            state.live = None
