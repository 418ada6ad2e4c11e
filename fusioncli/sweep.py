"""Sweeps: the grid of points, shards of it, applying a point to a spec, fitted scaling exponents, merging.

Torch-free (no typer, no rich either): ``fusion merge`` and the tests use it without loading torch.

Variables of ``--vary NAME=V1,V2,...`` (values separated by commas, or by ``;`` when an
option's own values contain commas, e.g. ``kernels=1,3;1,3,5``):

``size``      the first input's height (CxHxW; D of CxDxHxW; N of NxC tokens) becomes S; every
              input's spatial dimensions (all after C for CxHxW and CxDxHxW, N for NxC) are
              scaled by S / H1 (H1: that dimension of the first input before the sweep), rounded
              to the nearest integer (at least 1), so the ratios between inputs (and H:W) are
              kept. A vector input (C) has none.
``channels``  the first input's width (C: the first dimension of CxHxW and CxDxHxW, the last of
              NxC and C) becomes C; every input width and the output width (when set) are
              scaled by C / C1 (C1: the first input's width before the sweep), rounded, at least 1.
``image``     the image size (S for SxS, or HxW) of a spec whose inputs are a backbone's pyramid
              (``--backbone``, a preset's ``backbone``): each level's shape recomputed from the
              backbone table (fusioncli.backbones), as ``--image`` does.
``batch``     the batch size.
``out``       the output width alone.
any other     a block option (as ``--set NAME=V``); numeric when every value is a number.

The grid is the product of the specs (outermost, in the order given) and the values of
each ``--vary`` (in the order given, the last varying fastest); point ``k`` (0-based, in
that order) belongs to shard ``(k mod N) + 1`` of ``--shard I/N``, so the shards cover the
grid exactly once and each gets a mix of small and large points.

The scaling exponent of a metric in a numeric variable is the least-squares slope of
log(metric) against log(variable). With several ``--vary``, the points are grouped by
the values of the other variables and the slope is pooled over the groups (one intercept
per group, one common slope): for a law m = a * v^k * f(others) it is exactly k.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import SpecError
from .report import ErrorEntry, Report, entry_from_dict
from .pareto import METRICS, value
from .spec import Spec, format_input, format_shape, parse_input

RESERVED = ("size", "channels", "batch", "out", "image")


@dataclass(frozen=True)
class Point:
    index: int  # position in the whole grid (0-based)
    spec: str  # the spec as given on the command line
    values: dict[str, Any]  # variable -> value

    def to_dict(self) -> dict:
        return {"spec": self.spec, "index": self.index, "values": dict(self.values)}


def _number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        x = float(text)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def parse_vary(items: Sequence[str] | None) -> dict[str, list[Any]]:
    """``["size=16,32", "norm=bn,gn"]`` -> ``{"size": [16, 32], "norm": ["bn", "gn"]}``.

    Reserved variables take positive integers; option values stay text unless every one
    of them is a number (then ints/floats, so that the option is fitted).
    """
    out: dict[str, list[Any]] = {}
    for item in items or []:
        name, sep, rest = item.partition("=")
        name = name.strip()
        if not sep or not name or not rest.strip():
            raise SpecError.bad("--vary", item, "expected NAME=V1,V2,... e.g. --vary size=16,32,64")
        if name in out:
            raise SpecError.bad("--vary", item, f"'{name}' is varied twice; give all its values in one --vary")
        raw = [v.strip() for v in rest.split(";" if ";" in rest else ",") if v.strip()]
        if len(set(raw)) != len(raw):
            raise SpecError.bad(f"--vary {name}", rest, "each value at most once")
        if name == "image":
            from .backbones import parse_image

            for v in raw:
                parse_image(v, "--vary image")
            out[name] = [_number(v) if _number(v) is not None else v for v in raw]
        elif name in RESERVED:
            vals = [_number(v) for v in raw]
            if not all(isinstance(v, int) and v > 0 for v in vals):
                raise SpecError.bad(f"--vary {name}", rest, "allowed: comma-separated positive integers")
            out[name] = vals
        else:
            nums = [_number(v) for v in raw]
            out[name] = nums if all(v is not None for v in nums) else raw
    return out


def numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"2/4"`` -> ``(2, 4)``: the second of four shards (1-based)."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not (1 <= int(m.group(1)) <= int(m.group(2))):
        raise SpecError.bad("--shard", text, "expected I/N with 1 <= I <= N, e.g. --shard 2/4")
    return int(m.group(1)), int(m.group(2))


def grid(specs: Sequence[str], vary: dict[str, list[Any]]) -> list[Point]:
    """Every point, in the deterministic grid order (specs outermost, the last --vary fastest)."""
    names = list(vary)
    combos = list(itertools.product(*(vary[n] for n in names)))
    points = []
    for spec in specs:
        for combo in combos:
            points.append(Point(len(points), spec, dict(zip(names, combo))))
    return points


MAX_POINTS = 100_000  # a grid larger than this is not a sweep anyone ran


def grid_size(specs: Sequence[str], vary: dict[str, list[Any]]) -> int:
    return len(specs) * math.prod(len(v) for v in vary.values())


def point_at(specs: Sequence[str], vary: dict[str, list[Any]], index: int) -> Point:
    """Point ``index`` of :func:`grid` without building the grid."""
    names = list(vary)
    per_spec = math.prod(len(vary[n]) for n in names)
    spec, rest = divmod(index, per_spec)
    values = {}
    for n in reversed(names):  # the last --vary fastest
        rest, i = divmod(rest, len(vary[n]))
        values[n] = vary[n][i]
    return Point(index, specs[spec], {n: values[n] for n in names})


def shard(points: Sequence[Point], which: tuple[int, int] | None) -> list[Point]:
    """The points of shard ``I/N``: those whose grid index k has k mod N == I - 1."""
    if which is None:
        return list(points)
    i, n = which
    return [p for p in points if p.index % n == i - 1]


def _scale(x: int, factor: float) -> int:
    return max(1, math.floor(x * factor + 0.5))


def _size_dims(shape: tuple[int, ...]) -> range:
    """The dimensions ``size`` scales: every one after C for CxHxW and CxDxHxW, N for NxC, none for C."""
    return range(1, len(shape)) if len(shape) >= 3 else range(0, 1) if len(shape) == 2 else range(0)


def _channel_dim(shape: tuple[int, ...]) -> int:
    return 0 if len(shape) >= 3 else len(shape) - 1


def apply_point(base: Spec, values: dict[str, Any]) -> dict[str, Any]:
    """The flag overrides (``inputs``, ``out``, ``batch``, ``options``) that put ``base`` at a grid point."""
    inputs = [list(s) for s in base.inputs]
    out = base.out
    result: dict[str, Any] = {}
    if "image" in values:
        from .backbones import get_backbone, parse_image

        if base.backbone is None:
            raise SpecError(f"--vary image: {base.name!r} has no backbone; give --backbone NAME (or vary size)",
                            field="--vary")
        size = parse_image(values["image"], "--vary image")
        inputs = [list(parse_input(t)[1]) for t in get_backbone(base.backbone).pyramid(*size)]
        result["inputs"] = inputs
    if "size" in values:
        dims = _size_dims(tuple(inputs[0]))
        if not dims:
            raise SpecError(f"--vary size: input 1 ({format_shape(inputs[0])}) is a vector: it has no spatial or "
                            "token dimension to scale", field="--vary")
        f = values["size"] / inputs[0][dims[0]]
        for shape in inputs:
            for d in _size_dims(tuple(shape)):
                shape[d] = _scale(shape[d], f)
        result["inputs"] = inputs
    if "channels" in values:
        f = values["channels"] / inputs[0][_channel_dim(tuple(inputs[0]))]
        for shape in inputs:
            d = _channel_dim(tuple(shape))
            shape[d] = _scale(shape[d], f)
        result["inputs"] = inputs
        if out is not None:
            out = result["out"] = _scale(out, f)
    if "out" in values:
        result["out"] = values["out"]
    if "batch" in values:
        result["batch"] = values["batch"]
    options = {k: v for k, v in values.items() if k not in RESERVED}
    if options:
        result["options"] = {k: str(v) for k, v in options.items()}
    if "inputs" in result:
        names = base.input_names or [None] * len(inputs)
        result["inputs"] = [format_input(s, n) for s, n in zip(result["inputs"], names)]
    return result


def definition(specs: Sequence[str], vary: dict[str, list[Any]], which: tuple[int, int] | None) -> dict:
    """The JSON description of a sweep (without exponents): what ``fusion merge`` checks shards against."""
    n = len(specs) * math.prod(len(v) for v in vary.values())
    return {"specs": list(specs), "vary": {k: list(v) for k, v in vary.items()}, "points": n,
            "shard": None if which is None else {"index": which[0], "count": which[1]}}


# --------------------------------------------------------------------------- exponents


def fit_slope(groups: Iterable[Sequence[tuple[float, float]]]) -> tuple[float, float, int] | None:
    """Pooled least-squares slope of log y on log x over groups of (x, y) points (one intercept per group).

    Returns (slope, r2, points used), or None when no group has two distinct x with y > 0.
    """
    sxx = sxy = syy = 0.0
    used = 0
    for pts in groups:
        pts = [(math.log(x), math.log(y)) for x, y in pts if x > 0 and y is not None and y > 0]
        if len({p[0] for p in pts}) < 2:
            continue
        mx = sum(p[0] for p in pts) / len(pts)
        my = sum(p[1] for p in pts) / len(pts)
        sxx += sum((x - mx) ** 2 for x, _ in pts)
        sxy += sum((x - mx) * (y - my) for x, y in pts)
        syy += sum((y - my) ** 2 for _, y in pts)
        used += len(pts)
    if not used:
        return None
    slope = sxy / sxx
    ss_res = syy - slope * sxy
    r2 = 1.0 if syy <= 1e-24 else min(1.0, max(0.0, 1.0 - ss_res / syy))
    return slope, r2, used


def exponents(entries: Sequence[Report | ErrorEntry], vary: dict[str, list[Any]]) -> list[dict]:
    """Fitted exponents for each spec x numeric variable x metric (``exponent`` None where no fit exists)."""
    numeric_vars = [v for v, vals in vary.items() if numeric(vals) and len(vals) >= 2]
    reports = [e for e in entries if isinstance(e, Report) and e.sweep]
    specs = list(dict.fromkeys(r.sweep["spec"] for r in reports))
    out = []
    for spec in specs:
        rs = [r for r in reports if r.sweep["spec"] == spec]
        for var in numeric_vars:
            others = [o for o in vary if o != var]
            for metric in METRICS:
                groups: dict[tuple, list[tuple[float, float]]] = {}
                for r in rs:
                    y = value(r, metric)
                    if y is None:
                        continue
                    key = tuple(str(r.sweep["values"].get(o)) for o in others)
                    groups.setdefault(key, []).append((r.sweep["values"][var], y))
                if not groups:
                    continue  # e.g. latency without timing
                fit = fit_slope(groups.values())
                out.append({"spec": spec, "variable": var, "metric": metric,
                            "exponent": None if fit is None else fit[0], "r2": None if fit is None else fit[1],
                            "points": 0 if fit is None else fit[2]})
    return out


def exponent_table(exps: Sequence[dict]) -> list[dict]:
    """Pivot: one row per (spec, variable) with each metric's exponent (None: no fit; absent: not measured)."""
    rows: dict[tuple[str, str], dict] = {}
    for e in exps:
        row = rows.setdefault((e["spec"], e["variable"]), {"spec": e["spec"], "variable": e["variable"]})
        row[e["metric"]] = e["exponent"]
    return list(rows.values())


