"""Layers whose matrix products all go through bitplane.

``Linear``, ``LSTM`` and ``GRU`` follow PyTorch's conventions (weights stored
as ``weight[out, in]``; LSTM gate order i, f, g, o; GRU gate order r, z, n with
``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`` and ``h' = (1 - z) * n + z * h``).
``Linear`` products are :meth:`bitplane.Matrix.gemm`. ``LSTM`` and ``GRU`` run
in C (:class:`bitplane.RNN`, ``bitplane_rnn.h``): one call per sequence does
the batched input projection, every step's recurrent product and the gate
nonlinearities and state update; ``step()`` runs one step for streaming.

Precision is chosen per call (``planes=``, ``act_bits=``), or per layer
through the ``planes`` / ``act_bits`` attributes that a call's ``None`` falls
back to. ``None`` everywhere means all planes and 8 activation bits.

Every layer also has an ``fp32`` constructor whose products are NumPy
``x @ W.T`` (OpenBLAS) with NumPy float32 elementwise work: the baseline.
"""

from __future__ import annotations

import threading
from typing import Dict, Optional, Tuple

import numpy as np

from ._bitplane import RNN, Context, Matrix

__all__ = ["DenseMatmul", "Linear", "LSTM", "GRU", "sigmoid", "INPUT_MEAN_CALIBRATION"]

