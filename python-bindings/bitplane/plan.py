"""Precision plans: how many weight planes each layer (and, for LSTM/GRU
layers, each operator) of a model uses, as a versioned JSON file.

``bitplane-search`` writes plans; :func:`apply_plan` puts one on a built
model and :func:`load_model` builds a model with its plan::

    from bitplane import plan as P
    model = P.load_model("plan.json")            # the plan names its model
    model.logits(tokens)                          # every operator at its planes

A plan caps: an operator uses its planned count, and a call's explicit
``planes`` lowers it further (min of the two), never raises it.

Format "bitplane-precision-plan", version 1::

    {"format": "bitplane-precision-plan", "version": 1,
     "model": "char-gru", "arch": "char_gru",
     "quantizer": {"bits": 8, "method": "uniform", "clip": 0.0},
     "act_bits": 8,
     "layers": [
       {"name": "rnn0", "kind": "gru", "input_size": 64, "hidden_size": 256,
        "planes": 4, "operators": {"input": 3, "recurrent": 4}},
       {"name": "fc", "kind": "linear", "in_features": 256, "out_features": 97,
        "planes": 5}],
     "reported": {...}}

``planes`` is the layer's count; ``operators`` (LSTM/GRU layers only,
optional) gives the input matrix (``weight_ih``) and the recurrent matrix
(``weight_hh``) their own counts, overriding ``planes``. ``reported`` is
free-form information (the metric and bytes the search measured); readers
ignore it.

Version 2 adds per-row plane classes (docs/precision-plans.md): a
``"classes"`` list on a linear layer, or an LSTM/GRU operator written as
an object ``{"planes": n, "classes": [...]}``; each class is
``{"planes": c, "rows": [...]}`` and the classes split the matrix's rows
(PyTorch row order) between them. The matrix is quantized with those
per-row counts (docs/row-planes.md) and row r uses min(its class's
planes, the operator's planes, a call's planes).

Version 3 adds per-gate planes: an LSTM/GRU operator given gate by gate,
``"operators": {"input": 4, "recurrent.r": 3, "recurrent.z": 4,
"recurrent.n": 5}`` (PyTorch gate letters: LSTM ``i f g o``, GRU ``r z
n``; every gate of a split operator listed). Such a layer is built with one
matrix per gate (``split_gates``, bitplane_rnn.h), so each gate's product
reads only its own planes. A plan is written in the lowest version that
holds it: 1 without classes or gates, 2 with classes, 3 with gates. Readers
refuse any field they cannot apply, naming it, rather than run a model at a
precision other than the plan's.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from . import models as M
from ._bitplane import MAX_ACT_BITS, Context, Matrix
from .layers import GRU, LSTM, Linear

FORMAT = "bitplane-precision-plan"
VERSION = 3  # the newest this reader takes; plans are written in the lowest that holds them
CLASSES_VERSION = 2  # the first with per-row plane classes
GATES_VERSION = 3  # the first with per-gate planes ("input.r", ...)
ROW_GROUP = 16  # rows per tile in a plane slab (bp_abi.h BP_ROW_GROUP)
K_ALIGN_BITS = 64  # columns are padded to this many bits (BP_K_ALIGN_BITS)
ACTIVATIONS = ("relu", "tanh", "none")  # between Linear layers (bitplane.models.MLP)
RNN_OPERATORS = {"input": "w_ih", "recurrent": "w_hh"}
RNN_CAP_KEYS = {"input": "ih", "recurrent": "hh"}
GATE_LETTERS = {"lstm": "ifgo", "gru": "rzn"}  # PyTorch gate order
GATES = {"lstm": 4, "gru": 3}

__all__ = ["FORMAT", "VERSION", "PlanError", "PlannedMatrix", "Operator", "Layer",
           "describe", "weight_bytes", "make_plan", "validate", "read_plan", "write_plan",
           "apply_plan", "load_model", "plan_planes", "plan_row_planes", "classes_of",
           "build_row_planes", "has_gates"]

PlanLike = Union[str, os.PathLike, Dict[str, Any]]


class PlanError(ValueError):
    """A precision plan that is malformed or does not fit the model."""


def weight_bytes(rows: int, cols: int, planes: int, group_size: int = 0) -> int:
    """Bytes of weights a product with `planes` planes reads from a matrix in
    the CPU layout: `planes` bit slabs of rows rounded up to 16 by columns
    rounded up to 64 bits, plus the `planes` float32 coefficients of each row
    that prefix uses (bp_abi.h), plus with group scales (`group_size` > 0)
    one multiplier byte per padded row and group, read at any plane count
    (Matrix.bytes_read counts the same)."""
    padded_rows = -(-rows // ROW_GROUP) * ROW_GROUP
    padded_cols = -(-cols // K_ALIGN_BITS) * K_ALIGN_BITS
    total = planes * (padded_rows * padded_cols // 8 + 4 * rows)
    if group_size > 0:
        kwords, group_words = padded_cols // 32, group_size // 32
        total += padded_rows * -(-kwords // group_words)
    return total


def _check_count(value, name: str, none_ok: bool = True) -> None:
    """A plane count argument: an integer (NumPy integers too), or None."""
    if value is None and none_ok:
        return
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int{' or None' if none_ok else ''}, got "
                        f"{type(value).__name__}")


class PlannedMatrix:
    """A Matrix whose products use at most `planes` planes: a call's planes
    (and per-column planes) are capped at it, None means `planes`. Everything
    else (rows, cols, prefix_error, ...) is the wrapped matrix's."""

    def __init__(self, matrix, planes: int):
        self.matrix = matrix
        self.planes = planes

    def gemm(self, x, planes=None, act_bits=None, bias=None, column_planes=None, **kwargs):
        # Counts are checked as Matrix.gemm checks them (ints, not bools or
        # floats): int() would quietly turn 2.5 into 2 and "3" into 3.
        _check_count(planes, "planes")
        n = self.planes if planes is None or planes == 0 else min(planes, self.planes)
        if column_planes is not None:
            column_planes = list(column_planes)
            for i, c in enumerate(column_planes):
                _check_count(c, f"column_planes[{i}]", none_ok=False)
            column_planes = [n if c == 0 else min(c, n) for c in column_planes]
        return self.matrix.gemm(x, planes=n, act_bits=act_bits, bias=bias,
                                column_planes=column_planes, **kwargs)

    @property
    def plan_cap(self) -> int:
        """The most planes a product uses (layers.Linear's bias correction
        picks its shift by the count the product really used)."""
        return self.planes

    def __getattr__(self, name):
        return getattr(self.matrix, name)

    def __repr__(self) -> str:
        return f"PlannedMatrix({self.matrix!r}, planes={self.planes})"