def exponent_text(e: dict) -> str:
    """``MACs ∝ size^2.00`` (or ``MACs: no fit`` where no two points with a positive value exist)."""
    if e["exponent"] is None:
        return f"{METRICS[e['metric']].short}: no fit (0 or one point)"
    k = 0.0 if abs(e["exponent"]) < 5e-3 else e["exponent"]
    return f"{METRICS[e['metric']].short} ∝ {e['variable']}^{k:.2f}"


# --------------------------------------------------------------------------- jsonl lines and merging


def line(environment: dict, tool: dict, sweep: dict, entry: Report | ErrorEntry, schema_version: int) -> dict:
    """One self-contained ``--format jsonl`` line: the sweep's definition and one report with its point."""
    return {"schema_version": schema_version, "tool": tool, "environment": environment, "sweep": sweep,
            "report": entry.to_dict()}


@dataclass
class Merged:
    environment: dict
    sweep: dict  # definition (shard None) + exponents
    entries: list[Report | ErrorEntry]
    notes: list[str]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_VALIDATOR: list = []


def _check_schema(label: str, doc: Any) -> None:
    """A merged file's object against the packaged JSON Schema (a sweep envelope or a jsonl line):
    the first violation, with where it is, is the error."""
    if not _VALIDATOR:
        import jsonschema

        from .schema import load_schema

        schema = load_schema()
        _VALIDATOR.append(jsonschema.Draft202012Validator(schema))
    validator = _VALIDATOR[0]
    if validator.is_valid(doc):
        return
    import jsonschema

    errors = list(validator.iter_errors(doc))
    best = jsonschema.exceptions.best_match(errors)
    where = "/".join(str(p) for p in best.absolute_path) or "the top level"
    raise SpecError(f"merge: {label}: not a valid sweep output at {where}: {_short(best.instance)} "
                    f"({best.message[:120]})", field="FILES")