# Linear(..., calibration=X, input_mean=INPUT_MEAN_CALIBRATION): the mean of X's rows.
INPUT_MEAN_CALIBRATION = "calibration"


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function in float32, written with tanh so large |x| cannot overflow."""
    return np.float32(0.5) * (np.tanh(np.float32(0.5) * x) + np.float32(1.0))


def _layout_kwargs(group_size: Optional[int], rotation: Optional[int],
                   rotation_seed: int) -> dict:
    """The quantize layout options a caller gave (None: the library default)."""
    kw = {"rotation_seed": rotation_seed}
    if group_size is not None:
        kw["group_size"] = group_size
    if rotation is not None:
        kw["rotation"] = rotation
    return kw


def _as_f32(a, name: str) -> np.ndarray:
    """`a` as a contiguous float32 array if it holds real numbers (any float,
    int or uint dtype); a TypeError naming it otherwise, since NumPy's own
    conversion would read strings such as "1.5" as numbers, bools as 0/1
    and drop the imaginary part of complex values."""
    try:
        arr = np.asarray(a)
    except ValueError as e:  # ragged nested lists
        raise ValueError(f"{name} is not a rectangular array: {e}") from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers (a float or integer array), got "
                        f"dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _f32(a, name: str) -> np.ndarray:
    a = _as_f32(a, name)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or Inf")
    return a


class _MeanShift:
    """Bias correction for one quantized matrix: at n planes, the output
    shift ``(W - W_n) mean`` that the weight error causes at the input mean
    (docs/numerics.md, "Bias correction"). ``W mean`` is computed once, in
    float64, from the float weights, which are not kept; each ``W_n mean``
    comes from the matrix's own ``dequantize(n)`` at the first call with n
    planes, so a layer keeps ``rows`` float64 values plus ``rows`` float32
    values per plane count used."""

    def __init__(self, matrix, weight, mean):
        rows, cols = matrix.rows, matrix.cols
        m = np.asarray(mean)
        if m.dtype.kind not in "fiu":
            raise TypeError(f"input_mean must be an array of numbers, got dtype {m.dtype}")
        if m.shape != (cols,):
            raise ValueError(f"input_mean must have shape (in_features,) = ({cols},), "
                             f"got {m.shape}")
        m = m.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(m))
        if bad.size:
            raise ValueError(f"input_mean[{bad[0]}] is {m[bad[0]]}: the input mean must be finite")
        w = np.asarray(weight, np.float64)
        if w.shape != (rows, cols):
            raise ValueError(f"weight must have the matrix's shape ({rows}, {cols}), got {w.shape}")
        self.matrix = matrix
        self.mean = m
        self.w_mean = w @ m
        self._shifts: Dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def shift(self, n: int) -> np.ndarray:
        """(W - W_n) mean as float32, computed at the first call with n
        planes (one thread computes it, the others wait for it)."""
        s = self._shifts.get(n)
        if s is None:
            with self._lock:
                s = self._shifts.get(n)
                if s is None:
                    wn_mean = self.matrix.dequantize(n).astype(np.float64) @ self.mean
                    s = (self.w_mean - wn_mean).astype(np.float32)
                    self._shifts[n] = s
        return s

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"]
        state["_shifts"] = dict(self._shifts)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


class DenseMatmul:
    """A float32 weight matrix with :meth:`Matrix.gemm`'s call signature,
    computed by NumPy (OpenBLAS sgemm): the fp32 baseline. ``planes`` and
    ``act_bits`` are accepted and ignored."""

    def __init__(self, w: np.ndarray):
        self.w = _f32(w, "weight")
        self._wt = self.w.T  # a view; matmul with a transposed operand is sgemm 'T'
        self.rows, self.cols = self.w.shape
        self.bits = 32

    def gemm(self, x, planes=None, act_bits=None, bias=None, out=None, activation=None, **_):
        y = np.matmul(x, self._wt, out=out)
        if bias is not None:
            y += bias
        if activation == "relu":
            np.maximum(y, np.float32(0.0), out=y)
        elif activation not in (None, "none"):
            raise ValueError(f"activation must be None, 'none' or 'relu', got {activation!r}")
        return y


class Linear:
    """``y = x W^T + b`` with W quantized into bit planes.

    Args:
        weight: (out_features, in_features), any float dtype (copied to float32).
        bias: (out_features,) or None.
        bits, method, clip, group_size, rotation, rotation_seed, calibration, context,
            row_planes: as :meth:`Matrix.quantize` (None: the library default;
            row_planes: per-row plane counts, docs/row-planes.md).
        planes, act_bits: this layer's defaults for calls that pass None.
        input_mean: bias correction (docs/numerics.md, "Bias correction"):
            the mean of the layer's inputs, (in_features,) finite numbers, or
            ``"calibration"`` (:data:`INPUT_MEAN_CALIBRATION`) for the mean
            of the ``calibration`` rows. A call with n planes then adds
            ``(W - W_n) input_mean`` to its output, the shift the weight
            error causes at that mean, per batch column at that column's n.
            None (the default): no correction.
    """

    def __init__(self, weight, bias=None, *, bits: int = 8, method: str = "uniform",
                 clip: float = 0.0, group_size: Optional[int] = None,
                 rotation: Optional[int] = None, rotation_seed: int = 0, calibration=None,
                 context: Optional[Context] = None, planes: Optional[int] = None,
                 act_bits: Optional[int] = None, row_planes=None, input_mean=None):
        w = _f32(weight, "weight")
        if w.ndim != 2:
            raise ValueError(f"weight must be 2-dimensional (out, in), got shape {w.shape}")
        if isinstance(input_mean, str):
            if input_mean != INPUT_MEAN_CALIBRATION:
                raise ValueError(f"input_mean must be an array or "
                                 f"'{INPUT_MEAN_CALIBRATION}', got '{input_mean}'")
            if calibration is None:
                raise ValueError(f"input_mean='{INPUT_MEAN_CALIBRATION}' needs calibration "
                                 "samples (calibration=)")
        matrix = Matrix.quantize(w, bits=bits, method=method, clip=clip, context=context,
                                 calibration=calibration, row_planes=row_planes,
                                 **_layout_kwargs(group_size, rotation, rotation_seed))
        if isinstance(input_mean, str):  # quantize has checked the samples
            input_mean = np.asarray(calibration, np.float64).reshape(-1, w.shape[1]).mean(axis=0)
        self._init(matrix, bias, planes, act_bits, input_mean, w)

    def _init(self, matrix, bias, planes, act_bits, input_mean=None, weight=None):
        self.matrix = matrix
        self.bias = None if bias is None else _f32(bias, "bias")
        if self.bias is not None and self.bias.shape != (matrix.rows,):
            raise ValueError(f"bias must have shape ({matrix.rows},), got {self.bias.shape}")
        self.planes = planes
        self.act_bits = act_bits
        self._mean_shift = None
        if input_mean is not None:
            if not isinstance(matrix, Matrix):
                raise TypeError(f"input_mean needs a quantized bitplane.Matrix, got "
                                f"{type(matrix).__name__}")
            if weight is None:
                raise ValueError("input_mean needs the float weights the matrix was quantized "
                                 "from (weight=), used once to compute W @ input_mean")
            self._mean_shift = _MeanShift(matrix, _f32(weight, "weight"), input_mean)

    @classmethod
    def from_matrix(cls, matrix, bias=None, *, planes=None, act_bits=None, input_mean=None,
                    weight=None) -> "Linear":
        """A layer around an existing Matrix (or DenseMatmul). input_mean
        (bias correction, as in the constructor) also needs ``weight``, the
        float weights the matrix was quantized from: they are read once,
        here, and not kept."""
        self = cls.__new__(cls)
        self._init(matrix, bias, planes, act_bits, input_mean, weight)
        return self

    @property
    def input_mean(self) -> Optional[np.ndarray]:
        """The bias correction's input mean (float64), or None without one."""
        return None if self._mean_shift is None else self._mean_shift.mean

    def _plane_count(self, planes) -> int:
        """The plane count a call (or column) with `planes` uses: all for
        None or 0, capped by a precision plan (bitplane.plan.PlannedMatrix)."""
        m = self._mean_shift.matrix
        n = m.bits if planes is None or int(planes) == 0 else int(planes)
        cap = getattr(self.matrix, "plan_cap", None)
        return n if cap is None else min(n, cap)

    def _add_shift(self, y, planes, column_planes) -> None:
        """y (batch, out) += each column's (W - W_n) input_mean, in place."""
        if column_planes is None:
            y += self._mean_shift.shift(self._plane_count(planes))
            return
        call = self._plane_count(planes)
        counts = np.array([call if int(c) == 0 else self._plane_count(c)
                           for c in column_planes])
        for n in np.unique(counts):
            y[counts == n] += self._mean_shift.shift(int(n))

    @classmethod
    def fp32(cls, weight, bias=None) -> "Linear":
        """The same layer with NumPy float32 products (the baseline)."""
        return cls.from_matrix(DenseMatmul(weight), bias)

    @property
    def in_features(self) -> int:
        return self.matrix.cols

    @property
    def out_features(self) -> int:
        return self.matrix.rows

    def __call__(self, x, planes: Optional[int] = None, act_bits: Optional[int] = None,
                 out: Optional[np.ndarray] = None,
                 activation: Optional[str] = None, column_planes=None) -> np.ndarray:
        """x: (..., in_features). Returns (..., out_features) float32.
        activation: None or 'relu', applied after the bias as y is written
        (:meth:`Matrix.gemm`). column_planes: one plane count per row of x
        (2-D x; 0 = the call's planes), as :meth:`Matrix.gemm`.

        With an input mean, y = gemm(x, bias) + (W - W_n) input_mean, one
        float32 add per output, then the ReLU."""
        x = _as_f32(x, "x")
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        planes = self.planes if planes is None else planes
        shifted = self._mean_shift is not None
        relu_after = shifted and activation == "relu"
        kw = {} if column_planes is None else {"column_planes": column_planes}
        y = self.matrix.gemm(x2, planes=planes,
                             act_bits=self.act_bits if act_bits is None else act_bits,
                             bias=self.bias, out=out,
                             activation=None if relu_after else activation, **kw)
        if shifted and y.size:
            self._add_shift(y, planes, column_planes)
            if relu_after:  # as the library's ReLU: +0 for every y <= 0 (+0 turns -0 into +0)
                np.maximum(y, np.float32(0.0), out=y)
                y += np.float32(0.0)
        return y.reshape(*lead, self.out_features) if x.ndim != 2 else y

    def __repr__(self) -> str:
        return (f"Linear({self.in_features}, {self.out_features}, planes={self.planes}, "
                f"act_bits={self.act_bits})")


