"""Specs: what to build and at which shapes, from flags, a bundled preset or a preset file.

A spec string is a block kind (``concat``), the name of a bundled preset
(``dpt-vitb-level``) or a path to a TOML preset file. Flags (``--in``, ``--out``,
``--set``, ``--batch``) override what a preset sets. Everything is validated here,
up front, with errors that name the field, the bad value and what is allowed.

Preset file format::

    block = "concat"                 # required: a block kind
    description = "..."              # optional
    source = "U-Net decoder, level 3" # optional: the architecture it comes from
    inputs = ["64x56x56", "128x28x28"]  # or [[64, 56, 56], [128, 28, 28]]
    out = 64
    batch = 1                        # optional
    [options]                        # optional block options
    norm = "bn"
"""

from __future__ import annotations

import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import registry
from .errors import SpecError, shorten

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Shape = tuple[int, int, int]
PRESET_KEYS = {"name", "block", "description", "source", "inputs", "out", "batch", "options"}
MAX_PRESET_BYTES = 1 << 20
SHAPE_HELP = "expected CxHxW with three positive integers, e.g. 64x56x56"


@dataclass
class Spec:
    name: str
    block: str
    inputs: list[Shape]
    out: int
    options: dict[str, Any] = field(default_factory=dict)
    batch: int = 1
    description: str = ""
    source: str = ""
    path: str | None = None  # the preset file, if any
    inputs_field: str = "--in"  # where the input shapes came from, for messages ("FILE: inputs" or "--in")


def parse_shape(text: Any, field: str = "--in") -> Shape:
    """``"64x56x56"`` (or a list of three ints from TOML) -> ``(64, 56, 56)``."""
    if isinstance(text, (list, tuple)):
        parts = list(text)
        ok = len(parts) == 3 and all(isinstance(p, int) and not isinstance(p, bool) and p > 0 for p in parts)
        if not ok:
            raise SpecError.bad(field, text, SHAPE_HELP)
        return tuple(parts)  # type: ignore[return-value]
    if not isinstance(text, str) or not re.fullmatch(r"\s*\d+\s*[xX*,]\s*\d+\s*[xX*,]\s*\d+\s*", text):
        raise SpecError.bad(field, text, SHAPE_HELP)
    dims = tuple(int(p) for p in re.split(r"[xX*,]", text))
    if any(d <= 0 for d in dims):
        raise SpecError.bad(field, text, SHAPE_HELP)
    return dims  # type: ignore[return-value]


def format_shape(shape) -> str:
    return "x".join(str(d) for d in shape)