def _machine(environment: Any) -> Any:
    """What makes latencies comparable: the environment less the moment's load average."""
    return {k: v for k, v in environment.items() if k != "load_average"} if isinstance(environment, dict) else environment


def _check_definition(label: str, key: dict) -> None:
    """The grid a file claims: a list of spec names, ``vary`` a table of non-empty value lists, a sane size."""
    specs, vary = key["specs"], key["vary"]
    if not isinstance(specs, list) or not specs or not all(isinstance(x, str) for x in specs):
        raise SpecError.bad(f"merge: {label}: sweep.specs", _short(specs), "expected a non-empty list of SPEC strings")
    if not isinstance(vary, dict) or not vary or not all(
            isinstance(v, list) and v and all(isinstance(x, (int, float, str)) and not isinstance(x, bool) for x in v)
            for v in vary.values()):
        raise SpecError.bad(f"merge: {label}: sweep.vary", _short(vary),
                            "expected a table of variable -> non-empty list of values")
    n = grid_size(specs, vary)
    if n > MAX_POINTS:
        raise SpecError.bad(f"merge: {label}: sweep", f"{n:,} grid points", f"allowed: at most {MAX_POINTS:,}")


_COUNTS = (("params", "total"), ("params", "trainable"), ("cost", "macs"), ("cost", "flops"))


