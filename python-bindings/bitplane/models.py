"""Models: the bundled ones (format "bitplane-model-v1") and a user's own
Linear stacks (.npz or .safetensors), built from bitplane layers.

Bundled names: ``digits`` (MLP on the 8x8 handwritten digits),
``char-lstm`` and ``char-gru`` (character language models). See
``bitplane/models/README.md`` in the repository for provenance.

A user's Linear stack is a file whose 2-D ``<name>.weight`` arrays (shape
(out, in), PyTorch layout) each optionally have a ``<name>.bias``; the layers
are taken in the natural order of their names (numbers compared as numbers,
so ``l2`` comes before ``l10``), with ReLU between layers unless another
activation is asked for. Consecutive shapes must chain. Optional keys
``test_x`` (n, in) and ``test_y`` (n,) supply inputs and labels, and an
optional ``<name>.input_mean`` (in,) turns on that layer's bias correction
(``Linear``'s ``input_mean``; docs/numerics.md, "Bias correction").
"""

from __future__ import annotations

import json
import os
import re
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._bitplane import (Context, CorruptError, FileError, InvalidArgumentError, Matrix,
                        NonFiniteError, OutOfRangeError, VersionError)
from .layers import GRU, LSTM, Linear

FORMAT = "bitplane-model-v1"
MODELS_DIR = Path(__file__).resolve().parent / "models"
BUNDLED: Dict[str, str] = {
    "digits": "digits_mlp.npz",
    "char-lstm": "char_lstm.npz",
    "char-gru": "char_gru.npz",
}

__all__ = ["BUNDLED", "FORMAT", "ModelData", "MLP", "CharRNN", "read", "build",
           "bundled_path", "bits_per_char", "rnn_chunks"]

PerLayer = Union[None, int, Sequence[Optional[int]]]


@dataclass
class ModelData:
    """The float32 arrays of a model file and what they describe."""

    name: str
    path: Path
    arch: str  # "mlp", "char_lstm", "char_gru" or "linear_stack"
    arrays: Dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)

    def scalar(self, key, default=None):
        return self.arrays[key].item() if key in self.arrays else default


def bundled_path(name: str) -> Path:
    return MODELS_DIR / BUNDLED[name]