class _RNNMatrix:
    """One operator's weights of a C recurrent layer ("ih" or "hh"), with the
    Matrix calls the sweep and tests use: ``prefix_error(n)``,
    ``dequantize(planes)``, ``rows``, ``cols``, ``bits``, ``method``."""

    def __init__(self, rnn: RNN, op: str, method: str, gate_norms):
        self._rnn, self._op, self.method = rnn, op, method
        self._gates = list(range(rnn.gates)) if rnn.split_gates else [-1]
        self._norms = gate_norms  # ||W_g||_F per stored matrix
        self.rows = rnn.gates * rnn.hidden_size
        self.cols = rnn.input_size if op == "ih" else rnn.hidden_size
        self.bits = rnn.bits

    def prefix_error(self, n: int) -> float:
        errs = [self._rnn.prefix_error(0, self._op, n, g) for g in self._gates]
        num = sum((e * w) ** 2 for e, w in zip(errs, self._norms))
        den = sum(w * w for w in self._norms)
        return float(np.sqrt(num / den)) if den > 0 else 0.0

    def dequantize(self, planes: Optional[int] = None) -> np.ndarray:
        return np.concatenate([self._rnn.dequantize(0, self._op, planes or 0, g)
                               for g in self._gates])

    @property
    def row_planes(self) -> np.ndarray:
        """Per-row plane counts (uint8, the weights' row order; bits for
        every row of a matrix quantized without them)."""
        return np.concatenate([self._rnn.row_planes(0, self._op, g) for g in self._gates])

    def bytes_read(self, planes=None) -> int:
        """Weight bytes one product reads at `planes` (None = all, or with
        split gates one count per gate), as :meth:`Matrix.bytes_read`:
        per-row counts lower it."""
        if isinstance(planes, (list, tuple, np.ndarray)):
            if len(self._gates) != len(planes):
                raise ValueError(f"one plane count per gate needs a layer made with "
                                 f"split_gates=True and {self._rnn.gates} counts, got "
                                 f"{len(planes)}")
            return sum(self._rnn.bytes_read(0, self._op, int(p), g)
                       for p, g in zip(planes, self._gates))
        return sum(self._rnn.bytes_read(0, self._op, planes or 0, g) for g in self._gates)


