#!/usr/bin/env python3
"""Train the bundled character-level LSTM / GRU language models.

Corpus: the plain-text fortune files of the Debian package `fortunes`
(/usr/share/games/fortunes/*, files without an extension; the .dat index and
.u8 files are skipped, and so is an `off/` directory if present). Records are
separated by lines containing only "%". See README.md for the vocabulary,
split rule and file format.

Training uses JAX on CPU (jit + lax.scan, autodiff through the unrolled
window), truncated BPTT with the state carried across windows, AdamW with
global-norm gradient clipping, fixed seeds and a fixed step count. Gate
conventions are PyTorch's (LSTM: i, f, g, o; GRU: r, z, n). The stored
weights are float32 in PyTorch layout, and the recorded bits per character
are recomputed from exactly the stored arrays by the plain-numpy
reference_forward.rnn_bits.

Usage: python train_char_rnn.py --arch lstm|gru [--steps N] [--out PATH]
       python train_char_rnn.py --arch lstm --bench    # time a few steps only
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import time

import numpy as np

import reference_forward as ref

FORTUNE_DIR = "/usr/share/games/fortunes"
SEED = 1234

# Vocabulary: newline, printable ASCII 0x20..0x7e, and one unknown token.
# It is fixed (not derived from the data) so every model shares it.
UNK = "\ufffd"
VOCAB = ["\n"] + [chr(c) for c in range(0x20, 0x7F)] + [UNK]
CHAR_TO_ID = {ch: i for i, ch in enumerate(VOCAB)}
SEPARATOR = "%\n"

HOLDOUT_EVERY = 50      # record i is held out iff i % 50 == 49 (global order)
TEST_MAX_TOKENS = 48000  # test_text = whole held-out records, at most this long

HPARAMS = {
    "embed_dim": 64,
    "hidden": 256,
    "batch": 64,          # parallel streams over the training text
    "bptt": 128,          # truncated-BPTT window (state carried across windows)
    "lr": 2e-3,
    "lr_final_frac": 0.05,  # cosine decay to lr * this
    "warmup_steps": 100,
    "weight_decay": 0.01,   # AdamW, decoupled, on matrices only
    "clip_norm": 1.0,       # global gradient-norm clip
    "beta1": 0.9,
    "beta2": 0.999,
    "eps": 1e-8,
}
# Plane-count-aware training (as for the digits MLP): each step runs the
# forward pass with weight_ih, weight_hh and fc.weight cut to one of these
# plane counts (None = float), drawn from a seeded rng, and applies the
# gradient to the float weights (straight-through estimator). The runtime
# picks the plane count per call, so the float weights are trained to work
# at every prefix. The embedding is a lookup table and is never quantized.
QAT_CHOICES = (None, 2, 3, 4)
QAT_BITS = 8
QAT_KEYS = ("rnn0.weight_ih", "rnn0.weight_hh", "fc.weight")

# Fixed step counts (not wall-clock limits) keep reruns reproducible.
DEFAULT_STEPS = {"lstm": 4500, "gru": 4500}

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS_DIR = os.path.join(HERE, "..", "bitplane", "models")


# --------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------

def fortune_files(root=FORTUNE_DIR):
    """Sorted plain-text fortune files (no extension; skips .dat/.u8, off/)."""
    return sorted(f for f in os.listdir(root)
                  if "." not in f and os.path.isfile(os.path.join(root, f)))


def normalize(text):
    """Map a record onto the fixed vocabulary.

    - Overstrike sequences "X<BS>Y" (old bold/underline) become "Y".
    - Tabs become one space; other control characters (bell, CR, stray
      backspaces) are dropped; newline is kept.
    - Any other non-ASCII character becomes the unknown token U+FFFD.
    """
    prev = None
    while prev != text:
        prev, text = text, re.sub(r"[^\n\x08]\x08", "", text)
    text = text.replace("\t", " ")
    out = []
    for ch in text:
        if ch == "\n" or " " <= ch <= "~":
            out.append(ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            continue
        else:
            out.append(UNK)
    return "".join(out)


def load_records(root=FORTUNE_DIR):
    """All non-empty records, files in sorted order, records in file order."""
    records = []
    for name in fortune_files(root):
        with open(os.path.join(root, name), encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
        cur = []
        for line in lines + ["%"]:  # the sentinel closes the last record
            if line == "%":
                rec = normalize("\n".join(cur)).rstrip() + "\n"
                if rec.strip():
                    records.append(rec)
                cur = []
            else:
                cur.append(line)
    return records


def encode(text):
    return np.array([CHAR_TO_ID[ch] for ch in text], dtype=np.int32)


def build_corpus():
    """(train tokens, test tokens, info dict). Deterministic."""
    records = load_records()
    train = [r for i, r in enumerate(records) if i % HOLDOUT_EVERY != HOLDOUT_EVERY - 1]
    held = [r for i, r in enumerate(records) if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1]
    test_parts, n = [], 0
    for r in held:
        piece = r + SEPARATOR
        if n + len(piece) > TEST_MAX_TOKENS:
            break
        test_parts.append(piece)
        n += len(piece)
    train_text = "".join(r + SEPARATOR for r in train)
    test_text = "".join(test_parts)
    info = {
        "files": fortune_files(),
        "n_records": len(records),
        "n_train_records": len(train),
        "n_heldout_records": len(held),
        "n_test_records": len(test_parts),
        "train_chars": len(train_text),
        "test_chars": len(test_text),
    }
    return encode(train_text), encode(test_text), info


def package_version(pkg="fortunes"):
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                             capture_output=True, text=True, check=True).stdout
        return out.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# --------------------------------------------------------------------------
# Model (JAX)
# --------------------------------------------------------------------------

def init_params(arch, rng, vocab_size, hp):
    """PyTorch-default-style init: U(-1/sqrt(H), 1/sqrt(H)), embedding N(0, 1)."""
    e, h = hp["embed_dim"], hp["hidden"]
    g = 4 if arch == "lstm" else 3
    k = 1.0 / np.sqrt(h)
    u = lambda *shape: rng.uniform(-k, k, shape).astype(np.float32)
    p = {
        "embed.weight": rng.standard_normal((vocab_size, e)).astype(np.float32),
        "rnn0.weight_ih": u(g * h, e),
        "rnn0.weight_hh": u(g * h, h),
        "rnn0.bias_ih": u(g * h),
        "rnn0.bias_hh": u(g * h),
        "fc.weight": u(vocab_size, h),
        "fc.bias": u(vocab_size),
    }
    if arch == "lstm":
        # Forget-gate bias +1 so early gradients flow through the cell state.
        p["rnn0.bias_ih"][h:2 * h] += 1.0
    return p


def make_fns(arch, hp):
    import jax
    import jax.numpy as jnp

    h_dim = hp["hidden"]

    def quant_prefix(w, planes):
        """jnp twin of reference_forward.quantize_weights_prefix (float32).

        `planes` is traced, so one compiled step serves every plane count.
        """
        levels = 2 ** QAT_BITS - 1
        r = jnp.max(jnp.abs(w), axis=1, keepdims=True)
        r = jnp.where(r > 0, r, 1.0)
        q = 2.0 * jnp.floor(w / (r / levels) / 2.0) + 1.0
        q = jnp.clip(q, -levels, levels)
        u = ((q + levels) / 2).astype(jnp.int32)
        qn = jnp.zeros_like(w)
        for p in range(QAT_BITS):
            t = 2.0 * ((u >> (QAT_BITS - 1 - p)) & 1).astype(w.dtype) - 1.0
            coef = jnp.where(p < planes, jnp.exp2((planes - 1 - p).astype(w.dtype)), 0.0)
            qn = qn + t * coef
        scale = jnp.sum(w * qn, axis=1, keepdims=True) / jnp.sum(qn * qn, axis=1, keepdims=True)
        return scale * qn

    def plane_view(params, planes):
        """Weights as the forward pass sees them; planes == 0 means float."""
        out = dict(params)
        for k in QAT_KEYS:
            w = params[k]
            ste = w + jax.lax.stop_gradient(quant_prefix(w, planes) - w)
            out[k] = jnp.where(planes > 0, ste, w)
        return out

    def run(params, tokens, state):
        """tokens (B, T+1) int32; returns (mean CE in nats, new state)."""
        x = params["embed.weight"][tokens[:, :-1]]            # (B, T, E)
        x = jnp.swapaxes(x, 0, 1)                              # (T, B, E)
        # Input projections for the whole window in one matmul.
        xp = x @ params["rnn0.weight_ih"].T + params["rnn0.bias_ih"]
        w_hh_t = params["rnn0.weight_hh"].T
        b_hh = params["rnn0.bias_hh"]

        if arch == "lstm":
            def step(carry, xp_t):
                h, c = carry
                gates = xp_t + h @ w_hh_t + b_hh
                i, f, g, o = jnp.split(gates, 4, axis=-1)
                c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
                h = jax.nn.sigmoid(o) * jnp.tanh(c)
                return (h, c), h
        else:
            def step(h, xp_t):
                gh = h @ w_hh_t + b_hh
                i_r, i_z, i_n = jnp.split(xp_t, 3, axis=-1)
                h_r, h_z, h_n = jnp.split(gh, 3, axis=-1)
                r = jax.nn.sigmoid(i_r + h_r)
                z = jax.nn.sigmoid(i_z + h_z)
                n = jnp.tanh(i_n + r * h_n)
                h = (1.0 - z) * n + z * h
                return h, h

        state, hs = jax.lax.scan(step, state, xp)              # hs (T, B, H)
        logits = hs @ params["fc.weight"].T + params["fc.bias"]
        targets = jnp.swapaxes(tokens[:, 1:], 0, 1)
        logp = jax.nn.log_softmax(logits, axis=-1)
        nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)
        return jnp.mean(nll), state

    def zero_state(batch):
        z = jnp.zeros((batch, h_dim), jnp.float32)
        return (z, z) if arch == "lstm" else z

    def loss_fn(params, tokens, state, planes):
        return run(plane_view(params, planes), tokens, state)

    def train_step(params, opt, state, tokens, step, planes):
        (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, tokens, state, planes)
        state = jax.lax.stop_gradient(state)
        # Global-norm clip.
        gnorm = jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree_util.tree_leaves(grads)))
        scale = jnp.minimum(1.0, hp["clip_norm"] / (gnorm + 1e-6))
        grads = jax.tree_util.tree_map(lambda g: g * scale, grads)
        # Learning rate: linear warmup, then cosine decay to lr * lr_final_frac.
        t = step.astype(jnp.float32) + 1.0
        total = opt["total"]
        warm = jnp.minimum(1.0, t / hp["warmup_steps"])
        frac = jnp.clip((t - hp["warmup_steps"]) / jnp.maximum(1.0, total - hp["warmup_steps"]), 0.0, 1.0)
        lo = hp["lr_final_frac"]
        lr = hp["lr"] * warm * (lo + (1 - lo) * 0.5 * (1 + jnp.cos(jnp.pi * frac)))
        b1, b2, eps = hp["beta1"], hp["beta2"], hp["eps"]
        new_p, new_m, new_v = {}, {}, {}
        for k in params:
            g = grads[k]
            m = b1 * opt["m"][k] + (1 - b1) * g
            v = b2 * opt["v"][k] + (1 - b2) * g * g
            mhat = m / (1 - b1 ** t)
            vhat = v / (1 - b2 ** t)
            p = params[k]
            if k.endswith("weight") or "weight_" in k:
                if k != "embed.weight":
                    p = p - lr * hp["weight_decay"] * p
            new_p[k] = p - lr * mhat / (jnp.sqrt(vhat) + eps)
            new_m[k], new_v[k] = m, v
        opt = {"m": new_m, "v": new_v, "total": total}
        return new_p, opt, state, loss, gnorm

    return jax.jit(train_step), zero_state


def batches(train_tokens, batch, bptt):
    """Yields (B, bptt+1) windows; stream b reads its own contiguous slice.

    Consecutive windows continue each stream, so carrying the recurrent
    state across windows is correct. An epoch ends when a stream runs out.
    """
    n = len(train_tokens) // batch
    streams = train_tokens[: n * batch].reshape(batch, n)
    per_epoch = (n - 1) // bptt
    while True:
        for s in range(per_epoch):
            yield s == 0, streams[:, s * bptt: s * bptt + bptt + 1]


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=["lstm", "gru"], required=True)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--bench", action="store_true", help="time 20 steps and exit")
    args = ap.parse_args()
    steps = args.steps or DEFAULT_STEPS[args.arch]
    hp = dict(HPARAMS)
    arch_name = f"char_{args.arch}"
    out = args.out or os.path.join(MODELS_DIR, f"{arch_name}.npz")

    import jax
    import jax.numpy as jnp

    t0 = time.time()
    train_tokens, test_tokens, info = build_corpus()
    print(f"corpus: {info['n_records']} records, train {info['train_chars']} chars, "
          f"test {info['test_chars']} chars ({info['n_test_records']} records)", flush=True)

    rng = np.random.default_rng(SEED)
    params = {k: jnp.asarray(v) for k, v in init_params(args.arch, rng, len(VOCAB), hp).items()}
    opt = {"m": {k: jnp.zeros_like(v) for k, v in params.items()},
           "v": {k: jnp.zeros_like(v) for k, v in params.items()},
           "total": jnp.float32(steps)}
    train_step, zero_state = make_fns(args.arch, hp)

    qat_rng = np.random.default_rng(SEED + 1)
    gen = batches(train_tokens, hp["batch"], hp["bptt"])
    state = zero_state(hp["batch"])
    per_epoch = (len(train_tokens) // hp["batch"] - 1) // hp["bptt"]
    losses = []
    t_train = time.time()
    n_steps = 20 if args.bench else steps
    for step in range(n_steps):
        new_epoch, window = next(gen)
        if new_epoch:
            state = zero_state(hp["batch"])
        planes = QAT_CHOICES[qat_rng.integers(len(QAT_CHOICES))] or 0
        params, opt, state, loss, gnorm = train_step(
            params, opt, state, jnp.asarray(window), jnp.int32(step), jnp.int32(planes))
        losses.append(loss)
        if (step + 1) % 100 == 0 or step + 1 == n_steps or (args.bench and step < 3):
            recent = float(np.mean([float(l) for l in losses[-100:]]))
            print(f"step {step + 1:5d}/{n_steps}  train {recent / np.log(2):.3f} bpc "
                  f"(mixed plane counts)  "
                  f"gnorm {float(gnorm):.2f}  {time.time() - t_train:.0f} s", flush=True)
    jax.block_until_ready(params)
    train_wall = time.time() - t_train
    if args.bench:
        print(f"{train_wall / n_steps:.3f} s/step (incl. compile)")
        return

    # Store float32, C-contiguous, PyTorch layout.
    arrays = {k: np.ascontiguousarray(np.asarray(v), dtype=np.float32) for k, v in params.items()}

    # Recorded metrics: plain numpy float32 forward of the stored arrays.
    model_view = dict(arrays, arch=np.array(arch_name), rnn_layers=np.array(1))
    rp = ref.rnn_params(model_view)
    t_eval = time.time()
    bits = ref.rnn_bits(rp, test_tokens)
    bpc = float(np.mean(bits))
    bpc_4096 = float(ref.rnn_bpc(rp, test_tokens[:4096]))
    print(f"fp32 test bpc {bpc:.4f} (first 4096: {bpc_4096:.4f}); "
          f"numpy eval {time.time() - t_eval:.1f} s", flush=True)

    # Diagnostic only: first-4096 bpc with every weight matrix except the
    # embedding table cut to n of 8 uniform planes (activations fp32).
    quant_bpc = {}
    for n in (1, 2, 3, 4, 8):
        qv = dict(model_view)
        for k in QAT_KEYS:
            qv[k] = ref.quantize_weights_prefix(arrays[k], n)
        quant_bpc[str(n)] = ref.rnn_bpc(ref.rnn_params(qv), test_tokens[:4096])
    print("diagnostic first-4096 bpc, weights at n/8 planes:",
          ", ".join(f"{n}: {b:.4f}" for n, b in quant_bpc.items()), flush=True)

    total_wall = time.time() - t0
    meta = {
        "model": arch_name,
        "corpus": "Debian package 'fortunes' (fortune cookie files), "
                  "/usr/share/games/fortunes/* without extension",
        "debian_package": "fortunes",
        "debian_package_version": package_version(),
        "corpus_license": "BSD-style (The Regents of the University of California); "
                          "see /usr/share/doc/fortunes/copyright",
        "corpus_files": info["files"],
        "corpus_stats": {k: v for k, v in info.items() if k != "files"},
        "normalization": "overstrike 'X\\bY' -> 'Y'; tab -> space; other control chars "
                         "dropped; non-ASCII -> U+FFFD (unknown token); each record "
                         "right-stripped, ends with '\\n', followed by separator '%\\n'",
        "vocab": "index 0 = '\\n', 1..95 = ASCII 0x20..0x7e, 96 = U+FFFD unknown",
        "split": f"records in sorted-file order, global index i; held out iff "
                 f"i % {HOLDOUT_EVERY} == {HOLDOUT_EVERY - 1}; test_text = held-out "
                 f"records (+ separator) in order, whole records, at most "
                 f"{TEST_MAX_TOKENS} tokens; the rest of the records is training text",
        "metric": "bits per character: mean over t of -log2 p(tok[t+1] | tok[<=t]), "
                  "zero initial state carried across test_text "
                  "(reference_forward.rnn_bits)",
        "seed": SEED,
        "framework": f"jax {jax.__version__} (CPU), numpy {np.__version__}",
        "gates": "PyTorch: LSTM i,f,g,o; GRU r,z,n",
        "init": "U(-1/sqrt(H), 1/sqrt(H)) for rnn/fc, N(0,1) embedding"
                + ("; LSTM forget-gate bias_ih +1" if args.arch == "lstm" else ""),
        "hyperparameters": dict(hp, steps=steps, steps_per_epoch=per_epoch,
                                optimizer="AdamW, linear warmup + cosine decay, "
                                          "global-norm clip; weight decay on rnn/fc "
                                          "matrices only",
                                plane_aware_training=(
                                    f"per step, forward with {', '.join(QAT_KEYS)} at n of "
                                    f"{QAT_BITS} planes, n drawn from {list(QAT_CHOICES)} "
                                    "(None = float), straight-through gradient to the float "
                                    "weights")),
        "train_steps": steps,
        "epochs": round(steps / per_epoch, 2),
        "final_train_bpc_last_100_steps": float(np.mean([float(l) for l in losses[-100:]])) / np.log(2),
        "train_wall_time_s": round(train_wall, 1),
        "total_wall_time_s": round(total_wall, 1),
        "fp32_test_bpc": bpc,
        "fp32_test_bpc_first_4096": bpc_4096,
        "diagnostic_weight_quant_bpc_first_4096": {
            "rule": "reference_forward.quantize_weights_prefix on weight_ih, weight_hh, "
                    "fc.weight (per-row uniform, clip 1, k=8, first n planes, "
                    "least-squares scale); embedding and activations fp32",
            "bpc_by_planes": quant_bpc,
        },
    }

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    np.savez_compressed(
        out,
        format=np.array(ref.FORMAT),
        arch=np.array(arch_name),
        meta_json=np.array(json.dumps(meta, indent=1, sort_keys=True)),
        vocab=np.array([ord(c) for c in VOCAB], dtype=np.int32),
        rnn_layers=np.array(1, dtype=np.int64),
        test_text=np.ascontiguousarray(test_tokens, dtype=np.int32),
        fp32_test_bpc=np.array(bpc, dtype=np.float64),
        fp32_test_bpc_first_4096=np.array(bpc_4096, dtype=np.float64),
        **arrays,
    )
    print(f"wrote {out} ({os.path.getsize(out)} bytes), train {train_wall:.0f} s, "
          f"total {total_wall:.0f} s")


if __name__ == "__main__":
    main()
