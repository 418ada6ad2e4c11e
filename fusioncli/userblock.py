"""Your own block: ``FILE.py:NAME``, ``package.module:NAME``, an installed plugin, or a Python object.

A SPEC names a user block in one of these forms:

- ``path/to/file.py:Name``: the file is imported under a unique module name, with its own
  folder first on ``sys.path`` while it loads (so its sibling imports work). Importing
  runs the file's top-level code, as ``python file.py`` would (``__name__`` is not
  ``"__main__"``, so a ``if __name__ == "__main__":`` part does not run). In a preset the
  path is relative to the preset file.
- ``package.module:Name``: an importable module (``torch.nn:Bilinear``).
- a plugin kind: an entry point of the group ``fusioncli.blocks`` (name = kind, value =
  ``module:Name``). Listing plugins reads entry-point metadata only: no plugin is imported
  and torch is not loaded.

``Name`` (dotted names reach into classes) is an ``nn.Module`` subclass or any callable
that returns an ``nn.Module`` (a factory). Its parameters are the block's options
(``--set name=value``, typed by :mod:`fusioncli.arguments`), except ``device`` and
``dtype`` (fusion chooses them) and, by convention, ``in_channels`` and ``out_channels``:
when the callable takes ``in_channels``, fusion passes the widths of the ``--in`` inputs
(an int when the parameter is annotated ``int`` or defaults to an int, or when there is
one input and no annotation; a list otherwise), and when it takes ``out_channels``,
fusion passes ``--out``. An input's width is C of CxHxW and CxDxHxW (the first
dimension) and of NxC and C (the last).

Errors in user code (import, construction, forward) name the ``file:line`` in the user's
code where they were raised, the exception type and its message.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import traceback
import typing
from pathlib import Path
from typing import Any

from . import arguments
from .arguments import OptionInfo
from .errors import FusionError, RunError, SpecError, did_you_mean, shorten

PLUGIN_GROUP = "fusioncli.blocks"
CONVENTION = ("in_channels", "out_channels")
HIDDEN = ("device", "dtype")  # fusion chooses these
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_MODULE_REF = re.compile(rf"{_IDENT}(?:\.{_IDENT})*:{_IDENT}(?:\.{_IDENT})*")
_NAME = re.compile(rf"{_IDENT}(?:\.{_IDENT})*")


class UserCodeError(SpecError):
    """The user's module failed to import or the block failed to construct: exit code 2."""


# --------------------------------------------------------------------------- references (no import)


def looks_like_reference(text: str) -> bool:
    return ".py:" in text or _MODULE_REF.fullmatch(text) is not None


@functools.lru_cache(maxsize=1)
def plugin_kinds() -> dict[str, Any]:
    """Installed plugin kinds -> their entry points (metadata only: nothing is imported)."""
    from importlib.metadata import entry_points

    found: dict[str, Any] = {}
    for ep in entry_points(group=PLUGIN_GROUP):
        found.setdefault(ep.name, ep)
    return found