class _Recurrent:
    """Shared parts of LSTM and GRU: the C layer (one ``RNN`` of one layer),
    per-layer precision defaults, and the NumPy fp32 twin.

    ``row_planes=(ih, hh)`` gives the rows of ``weight_ih`` and ``weight_hh``
    their own plane counts (each None or gates*hidden ints 1..bits in the
    weights' row order; docs/row-planes.md): row r uses min(count, the
    call's planes), and a product reads only the planes its rows use.

    ``group_size``, ``rotation`` and ``rotation_seed`` are :meth:`RNN.quantize`'s
    (None: the library default, groups of 32 and no rotation; a rotation needs
    float mode, the integer mode refuses it)."""

    gates = 0
    cell = ""

    def __init__(self, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *, bits: int = 8,
                 method: str = "uniform", clip: float = 0.0,
                 group_size: Optional[int] = None, rotation: Optional[int] = None,
                 rotation_seed: int = 0,
                 context: Optional[Context] = None, planes: Optional[int] = None,
                 act_bits: Optional[int] = None, integer: bool = False,
                 split_gates: bool = False, row_planes=None, _dense: bool = False):
        w_ih = _f32(weight_ih, "weight_ih")
        w_hh = _f32(weight_hh, "weight_hh")
        g = self.gates
        if w_hh.ndim != 2 or w_hh.shape[0] != g * w_hh.shape[1]:
            raise ValueError(f"weight_hh must have shape ({g}*hidden, hidden), got {w_hh.shape}")
        self.hidden_size = w_hh.shape[1]
        if w_ih.ndim != 2 or w_ih.shape[0] != g * self.hidden_size:
            raise ValueError(f"weight_ih must have shape ({g * self.hidden_size}, input), "
                             f"got {w_ih.shape}")
        self.input_size = w_ih.shape[1]
        n = g * self.hidden_size
        self.bias_ih = np.zeros(n, np.float32) if bias_ih is None else _f32(bias_ih, "bias_ih")
        self.bias_hh = np.zeros(n, np.float32) if bias_hh is None else _f32(bias_hh, "bias_hh")
        for name, b in (("bias_ih", self.bias_ih), ("bias_hh", self.bias_hh)):
            if b.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {b.shape}")
        self.planes = planes
        self.act_bits = act_bits
        self.integer = integer
        # Per-operator ceilings from a precision plan (bitplane.plan), an
        # int or (split gates) one per gate: a call's planes, planes_ih or
        # planes_hh can lower them, never raise.
        self.plan_caps = {"ih": None, "hh": None}
        self.rnn = None
        if _dense:
            self.w_ih, self.w_hh = DenseMatmul(w_ih), DenseMatmul(w_hh)
            return
        self.rnn = RNN.quantize(self.cell, [(w_ih, w_hh, self.bias_ih, self.bias_hh)], bits=bits,
                                method=method, clip=clip, context=context,
                                split_gates=split_gates,
                                row_planes=None if row_planes is None else [tuple(row_planes)],
                                **_layout_kwargs(group_size, rotation, rotation_seed))
        blocks = g if split_gates else 1

        def norms(w):
            return [float(np.linalg.norm(b)) for b in np.split(w.astype(np.float64), blocks)]

        self.w_ih = _RNNMatrix(self.rnn, "ih", method, norms(w_ih))
        self.w_hh = _RNNMatrix(self.rnn, "hh", method, norms(w_hh))

    @classmethod
    def fp32(cls, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
        """The same layer with NumPy float32 products and elementwise work (the baseline)."""
        return cls(weight_ih, weight_hh, bias_ih, bias_hh, _dense=True)

    @staticmethod
    def _capped(planes, cap):
        """planes (None/0 = all, an int, or one per gate) limited to cap
        (None, an int, or one per gate)."""
        if cap is None:
            return planes
        if planes is None:
            return cap
        per_gate = isinstance(planes, (list, tuple, np.ndarray))
        if isinstance(cap, (list, tuple)):
            planes = list(planes) if per_gate else [planes] * len(cap)
            if len(planes) != len(cap):
                raise ValueError(f"planes per gate: {len(cap)} counts expected, got "
                                 f"{len(planes)}")
            return [c if int(p) == 0 else min(int(p), c) for p, c in zip(planes, cap)]
        if per_gate:
            return [cap if int(p) == 0 else min(int(p), cap) for p in planes]
        return cap if int(planes) == 0 else min(int(planes), cap)

    def _run_kwargs(self, planes, act_bits, planes_ih, planes_hh, integer):
        planes = self.planes if planes is None else planes
        return dict(planes_ih=self._capped(planes if planes_ih is None else planes_ih,
                                           self.plan_caps["ih"]),
                    planes_hh=self._capped(planes if planes_hh is None else planes_hh,
                                           self.plan_caps["hh"]),
                    act_bits=self.act_bits if act_bits is None else act_bits,
                    integer=self.integer if integer is None else integer)

    def _inputs(self, x):
        """(T, B, input) float32 and whether the input was unbatched (T, input)."""
        x = _as_f32(x, "x")
        unbatched = x.ndim == 2 and x.shape[1] == self.input_size
        if not unbatched and (x.ndim != 3 or x.shape[2] != self.input_size):
            raise ValueError(f"x must have shape (T, batch, {self.input_size}) or "
                             f"(T, {self.input_size}), got {x.shape}")
        if 0 in x.shape:
            raise ValueError(f"x must have at least one step and one batch column, got shape "
                             f"{x.shape}")
        return (x[:, None, :] if unbatched else x), unbatched

    def _state(self, s, b, name):
        a = _as_f32(s, name)
        if a.size != b * self.hidden_size:
            raise ValueError(f"{name} must have {b} x {self.hidden_size} values "
                             f"(batch, hidden), got shape {a.shape}")
        return a.reshape(b, self.hidden_size)

    def _zeros(self, b):
        return np.zeros((b, self.hidden_size), np.float32)

    def _split_state(self, state, b):
        """(h, c-or-None) from a call's state argument."""
        raise NotImplementedError

    def _join_state(self, h, c, unbatched):
        raise NotImplementedError

    def __call__(self, x, state=None, planes: Optional[int] = None,
                 act_bits: Optional[int] = None, *, planes_ih=None, planes_hh=None,
                 integer: Optional[bool] = None):
        """Run a whole sequence: one C call (``fp32`` twins: a NumPy loop).

        x: (T, batch, input_size) or (T, input_size). planes: both operators
        (None = the layer's ``planes``, else all); planes_ih / planes_hh
        override it per operator, as an int or one int per gate (layers made
        with ``split_gates=True``). integer: the integer elementwise mode
        (None = the layer's ``integer``). Returns (outputs, state).
        """
        x, unbatched = self._inputs(x)
        t_len, b, _ = x.shape
        h, c = self._split_state(state, b)
        if self.rnn is None:
            out, h, c = self._numpy_loop(x, h, c)
        else:
            kw = self._run_kwargs(planes, act_bits, planes_ih, planes_hh, integer)
            y, h, c = self.rnn.forward(x.reshape(t_len * b, -1), t_len, h0=h, c0=c, **kw)
            out = y.reshape(t_len, b, self.hidden_size)
        if unbatched:
            return out[:, 0], self._join_state(h, c, True)
        return out, self._join_state(h, c, False)

    def step(self, x, state=None, planes: Optional[int] = None,
             act_bits: Optional[int] = None, *, planes_ih=None, planes_hh=None,
             integer: Optional[bool] = None, column_planes=None):
        """One time step for streaming: x (batch, input_size) or (input_size,).
        Returns (h, state). The state arrays are float32 and updated in place
        when passed back in, so a stream allocates nothing per step. Equal,
        bit for bit, to the sequence call over the same steps.

        column_planes: one plane count per row of x (0 = the call's), capping
        every count of the call for that row (``bp_rnn_step_columns``), so
        streams at different precisions share one step; each row equals its
        own step at ``planes=column_planes[i]`` (act_bits >= 2)."""
        if self.rnn is None:
            raise TypeError("step() runs the C layer; an fp32 twin has only the sequence call")
        x = _as_f32(x, "x")
        unbatched = x.ndim == 1
        x2 = x[None, :] if unbatched else x
        if x2.ndim != 2 or x2.shape[1] != self.input_size:
            raise ValueError(f"x must have shape (batch, {self.input_size}) or "
                             f"({self.input_size},), got {x.shape}")
        b = x2.shape[0]
        if b == 0:
            raise ValueError(f"x must have at least one batch row, got shape {x.shape}")
        h, c = self._split_state(state, b)
        h = self._zeros(b) if h is None else h
        if self.gates == 4 and c is None:
            c = self._zeros(b)
        self.rnn.step(x2, h, c, column_planes=column_planes,
                      **self._run_kwargs(planes, act_bits, planes_ih, planes_hh, integer))
        return (h[0] if unbatched else h), self._join_state(h, c, False)

    def __repr__(self) -> str:
        kind = "fp32" if self.rnn is None else ("split gates" if self.rnn.split_gates else
                                                "fused gates")
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}, {kind}, "
                f"planes={self.planes}, act_bits={self.act_bits}, integer={self.integer})")


