"""Process-wide CLI state set by the root callback."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class State:
    debug: bool = False
    quiet: bool = False


state = State()
