"""bitplane-search: a mixed-precision plane plan for a model, by NSGA-II
(pymoo) over the planes of every layer (and of the input and recurrent
matrices of LSTM/GRU layers), trading the model's metric on held-out data
against the weight bytes read (or the measured latency).

    bitplane-search                                   # the bundled digits MLP
    bitplane-search --model char-gru                  # about 2-4 minutes on 2 cores
    bitplane-search --model char-lstm --objective latency --time-budget 300
    bitplane-search --model char-gru --granularity row-class   # per-row plane classes
    bitplane-search --model char-gru --granularity gate        # per gate of each operator

Writes pareto.csv, pareto.json, pareto.png (the front against uniform planes,
evaluated in the same run) and plan.json (a precision plan, see
bitplane.plan) into --out. Needs the extra: pip install 'bitplane[search]'.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, NoReturn, Optional

from ._bitplane import MAX_ACT_BITS, MAX_BITS

PROG = "bitplane-search"


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message}\n")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = _Parser(prog=PROG, description="Mixed-precision plane search (NSGA-II): the Pareto "
                "front of the model's metric against weight bytes read or latency, and a "
                "precision plan.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="digits",
                   help="a bundled model (digits, char-lstm, char-gru) or a .npz / "
                        ".safetensors file")
    p.add_argument("--objective", default="bytes", choices=["bytes", "latency"],
                   help="second objective: weight bytes read per forward step (exact, from "
                        "the matrices' layout) or the measured median latency of the "
                        "evaluation pass")
    p.add_argument("--granularity", default="operator",
                   choices=["operator", "layer", "gate", "row-class"],
                   help="one gene per matrix (LSTM/GRU: input and recurrent apart), one per "
                        "layer, one per gate of every LSTM/GRU matrix (their layers split "
                        "into one matrix per gate), or per matrix a budget (mean planes per "
                        "row, in quarter planes) and a number of row classes split by "
                        "importance scores (per-row plane counts)")
    p.add_argument("--scores", default="auto", choices=["auto", "norm", "fisher"],
                   help="row-class: row importance scores; norm = ||w_r||, fisher = squared "
                        "first-order loss change of each row's quantization error over "
                        "calibration characters (char models); auto = fisher for char models, "
                        "else norm")
    p.add_argument("--max-classes", type=int, default=3,
                   help="row-class: the most row classes per matrix (1..--bits)")
    p.add_argument("--calibration-tokens", type=int, default=4096,
                   help="row-class with fisher scores: held-out characters after the "
                        "searched and confirmation ones that the scores are computed on")
    p.add_argument("--pop", type=int, default=32, help="NSGA-II population size")
    p.add_argument("--generations", type=int, default=25, help="NSGA-II generations")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed; the same seed gives the same front (bytes objective)")
    p.add_argument("--time-budget", type=float, default=480.0,
                   help="stop after the generation that passes this many seconds of search "
                        "(0 = no limit)")
    p.add_argument("--match-planes", type=int, default=4,
                   help="plan.json is the front's plan with the fewest bytes (or least "
                        "latency) whose metric is no worse than uniform planes at this count")
    p.add_argument("--bits", type=int, default=8, help="planes stored per matrix (k)")
    p.add_argument("--quantizer", default="uniform", choices=["uniform", "residual"])
    p.add_argument("--clip", type=float, default=0.0,
                   help="uniform quantizer's clip ratio; 0 = automatic per row")
    p.add_argument("--act-bits", type=int, default=8, help="activation bits")
    p.add_argument("--threads", type=int, default=0, help="threads; 0 = all cores")
    p.add_argument("--tokens", type=int, default=4096,
                   help="char models: evaluate on this many held-out characters (as the sweep)")
    p.add_argument("--streams", type=int, default=16,
                   help="char models: in this many independent streams, one batch")
    p.add_argument("--confirm-tokens", type=int, default=4096,
                   help="char models: re-score the front and the uniform plans on this many "
                        "held-out characters after the searched ones (0 = skip)")
    p.add_argument("--inputs", default=None,
                   help="Linear stacks: a .npy file of inputs (n, in_features); default "
                        "the file's test_x, else 256 random N(0, 1) rows")
    p.add_argument("--activation", default="relu", choices=["relu", "tanh", "none"],
                   help="Linear stacks: activation between layers")
    p.add_argument("--repeats", type=int, default=3,
                   help="latency objective: at least this many timed passes per plan")
    p.add_argument("--min-time", type=float, default=0.05,
                   help="latency objective: and at least this many seconds per plan")
    p.add_argument("--out", default="bitplane-search-out", help="output directory")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.pop < 4:
        p.error(f"--pop must be >= 4, got {args.pop}")
    if args.generations < 1:
        p.error(f"--generations must be >= 1, got {args.generations}")
    if not args.time_budget >= 0:  # NaN compared false with the clock: no budget at all
        p.error(f"--time-budget must be >= 0, got {args.time_budget}")
    if not 1 <= args.bits <= MAX_BITS:
        p.error(f"--bits must be 1..{MAX_BITS}, got {args.bits}")
    if not 1 <= args.match_planes <= args.bits:
        p.error(f"--match-planes must be 1..{args.bits} (--bits), got {args.match_planes}")
    if not 1 <= args.act_bits <= MAX_ACT_BITS:
        p.error(f"--act-bits must be 1..{MAX_ACT_BITS}, got {args.act_bits}")
    if args.threads < 0:
        p.error(f"--threads must be >= 0, got {args.threads}")
    if args.clip < 0:
        p.error(f"--clip must be >= 0, got {args.clip}")
    if args.streams < 1 or args.tokens < 2:
        p.error("--streams must be >= 1 and --tokens >= 2")
    if args.confirm_tokens < 0:
        p.error(f"--confirm-tokens must be >= 0, got {args.confirm_tokens}")
    if args.repeats < 1 or args.min_time < 0:
        p.error("--repeats must be >= 1 and --min-time >= 0")
    if args.granularity == "row-class" and not 1 <= args.max_classes <= args.bits:
        p.error(f"--max-classes must be 1..{args.bits} (--bits), got {args.max_classes}")
    if args.calibration_tokens < 2:
        p.error(f"--calibration-tokens must be >= 2, got {args.calibration_tokens}")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads > 0 and "numpy" not in sys.modules:
        os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    try:
        import pymoo  # noqa: F401
    except ImportError:
        print(f"{PROG}: needs pymoo: pip install 'bitplane[search]'", file=sys.stderr)
        return 2
    from ._search_run import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