def _entry(label: str, d: Any) -> Report | ErrorEntry:
    """A report or error row of a merged file, its figures checked: counts are non-negative integers."""
    if not isinstance(d, dict):
        raise SpecError.bad(f"merge: {label}: report", _short(d), "expected a report object")
    try:
        entry = entry_from_dict(d)
        sweep = entry.sweep
        if not isinstance(sweep, dict) or not isinstance(sweep.get("index"), int) or isinstance(sweep["index"], bool):
            raise KeyError("sweep")
    except (KeyError, TypeError, ValueError, AttributeError):
        raise SpecError(f"merge: {label}: report {_short(d.get('name'))}: not a sweep report (a field is missing or "
                        "of the wrong type; was it made by `fusion sweep`?)", field="FILES") from None
    if isinstance(entry, Report):
        for part, name in _COUNTS:
            value = getattr(entry, part)[name] if part == "params" else getattr(entry.cost, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SpecError.bad(f"merge: {label}: report {_short(entry.name)}: {part}.{name}", _short(value),
                                    "expected a non-negative integer")
        t = entry.timing
        if t is not None and not (isinstance(t.median_ms, (int, float)) and t.median_ms >= 0):
            raise SpecError.bad(f"merge: {label}: report {_short(entry.name)}: timing.median_ms", _short(t.median_ms),
                                "expected a non-negative number")
    return entry


def _check_point(label: str, ref: dict, entry: Report | ErrorEntry) -> None:
    """A report's grid point is the one the grid has at its index: index in range, same spec, same values."""
    index = entry.sweep["index"]
    n = grid_size(ref["specs"], ref["vary"])
    if not 0 <= index < n:
        raise SpecError.bad(f"merge: {label}: sweep index", index, f"allowed: 0 to {n - 1} (the grid has {n} points)")
    expected = point_at(ref["specs"], ref["vary"], index)
    if entry.sweep.get("spec") != expected.spec or entry.sweep.get("values") != expected.values:
        raise SpecError(f"merge: {label}: point {index} is {entry.sweep.get('spec')!r} at {entry.sweep.get('values')}, "
                        f"but the grid has {expected.spec!r} at {expected.values} there", field="FILES")


def merge(documents: Sequence[tuple[str, dict]]) -> Merged:
    """Merge sweep outputs (``--format json`` envelopes and ``--format jsonl`` lines) into one sweep.

    ``documents`` are (label, parsed JSON object). All must come from the same sweep (same
    specs and --vary); a point seen twice is kept once; missing points are named in a note.
    """
    if not documents:
        raise SpecError("merge: no input; give FILES made by `fusion sweep --format json|jsonl`", field="FILES")
    ref: dict | None = None
    environment: dict | None = None
    envs_differ = False
    by_index: dict[int, Report | ErrorEntry] = {}
    duplicates = 0
    for label, doc in documents:
        _check_schema(label, doc)
        if not isinstance(doc, dict) or not isinstance(doc.get("sweep"), dict):
            raise SpecError(f"merge: {label}: not a sweep output (no 'sweep' object); "
                            "allowed: the output of `fusion sweep --format json` or `--format jsonl`", field="FILES")
        if doc.get("schema_version") != 1:
            raise SpecError.bad(f"merge: {label}: schema_version", doc.get("schema_version"), "allowed: 1")
        sweep = doc["sweep"]
        key = {"specs": sweep.get("specs"), "vary": sweep.get("vary")}
        if ref is None:
            _check_definition(label, key)
            ref = key
            environment = doc.get("environment", {})
        elif key != ref:
            raise SpecError(f"merge: {label}: from a different sweep (specs {key['specs']}, vary {key['vary']}; "
                            f"expected specs {ref['specs']}, vary {ref['vary']})", field="FILES")
        if _machine(doc.get("environment", {})) != _machine(environment):
            envs_differ = True
        raw = [doc["report"]] if "report" in doc else doc.get("reports", [])
        if not isinstance(raw, list):
            raise SpecError.bad(f"merge: {label}: reports", _short(raw), "expected a list of reports")
        for d in raw:
            entry = _entry(label, d)
            index = entry.sweep["index"]
            _check_point(label, ref, entry)
            if index in by_index:
                duplicates += 1
                continue
            by_index[index] = entry
    assert ref is not None
    definition_ = {"specs": ref["specs"], "vary": ref["vary"],
                   "points": len(ref["specs"]) * math.prod(len(v) for v in ref["vary"].values()), "shard": None}
    notes = []
    missing = [i for i in range(definition_["points"]) if i not in by_index]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        notes.append(f"merge: {len(missing)} of {definition_['points']} grid points missing (indices {shown})")
    if duplicates:
        notes.append(f"merge: {duplicates} point(s) given more than once; the first copy kept")
    if envs_differ:
        notes.append("merge: the inputs come from different environments; latencies are not comparable "
                     "(environment shown: the first file's)")
    entries = [by_index[i] for i in sorted(by_index)]
    definition_["exponents"] = exponents(entries, ref["vary"])
    return Merged(environment or {}, definition_, entries, notes)
