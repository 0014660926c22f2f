"""Layers whose matrix products all go through bitplane.

``Linear``, ``LSTM`` and ``GRU`` follow PyTorch's conventions (weights stored
as ``weight[out, in]``; LSTM gate order i, f, g, o; GRU gate order r, z, n with
``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`` and ``h' = (1 - z) * n + z * h``).
Every matrix product is a :meth:`bitplane.Matrix.gemm`; the elementwise work
uses NumPy in float32.

Precision is chosen per call (``planes=``, ``act_bits=``), or per layer
through the ``planes`` / ``act_bits`` attributes that a call's ``None`` falls
back to. ``None`` everywhere means all planes and 8 activation bits.

Every layer also has an ``fp32`` constructor whose products are NumPy
``x @ W.T`` (OpenBLAS): the same elementwise code, so comparing the two
isolates the effect of bitplane's products.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ._bitplane import Context, Matrix

__all__ = ["DenseMatmul", "Linear", "LSTM", "GRU", "sigmoid"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function in float32, written with tanh so large |x| cannot overflow."""
    return np.float32(0.5) * (np.tanh(np.float32(0.5) * x) + np.float32(1.0))


def _f32(a, name: str) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or Inf")
    return a


class DenseMatmul:
    """A float32 weight matrix with :meth:`Matrix.gemm`'s call signature,
    computed by NumPy (OpenBLAS sgemm): the fp32 baseline. ``planes`` and
    ``act_bits`` are accepted and ignored."""

    def __init__(self, w: np.ndarray):
        self.w = _f32(w, "weight")
        self._wt = self.w.T  # a view; matmul with a transposed operand is sgemm 'T'
        self.rows, self.cols = self.w.shape
        self.bits = 32

    def gemm(self, x, planes=None, act_bits=None, bias=None, out=None, **_):
        y = np.matmul(x, self._wt, out=out)
        if bias is not None:
            y += bias
        return y


class Linear:
    """``y = x W^T + b`` with W quantized into bit planes.

    Args:
        weight: (out_features, in_features), any float dtype (copied to float32).
        bias: (out_features,) or None.
        bits, method, clip, context: as :meth:`Matrix.quantize`.
        planes, act_bits: this layer's defaults for calls that pass None.
    """

    def __init__(self, weight, bias=None, *, bits: int = 8, method: str = "uniform",
                 clip: float = 0.0, context: Optional[Context] = None,
                 planes: Optional[int] = None, act_bits: Optional[int] = None):
        w = _f32(weight, "weight")
        if w.ndim != 2:
            raise ValueError(f"weight must be 2-dimensional (out, in), got shape {w.shape}")
        self._init(Matrix.quantize(w, bits=bits, method=method, clip=clip, context=context),
                   bias, planes, act_bits)

    def _init(self, matrix, bias, planes, act_bits):
        self.matrix = matrix
        self.bias = None if bias is None else _f32(bias, "bias")
        if self.bias is not None and self.bias.shape != (matrix.rows,):
            raise ValueError(f"bias must have shape ({matrix.rows},), got {self.bias.shape}")
        self.planes = planes
        self.act_bits = act_bits

    @classmethod
    def from_matrix(cls, matrix, bias=None, *, planes=None, act_bits=None) -> "Linear":
        """A layer around an existing Matrix (or DenseMatmul)."""
        self = cls.__new__(cls)
        self._init(matrix, bias, planes, act_bits)
        return self

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
                 out: Optional[np.ndarray] = None) -> np.ndarray:
        """x: (..., in_features). Returns (..., out_features) float32."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        y = self.matrix.gemm(x2, planes=self.planes if planes is None else planes,
                             act_bits=self.act_bits if act_bits is None else act_bits,
                             bias=self.bias, out=out)
        return y.reshape(*lead, self.out_features) if x.ndim != 2 else y

    def __repr__(self) -> str:
        return (f"Linear({self.in_features}, {self.out_features}, planes={self.planes}, "
                f"act_bits={self.act_bits})")


class _Recurrent:
    """Shared parts of LSTM and GRU: two matrices, per-layer precision, and the
    input projection of a whole sequence as one batched product (activations
    are quantized per vector, so batching over time changes no result)."""

    gates = 0

    def __init__(self, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *, bits: int = 8,
                 method: str = "uniform", clip: float = 0.0,
                 context: Optional[Context] = None, planes: Optional[int] = None,
                 act_bits: Optional[int] = None, _dense: bool = False):
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
        if _dense:
            self.w_ih, self.w_hh = DenseMatmul(w_ih), DenseMatmul(w_hh)
        else:
            self.w_ih = Matrix.quantize(w_ih, bits=bits, method=method, clip=clip,
                                        context=context)
            self.w_hh = Matrix.quantize(w_hh, bits=bits, method=method, clip=clip,
                                        context=context)
        self.planes = planes
        self.act_bits = act_bits

    @classmethod
    def fp32(cls, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
        """The same layer with NumPy float32 products (the baseline)."""
        return cls(weight_ih, weight_hh, bias_ih, bias_hh, _dense=True)

    def _precision(self, planes, act_bits):
        return (self.planes if planes is None else planes,
                self.act_bits if act_bits is None else act_bits)

    def _inputs(self, x):
        """(T, B, input) float32 and whether the input was unbatched (T, input)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim == 2:
            return x[:, None, :], True
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"x must have shape (T, batch, {self.input_size}) or "
                             f"(T, {self.input_size}), got {x.shape}")
        return x, False

    def _project_inputs(self, x, planes, act_bits):
        t, b, e = x.shape
        gi = self.w_ih.gemm(x.reshape(t * b, e), planes=planes, act_bits=act_bits,
                            bias=self.bias_ih)
        return gi.reshape(t, b, -1)

    def _zeros(self, b):
        return np.zeros((b, self.hidden_size), np.float32)


