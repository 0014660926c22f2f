"""Row importance scores for bitplane-search's row-class genes
(``--granularity row-class``): one float32 score per row of every matrix,
in describe() order; rows with higher scores get more planes.

- ``norm``: the baseline of bitplane.row_planes, ``||w_r||_2`` (times E|x|,
  one number per matrix, which does not change a matrix's ranking).
- ``fisher`` (char models): the first-order loss change that quantizing the
  row costs, squared and summed over calibration characters,
  ``sum_(t,s) (dL/da_r[t,s])^2 (dw_r . x[t,s])^2``, with ``a_r`` the row's
  product output (pre-activation), ``x`` the product's input and ``dw_r``
  the row's quantization error at ``SCORE_PLANES`` planes (the stored
  matrix's own error). The gradients come from the fp32 model by
  automatic differentiation (``autograd``, a dependency of pymoo) over
  held-out characters that neither the search nor its confirmation sees.
"""

from __future__ import annotations

from typing import List

import numpy as np

from . import models as M
from .row_planes import norm_scores

SCORE_PLANES = 3  # the quantization error the fisher score weighs

__all__ = ["op_scores", "SCORE_PLANES", "calibration_start"]


def _float_weights(data: M.ModelData) -> List[np.ndarray]:
    """The float weights of every matrix, describe() order."""
    a = data.arrays
    if data.arch in ("char_lstm", "char_gru"):
        out = []
        for l in range(int(a["rnn_layers"])):
            out += [a[f"rnn{l}.weight_ih"], a[f"rnn{l}.weight_hh"]]
        return out + [a["fc.weight"]]
    return [w for w, _ in M.linear_params(data)]


def calibration_start(args) -> int:
    """First held-out character the fisher score may read: past the
    searched characters and the confirmation ones (each block reads
    tokens + streams characters)."""
    return args.tokens + args.streams + args.confirm_tokens + args.streams


def op_scores(method: str, data: M.ModelData, wl, layers, args) -> List[np.ndarray]:
    weights = _float_weights(data)
    if method == "auto":
        method = "fisher" if wl.kind == "rnn" else "norm"
    if method == "norm":
        return [norm_scores(w) for w in weights]
    if method == "fisher":
        if wl.kind != "rnn":
            raise ValueError("--scores fisher needs a char model (calibration text); use "
                             "--scores norm for Linear stacks")
        return [f[0].astype(np.float32) for f in _fisher_char(data, weights, layers, args)]
    raise ValueError(f"unknown --scores '{method}'")


def _fisher_char(data: M.ModelData, weights, layers, args, planes=(SCORE_PLANES,)):
    """Per matrix, an array (len(planes), rows): each row's fisher score with
    its quantization error at each of `planes`."""
    import autograd.numpy as anp
    from autograd import grad

    a = data.arrays
    lstm = data.arch == "char_lstm"
    n_layers = int(a["rnn_layers"])
    start = calibration_start(args)
    text = a["test_text"][start:]
    need = args.calibration_tokens + args.streams
    if len(text) < need:
        raise ValueError(f"--calibration-tokens {args.calibration_tokens}: only {len(text)} "
                         "held-out characters follow the searched and confirmation ones")
    inputs, targets = M.rnn_chunks(text, args.calibration_tokens, args.streams)
    T, S = inputs.shape
    embed = np.asarray(a["embed.weight"], np.float64)
    p = [{k: np.asarray(a[f"rnn{l}.{k}"], np.float64)
          for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")} for l in range(n_layers)]
    w_fc, b_fc = np.asarray(a["fc.weight"], np.float64), np.asarray(a["fc.bias"], np.float64)
    H = p[0]["weight_hh"].shape[1]

    def sig(v):
        return 0.5 * (anp.tanh(0.5 * v) + 1.0)

    def forward(pert, record=None):
        """Loss (nats, summed) with perturbations added to every product's
        output; `record` collects each product's inputs."""
        x = embed[inputs]  # (T, S, E)
        for l in range(n_layers):
            w = p[l]
            gi = anp.dot(x, w["weight_ih"].T) + w["bias_ih"] + pert[2 * l]
            h = anp.zeros((S, H))
            c = anp.zeros((S, H))
            hs, prev = [], []
            for t in range(T):
                prev.append(h)
                gh = anp.dot(h, w["weight_hh"].T) + w["bias_hh"] + pert[2 * l + 1][t]
                if lstm:
                    g = gi[t] + gh
                    i, f = sig(g[:, :H]), sig(g[:, H:2 * H])
                    gg, o = anp.tanh(g[:, 2 * H:3 * H]), sig(g[:, 3 * H:])
                    c = f * c + i * gg
                    h = o * anp.tanh(c)
                else:
                    r = sig(gi[t][:, :H] + gh[:, :H])
                    z = sig(gi[t][:, H:2 * H] + gh[:, H:2 * H])
                    n = anp.tanh(gi[t][:, 2 * H:] + r * gh[:, 2 * H:])
                    h = (1.0 - z) * n + z * h
                hs.append(h)
            if record is not None:
                record += [np.asarray(x).reshape(T * S, -1),
                           np.stack([np.asarray(v) for v in prev]).reshape(T * S, H)]
            x = anp.stack(hs)
        if record is not None:
            record.append(np.asarray(x).reshape(T * S, H))
        logits = anp.dot(x, w_fc.T) + b_fc + pert[-1]
        m = anp.max(logits, axis=-1, keepdims=True)
        logp = logits - m - anp.log(anp.sum(anp.exp(logits - m), axis=-1, keepdims=True))
        picked = anp.sum(logp * np.eye(logits.shape[-1])[targets], axis=-1)
        return -anp.sum(picked)

    zeros = []
    for l in range(n_layers):
        g = p[l]["weight_hh"].shape[0]
        zeros += [np.zeros((T, S, g)), np.zeros((T, S, g))]
    zeros.append(np.zeros((T, S, w_fc.shape[0])))
    grads = grad(forward)(zeros)
    record: list = []
    forward([np.asarray(z) for z in zeros], record)
    ops = [op for layer in layers for op in layer.operators]
    out = []
    for op, w, g, x in zip(ops, weights, grads, record):
        gr = np.asarray(g).reshape(T * S, -1)
        per_n = []
        for n in planes:
            dw = np.asarray(w, np.float64) - op.matrix.dequantize(n).astype(np.float64)
            err = x @ dw.T  # (T*S, rows): the row's error on each input
            per_n.append(np.sum((gr * err) ** 2, axis=0))
        out.append(np.array(per_n))
    return out
