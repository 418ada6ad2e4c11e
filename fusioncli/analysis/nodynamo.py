"""Keep the meta-device pass from importing ``torch._dynamo`` (about 2 s, as long as torch itself).

Many of torch's meta kernels are Python functions wrapped in ``torch._disable_dynamo``; the
first call of each imports ``torch._dynamo`` only to wrap the function so that a surrounding
``torch.compile`` would not trace into it, and caches the wrapper on the function. The
counting pass never runs under ``torch.compile``, so inside :func:`without_dynamo_import`
that import is answered by a stand-in whose ``disable`` returns the function unchanged. On
exit the stand-in is removed and every cached pass-through is deleted, so a later
``torch.compile`` in the same process imports the real ``torch._dynamo`` and wraps the
functions as torch intends. If anything asks the stand-in for more than ``disable``, the real
module is imported on the spot and answers instead: the worst case is the old cost, never a
wrong answer.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

_NAME = "torch._dynamo"


class _DynamoStandIn(types.ModuleType):
    def __init__(self) -> None:
        super().__init__(_NAME)
        self.passed_through: list = []

    def disable(self, fn=None, recursive=True, **kwargs):
        if fn is None:
            return lambda f: self.disable(f, recursive, **kwargs)
        self.passed_through.append(fn)
        return fn

    def __getattr__(self, name: str):
        real = _import_real()
        return getattr(real, name)


def _import_real():
    import importlib

    import torch

    if isinstance(sys.modules.get(_NAME), _DynamoStandIn):
        del sys.modules[_NAME]
    if isinstance(torch.__dict__.get("_dynamo"), _DynamoStandIn):
        del torch._dynamo
    return importlib.import_module(_NAME)


@contextmanager
def without_dynamo_import() -> Iterator[None]:
    import torch

    if _NAME in sys.modules:  # already paid for: nothing to save
        yield
        return
    stand_in = _DynamoStandIn()
    sys.modules[_NAME] = stand_in
    torch._dynamo = stand_in
    try:
        yield
    finally:
        if sys.modules.get(_NAME) is stand_in:
            del sys.modules[_NAME]
        if torch.__dict__.get("_dynamo") is stand_in:
            del torch._dynamo
        for fn in stand_in.passed_through:
            # torch caches its wrapper on the function under a private name; whatever the name,
            # the cached value is the pass-through itself, the function: delete every such entry
            cached = getattr(fn, "__dict__", {})
            for name in [k for k, v in cached.items() if v is fn]:
                del cached[name]