class LSTM(_Recurrent):
    """One LSTM layer (PyTorch gate order i, f, g, o), sequence-first.

    ``layer(x, state=None, planes=None, act_bits=None)`` with x of shape
    (T, batch, input_size) or (T, input_size) returns ``(outputs, (h, c))``,
    outputs of shape (T, batch, hidden) (or (T, hidden)); state defaults to
    zeros.
    """

    gates = 4

    def __call__(self, x, state: Optional[Tuple[np.ndarray, np.ndarray]] = None,
                 planes: Optional[int] = None, act_bits: Optional[int] = None):
        planes, act_bits = self._precision(planes, act_bits)
        x, unbatched = self._inputs(x)
        t_len, b, _ = x.shape
        hs = self.hidden_size
        h, c = (self._zeros(b), self._zeros(b)) if state is None else (
            np.ascontiguousarray(state[0], np.float32).reshape(b, hs),
            np.ascontiguousarray(state[1], np.float32).reshape(b, hs))
        gi = self._project_inputs(x, planes, act_bits)
        gh = np.empty((b, 4 * hs), np.float32)
        outputs = np.empty((t_len, b, hs), np.float32)
        for t in range(t_len):
            self.w_hh.gemm(h, planes=planes, act_bits=act_bits, bias=self.bias_hh, out=gh)
            gates = gi[t] + gh
            i = sigmoid(gates[:, :hs])
            f = sigmoid(gates[:, hs:2 * hs])
            g = np.tanh(gates[:, 2 * hs:3 * hs])
            o = sigmoid(gates[:, 3 * hs:])
            c = f * c + i * g
            h = o * np.tanh(c)
            outputs[t] = h
        if unbatched:
            return outputs[:, 0], (h[0], c[0])
        return outputs, (h, c)


class GRU(_Recurrent):
    """One GRU layer (PyTorch gate order r, z, n), sequence-first.

    ``layer(x, state=None, planes=None, act_bits=None)`` returns
    ``(outputs, h)``; shapes as :class:`LSTM`.
    """

    gates = 3

    def __call__(self, x, state: Optional[np.ndarray] = None, planes: Optional[int] = None,
                 act_bits: Optional[int] = None):
        planes, act_bits = self._precision(planes, act_bits)
        x, unbatched = self._inputs(x)
        t_len, b, _ = x.shape
        hs = self.hidden_size
        h = self._zeros(b) if state is None else np.ascontiguousarray(
            state, np.float32).reshape(b, hs)
        gi = self._project_inputs(x, planes, act_bits)
        gh = np.empty((b, 3 * hs), np.float32)
        outputs = np.empty((t_len, b, hs), np.float32)
        for t in range(t_len):
            self.w_hh.gemm(h, planes=planes, act_bits=act_bits, bias=self.bias_hh, out=gh)
            r = sigmoid(gi[t, :, :hs] + gh[:, :hs])
            z = sigmoid(gi[t, :, hs:2 * hs] + gh[:, hs:2 * hs])
            n = np.tanh(gi[t, :, 2 * hs:] + r * gh[:, 2 * hs:])
            h = (np.float32(1.0) - z) * n + z * h
            outputs[t] = h
        if unbatched:
            return outputs[:, 0], h[0]
        return outputs, h