def plugin_distribution(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "?"
    version = getattr(dist, "version", None)
    return f"{dist.name} {version}" if version else dist.name


def parse_reference(text: str, *, field: str = "SPEC", base_dir: Path | None = None) -> str | None:
    """A user block reference, checked without importing anything: ``/abs/file.py:Name``,
    ``package.module:Name`` or a plugin kind; ``None`` when ``text`` is none of them."""
    if text.startswith("neck:"):  # the necks' namespace (fusioncli.registry.NECKS), never a module
        return None
    path, sep, name = text.rpartition(":")
    if sep and path.endswith(".py"):
        if not _NAME.fullmatch(name):
            raise SpecError.bad(field, text, "expected FILE.py:NAME with NAME a Python name, e.g. my_fusion.py:MyFusion")
        p = Path(path).expanduser()
        if not p.is_absolute() and base_dir is not None:
            p = base_dir / p
        try:
            if p.is_dir():
                raise SpecError(f"{field}: {path!r} is a directory; expected a Python file (.py)", field=field)
            if not p.is_file():
                where = f" (relative to {base_dir})" if base_dir is not None and not Path(path).is_absolute() else ""
                raise SpecError(f"{field}: file {path!r} not found{where}", field=field)
        except OSError as e:
            raise SpecError(f"{field}: cannot read {path!r}: {e.strerror or e}", field=field) from None
        return f"{p.resolve()}:{name}"
    if text.endswith(".py"):
        raise SpecError(f"{field}: {text!r} is a Python file; name the block in it: {text}:NAME "
                        "(an nn.Module class or a factory)", field=field)
    if sep and (path.endswith(".toml") or "/" in path):
        raise SpecError(f"{field}: {path!r} is not a Python file; expected FILE.py:NAME", field=field)
    if _MODULE_REF.fullmatch(text):
        return text
    if text in plugin_kinds():
        return text
    return None


def display_name(ref: str) -> str:
    """The report name of a reference: the object's name (``MyFusion``), or the plugin kind."""
    if ":" in ref:
        return ref.rpartition(":")[2].rpartition(".")[2]
    return ref


def shown_reference(ref: str) -> str:
    """A reference as reports show it: a file relative to the working directory when under it."""
    path, sep, name = ref.rpartition(":")
    return f"{_short(path)}:{name}" if sep and path.endswith(".py") else ref


def object_reference(obj: Any) -> str:
    """``module:QualName`` of a class, a function or (the class of) an instance."""
    target = obj if inspect.isclass(obj) or inspect.isroutine(obj) else type(obj)
    ref = f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', type(target).__name__)}"
    return ref if target is obj else f"{ref} (instance)"


# --------------------------------------------------------------------------- loading (imports user code)

_LOADED: dict[str, Any] = {}


def load(spec) -> Any:
    """The callable (or, from the Python API, the instance) a spec names; imported once per process."""
    if spec.obj is not None:
        return spec.obj
    return load_reference(spec.block)


def load_reference(ref: str) -> Any:
    """The callable a resolved reference (``/abs/file.py:Name``, ``package.module:Name``, a plugin kind)
    names; imported once per process."""
    if ref not in _LOADED:
        _LOADED[ref] = _load_reference(ref)
    return _LOADED[ref]


def _load_reference(ref: str) -> Any:
    if ":" not in ref:  # a plugin kind
        ep = plugin_kinds()[ref]
        module_name, _, name = ep.value.partition(":")
        label = f"plugin '{ref}' ({plugin_distribution(ep)}: {ep.value})"
        if not name:
            raise SpecError(f"{label}: the entry point names no object; expected module:NAME", field="SPEC")
        module = _import_module(module_name.strip(), label)
        return _checked(_attribute(module, name.strip(), label), label)
    path, _, name = ref.rpartition(":")
    if path.endswith(".py"):
        module = _import_file(Path(path))
        label = f"{_short(path)}:{name}"
    else:
        module = _import_module(path, ref)
        label = ref
    return _checked(_attribute(module, name, label), label)


def _import_file(path: Path):
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"fusioncli_user_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SpecError(f"SPEC: cannot import {_short(path)!r} as a Python module", field="SPEC")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = str(path.parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise UserCodeError(f"{location(e, [folder])}: importing {_short(path)} failed: {describe(e)}",
                            field="SPEC") from e
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:  # the file took itself off sys.path
            pass
    return module


def _import_module(module_name: str, label: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise SpecError(f"SPEC: {label}: module {e.name!r} not found (is it installed, or on PYTHONPATH?)",
                            field="SPEC") from None
        raise UserCodeError(f"{location(e)}: importing {module_name} failed: {describe(e)}", field="SPEC") from e
    except Exception as e:
        raise UserCodeError(f"{location(e)}: importing {module_name} failed: {describe(e)}", field="SPEC") from e


def _attribute(module, dotted: str, label: str) -> Any:
    obj = module
    for part in dotted.split("."):
        if not hasattr(obj, part):
            choices = candidates(module)
            listed = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "") if choices else "none"
            where = _short(module.__file__) if module.__name__.startswith("fusioncli_user_") else module.__name__
            hint = did_you_mean(dotted, choices)
            raise SpecError(f"SPEC: invalid value {label!r}; {where} has no {dotted!r}; its nn.Module classes and "
                            f"callables: {listed}" + (f" (did you mean {hint!r}?)" if hint else ""), field="SPEC")
        obj = getattr(obj, part)
    return obj


