"""Process-wide CLI state set by the root callback."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from types import ModuleType


@dataclass
class State:
    debug: bool = False
    quiet: bool = False
    live: Any = None  # the stderr console of a progress bar or spinner on screen: warnings print through it
    signalled: bool = False  # a SIGINT or SIGTERM arrived (even if code it interrupted swallowed the exception)
    busy: str | None = None  # the busy-machine warning, said once before the first block is timed
    #: how a command imports the analysis (and torch with it); the console script swaps in its
    #: own (fusioncli._launch.import_frozen), in-process callers keep Python's
    import_module: Callable[[str], ModuleType] = importlib.import_module


state = State()