class LSTM(_Recurrent):
    """One LSTM layer (PyTorch gate order i, f, g, o), sequence-first.

    ``layer(x, state=None, planes=None, act_bits=None)`` with x of shape
    (T, batch, input_size) or (T, input_size) returns ``(outputs, (h, c))``,
    outputs of shape (T, batch, hidden) (or (T, hidden)); state defaults to
    zeros. ``layer.step(x, state)`` runs one step.
    """

    gates = 4
    cell = "lstm"

    def _split_state(self, state, b):
        if state is None:
            return None, None
        return self._state(state[0], b, "h"), self._state(state[1], b, "c")

    def _join_state(self, h, c, unbatched):
        return (h[0], c[0]) if unbatched else (h, c)

    def _numpy_loop(self, x, h, c):
        t_len, b, _ = x.shape
        hs = self.hidden_size
        h = self._zeros(b) if h is None else h
        c = self._zeros(b) if c is None else c
        gi = self.w_ih.gemm(x.reshape(t_len * b, -1), bias=self.bias_ih).reshape(t_len, b, -1)
        gh = np.empty((b, 4 * hs), np.float32)
        outputs = np.empty((t_len, b, hs), np.float32)
        for t in range(t_len):
            self.w_hh.gemm(h, bias=self.bias_hh, out=gh)
            gates = gi[t] + gh
            i = sigmoid(gates[:, :hs])
            f = sigmoid(gates[:, hs:2 * hs])
            g = np.tanh(gates[:, 2 * hs:3 * hs])
            o = sigmoid(gates[:, 3 * hs:])
            c = f * c + i * g
            h = o * np.tanh(c)
            outputs[t] = h
        return outputs, h, c