def candidates(module) -> list[str]:
    """The public names in ``module`` that could be blocks: nn.Module subclasses first, then other callables."""
    nn = _nn()
    modules, others = [], []
    for key, value in vars(module).items():
        if key.startswith("_") or inspect.ismodule(value):
            continue
        if inspect.isclass(value) and nn is not None and issubclass(value, nn.Module):
            modules.append(key)
        elif callable(value) and not inspect.isclass(value):
            others.append(key)
    return modules + others


def _nn():
    torch = sys.modules.get("torch")
    return getattr(torch, "nn", None) if torch is not None else None


def _checked(obj: Any, label: str) -> Any:
    nn = _nn()
    if nn is not None and isinstance(obj, nn.Module):
        raise SpecError(f"SPEC: {label} is an nn.Module instance; name its class or a factory that returns one",
                        field="SPEC")
    if not callable(obj):
        raise SpecError(f"SPEC: {label} is {shorten(obj)} ({type(obj).__name__}), not callable; expected an nn.Module subclass or "
                        "a factory that returns an nn.Module", field="SPEC")
    return obj


# --------------------------------------------------------------------------- options and construction


def _signature(obj: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError):  # some builtins have none
        return None


def _hints(obj: Any) -> dict[str, Any]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        return typing.get_type_hints(target)
    except Exception:  # annotations that do not resolve: fall back to the raw ones
        return {}


def options_of(obj: Any) -> dict[str, OptionInfo]:
    """The options of a user callable: its parameters, less ``device``/``dtype`` and the convention's."""
    sig = _signature(obj)
    if sig is None:
        return {}
    hints = _hints(obj)
    out: dict[str, OptionInfo] = {}
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in HIDDEN or p.name in CONVENTION:
            continue
        default = p.default if p.default is not p.empty else arguments._EMPTY
        out[p.name] = OptionInfo(p.name, arguments.annotation_of(p, hints), default)
    return out


def takes(obj: Any) -> set[str]:
    """Which of the convention's parameters the callable takes."""
    sig = _signature(obj)
    return {n for n in CONVENTION if sig is not None and n in sig.parameters}


def coerce_options(obj: Any, raw: dict[str, Any], *, field: str = "--set") -> dict[str, Any]:
    nn = _nn()
    if nn is not None and isinstance(obj, nn.Module):
        if raw:
            raise SpecError(f"{field}: an nn.Module instance is analysed as it is; options ({', '.join(raw)}) "
                            "need its class or a factory", field=field)
        return {}
    for name in CONVENTION:
        if name in raw and name in takes(obj):
            flag = "--in" if name == "in_channels" else "--out"
            raise SpecError(f"{field} {name}: comes from {flag} (the in_channels/out_channels convention); "
                            f"give {flag} instead", field=f"{field} {name}")
    return arguments.coerce_options(options_of(obj), raw, owner=_label(obj), field=field)