@dataclass
class Operator:
    """One weight matrix of a layer: `owner.<attr>` is the matrix."""

    name: str  # "weight" (Linear), "input" or "recurrent" (LSTM/GRU)
    owner: Any
    attr: str
    rows: int
    cols: int

    @property
    def matrix(self):
        m = getattr(self.owner, self.attr)
        return m.matrix if isinstance(m, PlannedMatrix) else m

    def bytes(self, planes) -> int:
        """Weight bytes one product reads at `planes`: an int, or for an
        LSTM/GRU operator with split gates one count per gate."""
        # A Matrix counts what a call really reads, which per-row plane
        # counts lower (Matrix.bytes_read); the same figure without them.
        m = self.matrix
        if isinstance(planes, (list, tuple)):
            return m.bytes_read([int(p) for p in planes])
        if hasattr(m, "bytes_read") and 1 <= planes <= m.bits:
            return m.bytes_read(planes)
        return weight_bytes(self.rows, self.cols, planes, getattr(m, "group_size", 0))


@dataclass
class Layer:
    name: str
    kind: str  # "linear", "lstm", "gru"
    obj: Any
    sizes: Dict[str, int]
    operators: List[Operator]


def describe(model) -> List[Layer]:
    """The layers of an MLP or CharRNN with their operators, in plan order:
    MLP layers are linear0, linear1, ...; a CharRNN has rnn0, rnn1, ... then fc."""
    layers = []
    if isinstance(model, M.MLP):
        for i, lin in enumerate(model.layers):
            layers.append(_linear(f"linear{i}", lin))
    elif isinstance(model, M.CharRNN):
        for i, rnn in enumerate(model.rnn):
            kind = "lstm" if isinstance(rnn, LSTM) else "gru" if isinstance(rnn, GRU) else None
            if kind is None or not all(hasattr(rnn, a) for a in RNN_OPERATORS.values()):
                raise PlanError(f"recurrent layer {i} ({type(rnn).__name__}) has no "
                                "w_ih/w_hh matrices to put a plan on")
            ops = [Operator(op, rnn, attr, getattr(rnn, attr).rows, getattr(rnn, attr).cols)
                   for op, attr in RNN_OPERATORS.items()]
            layers.append(Layer(f"rnn{i}", kind, rnn, {"input_size": rnn.input_size,
                                                       "hidden_size": rnn.hidden_size}, ops))
        layers.append(_linear("fc", model.fc))
    else:
        raise PlanError(f"plans apply to bitplane.models.MLP and CharRNN models, "
                        f"not {type(model).__name__}")
    return layers