def _natural_key(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _load_arrays(path: Path) -> Dict[str, np.ndarray]:
    """Every array of an .npz or .safetensors file, read in full so that a bad
    file fails here. Raises bitplane.FileError (cannot be read) or
    bitplane.CorruptError (not a valid file of its kind), one line each."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise FileError(f"{path}: cannot read it ({e.strerror or e})") from None
    if size == 0:
        raise CorruptError(f"{path}: the file is empty")
    if path.suffix == ".safetensors":
        try:
            from safetensors.numpy import load_file
        except ImportError as e:
            raise ImportError(f"reading {path} needs the safetensors package: "
                              "pip install safetensors") from e
        try:
            return dict(load_file(str(path)))
        except OSError as e:
            raise FileError(f"{path}: cannot read it ({e.strerror or e})") from None
        except Exception as e:  # safetensors' SafetensorError and its parse errors
            raise CorruptError(f"{path}: not a valid .safetensors file ({e})") from None
    if not zipfile.is_zipfile(path):
        # np.load would try pickle on anything that is not a zip or .npy file.
        raise CorruptError(f"{path}: not a plain array archive (.npz): it is not a zip file "
                           "(truncated, or another kind of file)")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except OSError as e:
        raise FileError(f"{path}: cannot read it ({e.strerror or e})") from None
    except ValueError as e:
        if "pickle" in str(e):  # an object array inside: never unpickled
            raise CorruptError(f"{path}: not a plain array archive (.npz): it holds Python "
                               "objects, which are never loaded") from None
        raise CorruptError(f"{path}: not a valid .npz file ({e})") from None
    except (zipfile.BadZipFile, EOFError, KeyError, RuntimeError, NotImplementedError) as e:
        raise CorruptError(f"{path}: corrupt or truncated .npz file ({e})") from None


def _finite(a: np.ndarray, name: str) -> np.ndarray:
    a = np.ascontiguousarray(a, np.float32)
    if not np.all(np.isfinite(a)):
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise NonFiniteError(f"{name}[{', '.join(map(str, index))}] is {a[index]}")
    return a


def _check_finite(path: Path, arrays: Dict[str, np.ndarray]) -> None:
    """NonFiniteError naming the array (the layer) and the first bad element."""
    for key, a in arrays.items():
        if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
            index = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
            value = a[index]
            where = f"[{', '.join(map(str, index))}]" if index else ""
            raise NonFiniteError(f"{path}: '{key}'{where} is {value} (weights and inputs must "
                                 "be finite)")


def read_inputs(path: Union[str, os.PathLike]) -> np.ndarray:
    """A .npy file of float inputs (never unpickled), as contiguous float32.
    Raises bitplane.FileError or CorruptError with a one-line message."""
    path = Path(path)
    try:
        a = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileError(f"no inputs file {path}") from None
    except OSError as e:
        raise FileError(f"{path}: cannot read it ({e.strerror or e})") from None
    except (ValueError, EOFError) as e:
        why = ("not NumPy's array format, or it holds Python objects, which are never loaded"
               if "pickle" in str(e) else str(e))
        raise CorruptError(f"{path}: not a plain .npy array file ({why})") from None
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "fiu":
        raise CorruptError(f"{path}: not a .npy file of numbers")
    _check_finite(path, {"inputs": a})
    return np.ascontiguousarray(a, np.float32)


def _required_keys(arch: str, arrays: Dict[str, np.ndarray]) -> List[str]:
    def count(key):
        try:
            return int(arrays[key]) if key in arrays else 0
        except (TypeError, ValueError):
            return 0

    if arch == "mlp":
        return ["n_layers"] + [f"l{i}.weight" for i in range(count("n_layers"))]
    return (["embed.weight", "rnn_layers", "test_text", "fc.weight", "fc.bias"] +
            [f"rnn{l}.{k}" for l in range(count("rnn_layers"))
             for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")])


def read(name_or_path: Union[str, os.PathLike]) -> ModelData:
    """Read a bundled model by name or a model file by path."""
    key = str(name_or_path)
    if key in BUNDLED:
        path = bundled_path(key)
        if not path.exists():
            raise FileError(f"the bundled model '{key}' is not installed "
                                    f"(expected {path})")
        name = key
    else:
        path = Path(name_or_path)
        if not path.exists():
            raise FileError(f"no model file {path} (bundled models: "
                                    f"{', '.join(BUNDLED)})")
        name = path.stem
    arrays = _load_arrays(path)
    _check_finite(path, arrays)
    if "format" in arrays:
        fmt = str(arrays["format"])
        if fmt != FORMAT:
            kind = VersionError if fmt.startswith("bitplane-model-") else CorruptError
            raise kind(f"{path}: format '{fmt}' is not supported (expected '{FORMAT}')")
        arch = str(arrays["arch"]) if "arch" in arrays else "(none)"
        if arch not in ("mlp", "char_lstm", "char_gru"):
            raise CorruptError(f"{path}: unknown arch '{arch}'")
        missing = [k for k in _required_keys(arch, arrays) if k not in arrays]
        if missing:
            raise CorruptError(f"{path}: a '{FORMAT}' {arch} file without "
                               f"{', '.join(repr(k) for k in missing)}")
        try:
            meta = json.loads(str(arrays["meta_json"])) if "meta_json" in arrays else {}
        except ValueError as e:
            raise CorruptError(f"{path}: meta_json is not valid JSON ({e})") from None
    else:
        arch, meta = "linear_stack", {}
    return ModelData(name=name, path=path, arch=arch, arrays=arrays, meta=meta)


def _layer_names(data: ModelData) -> List[str]:
    """The layer names of an MLP or a user's Linear stack, in order."""
    a = data.arrays
    if data.arch == "mlp":
        names = [f"l{i}" for i in range(int(a["n_layers"]))]
    elif data.arch == "linear_stack":
        names = sorted((k[:-len(".weight")] for k, v in a.items()
                        if k.endswith(".weight") and np.ndim(v) == 2), key=_natural_key)
        if "weight" in a and np.ndim(a["weight"]) == 2:
            names = [""] + names
    else:
        raise InvalidArgumentError(f"{data.path}: '{data.arch}' is not a Linear stack")
    if not names:
        raise InvalidArgumentError(f"{data.path}: no 2-D '<name>.weight' arrays found")
    return names


def linear_params(data: ModelData) -> List[Tuple[np.ndarray, Optional[np.ndarray]]]:
    """(weight, bias) pairs of an MLP or a user's Linear stack, checked to chain."""
    a = data.arrays
    params = []
    for n in _layer_names(data):
        dot = n + "." if n else ""
        w = np.asarray(a[dot + "weight"], np.float32)
        b = a.get(dot + "bias")
        b = None if b is None else np.asarray(b, np.float32)
        if params and w.shape[1] != params[-1][0].shape[0]:
            raise InvalidArgumentError(f"{data.path}: layer '{n}' takes {w.shape[1]} inputs "
                                       f"but the previous layer gives {params[-1][0].shape[0]}")
        if b is not None and b.shape != (w.shape[0],):
            raise InvalidArgumentError(f"{data.path}: '{dot}bias' has shape {b.shape}, "
                                       f"expected ({w.shape[0]},)")
        params.append((w, b))
    return params


def linear_input_means(data: ModelData) -> List[Optional[np.ndarray]]:
    """Each layer's ``<name>.input_mean`` (float64, checked to have the
    layer's in_features values), or None where the file has none."""
    a = data.arrays
    means = []
    for n in _layer_names(data):
        dot = n + "." if n else ""
        m = a.get(dot + "input_mean")
        if m is not None:
            cols = np.shape(a[dot + "weight"])[1]
            if np.asarray(m).dtype.kind not in "fiu" or np.shape(m) != (cols,):
                raise InvalidArgumentError(f"{data.path}: '{dot}input_mean' has shape "
                                           f"{np.shape(m)} and dtype {np.asarray(m).dtype}, "
                                           f"expected ({cols},) numbers")
            m = np.asarray(m, np.float64)
        means.append(m)
    return means


def _per_layer(value: PerLayer, n: int, name: str) -> List[Optional[int]]:
    if value is None or isinstance(value, (int, np.integer)):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise InvalidArgumentError(f"{name} must be an int, None or one value per layer "
                                   f"({n}), got {len(value)} values")
    return value


_ACTIVATIONS = {
    "relu": lambda h: np.maximum(h, np.float32(0.0)),
    "tanh": np.tanh,
    "none": lambda h: h,
}


# The most hidden-layer output an MLP keeps per thread between calls.
_HIDDEN_KEEP_BYTES = 16 << 20


class MLP:
    """A stack of Linear layers with an activation after all but the last.

    ``model(x, planes=None, act_bits=None)``: planes/act_bits are an int or
    None for every layer, or a sequence with one value per layer.
    """

    def __init__(self, params, *, activation: str = "relu", bits: int = 8,
                 method: str = "uniform", clip: float = 0.0,
                 context: Optional[Context] = None, fp32: bool = False,
                 quantize: Optional[dict] = None, nonnegative_input: bool = False,
                 row_planes: Optional[Sequence] = None,
                 input_means: Optional[Sequence] = None):
        """quantize: further keyword arguments for every Matrix.quantize.
        input_means: bias correction, one entry per layer (an array of
        in_features means, or None for no correction; Linear's
        ``input_mean``). Not used by the ``fp32`` twin.
        row_planes: per-row plane counts, one entry per layer (an array of
        out_features counts, or None for all planes; docs/row-planes.md).
        nonnegative_input: the model's inputs are >= 0 (pixels). Layers whose
        inputs are non-negative (those after a ReLU, and the first one with
        nonnegative_input) are quantized with ``nonnegative_inputs=True``, so
        without an explicit ``rotation`` they are not rotated and keep the
        unsigned activation mode (docs/numerics.md)."""
        if activation not in _ACTIVATIONS:
            raise InvalidArgumentError(f"activation must be one of {sorted(_ACTIVATIONS)}, "
                                       f"got '{activation}'")
        self.activation = _ACTIVATIONS[activation]
        # A ReLU runs inside the product (Matrix.gemm's activation): no
        # second pass and no second array per layer.
        self._fused = "relu" if activation == "relu" else None
        # Per thread, the hidden layers' outputs of the last batch size (up
        # to _HIDDEN_KEEP_BYTES), so a forward pass allocates only its result.
        self._hidden = threading.local()
        opts = dict(bits=bits, method=method, clip=clip, context=context, **(quantize or {}))
        self.layers = []
        params = list(params)
        if row_planes is not None and len(row_planes) != len(params):
            raise InvalidArgumentError(f"row_planes must have one entry per layer "
                                       f"({len(params)}), got {len(row_planes)}")
        if input_means is not None and len(input_means) != len(params):
            raise InvalidArgumentError(f"input_means must have one entry per layer "
                                       f"({len(params)}), got {len(input_means)}")
        for i, (w, b) in enumerate(params):
            if fp32:
                self.layers.append(Linear.fp32(w, b))
                continue
            nonneg = nonnegative_input if i == 0 else activation == "relu"
            kw = dict(opts)
            kw.setdefault("nonnegative_inputs", nonneg)
            if row_planes is not None and row_planes[i] is not None:
                kw["row_planes"] = row_planes[i]
            w = _finite(w, "weight")
            mean = None if input_means is None else input_means[i]
            self.layers.append(Linear.from_matrix(Matrix.quantize(w, **kw), b, input_mean=mean,
                                                  weight=None if mean is None else w))

    def _hidden_buffers(self, batch: int) -> Optional[List[np.ndarray]]:
        """This thread's arrays for the hidden layers' outputs at `batch`;
        None (allocate per call) when they would hold more than
        _HIDDEN_KEEP_BYTES, so one huge batch does not stay in memory."""
        bufs = getattr(self._hidden, "bufs", None)
        if bufs is None or bufs[0].shape[0] != batch:
            self._hidden.bufs = None
            width = sum(layer.out_features for layer in self.layers[:-1])
            if batch * width * 4 > _HIDDEN_KEEP_BYTES:
                return None
            bufs = [np.empty((batch, layer.out_features), np.float32)
                    for layer in self.layers[:-1]]
            self._hidden.bufs = bufs
        return bufs

    def __call__(self, x, planes: PerLayer = None, act_bits: PerLayer = None) -> np.ndarray:
        n = len(self.layers)
        planes, act_bits = _per_layer(planes, n, "planes"), _per_layer(act_bits, n, "act_bits")
        h = np.ascontiguousarray(x, np.float32)
        bufs = self._hidden_buffers(h.shape[0]) if h.ndim == 2 and n > 1 and h.size else None
        for i, layer in enumerate(self.layers):
            if i + 1 == n:
                return layer(h, planes=planes[i], act_bits=act_bits[i])
            out = bufs[i] if bufs is not None else None
            h = layer(h, planes=planes[i], act_bits=act_bits[i], out=out,
                      activation=self._fused)
            if self._fused is None:
                h = self.activation(h)
        return h


class CharRNN:
    """Embedding lookup, LSTM or GRU layers, and a Linear read-out.

    ``model.logits(tokens, planes=None, act_bits=None)`` with tokens of shape
    (T, batch) (independent streams, zero initial state) gives (T, batch, V).
    planes/act_bits per layer: one value per recurrent layer, then the read-out.
    """

    def __init__(self, data: ModelData, *, bits: int = 8, method: str = "uniform",
                 clip: float = 0.0, context: Optional[Context] = None, fp32: bool = False,
                 row_planes: Optional[Sequence] = None, split_gates: bool = False):
        """row_planes: per-row plane counts (docs/row-planes.md), one entry
        per layer: for each recurrent layer None or a pair (ih, hh) of
        counts (each None or gates*hidden ints), then the read-out's (None
        or out_features ints). split_gates: one matrix per gate in the
        recurrent layers, so each gate can run at its own plane count
        (same planes and results at equal counts; bitplane_rnn.h)."""
        a = data.arrays
        cell = LSTM if data.arch == "char_lstm" else GRU
        n_rnn = int(a["rnn_layers"])
        if row_planes is not None and len(row_planes) != n_rnn + 1:
            raise InvalidArgumentError(f"row_planes must have one entry per layer "
                                       f"({n_rnn + 1}), got {len(row_planes)}")
        counts = list(row_planes) if row_planes is not None else [None] * (n_rnn + 1)
        self.embed = np.ascontiguousarray(a["embed.weight"], np.float32)
        self.rnn = []
        for l in range(n_rnn):
            p = [a[f"rnn{l}.{k}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            self.rnn.append(cell.fp32(*p) if fp32 else
                            cell(*p, bits=bits, method=method, clip=clip, context=context,
                                 row_planes=counts[l], split_gates=split_gates))
        self.fc = (Linear.fp32(a["fc.weight"], a["fc.bias"]) if fp32 else
                   Linear(a["fc.weight"], a["fc.bias"], bits=bits, method=method, clip=clip,
                          context=context, row_planes=counts[-1]))

    @property
    def n_layers(self) -> int:
        return len(self.rnn) + 1

    def _token_ids(self, tokens) -> np.ndarray:
        """Integer ids in 0..V-1: NumPy indexing would read -1 as the last
        row, booleans as a mask and refuse floats with a message that does
        not name the argument."""
        t = np.asarray(tokens)
        if t.dtype.kind not in "iu":
            raise TypeError(f"tokens must be integer token ids, got dtype {t.dtype}")
        v = len(self.embed)
        if t.size and (t.min() < 0 or t.max() >= v):
            bad = t[(t < 0) | (t >= v)].flat[0]
            raise OutOfRangeError(f"tokens must be in 0..{v - 1} (the vocabulary), got {bad}")
        return t

    def logits(self, tokens, planes: PerLayer = None, act_bits: PerLayer = None) -> np.ndarray:
        n = self.n_layers
        planes, act_bits = _per_layer(planes, n, "planes"), _per_layer(act_bits, n, "act_bits")
        x = self.embed[self._token_ids(tokens)]
        for l, layer in enumerate(self.rnn):
            x, _ = layer(x, planes=planes[l], act_bits=act_bits[l])
        return self.fc(x, planes=planes[-1], act_bits=act_bits[-1])


def build(data: ModelData, **kwargs):
    """An MLP or CharRNN for the data; kwargs as their constructors."""
    if data.arch in ("char_lstm", "char_gru"):
        kwargs.pop("activation", None)
        return CharRNN(data, **kwargs)
    if "test_x" in data.arrays and np.size(data.arrays["test_x"]):
        kwargs.setdefault("nonnegative_input", bool(np.all(data.arrays["test_x"] >= 0)))
    means = linear_input_means(data)
    if any(m is not None for m in means):
        kwargs.setdefault("input_means", means)
    return MLP(linear_params(data), **kwargs)


def rnn_chunks(tokens, total: int, streams: int) -> Tuple[np.ndarray, np.ndarray]:
    """Split tokens[:total] into `streams` equal chunks, each read from a zero
    state. Returns inputs and targets of shape (T, streams): targets[t] is the
    token after inputs[t]."""
    tokens = np.asarray(tokens)
    total = min(int(total), len(tokens))
    length = total // streams
    if length < 2:
        raise InvalidArgumentError(f"{total} tokens in {streams} streams leave fewer than 2 "
                                   "per stream")
    chunks = tokens[:length * streams].reshape(streams, length).T  # (length, streams)
    return np.ascontiguousarray(chunks[:-1]), np.ascontiguousarray(chunks[1:])


def bits_per_char(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean of -log2 softmax(logits)[target] over every position (in float64)."""
    z = logits.astype(np.float64).reshape(-1, logits.shape[-1])
    m = z.max(axis=1, keepdims=True)
    logz = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    picked = z[np.arange(z.shape[0]), np.asarray(targets).reshape(-1)]
    return float(np.mean(logz - picked) / np.log(2.0))