def _label(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or type(obj).__name__


def channels_arg(obj: Any, widths: list[int]) -> int | list[int]:
    sig = _signature(obj)
    p = sig.parameters["in_channels"]  # type: ignore[union-attr]
    ann = arguments._strip_optional(arguments.annotation_of(p, _hints(obj)))
    if ann is int:
        return widths[0]
    if ann is arguments.Any and not (p.default is not p.empty and isinstance(p.default, int)):
        return widths[0] if len(widths) == 1 else list(widths)
    if ann is arguments.Any:
        return widths[0]
    return list(widths)


def constructor_kwargs(obj: Any, spec) -> dict[str, Any]:
    """Typed options plus the convention's ``in_channels``/``out_channels``; every required parameter checked."""
    from .spec import channels_of, typed_options

    kwargs = typed_options(spec, spec.options)
    convention = takes(obj)
    if "in_channels" in convention:
        kwargs["in_channels"] = channels_arg(obj, [channels_of(s) for s in spec.inputs])
    if "out_channels" in convention:
        p = _signature(obj).parameters["out_channels"]  # type: ignore[union-attr]
        if spec.out is not None:
            kwargs["out_channels"] = spec.out
        elif p.default is p.empty:
            raise SpecError(f"--out: {_label(obj)} takes out_channels (no default); give --out C", field="--out")
    missing = [name for name, info in options_of(obj).items() if info.required and name not in kwargs]
    if missing:
        raise SpecError(f"--set: {_label(obj)} needs {', '.join(missing)} (no default); give "
                        + " ".join(f"--set {m}=VALUE" for m in missing), field="--set")
    return kwargs


def report_options(obj: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Every option with its value for the report (defaults filled in, JSON-safe)."""
    shown = {name: info.shown_default() for name, info in options_of(obj).items()}
    shown.update({k: arguments.json_safe(v) for k, v in kwargs.items()})
    return shown


def construct(obj: Any, kwargs: dict[str, Any], roots: list[str]):
    """``obj(**kwargs)``, checked to be an ``nn.Module``; a failure names the user's file:line."""
    import torch

    try:
        module = obj(**kwargs)
    except FusionError:
        raise
    except Exception as e:
        raise UserCodeError(f"{location(e, roots)}: constructing {_label(obj)} failed: {describe(e)}",
                            field="SPEC") from e
    if not isinstance(module, torch.nn.Module):
        raise SpecError(f"SPEC: {_label(obj)}(...) returned {shorten(module)} ({type(module).__name__}), not an "
                        "nn.Module",
                        field="SPEC")
    return module


def roots_of(spec) -> list[str]:
    """Folders whose files count as the user's code, for error locations."""
    return reference_roots(spec.block, spec.obj)


def reference_roots(ref: str, obj: Any = None) -> list[str]:
    """Folders whose files count as the code of the block ``ref`` (or the object ``obj``)."""
    if obj is None and ":" in ref and ref.rpartition(":")[0].endswith(".py"):
        return [str(Path(ref.rpartition(":")[0]).parent)]
    target = obj if obj is not None else _LOADED.get(ref)
    if target is not None and not (inspect.isclass(target) or inspect.isroutine(target)):
        target = type(target)
    try:
        source = inspect.getsourcefile(target) if target is not None else None
    except TypeError:
        source = None
    if source is None:
        return []
    module = sys.modules.get(getattr(target, "__module__", ""), None)
    top = sys.modules.get((getattr(module, "__name__", "") or "").partition(".")[0])
    top_file = getattr(top, "__file__", None)
    if top_file and Path(top_file).name == "__init__.py":
        return [str(Path(top_file).parent)]
    return [str(Path(source).parent)]


# --------------------------------------------------------------------------- error locations

_FUSION_DIR = str(Path(__file__).resolve().parent)


def _internal(filename: str) -> bool:
    f = filename.replace("\\", "/")
    return (f.startswith(_FUSION_DIR) or "/torchinfo/" in f or f.endswith("torch/nn/modules/module.py")
            or "torch/utils/_python_dispatch" in f or f.startswith("<frozen importlib"))


def _under(filename: str, roots: list[str]) -> bool:
    try:
        f = str(Path(filename).resolve())
    except (OSError, ValueError):
        return False
    return any(f == r or f.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def location(exc: BaseException, roots: list[str] | None = None) -> str:
    """``file:line`` where ``exc`` was raised in the user's code (else the deepest frame outside fusion)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{_short(exc.filename)}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    pick = None
    if roots:
        pick = next((f for f in reversed(frames) if _under(f.filename, roots)), None)
    if pick is None:
        pick = next((f for f in reversed(frames) if not _internal(f.filename)), frames[-1] if frames else None)
    return f"{_short(pick.filename)}:{pick.lineno}" if pick is not None else "<unknown>"


def describe(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def forward_error(exc: BaseException, spec, where: str) -> RunError:
    """A forward that raised in user code: exit code 1, one line with the file:line."""
    return RunError(f"{location(exc, roots_of(spec))}: forward of {spec.name} failed {where}: {describe(exc)}")


def _short(path: Any) -> str:
    text = str(path)
    try:
        rel = os.path.relpath(text)
    except ValueError:
        return text
    return rel if not rel.startswith("..") else text


__all__ = ["PLUGIN_GROUP", "UserCodeError", "constructor_kwargs", "construct", "display_name", "load",
           "looks_like_reference", "options_of", "parse_reference", "plugin_kinds", "report_options"]
