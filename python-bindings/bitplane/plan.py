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

Room to grow without breaking version 1 files: per-gate operators (names
such as ``"input.r"`` or ``"recurrent.z"``, for the C RNN layers) and per-row
plane classes (a ``"classes"`` list on a layer or, as an object
``{"planes": n, "classes": [...]}``, on an operator) are reserved. Readers
refuse any field they cannot apply, naming it, rather than run a model at a
precision other than the plan's; a plan written today never uses them, so it
stays valid when they are added.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from . import models as M
from ._bitplane import Context, Matrix
from .layers import GRU, LSTM, Linear

FORMAT = "bitplane-precision-plan"
VERSION = 1
ROW_GROUP = 16  # rows per tile in a plane slab (bp_abi.h BP_ROW_GROUP)
K_ALIGN_BITS = 64  # columns are padded to this many bits (BP_K_ALIGN_BITS)
ACTIVATIONS = ("relu", "tanh", "none")  # between Linear layers (bitplane.models.MLP)
RNN_OPERATORS = {"input": "w_ih", "recurrent": "w_hh"}
RNN_CAP_KEYS = {"input": "ih", "recurrent": "hh"}
RESERVED_GATES = {"lstm": "ifgo", "gru": "rzn"}

__all__ = ["FORMAT", "VERSION", "PlanError", "PlannedMatrix", "Operator", "Layer",
           "describe", "weight_bytes", "make_plan", "validate", "read_plan", "write_plan",
           "apply_plan", "load_model", "plan_planes"]

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


class PlannedMatrix:
    """A Matrix whose products use at most `planes` planes: a call's planes
    (and per-column planes) are capped at it, None means `planes`. Everything
    else (rows, cols, prefix_error, ...) is the wrapped matrix's."""

    def __init__(self, matrix, planes: int):
        self.matrix = matrix
        self.planes = planes

    def gemm(self, x, planes=None, act_bits=None, bias=None, column_planes=None, **kwargs):
        n = self.planes if planes is None or planes == 0 else min(int(planes), self.planes)
        if column_planes is not None:
            column_planes = [n if c == 0 else min(int(c), n) for c in column_planes]
        return self.matrix.gemm(x, planes=n, act_bits=act_bits, bias=bias,
                                column_planes=column_planes, **kwargs)

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

    def bytes(self, planes: int) -> int:
        # A Matrix counts what a call really reads, which per-row plane
        # counts lower (Matrix.bytes_read); the same figure without them.
        m = self.matrix
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


def plan_planes(layers: List[Layer], plan: Dict[str, Any]) -> List[int]:
    """Planes per operator (describe() order) that a validated plan gives."""
    out = []
    for layer, entry in zip(layers, plan["layers"]):
        ops = entry.get("operators", {})
        out += [ops.get(op.name, entry["planes"]) for op in layer.operators]
    return out


def make_plan(model_name: str, arch: str, layers: List[Layer], planes: List[int], *,
              bits: int, method: str, clip: float, act_bits: int,
              activation: Optional[str] = None,
              reported: Optional[dict] = None) -> Dict[str, Any]:
    """A plan giving each operator (describe() order) its planes. Layers whose
    operators all share one count get just ``planes``."""
    if len(planes) != sum(len(l.operators) for l in layers):
        raise ValueError("one plane count per operator expected")
    entries, i = [], 0
    for layer in layers:
        mine = [int(p) for p in planes[i:i + len(layer.operators)]]
        i += len(layer.operators)
        entry = {"name": layer.name, "kind": layer.kind, **layer.sizes, "planes": max(mine)}
        if len(set(mine)) > 1:
            entry["operators"] = {op.name: p for op, p in zip(layer.operators, mine)}
        entries.append(entry)
    plan = {"format": FORMAT, "version": VERSION, "model": model_name, "arch": arch}
    if activation is not None:
        plan["activation"] = activation
    plan.update({"quantizer": {"bits": int(bits), "method": method, "clip": float(clip)},
            "act_bits": int(act_bits), "layers": entries})
    if reported is not None:
        plan["reported"] = reported
    return plan


# ---- reading and checking ---------------------------------------------------------


