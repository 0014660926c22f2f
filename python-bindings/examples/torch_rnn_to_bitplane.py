#!/usr/bin/env python3
"""Convert a PyTorch LSTM/GRU saved as safetensors into a bitplane RNN file.

On the PyTorch side (torch is needed there only):

    lstm = torch.nn.LSTM(input_size=64, hidden_size=256, num_layers=2)
    safetensors.torch.save_file(lstm.state_dict(), "lstm.safetensors")

Here (NumPy, safetensors and bitplane; no torch):

    python torch_rnn_to_bitplane.py lstm.safetensors lstm.bprnn --cell lstm --bits 8

then run it with ``bitplane.RNN.load("lstm.bprnn").forward(x, steps)`` or in C
with ``bp_rnn_load``. Prints each matrix's relative weight error at 2, 4 and
8 planes.
"""

import argparse

from bitplane.convert import rnn_from_safetensors


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", help=".safetensors file holding the module's state_dict")
    p.add_argument("dst", help="bitplane RNN file to write")
    p.add_argument("--cell", choices=("lstm", "gru"), required=True)
    p.add_argument("--prefix", default="", help="key prefix of the RNN, e.g. 'rnn.'")
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--method", choices=("uniform", "residual"), default="uniform")
    p.add_argument("--split-gates", action="store_true",
                   help="one matrix per gate, for per-gate plane counts")
    a = p.parse_args(argv)
    rnn = rnn_from_safetensors(a.src, a.cell, a.prefix, bits=a.bits, method=a.method,
                               split_gates=a.split_gates)
    rnn.save(a.dst)
    print(f"{rnn!r} -> {a.dst}")
    gates = range(rnn.gates) if rnn.split_gates else [-1]
    for layer in range(rnn.layers):
        for op in ("ih", "hh"):
            errs = [max(rnn.prefix_error(layer, op, n, g) for g in gates)
                    for n in (2, 4, 8) if n <= rnn.bits]
            print(f"  layer {layer} {op}: weight error at 2/4/8 planes "
                  + " / ".join(f"{e:.4f}" for e in errs))


if __name__ == "__main__":
    main()
