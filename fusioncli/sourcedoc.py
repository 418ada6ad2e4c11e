"""A built-in block's or neck's documentation and options, read from its source file without importing it.

``fusion explain KIND`` shows the module and class docstrings and the options table; importing the
block would import torch (seconds), so the source is parsed with :mod:`ast` instead: the class, its
bases within the package (``FusionBlock``, ``Neck``), their keyword-only ``__init__`` parameters with
annotations and defaults, and the ``default_<option>`` class attributes that change a default. The
annotations are evaluated in a namespace of the typing names the blocks use and the module's own
``Name = Literal[...]`` aliases, so each option is typed exactly as :func:`fusioncli.registry.block_options`
types it (a test compares the two for every kind). Docstrings are turned from reStructuredText into
terminal text (``code`` marks and roles dropped).
"""

from __future__ import annotations

import ast
import collections.abc
import re
import typing
from pathlib import Path
from typing import Any, Literal

from .arguments import OptionInfo

_ROOT = Path(__file__).resolve().parent
_NAMES: dict[str, Any] = {"Literal": Literal, "Any": Any, "Sequence": collections.abc.Sequence, "tuple": tuple,
                          "list": list, "int": int, "float": float, "bool": bool, "str": str, "None": None,
                          "dict": dict, "Optional": typing.Optional, "Union": typing.Union}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _aliases(tree: ast.Module, namespace: dict[str, Any]) -> dict[str, Any]:
    """Module-level ``Name = Literal[...]`` (or any annotation-like expression) of a block module."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if isinstance(node.value, ast.Subscript):
                try:
                    found[node.targets[0].id] = _eval(node.value, {**namespace, **found})
                except Exception:  # noqa: BLE001  (not a type: skipped)
                    continue
    return found


def _eval(node: ast.AST, namespace: dict[str, Any]) -> Any:
    return eval(compile(ast.Expression(node), "<annotation>", "eval"), {"__builtins__": {}}, dict(namespace))  # noqa: S307


def _classes(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}


def _value(node: ast.AST | None) -> Any:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except ValueError:
        pass
    if all(isinstance(n, (ast.BinOp, ast.UnaryOp, ast.Constant, ast.operator, ast.unaryop)) for n in ast.walk(node)):
        return _eval(node, {})  # arithmetic of constants: 1 / 16
    return ast.unparse(node)


def rst_to_text(text: str) -> str:
    """``code`` -> code, :func:`x` -> x, a trailing ``::`` -> ``:``."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    return re.sub(r"::$", ":", text, flags=re.M)


_ITEM = re.compile(r"(- |\* |\d+\. )")  # a list item's first line


def reflow(text: str) -> str:
    """A docstring for a console of any width: each prose paragraph on one line (the console wraps it at
    words), each list item (``- ``, ``* ``, ``1. ``) with its continuation lines on one line; indented blocks
    (formulas) and lines aligned with runs of spaces as written."""
    out = []
    for block in text.split("\n\n"):
        lines = block.split("\n")
        if lines[0][:1].isspace() or any("   " in line.strip() for line in lines):
            out.append(block)
        elif _ITEM.match(lines[0]):
            items: list[str] = []
            for line in lines:
                if _ITEM.match(line) or not items:
                    items.append(line)
                else:
                    items[-1] += " " + line.strip()
            out.append("\n".join(items))
        elif not any(line[:1].isspace() or _ITEM.match(line) for line in lines):
            out.append(" ".join(lines))
        else:
            out.append(block)
    return "\n\n".join(out)


def describe(package: str, target: str) -> tuple[str, str, dict[str, OptionInfo]]:
    """(module docstring, class docstring, options) of ``module:Class`` under ``fusioncli.<package>``."""
    module, cls_name = target.split(":")
    tree = _tree(_ROOT / package / f"{module}.py")
    base_tree = _tree(_ROOT / package / "base.py")
    namespace = dict(_NAMES)
    namespace.update(_aliases(_tree(_ROOT / "blocks" / "base.py"), namespace))
    namespace.update(_aliases(base_tree, namespace))
    namespace.update(_aliases(tree, namespace))
    classes = {**_classes(base_tree), **_classes(tree)}
    chain: list[ast.ClassDef] = []
    name: str | None = cls_name
    while name in classes and classes[name] not in chain:
        chain.append(classes[name])
        bases = [b.id for b in classes[name].bases if isinstance(b, ast.Name)]
        name = bases[0] if bases else None
    overrides: dict[str, Any] = {}
    for klass in chain:  # the subclass's class attributes win
        for node in klass.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                key = node.targets[0].id
                if key.startswith("default_") and key not in overrides:
                    overrides[key] = _value(node.value)
    options: dict[str, OptionInfo] = {}
    for klass in reversed(chain):  # bases first, as registry.block_options walks the MRO
        init = next((n for n in klass.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        if init is None:
            continue
        args = init.args
        for arg, default in zip(args.kwonlyargs, args.kw_defaults):
            if arg.arg == "node_options":
                continue
            ann = _eval(arg.annotation, namespace) if arg.annotation is not None else type(_value(default))
            value = overrides.get(f"default_{arg.arg}", _value(default))
            options[arg.arg] = OptionInfo(arg.arg, ann, value)
    cls = chain[0] if chain else None
    return (ast.get_docstring(tree) or "", (ast.get_docstring(cls) or "") if cls is not None else "", options)
