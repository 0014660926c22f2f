"""Per-row plane classes on the pretrained encoder all-MiniLM-L6-v2 (every
Linear alike), against uniform planes: embedding cosine against fp32 on the
sweep's 64 held-out fortunes (bitplane-sweep --model minilm, quantizer
defaults, no calibration) and the weight bytes a forward pass reads.

Rows are scored by their output error at 3 planes on 32 other fortunes,
E[(dw_r . x)^2] (or by ||w_r||), and split by row_planes_from_scores.
Needs the `minilm` extra and the weights package (README, "The sweep").

    python bench/minilm_row_classes.py
"""
import argparse
import time

import numpy as np
import bitplane as bp
from bitplane import encoder as E
from bitplane.layers import Linear
from bitplane._sweep_run import EncoderWorkload

wl = EncoderWorkload(argparse.Namespace(sentences=64, calibration=0, max_tokens=128))
ctx = bp.Context(backend="cpu", threads=2)
fp32 = wl.build(fp32=True)
ref = wl.forward(fp32)
m = wl.build(context=ctx)
texts = E.fortunes()
cal = E.tokenize(texts[len(texts) - 32:], E.model_dir(), 128)
samples = fp32.calibration_samples(cal)
names = list(m.linears)
weights = {n: np.ascontiguousarray(wl.weights[n + ".weight"], np.float32) for n in names}
biases = {n: np.ascontiguousarray(wl.weights[n + ".bias"], np.float32) for n in names}
base = sum(mat.bytes_read(4) for mat in m.matrices())
def report(label, model, planes=None, nbytes=None):
    t = time.perf_counter()
    cos = wl.metric(wl.forward(model, planes=planes), ref)
    print(f"{label:36s} cosine {cos:.4f} bytes {nbytes} ({nbytes / base:.3f}) "
          f"{time.perf_counter() - t:.1f}s", flush=True)
for n in (3, 4, 5):
    report(f"uniform {n}", m, n, sum(mat.bytes_read(n) for mat in m.matrices()))
# Scores: each row's output error at 3 planes on calibration inputs, E[(dw_r . x)^2].
scores = {}
for n in names:
    dw = weights[n].astype(np.float64) - m.linears[n].matrix.dequantize(3).astype(np.float64)
    scores[n] = np.mean((samples[n].astype(np.float64) @ dw.T) ** 2, axis=0).astype(np.float32)
def mixed(budget, classes, how):
    model = wl.build(context=ctx)
    total = 0
    for blk in model.blocks:
        for key, layer in list(blk.items()):
            if not isinstance(layer, Linear):
                continue
            n = next(k for k, v in model.linears.items() if v is layer)
            s = (scores[n] if how == "error" else
                 bp.row_planes.norm_scores(weights[n]))
            counts = bp.row_planes_from_scores(s, budget, classes)
            new = Linear.from_matrix(
                bp.Matrix.quantize(weights[n], context=ctx, row_planes=counts), biases[n])
            blk[key] = new
            model.linears[n] = new
            total += new.matrix.bytes_read()
    report(f"{how} budget {budget} classes {classes}", model, None, total)
for b, c, how in [(3.75, 2, "error"), (3.5, 2, "error"), (3.0, 2, "error"), (4.0, 2, "error"),
                  (3.5, 2, "norm")]:
    mixed(b, c, how)
