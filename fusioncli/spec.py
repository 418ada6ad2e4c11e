"""Specs: what to build and at which shapes, from flags, a bundled preset or a preset file.

A spec string is a block kind (``concat``), the name of a bundled preset
(``dpt-vitb-level``), a path to a TOML preset file, or a user block: ``path/to/file.py:Name``,
``package.module:Name`` or the kind of an installed plugin (see :mod:`fusioncli.userblock`).
Flags (``--in``, ``--out``, ``--set``, ``--batch``, ``--pack``) override what a preset sets.
Everything that can be checked without importing torch or user code is validated here,
up front, with errors that name the field, the bad value and what is allowed; option
values are typed against the block's signature when the block is built.

An input shape is one input's shape without the batch dimension, 1 to 4 dimensions:
``768`` (a vector), ``196x768`` (tokens, N x C), ``64x32x32`` (a map, C x H x W),
``64x8x32x32`` (a volume, C x D x H x W), optionally named: ``query=100x64``.

Preset file format::

    block = "concat"                 # required: a block kind, "blocks/my.py:MyFusion" (relative
                                     # to this file), "package.module:Name" or a plugin kind
    description = "..."              # optional
    source = "U-Net decoder, level 3" # optional: the architecture it comes from
    inputs = ["64x56x56", "128x28x28"]  # or [[64, 56, 56], [128, 28, 28]], or ["query=100x64", ...]
    out = 64                         # optional for user blocks
    batch = 1                        # optional
    pack = "args"                    # optional: args, list, dict or kwargs (how inputs are passed)
    backbone = "resnet50"            # optional, instead of inputs: a backbone's pyramid (fusioncli.backbones)
    image = "800x1333"               # with backbone: the image size (HxW or S)
    [options]                        # optional block options
    norm = "bn"
    [node]                           # a neck's fusion node (block = "neck:fpn", ...): its kind and options
    kind = "aff"                     # a block kind or "blocks/my.py:MyFusion" (relative to this file)
    r = 4
"""

from __future__ import annotations

import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import registry
from .backbones import get_backbone, parse_image
from .errors import SpecError, shorten

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Shape = tuple[int, ...]
PRESET_KEYS = {"name", "block", "description", "source", "inputs", "out", "batch", "options", "pack", "node",
               "backbone", "image"}
