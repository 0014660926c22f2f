"""PyTorch ``state_dict`` -> bitplane.

``torch.nn.LSTM`` / ``torch.nn.GRU`` store their layers as
``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``
(k = 0, 1, ...), in the same layout and gate order that :class:`bitplane.RNN`
takes, so a state dict converts without reordering. Tensors come from a
``.safetensors`` file (``safetensors.torch.save_file(module.state_dict(),
path)`` on the PyTorch side) read with NumPy only: torch is not needed here.
"""

from __future__ import annotations

import os
import re
from typing import Dict, Optional, Union

import numpy as np

from ._bitplane import RNN, Context

__all__ = ["read_safetensors", "rnn_from_state_dict", "rnn_from_safetensors"]

_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?$")


def read_safetensors(path: Union[str, os.PathLike]) -> Dict[str, np.ndarray]:
    """Every tensor of a .safetensors file as a NumPy array."""
    try:
        from safetensors.numpy import load_file
    except ImportError as e:
        raise ImportError(f"reading {path} needs the safetensors package: "
                          "pip install safetensors") from e
    return dict(load_file(str(path)))


def rnn_from_state_dict(tensors: Dict[str, np.ndarray], cell: str, prefix: str = "", *,
                        bits: int = 8, method: str = "uniform", clip: float = 0.0,
                        split_gates: bool = False,
                        context: Optional[Context] = None, **quantize) -> RNN:
    """Quantize the LSTM or GRU whose parameters are ``prefix + weight_ih_l0``
    etc. in ``tensors`` (``prefix`` like ``"rnn."`` for a submodule).
    ``quantize`` passes further :meth:`RNN.quantize` options (``group_size``,
    ``rotation``, ``rotation_seed``, ``row_planes``).
    Raises ValueError naming what is missing or unsupported (bidirectional
    layers, projections, a gap in the layer numbers)."""
    if cell not in ("lstm", "gru"):
        raise ValueError(f"cell must be 'lstm' or 'gru', got '{cell}'")
    layers: Dict[int, Dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        if not key.startswith(prefix):
            continue
        m = _KEY.match(key[len(prefix):])
        if m is None:
            if key[len(prefix):].startswith("weight_hr"):
                raise ValueError(f"{key}: LSTMs with projections (proj_size) are not supported")
            continue
        if m.group(3):
            raise ValueError(f"{key}: bidirectional RNNs are not supported")
        layers.setdefault(int(m.group(2)), {})[m.group(1)] = np.ascontiguousarray(value,
                                                                                  np.float32)
    if not layers:
        raise ValueError(f"no '{prefix}weight_ih_l0' in the tensors (keys: "
                         f"{', '.join(sorted(tensors)[:8])}{', ...' if len(tensors) > 8 else ''})")
    if sorted(layers) != list(range(len(layers))):
        raise ValueError(f"layer numbers must run 0..{len(layers) - 1}, got {sorted(layers)}")
    weights = []
    for k in range(len(layers)):
        p = layers[k]
        for name in ("weight_ih", "weight_hh"):
            if name not in p:
                raise ValueError(f"missing '{prefix}{name}_l{k}'")
        weights.append((p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh")))
    return RNN.quantize(cell, weights, bits=bits, method=method, clip=clip, context=context,
                        split_gates=split_gates, **quantize)


def rnn_from_safetensors(path: Union[str, os.PathLike], cell: str, prefix: str = "",
                         **kwargs) -> RNN:
    """:func:`rnn_from_state_dict` on the tensors of a .safetensors file."""
    return rnn_from_state_dict(read_safetensors(path), cell, prefix, **kwargs)