def _linear(name: str, lin: Linear) -> Layer:
    m = lin.matrix
    return Layer(name, "linear", lin, {"in_features": m.cols, "out_features": m.rows},
                 [Operator("weight", lin, "matrix", m.rows, m.cols)])


def _entry_operators(entry: Dict[str, Any]) -> List[Tuple[str, Any]]:
    """(operator name, plan value) of a plan layer entry, in describe() order:
    the value is an int, an object with planes and classes, a list of one
    int per gate (PyTorch gate order), or the layer's planes."""
    if entry["kind"] == "linear":
        if "classes" in entry:
            return [("weight", {"planes": entry["planes"], "classes": entry["classes"]})]
        return [("weight", entry["planes"])]
    ops = entry.get("operators", {})
    out = []
    for name in RNN_OPERATORS:
        gates = [f"{name}.{g}" for g in GATE_LETTERS[entry["kind"]]]
        if gates[0] in ops:
            out.append((name, [ops[g] for g in gates]))
        else:
            out.append((name, ops.get(name, entry["planes"])))
    return out


def has_gates(plan: Dict[str, Any]) -> bool:
    """Whether a validated plan gives any operator per-gate planes (its
    LSTM/GRU layers must then be built with split gates)."""
    return any(isinstance(v, list) for entry in plan["layers"]
               for _, v in _entry_operators(entry))


def plan_planes(layers: List[Layer], plan: Dict[str, Any]) -> List[Any]:
    """Planes per operator (describe() order) that a validated plan gives:
    an int, a list of one int per gate for an operator given per gate, and
    for an operator with classes its cap, the operator's ``planes``."""
    out = []
    for entry in plan["layers"]:
        out += [v["planes"] if isinstance(v, dict) else v for _, v in _entry_operators(entry)]
    return out


def _rows_of(entry: Dict[str, Any]) -> int:
    """Rows of each matrix of a plan layer entry."""
    if entry["kind"] == "linear":
        return entry["out_features"]
    return GATES[entry["kind"]] * entry["hidden_size"]


def plan_row_planes(plan: Dict[str, Any]) -> List[Optional[np.ndarray]]:
    """Per-row plane counts per operator (describe() order) of a validated
    plan: a uint8 array in the matrix's row order for an operator with
    classes, None for one without."""
    out = []
    for entry in plan["layers"]:
        for _, v in _entry_operators(entry):
            if isinstance(v, dict):
                counts = np.zeros(_rows_of(entry), np.uint8)
                for c in v["classes"]:
                    counts[np.asarray(c["rows"], dtype=np.int64)] = c["planes"]
                out.append(counts)
            else:
                out.append(None)
    return out


