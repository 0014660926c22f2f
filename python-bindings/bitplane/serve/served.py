"""What the server serves: a model loaded once, with the calls the batcher and
the generation endpoint need.

* :class:`LinearStackModel` (the bundled ``digits`` MLP or a user's
  ``.npz``/``.safetensors`` Linear stack) answers ``infer``. Its
  :meth:`~LinearStackModel.forward_batched` runs one ``gemm`` per layer for a
  whole batch, each row at its own plane count through ``column_planes``.
* :class:`CharModel` (``char-lstm``, ``char-gru``) answers streaming
  generation, one character at a time, through a :class:`RNNStepper`.

Either may carry a precision plan (``bitplane.plan``, docs/precision-plans.md):
per-layer (per-operator for LSTM/GRU) plane ceilings, under which a request's
``planes`` still caps.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from .. import models as bp_models
from .. import plan as bp_plan
from ..layers import GRU, LSTM

__all__ = ["LinearStackModel", "CharModel", "RNNStepper", "load", "plan_summary", "layer_planes"]


class LinearStackModel:
    """A Linear stack (MLP) served by ``infer``."""

    kind = "linear"

    def __init__(self, data: bp_models.ModelData, *, activation: str = "relu", bits: int = 8,
                 context=None, built: Optional[bp_models.MLP] = None,
                 plan: Optional[dict] = None):
        """built: the MLP already made (with `plan` applied), else made here."""
        self.name = data.name
        self.path = data.path
        # build() quantizes as the sweep does: layers whose inputs are
        # non-negative (after a ReLU; the first one when the file's test_x
        # is) keep the unsigned activation mode instead of being rotated.
        self.mlp = built or bp_models.build(data, activation=activation, bits=bits,
                                            context=context)
        self.plan = plan
        self.bits = plan["quantizer"]["bits"] if plan else bits
        self.in_features = self.mlp.layers[0].in_features
        self.out_features = self.mlp.layers[-1].out_features
        self.test_x = data.arrays.get("test_x")
        self.test_y = data.arrays.get("test_y")

    def forward(self, x: np.ndarray, planes: int, act_bits: int) -> np.ndarray:
        """The direct library call: every row at `planes` (the reference)."""
        return self.mlp(x, planes=planes, act_bits=act_bits)

    def forward_batched(self, x: np.ndarray, column_planes: Sequence[int],
                        act_bits: int) -> np.ndarray:
        """One gemm per layer for the whole batch; row i uses column_planes[i].

        Bit-identical, row for row, to :meth:`forward` at that row's planes
        for act_bits >= 2 (activations are quantized per row and the combine
        is exact); the batcher keeps act_bits 1 rows of equal planes together.
        """
        cp = [int(p) for p in column_planes]
        layers = self.mlp.layers
        h = x
        for i, layer in enumerate(layers):
            # the layer's call: its bias correction, if any, per column too
            h = layer(h, act_bits=act_bits, column_planes=cp)
            if i + 1 < len(layers):
                h = self.mlp.activation(h)
        return h


class RNNStepper:
    """Character steps of a CharRNN with explicit per-stream state.

    A stream's state is a list with one entry per recurrent layer (LSTM:
    (h, c), GRU: h, each of shape (1, hidden); None = zeros). :meth:`run`
    reads a stream's tokens with the layers' sequence call (a prompt);
    :meth:`step_batch` advances many streams by one token each with one
    ``bp_rnn_step_columns`` call per layer, each stream's state one column
    of the batch at the stream's own planes. Both give, bit for bit, what
    the other would: the step equals the sequence call, and every column is
    computed as if alone (activations are quantized per column; act_bits
    >= 2 for columns at different planes).
    """

    def __init__(self, model: bp_models.CharRNN):
        self.model = model

    def zero_state(self) -> List[Optional[object]]:
        return [None] * len(self.model.rnn)

    def run(self, tokens: Sequence[int], state, planes: int, act_bits: int):
        """Feed tokens (one stream, in order) from `state`; returns the logits
        after the last token, shape (vocab,), and the new state."""
        m = self.model
        x = m.embed[np.asarray(tokens, np.int64)][:, None, :]  # (T, 1, E)
        new_state = []
        for layer, st in zip(m.rnn, state):
            x, st = layer(x, state=st, planes=planes, act_bits=act_bits)
            new_state.append(st)
        logits = m.fc(x[-1], planes=planes, act_bits=act_bits)  # (1, V)
        return logits[0], new_state

    def step_batch(self, tokens: Sequence[int], states: Sequence[list],
                   planes: Union[int, Sequence[int]], act_bits: int):
        """One token for each of len(tokens) streams (states[i] is stream
        i's state) at `planes` (one count for all, or one per stream): one
        step call per layer and one read-out product for all of them, each
        stream a column at its own planes. Returns logits (streams, vocab)
        and the new states."""
        m = self.model
        b = len(tokens)
        cp = [int(planes)] * b if isinstance(planes, (int, np.integer)) else \
            [int(p) for p in planes]
        if len(cp) != b:
            raise ValueError(f"planes must be one int or one per stream ({b}), got {len(cp)}")
        x = m.embed[np.asarray(tokens, np.int64)]  # (B, E)
        per_layer = []
        for li, layer in enumerate(m.rnn):
            hs = layer.hidden_size
            h = np.zeros((b, hs), np.float32)
            c = np.zeros((b, hs), np.float32) if layer.gates == 4 else None
            for i, st in enumerate(states):
                s = st[li]
                if s is None:
                    continue
                if c is None:
                    h[i] = np.reshape(s, hs)
                else:
                    h[i] = np.reshape(s[0], hs)
                    c[i] = np.reshape(s[1], hs)
            x, _ = layer.step(x, h if c is None else (h, c), act_bits=act_bits,
                              column_planes=cp)
            per_layer.append((h, c))  # updated in place by the step
        # The read-out as Linear.__call__ makes it, with a count per column
        # (a plan's cap stays in the matrix, see bitplane.plan).
        logits = m.fc.matrix.gemm(x, act_bits=act_bits, bias=m.fc.bias,
                                  column_planes=cp)  # (B, V)
        new_states = [[h[i:i + 1].copy() if c is None else (h[i:i + 1].copy(),
                                                            c[i:i + 1].copy())
                       for h, c in per_layer] for i in range(b)]
        return logits, new_states


class CharModel:
    """A character LSTM/GRU served by streaming generation."""

    kind = "char"

    def __init__(self, data: bp_models.ModelData, *, bits: int = 8, context=None,
                 built: Optional[bp_models.CharRNN] = None, plan: Optional[dict] = None):
        """built: the CharRNN already made (with `plan` applied), else made here."""
        self.name = data.name
        self.path = data.path
        self.rnn = built or bp_models.CharRNN(data, bits=bits, context=context)
        self.plan = plan
        self.bits = plan["quantizer"]["bits"] if plan else bits
        self.cell = "lstm" if isinstance(self.rnn.rnn[0], LSTM) else "gru"
        assert isinstance(self.rnn.rnn[0], (LSTM, GRU))
        self.vocab = [int(c) for c in data.arrays["vocab"]]
        self.unknown = len(self.vocab) - 1  # index of U+FFFD (see the model's meta_json)
        self._index = {c: i for i, c in enumerate(self.vocab)}
        self.stepper = RNNStepper(self.rnn)

    def encode(self, text: str) -> List[int]:
        """Characters to token ids; tabs become spaces and anything outside
        the vocabulary the unknown token, as the training data was normalized."""
        return [self._index.get(ord(" " if ch == "\t" else ch), self.unknown) for ch in text]

    def decode(self, token: int) -> str:
        return chr(self.vocab[token])


def load(model: Optional[Union[str, Path]] = None, *, activation: str = "relu", bits: int = 8,
         context=None, plan: Optional[Union[str, Path]] = None):
    """A served model from a bundled name or a file path, optionally with a
    precision plan file applied (then quantized as the plan says; `model`
    None serves the model the plan names). A bad plan raises
    ``bitplane.plan.PlanError`` (a ValueError) naming the file and field."""
    if plan is None:
        data = bp_models.read("digits" if model is None else model)
        if data.arch in ("char_lstm", "char_gru"):
            return CharModel(data, bits=bits, context=context)
        return LinearStackModel(data, activation=activation, bits=bits, context=context)
    doc = bp_plan.read_plan(plan)
    source = doc["model"] if model is None else model
    data = bp_models.read(source)
    built = bp_plan.load_model(plan, source, context=context)
    doc["source"] = Path(plan).name
    if data.arch in ("char_lstm", "char_gru"):
        return CharModel(data, context=context, built=built, plan=doc)
    return LinearStackModel(data, context=context, built=built, plan=doc)


def plan_summary(plan: dict) -> dict:
    """What the metadata says about an active plan: the file, its act_bits
    and each layer's planes (and operators' where they differ)."""
    layers = {}
    for entry in plan["layers"]:
        layers[entry["name"]] = entry.get("operators") or entry["planes"]
    return {"source": plan["source"], "model": plan["model"], "act_bits": plan["act_bits"],
            "layers": layers}


def layer_planes(plan: dict, planes: int) -> List[int]:
    """Each layer's planes for a request at `planes` under the plan (the
    largest of a recurrent layer's operators)."""
    return [min(planes, entry["planes"]) for entry in plan["layers"]]
