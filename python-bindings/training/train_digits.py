#!/usr/bin/env python3
"""Train the bundled digits MLP (bitplane-model-v1, arch "mlp").

Data: scikit-learn's bundled copy of the UCI "Optical Recognition of
Handwritten Digits" test set (1797 8x8 images, pixel values 0..16).
Split: train_test_split(test_size=0.2, random_state=0, stratify=y).
Inputs are scaled x / 16 (the stored test_x is already scaled).

Training is plain numpy (hand-written backprop, AdamW), float64 internally
for reproducibility, with a fixed seed. The stored weights are float32 and
the recorded accuracy is recomputed from exactly the stored float32 arrays by
reference_forward.mlp_logits.

Usage: python train_digits.py [--out ../bitplane/models/digits_mlp.npz]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import sklearn
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import reference_forward as ref

SEED = 0
SIZES = [64, 256, 128, 10]      # 64 inputs (8x8), two hidden ReLU layers, 10 logits
EPOCHS = 120
BATCH = 32
LR = 1e-3
LR_FINAL = 1e-5                  # cosine decay to this
WEIGHT_DECAY = 0.1               # AdamW (decoupled, per step lr * wd); keeps rows free of outliers
# Plane-count-aware training: each minibatch runs the forward pass with the
# weights cut to one of these plane counts (None = float), drawn from the
# seeded rng, and applies the gradient to the float weights (straight-through
# estimator). The runtime picks the plane count per call, so the float
# weights are trained to work at every prefix, not only at full precision.
QAT_CHOICES = (None, 2, 3, 4)
QAT_BITS = 8
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "bitplane", "models", "digits_mlp.npz")


def init_params(rng):
    # He-uniform weights for ReLU layers; zero biases.
    params = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        bound = np.sqrt(6.0 / fan_in)
        params.append([rng.uniform(-bound, bound, (fan_out, fan_in)), np.zeros(fan_out)])
    return params


def forward_backward(params, x, y):
    """Mean cross-entropy and gradients for a minibatch (float64)."""
    acts = [x]
    h = x
    for i, (w, b) in enumerate(params):
        h = h @ w.T + b
        if i + 1 < len(params):
            h = np.maximum(h, 0.0)
        acts.append(h)
    logits = acts[-1]
    logits = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    n = x.shape[0]
    loss = -np.mean(np.log(p[np.arange(n), y]))
    d = p
    d[np.arange(n), y] -= 1.0
    d /= n
    grads = [None] * len(params)
    for i in range(len(params) - 1, -1, -1):
        w, _ = params[i]
        grads[i] = [d.T @ acts[i], d.sum(axis=0)]
        if i > 0:
            d = (d @ w) * (acts[i] > 0)
    return loss, grads


def train(x, y, rng):
    params = init_params(rng)
    m = [[np.zeros_like(a) for a in layer] for layer in params]
    v = [[np.zeros_like(a) for a in layer] for layer in params]
    steps_per_epoch = int(np.ceil(len(x) / BATCH))
    total = EPOCHS * steps_per_epoch
    step = 0
    for epoch in range(EPOCHS):
        order = rng.permutation(len(x))
        losses = []
        for s in range(steps_per_epoch):
            idx = order[s * BATCH:(s + 1) * BATCH]
            planes = QAT_CHOICES[rng.integers(len(QAT_CHOICES))]
            if planes is None:
                fwd = params
            else:
                fwd = [[ref.quantize_weights_prefix(w, planes, QAT_BITS).astype(np.float64), b]
                       for w, b in params]
            loss, grads = forward_backward(fwd, x[idx], y[idx])
            losses.append(loss)
            step += 1
            lr = LR_FINAL + 0.5 * (LR - LR_FINAL) * (1 + np.cos(np.pi * step / total))
            for li, layer in enumerate(params):
                for ai, a in enumerate(layer):
                    g = grads[li][ai]
                    m[li][ai] = BETA1 * m[li][ai] + (1 - BETA1) * g
                    v[li][ai] = BETA2 * v[li][ai] + (1 - BETA2) * g * g
                    mhat = m[li][ai] / (1 - BETA1 ** step)
                    vhat = v[li][ai] / (1 - BETA2 ** step)
                    if ai == 0:  # decay weights, not biases
                        a -= lr * WEIGHT_DECAY * a
                    a -= lr * mhat / (np.sqrt(vhat) + EPS)
        if epoch % 20 == 0 or epoch == EPOCHS - 1:
            print(f"epoch {epoch:4d}  train loss {np.mean(losses):.4f}", flush=True)
    return params, step


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()

    t0 = time.time()
    digits = load_digits()
    x = digits.data.astype(np.float64) / 16.0
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)

    rng = np.random.default_rng(SEED)
    params, steps = train(x_tr, y_tr, rng)
    wall = time.time() - t0

    arrays = {}
    for i, (w, b) in enumerate(params):
        arrays[f"l{i}.weight"] = np.ascontiguousarray(w, dtype=np.float32)
        arrays[f"l{i}.bias"] = np.ascontiguousarray(b, dtype=np.float32)
    test_x = np.ascontiguousarray(x_te, dtype=np.float32)
    test_y = np.ascontiguousarray(y_te, dtype=np.int64)

    # Recorded metric: float32 forward of exactly the arrays we store.
    stored = [(arrays[f"l{i}.weight"], arrays[f"l{i}.bias"]) for i in range(len(params))]
    acc = ref.mlp_accuracy(stored, test_x, test_y)
    train_acc = ref.mlp_accuracy(stored, x_tr.astype(np.float32), y_tr)
    print(f"fp32 test accuracy {acc:.4f}  (train {train_acc:.4f}), {wall:.1f} s")

    # Diagnostic only: accuracy with weights cut to n of 8 uniform planes
    # (activations left in float32). The runtime measures the real thing.
    quant_acc = {}
    for n in (1, 2, 3, 4, 8):
        qp = [(ref.quantize_weights_prefix(w, n), b) for w, b in stored]
        quant_acc[str(n)] = ref.mlp_accuracy(qp, test_x, test_y)
    print("diagnostic test accuracy, weights at n/8 planes:",
          ", ".join(f"{n}: {a:.4f}" for n, a in quant_acc.items()))

    meta = {
        "model": "digits_mlp",
        "dataset": "scikit-learn load_digits: UCI Optical Recognition of Handwritten "
                   "Digits (test portion, 1797 8x8 images, values 0..16)",
        "dataset_license": "CC BY 4.0 (UCI Machine Learning Repository)",
        "dataset_source": "https://archive.ics.uci.edu/dataset/80",
        "scikit_learn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "input_scaling": "x / 16 (test_x is stored already scaled)",
        "split": "sklearn.model_selection.train_test_split(test_size=0.2, "
                 "random_state=0, stratify=y)",
        "n_train": int(len(y_tr)),
        "n_test": int(len(y_te)),
        "seed": SEED,
        "layer_sizes": SIZES,
        "activation": "relu after every layer except the last (logits)",
        "optimizer": "AdamW (decoupled weight decay on weights only), cosine lr decay",
        "plane_aware_training": "per minibatch, forward with weights at n of "
                                f"{QAT_BITS} planes, n drawn from {list(QAT_CHOICES)} "
                                "(None = float), straight-through gradient to the "
                                "float weights (reference_forward.quantize_weights_prefix)",
        "hyperparameters": {"epochs": EPOCHS, "batch": BATCH, "lr": LR, "lr_final": LR_FINAL,
                            "weight_decay": WEIGHT_DECAY, "beta1": BETA1, "beta2": BETA2,
                            "eps": EPS, "init": "He-uniform weights, zero biases"},
        "train_steps": steps,
        "train_wall_time_s": round(wall, 1),
        "fp32_test_accuracy": acc,
        "fp32_train_accuracy": train_acc,
        "diagnostic_weight_quant_test_accuracy": {
            "rule": "reference_forward.quantize_weights_prefix: per-row uniform, clip 1, "
                    "k=8 planes, first n kept, least-squares scale; activations fp32",
            "accuracy_by_planes": quant_acc,
        },
    }

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez_compressed(
        args.out,
        format=np.array(ref.FORMAT),
        arch=np.array("mlp"),
        meta_json=np.array(json.dumps(meta, indent=1, sort_keys=True)),
        n_layers=np.array(len(params), dtype=np.int64),
        test_x=test_x,
        test_y=test_y,
        fp32_test_accuracy=np.array(acc, dtype=np.float64),
        **arrays,
    )
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