PACKS = ("args", "list", "dict", "kwargs")
MAX_PRESET_BYTES = 1 << 20
MAX_RANK = 4
SHAPE_HELP = ("expected [NAME=]SHAPE, one input's shape without the batch: 1 to 4 positive integers joined by 'x', "
              "e.g. 64x56x56 (CxHxW), 196x768 (NxC tokens), 768, 64x8x32x32 (CxDxHxW)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class Spec:
    name: str
    block: str  # a kind, a plugin kind, "/abs/path/file.py:Name" or "package.module:Name"
    inputs: list[Shape]
    out: int | None
    options: dict[str, Any] = field(default_factory=dict)
    batch: int = 1
    description: str = ""
    source: str = ""
    path: str | None = None  # the preset file, if any
    inputs_field: str = "--in"  # where the input shapes came from, for messages ("FILE: inputs" or "--in")
    input_names: list[str] | None = None  # with --pack dict or kwargs: one name per input
    pack: str = "args"  # how the inputs are passed to forward: see PACKS
    option_fields: dict[str, str] = field(default_factory=dict)  # option -> where it was set, when not --set
    backbone: str | None = None  # the inputs are this backbone's pyramid at ``image`` (fusioncli.backbones)
    image: tuple[int, int] | None = None
    obj: Any = field(default=None, repr=False, compare=False)  # Python API: an nn.Module, a class or a factory

    @property
    def builtin(self) -> bool:
        return self.obj is None and self.block in registry.kinds()

    @property
    def neck(self) -> bool:
        return self.obj is None and registry.is_neck(self.block)


def parse_shape(text: Any, field: str = "--in") -> Shape:
    """``"64x56x56"`` (or a list of ints from TOML, or one int) -> ``(64, 56, 56)``; 1 to 4 dimensions."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = [text]
    if isinstance(text, (list, tuple)):
        parts = list(text)
        ok = 1 <= len(parts) <= MAX_RANK and all(isinstance(p, int) and not isinstance(p, bool) and p > 0
                                                 for p in parts)
        if not ok:
            raise SpecError.bad(field, text, SHAPE_HELP)
        return tuple(parts)
    if not isinstance(text, str) or not re.fullmatch(r"\s*\d+\s*(?:[xX*,]\s*\d+\s*){0,%d}" % (MAX_RANK - 1), text):
        raise SpecError.bad(field, text, SHAPE_HELP)
    dims = tuple(int(p) for p in re.split(r"[xX*,]", text))
    if any(d <= 0 for d in dims):
        raise SpecError.bad(field, text, SHAPE_HELP)
    return dims


def parse_input(text: Any, field: str = "--in") -> tuple[str | None, Shape]:
    """``"query=100x64"`` -> ``("query", (100, 64))``; ``"64x32x32"`` -> ``(None, (64, 32, 32))``."""
    if isinstance(text, str) and "=" in text:
        name, _, shape = text.partition("=")
        name = name.strip()
        if not _NAME.fullmatch(name):
            raise SpecError.bad(field, text, "an input name is a Python identifier, e.g. query=100x64")
        return name, parse_shape(shape, field)
    return None, parse_shape(text, field)


def parse_inputs(items: list[Any], field: str = "--in") -> tuple[list[Shape], list[str] | None]:
    """Shapes and names of a list of inputs: either every input is named or none is."""
    parsed = [parse_input(t, field) for t in items]
    names = [n for n, _ in parsed]
    shapes = [s for _, s in parsed]
    if all(n is None for n in names):
        return shapes, None
    if any(n is None for n in names):
        unnamed = next(str(t) for t, (n, _) in zip(items, parsed) if n is None)
        raise SpecError.bad(field, unnamed, "name every input or none, e.g. --in query=100x64 --in key=50x64")
    dup = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if dup is not None:
        raise SpecError.bad(field, dup, "each input name at most once")
    return shapes, names  # type: ignore[return-value]


def format_shape(shape) -> str:
    return "x".join(str(d) for d in shape)


def format_input(shape, name: str | None = None) -> str:
    return f"{name}={format_shape(shape)}" if name else format_shape(shape)


def channels_of(shape: Shape) -> int:
    """An input's width: C of CxHxW and CxDxHxW (the first dimension), C of NxC and C (the last)."""
    return shape[0] if len(shape) >= 3 else shape[-1]


def parse_set(items: list[str] | None) -> dict[str, str]:
    """``["r=4", "merge=sum"]`` -> ``{"r": "4", "merge": "sum"}`` (values are typed later)."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpecError.bad("--set", item, "expected key=value, e.g. --set r=4")
        out[key.strip()] = value.strip()
    return out


MAX_INT = 2**31 - 1  # a width or a batch: what torch's int32 kernels index


def _positive_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_INT:
        raise SpecError.bad(field, value, f"allowed: a positive integer up to 2**31-1 ({MAX_INT:,})")
    return value


def check_pack(pack: Any, names: list[str] | None, field: str = "--pack") -> str:
    """A known calling convention, with names exactly when it needs them."""
    if pack not in PACKS:
        raise SpecError.bad(field, pack, "allowed: " + ", ".join(PACKS), choices=PACKS)
    if pack in ("dict", "kwargs") and names is None:
        raise SpecError(f"{field}: '{pack}' passes named inputs; name each one, e.g. --in query=100x64 "
                        "--in key=50x64", field=field)
    if pack in ("args", "list") and names is not None:
        raise SpecError(f"--in: named inputs ({', '.join(names)}) need --pack dict or --pack kwargs "
                        f"(got --pack {pack})", field="--in")
    return pack


# --------------------------------------------------------------------------- presets


def preset_dir() -> Path:
    """Bundled presets: inside the installed package (wheel), else ``presets/`` of the checkout."""
    packaged = Path(__file__).parent / "presets"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "presets"


def bundled_presets() -> dict[str, Path]:
    d = preset_dir()
    return {p.stem: p for p in sorted(d.glob("*.toml"), key=lambda p: p.stem)} if d.is_dir() else {}


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


def _block_of(text: str, field: str, base_dir: Path | None = None) -> tuple[str, dict | None]:
    """A preset's or the command line's block: the registry's defaults for a built-in kind, ``None`` for a
    user block (whose file reference is made absolute, relative to ``base_dir``)."""
    from . import userblock

    if text in registry.kinds():
        info = registry.get_info(text)
        return text, {"inputs": list(info.inputs), "out": info.out}
    ref = userblock.parse_reference(text, field=field, base_dir=base_dir)
    if ref is None:
        names = [*registry.list_fusions(), *userblock.plugin_kinds()]
        raise SpecError.bad(field, text, "expected a block kind, a plugin kind, FILE.py:NAME or "
                            "package.module:NAME (see `fusion blocks`)", choices=names)
    return ref, None


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
    except RecursionError:
        raise SpecError(f"preset: {label}: nested too deeply (arrays or tables within each other thousands of "
                        "levels down); a preset is a few flat lines of TOML", field="preset") from None
    unknown = set(data) - PRESET_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise SpecError.bad(f"{label}: key", key, "allowed keys: " + ", ".join(sorted(PRESET_KEYS)), choices=PRESET_KEYS)
    if "block" not in data:
        raise SpecError(f"{label}: key 'block' is missing; allowed: " + ", ".join(registry.list_fusions())
                        + ", FILE.py:NAME or package.module:NAME", field="block")
    block = data["block"]
    if not isinstance(block, str):
        raise SpecError.bad(f"{label}: block", block, "expected a string naming a block kind or FILE.py:NAME")
    block, defaults = _block_of(block, f"{label}: block", base_dir=path.resolve().parent)
    backbone = image = None
    if "backbone" in data:
        if "inputs" in data:
            raise SpecError(f"{label}: give inputs or backbone, not both", field="inputs")
        backbone, image = data["backbone"], data.get("image")
        if image is None:
            raise SpecError(f"{label}: key 'image' is missing; backbone needs the image size, e.g. image = \"800x1333\"",
                            field="image")
        data = {**data, "inputs": _pyramid(backbone, image, f"{label}: backbone", f"{label}: image")}
        image = parse_image(image, f"{label}: image")
    elif "image" in data:
        raise SpecError(f"{label}: image needs a backbone (backbone = \"resnet50\")", field="image")
    if "inputs" not in data and defaults is None:
        raise SpecError(f"{label}: key 'inputs' is missing; a user block has no default inputs", field="inputs")
    raw_inputs = data.get("inputs", defaults["inputs"] if defaults else None)
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise SpecError.bad(f"{label}: inputs", raw_inputs, "expected a non-empty list of input shapes")
    inputs, names = parse_inputs(raw_inputs, f"{label}: inputs")
    out = data.get("out", defaults["out"] if defaults else None)
    out = None if out is None else _positive_int(out, f"{label}: out")
    batch = _positive_int(data.get("batch", 1), f"{label}: batch")
    options = data.get("options", {})
    if not isinstance(options, dict):
        raise SpecError.bad(f"{label}: options", options, "expected a table of block options")
    if "node" in data:
        options = {**options, **_node_table(data["node"], label, block, path.resolve().parent)}
    for key in ("name", "description", "source"):
        if key in data and not isinstance(data[key], str):
            raise SpecError.bad(f"{label}: {key}", data[key], "expected a string")
    pack = check_pack(data.get("pack", "args"), names, f"{label}: pack")
    spec = Spec(
        name=data.get("name", path.stem),
        block=block,
        inputs=inputs,
        out=out,
        options=options,
        batch=batch,
        description=data.get("description", ""),
        source=data.get("source", ""),
        path=str(path),
        inputs_field=f"{label}: inputs" if "inputs" in data else "--in",
        input_names=names,
        pack=pack,
        option_fields={k: f"{label}: node" if k.startswith("node") and "node" in data else f"{label}: options"
                       for k in options},
        backbone=backbone,
        image=image,
    )
    if backbone is not None and registry.is_neck(block) and "first_level" not in options:
        spec.options["first_level"] = get_backbone(backbone).first_level
    if check_options:
        spec.options = typed_options(spec, options)
    return spec


def _pyramid(backbone: Any, image: Any, bfield: str, ifield: str) -> list[str]:
    if not isinstance(backbone, str):
        raise SpecError.bad(bfield, backbone, "expected a backbone name, e.g. resnet50")
    h, w = parse_image(image, ifield)
    return get_backbone(backbone, bfield).pyramid(h, w)


def _node_table(table: Any, label: str, block: str, base_dir: Path) -> dict[str, Any]:
    """A preset's ``[node]`` table -> the neck's ``node`` and ``node.NAME`` options."""
    if not registry.is_neck(block):
        raise SpecError(f"{label}: [node] is for necks (block = \"neck:fpn\", ...); {block!r} is not one", field="node")
    if not isinstance(table, dict):
        raise SpecError.bad(f"{label}: node", table, "expected a table: [node] kind = \"aff\", then its options")
    out: dict[str, Any] = {f"node.{k}": v for k, v in table.items() if k != "kind"}
    if "kind" in table:
        out["node"] = node_of(table["kind"], f"{label}: node.kind", base_dir)
    return out


def node_of(text: Any, field: str = "--node", base_dir: Path | None = None) -> str:
    """A neck's node: a built-in block kind as it is, a user block made an absolute reference."""
    from . import userblock

    if not isinstance(text, str):
        raise SpecError.bad(field, text, "expected a block kind or FILE.py:NAME")
    if text in registry.kinds():
        if registry.is_neck(text):
            raise SpecError.bad(field, text, "a neck's node is a fusion block kind or a user block, not a neck",
                                choices=registry.list_fusions())
        return text
    ref = userblock.parse_reference(text, field=field, base_dir=base_dir)
    if ref is None:
        raise SpecError.bad(field, text, "expected a block kind, a plugin kind, FILE.py:NAME or package.module:NAME "
                            "(see `fusion blocks`)", choices=[*registry.list_fusions(), *userblock.plugin_kinds()])
    return ref


def typed_options(spec: Spec, raw: dict[str, Any]) -> dict[str, Any]:
    """Option values typed by the block's signature (imports the block, so torch or user code); errors name
    where each option was set (``--set`` or the preset's ``options``)."""
    from . import userblock

    typed: dict[str, Any] = {}
    for key, value in raw.items():
        field = spec.option_fields.get(key, "--set")
        if spec.builtin and key.startswith("node.") and "node" in raw:  # typed by the neck's node kind
            typed[key] = registry.coerce_options(spec.block, {"node": raw["node"], key: value}, field=field)[key]
        elif spec.builtin:
            typed.update(registry.coerce_options(spec.block, {key: value}, field=field))
        else:
            typed.update(userblock.coerce_options(userblock.load(spec), {key: value}, field=field))
    return typed


def is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name too long for the file system, an embedded NUL
        return False


def _is_preset_path(text: str) -> bool:
    from . import userblock

    if text.endswith(".py") or userblock.looks_like_reference(text):
        return False
    return text.endswith(".toml") or is_file(text) or ("/" in text and ":" not in text)


def resolve_spec(
    spec: str,
    *,
    inputs: list[str] | list[Shape] | None = None,
    out: int | None = None,
    options: dict[str, Any] | None = None,
    batch: int | None = None,
    pack: str | None = None,
    check_options: bool = True,
    node: str | None = None,
    backbone: str | None = None,
    image: str | None = None,
) -> Spec:
    """Turn a spec string plus flag overrides into a validated :class:`Spec`.

    ``node`` sets a neck's fusion node (``--node``); ``backbone`` and ``image`` give the inputs as
    that backbone's pyramid (``--backbone``, ``--image``; ``image`` alone re-sizes a preset's backbone).

    ``check_options=False`` leaves block options untyped (no block class, so no torch and no
    user code): enough for the size checks the command line makes before importing torch;
    the options are typed when the block is built.
    """
    from . import userblock

    presets = bundled_presets()
    if spec in registry.kinds():
        info = registry.get_info(spec)
        base = Spec(name=spec, block=spec, inputs=[parse_shape(s) for s in info.inputs], out=info.out)
    elif spec in presets:
        base = load_preset(presets[spec], check_options=False)
    elif _is_preset_path(spec):
        base = load_preset(spec, check_options=False)
    else:
        ref = userblock.parse_reference(spec, field="SPEC")
        if ref is None:
            names = [*registry.list_fusions(), *registry.list_necks(), *presets, *userblock.plugin_kinds()]
            raise SpecError.bad("SPEC", spec, "expected a block or neck kind, a bundled preset name, a preset file, "
                                "FILE.py:NAME, package.module:NAME or a plugin kind (see `fusion blocks` and "
                                "`fusion presets`)", choices=names)
        if not inputs:
            # A misspelt name or option is the first thing to say: load the block and type the
            # options (user code runs, as the SPEC asked) before asking for the shapes.
            probe = Spec(name=userblock.display_name(ref), block=ref, inputs=[], out=None)
            userblock.load(probe)
            typed_options(probe, dict(options or {}))
            raise SpecError(f"--in: needed for the user block {spec!r}: one --in per input, e.g. --in 64x32x32 "
                            "--in 64x32x32", field="--in")
        base = Spec(name=userblock.display_name(ref), block=ref, inputs=[], out=None)
    return override(base, inputs=inputs, out=out, options=options, batch=batch, pack=pack,
                    check_options=check_options, node=node, backbone=backbone, image=image)


def override(base: Spec, *, inputs=None, out=None, options=None, batch=None, pack=None,
             check_options: bool = True, node=None, backbone=None, image=None) -> Spec:
    """``base`` with the flags applied (in place) and checked: shapes, names, pack, out, batch, options."""
    options = dict(options or {})
    if node is not None:
        options["node"] = node
    if "node" in options and registry.is_neck(base.block):
        options["node"] = node_of(options["node"], "--node" if node is not None else "--set node")
    if backbone is not None or image is not None:
        if inputs:
            raise SpecError("--in: give --in or --backbone, not both", field="--in")
        name = backbone if backbone is not None else base.backbone
        if name is None:
            raise SpecError(f"--image: needs --backbone NAME ({base.name!r} has no backbone)", field="--image")
        if image is None and base.image is None:
            raise SpecError(f"--backbone: needs --image HxW (the image size), e.g. --image 800x1333", field="--image")
        size = parse_image(image) if image is not None else base.image
        base.inputs, base.input_names = parse_inputs(get_backbone(name).pyramid(*size), "--backbone")
        base.inputs_field, base.backbone, base.image = "--backbone", name, size
        if registry.is_neck(base.block) and backbone is not None and "first_level" not in options:
            options["first_level"] = get_backbone(name).first_level
    if inputs:
        base.inputs, base.input_names = parse_inputs(list(inputs))
        base.inputs_field, base.backbone, base.image = "--in", None, None
    if out is not None:
        base.out = _positive_int(out, "--out")
    if batch is not None:
        base.batch = _positive_int(batch, "--batch")
    if options:
        base.options = {**base.options, **options}
        base.option_fields = {k: v for k, v in base.option_fields.items() if k not in options}
    base.pack = check_pack(pack if pack is not None else base.pack, base.input_names,
                           "--pack" if pack is not None or base.path is None else f"{base.path}: pack")
    if base.builtin:
        check_builtin_inputs(base)
    if not base.neck and base.obj is None and base.block in registry.kinds() and any(
            k == "node" or k.startswith("node.") for k in base.options):
        raise SpecError(f"--node: '{base.block}' is a block; a node is a neck's option (neck:fpn, neck:bifpn, ...)",
                        field="--node")
    if check_options:
        base.options = typed_options(base, base.options)
    return base


def check_builtin_inputs(spec: Spec) -> None:
    """Built-in blocks take inputs of their kind's rank (CxHxW maps, NxC tokens), passed positionally."""
    rank, form = registry.input_form(spec.block)
    for shape in spec.inputs:
        if len(shape) != rank:
            raise SpecError.bad(spec.inputs_field, format_shape(shape),
                                f"'{spec.block}' takes {form} ({rank} dimensions, got {len(shape)}); inputs "
                                "of other ranks are for user blocks (FILE.py:NAME)")
    if spec.pack != "args" or spec.input_names is not None:
        raise SpecError(f"--pack: '{spec.block}' takes its inputs as separate positional maps; --pack {spec.pack} "
                        "and named inputs are for user blocks", field="--pack")