class GRU(_Recurrent):
    """One GRU layer (PyTorch gate order r, z, n), sequence-first.

    ``layer(x, state=None, planes=None, act_bits=None)`` returns
    ``(outputs, h)``; shapes as :class:`LSTM`. ``layer.step(x, h)`` runs one
    step.
    """

    gates = 3
    cell = "gru"

    def _split_state(self, state, b):
        return (None if state is None else self._state(state, b, "h")), None

    def _join_state(self, h, c, unbatched):
        return h[0] if unbatched else h

    def _numpy_loop(self, x, h, c):
        t_len, b, _ = x.shape
        hs = self.hidden_size
        h = self._zeros(b) if h is None else h
        gi = self.w_ih.gemm(x.reshape(t_len * b, -1), bias=self.bias_ih).reshape(t_len, b, -1)
        gh = np.empty((b, 3 * hs), np.float32)
        outputs = np.empty((t_len, b, hs), np.float32)
        for t in range(t_len):
            self.w_hh.gemm(h, bias=self.bias_hh, out=gh)
            r = sigmoid(gi[t, :, :hs] + gh[:, :hs])
            z = sigmoid(gi[t, :, hs:2 * hs] + gh[:, hs:2 * hs])
            n = np.tanh(gi[t, :, 2 * hs:] + r * gh[:, 2 * hs:])
            h = (np.float32(1.0) - z) * n + z * h
            outputs[t] = h
        return outputs, h, None