def parse_set(items: list[str] | None) -> dict[str, str]:
    """``["r=4", "merge=sum"]`` -> ``{"r": "4", "merge": "sum"}`` (values are typed later)."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpecError.bad("--set", item, "expected key=value, e.g. --set r=4")
        out[key.strip()] = value.strip()
    return out


def _positive_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SpecError.bad(field, value, "allowed: a positive integer")
    return value


# --------------------------------------------------------------------------- presets


def preset_dir() -> Path:
    """Bundled presets: inside the installed package (wheel), else ``presets/`` of the checkout."""
    packaged = Path(__file__).parent / "presets"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "presets"


def bundled_presets() -> dict[str, Path]:
    d = preset_dir()
    return {p.stem: p for p in sorted(d.glob("*.toml"))} if d.is_dir() else {}


def _toml_error(label: str, path: Path, err: Exception) -> str:
    """``preset: FILE, line L, column C: TOML syntax error: what (the line: '...')``."""
    text = str(err)
    m = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", text)
    if m:
        what = text[:m.start()]
        line, col = int(m.group(1)), int(m.group(2))
        try:
            source = path.read_text(encoding="utf-8").splitlines()[line - 1].strip()
        except (OSError, UnicodeDecodeError, IndexError):
            source = ""
        shown = f" (the line: {source[:60]!r})" if source else ""
        return f"preset: {label}, line {line}, column {col}: TOML syntax error: {what}{shown}"
    what = re.sub(r"\s*\(at end of document\)\s*$", "", text)
    if what != text:
        return f"preset: {label}, at the end of the file: TOML syntax error: {what}"
    return f"preset: {label}: TOML syntax error: {text}"


def _check_preset_file(path: Path, label: str) -> None:
    """A regular file of reasonable size: /dev/zero, a FIFO or a huge file never hang or fill memory."""
    st = path.stat()  # FileNotFoundError and other OSErrors are reported by the caller
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(label)
    if not stat.S_ISREG(st.st_mode):
        raise SpecError(f"preset: {label!r} is not a regular file; expected a preset file (.toml)", field="preset")
    if st.st_size > MAX_PRESET_BYTES:
        raise SpecError(f"preset: {label!r} is {st.st_size:,} bytes; allowed: at most {MAX_PRESET_BYTES:,} "
                        "(a preset is a few lines of TOML)", field="preset")


def load_preset(path: str | Path, *, check_options: bool = True) -> Spec:
    """Read and validate a TOML preset file.

    ``check_options=False`` skips typing the block options, which needs the block
    class and so torch: listings use it to stay fast.
    """
    path = Path(path)
    label = str(path)
    try:
        _check_preset_file(path, label)
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"preset: file {label!r} not found", field="preset") from None
    except IsADirectoryError:
        raise SpecError(f"preset: {label!r} is a directory; expected a preset file (.toml)", field="preset") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"preset: cannot read {shorten(label)}: {getattr(e, 'strerror', None) or e}",
                        field="preset") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(_toml_error(label, path, e), field="preset") from None
    unknown = set(data) - PRESET_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise SpecError.bad(f"{label}: key", key, "allowed keys: " + ", ".join(sorted(PRESET_KEYS)), choices=PRESET_KEYS)
    if "block" not in data:
        raise SpecError(f"{label}: key 'block' is missing; allowed: " + ", ".join(registry.list_fusions()), field="block")
    block = data["block"]
    if not isinstance(block, str):
        raise SpecError.bad(f"{label}: block", block, "expected a string naming a block kind")
    info = registry.get_info(block)
    raw_inputs = data.get("inputs", list(info.inputs))
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise SpecError.bad(f"{label}: inputs", raw_inputs, "expected a non-empty list of CxHxW shapes")
    inputs = [parse_shape(s, f"{label}: inputs") for s in raw_inputs]
    out = _positive_int(data.get("out", info.out), f"{label}: out")
    batch = _positive_int(data.get("batch", 1), f"{label}: batch")
    options = data.get("options", {})
    if not isinstance(options, dict):
        raise SpecError.bad(f"{label}: options", options, "expected a table of block options")
    for key in ("name", "description", "source"):
        if key in data and not isinstance(data[key], str):
            raise SpecError.bad(f"{label}: {key}", data[key], "expected a string")
    return Spec(
        name=data.get("name", path.stem),
        block=block,
        inputs=inputs,
        out=out,
        options=registry.coerce_options(block, options, field=f"{label}: options") if check_options else options,
        batch=batch,
        description=data.get("description", ""),
        source=data.get("source", ""),
        path=str(path),
        inputs_field=f"{label}: inputs" if "inputs" in data else "--in",
    )


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name too long for the file system, an embedded NUL
        return False


def resolve_spec(
    spec: str,
    *,
    inputs: list[str] | list[Shape] | None = None,
    out: int | None = None,
    options: dict[str, Any] | None = None,
    batch: int | None = None,
    check_options: bool = True,
) -> Spec:
    """Turn a spec string plus flag overrides into a validated :class:`Spec`.

    ``check_options=False`` leaves block options untyped (no block class, so no torch):
    enough for the size checks the command line makes before importing torch.
    """
    presets = bundled_presets()
    if spec in {b for b in registry.list_fusions()}:
        info = registry.get_info(spec)
        base = Spec(name=spec, block=spec, inputs=[parse_shape(s) for s in info.inputs], out=info.out)
    elif spec in presets:
        base = load_preset(presets[spec], check_options=check_options)
    elif spec.endswith(".toml") or "/" in spec or _is_file(spec):
        base = load_preset(spec, check_options=check_options)
    else:
        names = [*registry.list_fusions(), *presets]
        raise SpecError.bad("SPEC", spec, "expected a block kind, a bundled preset name or a preset file path "
                            "(see `fusion blocks` and `fusion presets`)", choices=names)
    if inputs:
        base.inputs = [parse_shape(s) for s in inputs]
        base.inputs_field = "--in"
    if out is not None:
        base.out = _positive_int(out, "--out")
    if batch is not None:
        base.batch = _positive_int(batch, "--batch")
    if options:
        base.options = {**base.options, **(registry.coerce_options(base.block, options) if check_options else options)}
    return base
