"""Per-row plane counts: importance scores for the rows of a weight matrix and
their split into a few plane classes (docs/row-planes.md).

``Matrix.quantize(w, row_planes=counts)`` gives row r at most ``counts[r]``
planes; a call's ``planes`` caps it further, and a call reads only the bit
slabs its rows use. The counts come from scores (higher score, more planes)
and a budget, the mean planes per row:

>>> import numpy as np, bitplane
>>> from bitplane import row_planes as rp
>>> w = np.random.default_rng(0).standard_normal((256, 64), dtype=np.float32)
>>> x = np.random.default_rng(1).standard_normal((100, 64), dtype=np.float32)
>>> counts = rp.row_planes_from_scores(rp.norm_scores(w, x), budget=4, classes=2)
>>> sorted(set(counts.tolist())), float(counts.mean())
([3, 5], 4.0)
>>> m = bitplane.Matrix.quantize(w, row_planes=counts)

Two scoring methods:

- :func:`norm_scores`, the baseline ``||w_r||_2 * E|x|``: the size of row r's
  output on typical inputs (E|x| is one number per layer, so it ranks the
  rows of one matrix by their norm and only matters across layers).
- :func:`class_scores`, after class-based quantization (Sun et al., "Class-based
  Quantization for Neural Networks", arXiv 2211.14928): importance flows back
  from the outputs over calibration data, class by class, and a neuron's
  score is the number of classes it matters to (see the function).
"""

from typing import List, Optional, Sequence, Tuple

import numpy as np

from . import _bitplane
from .layers import _as_f32

__all__ = ["row_planes_from_scores", "norm_scores", "class_scores"]


def row_planes_from_scores(scores, budget: float, classes: int = 2, bits: int = 8) -> np.ndarray:
    """Per-row plane counts (numpy uint8, the scores' order) from importance
    scores: higher score, at least as many planes; the mean count is at most
    ``budget`` (1..bits). Rows split into ``classes`` (1..bits) classes whose
    counts are evenly spaced integers around the budget (round(budget) +-
    (classes - 1) where bits allow); ranked rows fill equal shares from the
    top in blocks of 16 rows (one row group, so runs of equal count do not
    split a group), and what the budget has left raises further blocks one
    class up, best-ranked first (row by row under 64 rows per class). The C
    function bp_row_planes_from_scores.
    """
    s = _as_f32(scores, "scores")  # not strings or bools, which NumPy would convert
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-dimensional (one per row), got shape {s.shape}")
    # int() would turn classes=1.5 into 1; counts are integers, not bools.
    for name, v in (("classes", classes), ("bits", bits)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if isinstance(budget, (bool, np.bool_)) or not isinstance(budget, (int, float, np.number)):
        raise TypeError(f"budget must be a number, got {type(budget).__name__}")
    return _bitplane._row_planes_from_scores(s, float(budget), int(classes), int(bits))


def _f32_2d(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-dimensional, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} has non-finite values")
    return a


def norm_scores(weight, inputs=None) -> np.ndarray:
    """Baseline scores ``||w_r||_2 * E|x|`` for the rows of ``weight`` (out,
    in); ``inputs`` (n, in) are sample inputs of the layer (None: E|x| = 1)."""
    w = _f32_2d(weight, "weight").astype(np.float64)
    scale = 1.0
    if inputs is not None:
        x = _f32_2d(inputs, "inputs")
        if x.shape[1] != w.shape[1]:
            raise ValueError(f"inputs must have {w.shape[1]} columns like weight, "
                             f"got shape {x.shape}")
        scale = float(np.abs(x).mean())
    return (np.sqrt((w * w).sum(axis=1)) * scale).astype(np.float32)


def _relu(h):
    return np.maximum(h, 0.0)


def class_scores(params: Sequence[Tuple[np.ndarray, Optional[np.ndarray]]], inputs, labels,
                 n_classes: Optional[int] = None, activation=_relu) -> List[np.ndarray]:
    """Class-based importance for every output neuron (row) of every layer of
    an MLP ``params = [(W_0, b_0), (W_1, b_1), ...]`` (W_l of shape (out,
    in), ``activation`` after all but the last layer), from calibration
    ``inputs`` (n, in_0) and their ``labels`` (n,) in 0..n_classes-1.

    For each class c, the output neuron c has importance 1 and the others 0.
    Importance flows back one layer at a time: neuron i of the layer below
    gets from neuron j above the share ``|a_i W[j, i]| / sum_k |a_k W[j, k]|``
    of j's importance, with ``a`` the activations of the class's samples
    (the shares averaged over them). A neuron is important to class c when
    its importance exceeds the layer's mean for that class; its score is the
    number of classes it is important to, plus its total importance over all
    classes scaled into [0, 1) to order neurons of equal count. The output
    layer's rows score 1 + their own share, so every row of the last matrix
    ranks by how much its class is worth to the data.

    Returns one float32 score array per layer, aligned with the rows of W_l.
    """
    ws = [_f32_2d(w, f"params[{i}] weight").astype(np.float64) for i, (w, _) in enumerate(params)]
    bs = [None if b is None else np.asarray(b, dtype=np.float64) for _, b in params]
    x = _f32_2d(inputs, "inputs").astype(np.float64)
    y = np.asarray(labels)
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape ({x.shape[0]},), got {y.shape}")
    n_out = ws[-1].shape[0]
    n_classes = n_out if n_classes is None else int(n_classes)
    if n_classes != n_out:
        raise ValueError(f"the last layer has {n_out} outputs but n_classes is {n_classes}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must be in 0..{n_classes - 1}")
    # The inputs of every layer (activations a_l).
    acts = [x]
    for i, (w, b) in enumerate(zip(ws, bs)):
        h = acts[-1] @ w.T + (0 if b is None else b)
        acts.append(activation(h) if i + 1 < len(ws) else h)
    L = len(ws)
    counts = [np.zeros(w.shape[0]) for w in ws]
    totals = [np.zeros(w.shape[0]) for w in ws]
    for c in range(n_classes):
        sel = y == c
        if not sel.any():
            continue
        imp = np.zeros(n_out)
        imp[c] = 1.0
        for layer in range(L - 1, -1, -1):
            counts[layer] += imp > imp.mean()
            totals[layer] += imp
            if layer == 0:
                break
            # mean over samples s of sum_j imp_j |a_si W_ji| / D_sj, with
            # D_sj = sum_k |a_sk W_jk|, without the (n, out, in) shares.
            a = np.abs(acts[layer][sel])  # inputs of this layer, outputs of the one below
            aw = np.abs(ws[layer])
            d = np.maximum(a @ aw.T, 1e-30)  # (n, out)
            imp = (a * ((imp[None, :] / d) @ aw)).mean(axis=0)  # (in,)
    scores = []
    for layer in range(L):
        t = totals[layer]
        scores.append((counts[layer] + t / (t.max() * 1.0001 if t.max() > 0 else 1.0))
                      .astype(np.float32))
    return scores
