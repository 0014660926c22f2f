"""The SLO controller on the wide stack's batch-4 cost profile, simulated:
the table in docs/serve.md ("The cost table on the wide stack's profile").

Drives the discrete-event batcher of python-bindings/tests/
test_serve_controller.py (its FLAT_MS profile, 4-row batches, SLO 40 ms,
admission) at 0.5x-2.5x the 8-plane capacity: fixed 8 planes with the count
bound only, auto without a metric and auto with the tests' metric curve.
Seeded; no timing of this machine enters the numbers.

    python bench/serve/simulate_flat_profile.py [--seed 1]
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python-bindings",
                                "tests"))
from test_serve_controller import METRIC, flat_controller, simulate_flat  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    rng = np.random.default_rng(ap.parse_args().seed)
    print("| load (x 8-plane capacity) | fixed 8, count bound: p99 ms | auto, no metric: p99 ms, "
          "refused, mean planes (shares), served metric | auto with the metric: the same |")
    print("|---|---|---|---|")
    for m in (0.5, 1.0, 1.25, 1.5, 2.0, 2.5):
        lat8, _, _ = simulate_flat(m, rng, flat_controller(), planes=8, admission=False)
        cells = [f"{m:g}", f"{np.percentile(lat8, 99) * 1e3:.1f}"]
        for metric in (None, METRIC):
            lat, used, shed = simulate_flat(m, rng, flat_controller(metric))
            hist = np.bincount(used, minlength=9)[1:]
            shares = ", ".join(f"{p}: {100 * hist[p - 1] / len(used):.0f} %"
                               for p in range(8, 0, -1) if hist[p - 1] >= 0.01 * len(used))
            served_metric = np.mean([METRIC[p] for p in used])
            cells.append(f"{np.percentile(lat, 99) * 1e3:.1f}, {100 * shed:.0f} %, "
                         f"{used.mean():.2f} ({shares}), {served_metric:.3f}")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