def _int_in(value, lo: int, hi: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise PlanError(f"{where} must be an integer {lo}..{hi}, got {json.dumps(value)}")
    return value


def _only(obj: dict, allowed: set, where: str):
    for key in obj:
        if key == "classes":
            raise PlanError(f"{where}.classes: per-row plane classes are reserved for "
                            "matrices stored with per-row plane counts, which this "
                            "version cannot load")
        if key not in allowed:
            raise PlanError(f"{where}: unknown field '{key}' (expected "
                            f"{', '.join(sorted(allowed))})")


def validate(plan: Any, source: str = "plan") -> Dict[str, Any]:
    """Check a plan's structure (not yet against a model); returns it.
    Raises PlanError naming the file and the field."""
    if not isinstance(plan, dict):
        raise PlanError(f"{source}: a plan is a JSON object, got {type(plan).__name__}")
    if plan.get("format") != FORMAT:
        raise PlanError(f"{source}: format must be '{FORMAT}', got "
                        f"{json.dumps(plan.get('format'))}")
    version = plan.get("version")
    if version != VERSION:
        raise PlanError(f"{source}: version {json.dumps(version)} is not supported "
                        f"(this reader supports version {VERSION})")
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
    _int_in(plan.get("act_bits"), 1, 16, f"{source}: act_bits")
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
        _only(entry, {"name", "kind", "planes", "operators"} | sizes, where)
        if not isinstance(entry.get("name"), str):
            raise PlanError(f"{where}.name must be a string")
        for s in sorted(sizes):
            _int_in(entry.get(s), 1, 1 << 40, f"{where}.{s}")
        _int_in(entry.get("planes"), 1, bits, f"{where}.planes")
        if "operators" in entry:
            _check_operators(entry["operators"], kind, bits, f"{where}.operators")
    return plan


def _check_operators(ops, kind: str, bits: int, where: str):
    if kind == "linear":
        raise PlanError(f"{where}: a linear layer has one matrix; give its planes only")
    if not isinstance(ops, dict) or not ops:
        raise PlanError(f"{where} must be a non-empty object such as "
                        '{"input": 4, "recurrent": 3}')
    for name, value in ops.items():
        gate = name.split(".", 1)
        if len(gate) == 2 and gate[0] in RNN_OPERATORS and gate[1] in RESERVED_GATES[kind]:
            raise PlanError(f"{where}.{name}: per-gate planes are reserved for the C RNN "
                            "layers; this version takes 'input' and 'recurrent'")
        if name not in RNN_OPERATORS:
            raise PlanError(f"{where}: unknown operator '{name}' (expected 'input' or "
                            "'recurrent')")
        if isinstance(value, dict) and "classes" in value:
            raise PlanError(f"{where}.{name}.classes: per-row plane classes are reserved "
                            "for matrices stored with per-row plane counts, which this "
                            "version cannot load")
        _int_in(value, 1, bits, f"{where}.{name}")


def read_plan(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Read and validate a plan file. Raises PlanError for bad content and
    OSError when the file cannot be read."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        plan = json.loads(text)
    except json.JSONDecodeError as e:
        raise PlanError(f"{path}: not valid JSON: {e}") from None
    return validate(plan, str(path))


def write_plan(plan: Dict[str, Any], path: Union[str, os.PathLike]) -> None:
    validate(plan, str(path))
    with open(path, "w", encoding="utf-8") as f:
        json.dump(plan, f, indent=1)
        f.write("\n")


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
    for layer, planes in zip(layers, _per_operator(layers, plan)):
        layer.obj.planes = None
        layer.obj.act_bits = plan["act_bits"]
        for op, n in zip(layer.operators, planes):
            if layer.kind == "linear":
                setattr(op.owner, op.attr, PlannedMatrix(op.matrix, n))
            else:  # the C recurrent layer runs its matrices itself: cap its operators
                op.owner.plan_caps[RNN_CAP_KEYS[op.name]] = n
    return plan


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
    built = M.build(data, bits=q["bits"], method=q["method"], clip=q["clip"],
                    context=context, activation=plan.get("activation", "relu"))
    apply_plan(built, plan, _source=source)
    return built