def classes_of(counts) -> List[Dict[str, Any]]:
    """Per-row plane counts as plan classes: one ``{"planes": c, "rows":
    [...]}`` per distinct count, most planes first, rows ascending."""
    counts = np.asarray(counts)
    return [{"planes": int(c), "rows": np.flatnonzero(counts == c).tolist()}
            for c in sorted(set(counts.tolist()), reverse=True)]


def make_plan(model_name: str, arch: str, layers: List[Layer], planes: List[int], *,
              bits: int, method: str, clip: float, act_bits: int,
              activation: Optional[str] = None, reported: Optional[dict] = None,
              row_planes: Optional[List[Optional[Any]]] = None) -> Dict[str, Any]:
    """A plan giving each operator (describe() order) its planes (an int,
    or for an LSTM/GRU operator one int per gate in PyTorch order) and,
    optionally, per-row plane counts (``row_planes``: one entry per
    operator, None or a count per row of its matrix), written as classes.
    Layers whose operators all share one count and no classes get just
    ``planes``; gates that all share one count are the operator's count.
    The version is 1 without classes or gates, 2 with classes, 3 with
    gates."""
    n_ops = sum(len(l.operators) for l in layers)
    if len(planes) != n_ops or (row_planes is not None and len(row_planes) != n_ops):
        raise ValueError("one plane count (and one row_planes entry) per operator expected")
    row_planes = list(row_planes) if row_planes is not None else [None] * n_ops
    entries, i, any_classes, any_gates = [], 0, False, False
    for layer in layers:
        k = len(layer.operators)
        mine = [_gate_counts(p, layer, op) for p, op in zip(planes[i:i + k], layer.operators)]
        counts = row_planes[i:i + k]
        i += k
        # Counts that give every row one plane count are no classes.
        counts = [None if c is None or len(set(np.asarray(c).tolist())) == 1 else c
                  for c in counts]
        for p, c, op in zip(mine, counts, layer.operators):
            if isinstance(p, list) and c is not None:
                raise ValueError(f"{layer.name}.{op.name}: per-gate planes and per-row "
                                 "classes on one operator (classes can single out a "
                                 "gate's rows)")
        top = max(max(p) if isinstance(p, list) else p for p in mine)
        entry = {"name": layer.name, "kind": layer.kind, **layer.sizes, "planes": top}
        if layer.kind == "linear":
            if counts[0] is not None:
                entry["classes"] = classes_of(counts[0])
        elif len({str(p) for p in mine}) > 1 or any(c is not None for c in counts) or any(
                isinstance(p, list) for p in mine):
            ops: Dict[str, Any] = {}
            for op, p, c in zip(layer.operators, mine, counts):
                if isinstance(p, list):
                    ops.update({f"{op.name}.{g}": n
                                for g, n in zip(GATE_LETTERS[layer.kind], p)})
                else:
                    ops[op.name] = p if c is None else {"planes": p, "classes": classes_of(c)}
            entry["operators"] = ops
        any_classes |= any(c is not None for c in counts)
        any_gates |= any(isinstance(p, list) for p in mine)
        entries.append(entry)
    version = GATES_VERSION if any_gates else CLASSES_VERSION if any_classes else 1
    plan = {"format": FORMAT, "version": version, "model": model_name, "arch": arch}
    if activation is not None:
        plan["activation"] = activation
    plan.update({"quantizer": {"bits": int(bits), "method": method, "clip": float(clip)},
            "act_bits": int(act_bits), "layers": entries})
    if reported is not None:
        plan["reported"] = reported
    return plan


def _gate_counts(p, layer: Layer, op: Operator):
    """An operator's planes for make_plan: an int, or a list of one int per
    gate (an LSTM/GRU operator) when the gates differ."""
    if not isinstance(p, (list, tuple, np.ndarray)):
        return int(p)
    p = [int(v) for v in p]
    if layer.kind == "linear" or len(p) != GATES[layer.kind]:
        raise ValueError(f"{layer.name}.{op.name}: per-gate planes need an LSTM/GRU operator "
                         f"and one count per gate, got {p}")
    return p[0] if len(set(p)) == 1 else p


