"""What goes to stderr besides errors: warnings and progress bars. stdout carries data only."""

from __future__ import annotations

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

    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[yellow]fusion: warning:[/yellow] {escape(printable(message))}")


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
            task = bar.add_task(label, total=total)
            for item in items:
                if name_items:
                    bar.update(task, description=f"{label} {item[0] if isinstance(item, tuple) else item}")
                yield item
                bar.advance(task)

    return wrap