# ---- reading and checking ---------------------------------------------------------


def _int_in(value, lo: int, hi: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise PlanError(f"{where} must be an integer {lo}..{hi}, got {json.dumps(value)}")
    return value


def _only(obj: dict, allowed: set, where: str):
    for key in obj:
        if key not in allowed:
            raise PlanError(f"{where}: unknown field '{key}' (expected "
                            f"{', '.join(sorted(allowed))})")


def _check_classes(classes, rows: int, cap: int, version, where: str):
    """A classes list: objects {"planes", "rows"} whose rows split 0..rows-1,
    each class's planes 1..cap (the operator's planes)."""
    if version < CLASSES_VERSION:
        raise PlanError(f"{where}: per-row plane classes need version {CLASSES_VERSION} of "
                        f"the plan format, the plan says version {version}")
    if not isinstance(classes, list) or not classes:
        raise PlanError(f"{where} must be a non-empty list of "
                        '{"planes": n, "rows": [...]} objects')
    # Rows seen so far, class by class: a dict, not an array of `rows`
    # entries, so that a plan claiming 2^40 rows costs what its lists hold.
    owner: Dict[int, int] = {}
    for k, c in enumerate(classes):
        here = f"{where}[{k}]"
        if not isinstance(c, dict):
            raise PlanError(f"{here} must be an object with planes and rows")
        _only(c, {"planes", "rows"}, here)
        _int_in(c.get("planes"), 1, cap, f"{here}.planes")
        r = c.get("rows")
        if not isinstance(r, list) or not r:
            raise PlanError(f"{here}.rows must be a non-empty list of row indices")
        for j, v in enumerate(r):
            _int_in(v, 0, rows - 1, f"{here}.rows[{j}]")
            if v in owner:
                raise PlanError(f"{here}.rows[{j}]: row {v} is also in class {owner[v]}")
            owner[v] = k
    missing = rows - len(owner)
    if missing:
        first = []  # found within len(owner) + 5 steps: every row seen is below rows
        for v in range(rows):
            if v not in owner:
                first.append(v)
                if len(first) == 5:
                    break
        shown = ", ".join(str(v) for v in first) + (", ..." if missing > 5 else "")
        raise PlanError(f"{where}: {missing} of the {rows} rows are in no class ({shown})")


def validate(plan: Any, source: str = "plan") -> Dict[str, Any]:
    """Check a plan's structure (not yet against a model); returns it.
    Raises PlanError naming the file and the field."""
    if not isinstance(plan, dict):
        raise PlanError(f"{source}: a plan is a JSON object, got {type(plan).__name__}")
    if plan.get("format") != FORMAT:
        raise PlanError(f"{source}: format must be '{FORMAT}', got "
                        f"{json.dumps(plan.get('format'))}")
    version = plan.get("version")
    if isinstance(version, bool) or version not in range(1, VERSION + 1):
        raise PlanError(f"{source}: version {json.dumps(version)} is not supported "
                        f"(this reader supports versions 1..{VERSION})")
    _only(plan, {"format", "version", "model", "arch", "activation", "quantizer", "act_bits",
                 "layers", "reported"}, source)
    if "activation" in plan and plan["activation"] not in ACTIVATIONS:
        raise PlanError(f"{source}: activation must be one of {', '.join(ACTIVATIONS)}, got "
                        f"{json.dumps(plan['activation'])}")
    for key in ("model", "arch"):
        if not isinstance(plan.get(key), str) or not plan[key]:
            raise PlanError(f"{source}: '{key}' must be a non-empty string")
    q = plan.get("quantizer")
    if not isinstance(q, dict):
        raise PlanError(f"{source}: 'quantizer' must be an object with bits, method, clip")
    _only(q, {"bits", "method", "clip"}, f"{source}: quantizer")
    bits = _int_in(q.get("bits"), 1, 16, f"{source}: quantizer.bits")
    if q.get("method") not in ("uniform", "residual"):
        raise PlanError(f"{source}: quantizer.method must be 'uniform' or 'residual', got "
                        f"{json.dumps(q.get('method'))}")
    clip = q.get("clip", 0.0)
    if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not (
            np.isfinite(clip) and clip >= 0):
        raise PlanError(f"{source}: quantizer.clip must be a number >= 0, got "
                        f"{json.dumps(clip)}")
    _int_in(plan.get("act_bits"), 1, MAX_ACT_BITS, f"{source}: act_bits")
    layers = plan.get("layers")
    if not isinstance(layers, list) or not layers:
        raise PlanError(f"{source}: 'layers' must be a non-empty list")
    for i, entry in enumerate(layers):
        where = f"{source}: layers[{i}]"
        if not isinstance(entry, dict):
            raise PlanError(f"{where} must be an object")
        kind = entry.get("kind")
        if kind == "linear":
            sizes = {"in_features", "out_features"}
        elif kind in ("lstm", "gru"):
            sizes = {"input_size", "hidden_size"}
        else:
            raise PlanError(f"{where}.kind must be 'linear', 'lstm' or 'gru', got "
                            f"{json.dumps(kind)}")
        if kind != "linear" and "classes" in entry:
            raise PlanError(f"{where}.classes: an LSTM/GRU layer takes classes per operator, "
                            'e.g. "operators": {"recurrent": {"planes": 5, "classes": '
                            "[...]}}")
        _only(entry, {"name", "kind", "planes", "operators"} | sizes |
              ({"classes"} if kind == "linear" else set()), where)
        if not isinstance(entry.get("name"), str):
            raise PlanError(f"{where}.name must be a string")
        for s in sorted(sizes):
            _int_in(entry.get(s), 1, 1 << 40, f"{where}.{s}")
        planes = _int_in(entry.get("planes"), 1, bits, f"{where}.planes")
        if "operators" in entry:
            _check_operators(entry["operators"], kind, bits, _rows_of(entry), version,
                             f"{where}.operators")
        if "classes" in entry:
            _check_classes(entry["classes"], entry["out_features"], planes, version,
                           f"{where}.classes")
    return plan


def _check_operators(ops, kind: str, bits: int, rows: int, version, where: str):
    if kind == "linear":
        raise PlanError(f"{where}: a linear layer has one matrix; give its planes only")
    if not isinstance(ops, dict) or not ops:
        raise PlanError(f"{where} must be a non-empty object such as "
                        '{"input": 4, "recurrent": 3}')
    letters = GATE_LETTERS[kind]
    for name, value in ops.items():
        gate = name.split(".", 1)
        if len(gate) == 2 and gate[0] in RNN_OPERATORS and len(gate[1]) == 1 and \
                gate[1] in letters:
            if version < GATES_VERSION:
                raise PlanError(f"{where}.{name}: per-gate planes need version "
                                f"{GATES_VERSION} of the plan format, the plan says version "
                                f"{version}")
            _int_in(value, 1, bits, f"{where}.{name}")
            continue
        if name not in RNN_OPERATORS:
            raise PlanError(f"{where}: unknown operator '{name}' (expected 'input' or "
                            f"'recurrent', or per gate 'input.{letters[0]}' ... "
                            f"'recurrent.{letters[-1]}' with the {kind.upper()} gates "
                            f"{', '.join(letters)})")
        if isinstance(value, dict):
            _only(value, {"planes", "classes"}, f"{where}.{name}")
            cap = _int_in(value.get("planes"), 1, bits, f"{where}.{name}.planes")
            if "classes" not in value:
                raise PlanError(f"{where}.{name}: an operator object gives planes and "
                                "classes; without classes write the planes alone")
            _check_classes(value["classes"], rows, cap, version, f"{where}.{name}.classes")
        else:
            _int_in(value, 1, bits, f"{where}.{name}")
    for name in RNN_OPERATORS:
        given = [g for g in letters if f"{name}.{g}" in ops]
        if given and name in ops:
            raise PlanError(f"{where}: '{name}' is given whole and per gate "
                            f"({', '.join(f'{name}.{g}' for g in given)}); give one or the "
                            "other")
        if given and len(given) < len(letters):
            missing = [g for g in letters if g not in given]
            raise PlanError(f"{where}: '{name}' is given per gate for {', '.join(given)} but "
                            f"not for {', '.join(missing)}; list every gate")


def read_plan(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Read and validate a plan file. Raises PlanError for bad content and
    OSError when the file cannot be read."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        plan = json.loads(raw.decode("utf-8"))
    except ValueError as e:  # not UTF-8, not JSON, an integer of over 4300 digits
        raise PlanError(f"{path}: not valid JSON: {e}") from None
    except RecursionError:
        raise PlanError(f"{path}: not valid JSON: nested too deeply") from None
    return validate(plan, str(path))


_INT_LIST = re.compile(r"\[(?:\s*-?\d+\s*,)*\s*-?\d+\s*\]")


def write_plan(plan: Dict[str, Any], path: Union[str, os.PathLike]) -> None:
    validate(plan, str(path))
    text = json.dumps(plan, indent=1)
    # Lists of integers (the rows of a class) on one line each.
    text = _INT_LIST.sub(lambda m: json.dumps(json.loads(m.group(0))), text)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def _as_plan(plan: PlanLike) -> Tuple[Dict[str, Any], str]:
    """The validated plan and the name its messages use (its path, or "plan")."""
    if isinstance(plan, dict):
        return validate(plan), "plan"
    return read_plan(plan), str(plan)


# ---- applying --------------------------------------------------------------------


def apply_plan(model, plan: PlanLike, *, _source: Optional[str] = None) -> Dict[str, Any]:
    """Put a plan on a built MLP or CharRNN: every matrix gets its planned
    count (a PlannedMatrix), every layer the plan's act_bits; the layers'
    own ``planes`` defaults are cleared so the plan decides. The model's
    layers, sizes and quantizer must match the plan. Applying another plan
    replaces this one. Returns the validated plan."""
    plan, source = _as_plan(plan)
    source = _source or source
    layers = describe(model)
    if len(layers) != len(plan["layers"]):
        raise PlanError(f"{source}: {len(plan['layers'])} layers in the plan, "
                        f"{len(layers)} in the model ({', '.join(l.name for l in layers)})")
    q = plan["quantizer"]
    for layer, entry in zip(layers, plan["layers"]):
        where = f"{source}: layer '{entry['name']}'"
        if (entry["name"], entry["kind"]) != (layer.name, layer.kind):
            raise PlanError(f"{where} ({entry['kind']}) does not match the model's layer "
                            f"'{layer.name}' ({layer.kind})")
        for key, value in layer.sizes.items():
            if entry[key] != value:
                raise PlanError(f"{where}: {key} is {entry[key]} in the plan, {value} in "
                                "the model")
        for op in layer.operators:
            m = op.matrix
            if isinstance(m, Matrix) and (m.bits != q["bits"] or m.method != q["method"]):
                raise PlanError(f"{where}: the model's {op.name} matrix is quantized "
                                f"{m.method} with {m.bits} planes, the plan was made for "
                                f"{q['method']} with {q['bits']}")
    _check_row_planes(layers, plan, source)
    for layer, planes in zip(layers, _per_operator(layers, plan)):
        rnn = getattr(layer.obj, "rnn", None)
        for op, n in zip(layer.operators, planes):
            if isinstance(n, list) and rnn is not None and not rnn.split_gates:
                raise PlanError(f"{source}: layer '{layer.name}': the plan gives the {op.name} "
                                "matrix per-gate planes, which need a layer made with "
                                "split_gates=True; build the model with "
                                "bitplane.plan.load_model")
    for layer, planes in zip(layers, _per_operator(layers, plan)):
        layer.obj.planes = None
        layer.obj.act_bits = plan["act_bits"]
        for op, n in zip(layer.operators, planes):
            if layer.kind == "linear":
                setattr(op.owner, op.attr, PlannedMatrix(op.matrix, n))
            else:  # the C recurrent layer runs its matrices itself: cap its operators
                op.owner.plan_caps[RNN_CAP_KEYS[op.name]] = list(n) if isinstance(
                    n, list) else n
    return plan


def _check_row_planes(layers: List[Layer], plan, source: str) -> None:
    """Per-row counts are fixed when a matrix is quantized: the model's must
    be the plan's (none where the plan has no classes)."""
    ops = [(layer, op) for layer in layers for op in layer.operators]
    for (layer, op), want in zip(ops, plan_row_planes(plan)):
        m = op.matrix
        if not hasattr(m, "row_planes"):  # an fp32 twin: no planes at all
            continue
        have = np.asarray(m.row_planes)
        full = bool(np.all(have == m.bits))
        if want is None and not full:
            raise PlanError(f"{source}: layer '{layer.name}': the model's {op.name} matrix has "
                            "per-row plane counts and the plan has no classes for it; build "
                            "the model with bitplane.plan.load_model")
        if want is not None and not np.array_equal(have, want):
            raise PlanError(f"{source}: layer '{layer.name}': the plan gives the {op.name} "
                            "matrix per-row plane classes, which are fixed when it is "
                            "quantized, and the model's matrix " +
                            ("has none" if full else "has other counts") +
                            "; build the model with bitplane.plan.load_model")


def build_row_planes(plan) -> Optional[list]:
    """The row_planes argument of bitplane.models.build for a plan's classes
    (one entry per layer; LSTM/GRU layers a pair), or None without any."""
    flat = plan_row_planes(plan)
    if all(c is None for c in flat):
        return None
    out, i = [], 0
    for entry in plan["layers"]:
        if entry["kind"] == "linear":
            out.append(flat[i])
            i += 1
        else:
            out.append((flat[i], flat[i + 1]))
            i += 2
    return out


def _per_operator(layers: List[Layer], plan) -> List[List[int]]:
    flat, out, i = plan_planes(layers, plan), [], 0
    for layer in layers:
        out.append(flat[i:i + len(layer.operators)])
        i += len(layer.operators)
    return out


def load_model(plan: PlanLike, model: Optional[Union[str, os.PathLike]] = None, *,
               context: Optional[Context] = None):
    """Build the model a plan names (or `model`, a bundled name or a path),
    quantized as the plan says (and, for Linear stacks, with its activation),
    with the plan applied."""
    plan, source = _as_plan(plan)
    data = M.read(plan["model"] if model is None else model)
    if data.arch != plan["arch"]:
        raise PlanError(f"{source}: made for a '{plan['arch']}' model, {data.path} is "
                        f"'{data.arch}'")
    q = plan["quantizer"]
    row_planes = build_row_planes(plan)
    kw = {} if row_planes is None else {"row_planes": row_planes}
    if row_planes is not None:
        _check_layout(plan, data, source)
    if has_gates(plan):  # one matrix per gate, so each gate reads only its planes
        kw["split_gates"] = True
    built = M.build(data, bits=q["bits"], method=q["method"], clip=q["clip"],
                    context=context, activation=plan.get("activation", "relu"), **kw)
    apply_plan(built, plan, _source=source)
    return built


def _check_layout(plan, data, source: str) -> None:
    """The plan's layer count matches the model file before its counts are
    handed to the quantizer (apply_plan checks the rest)."""
    n = (int(data.arrays["rnn_layers"]) + 1 if data.arch in ("char_lstm", "char_gru")
         else len(M.linear_params(data)))
    if n != len(plan["layers"]):
        raise PlanError(f"{source}: {len(plan['layers'])} layers in the plan, {n} in the "
                        "model")
