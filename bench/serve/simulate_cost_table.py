"""The SLO controller's cost table after a simulated overload, on the wide
stack's batch-4 profile: the figures in docs/serve.md ("Stale entries").

One controller (the flat profile's table as seed, the pinned load test's
metric per plane count) serves the discrete-event batcher of
python-bindings/tests/test_serve_controller.py at 0.5x, 1x, 1.5x, 2x and 3x
the 8-plane capacity in turn (4000 Poisson arrivals each). Each batch costs
the profile's time times a lognormal factor (sigma 0.2) plus 0.2 ms of the
event loop's work per arrival during it. Printed per condition, over the
seeds: the median and 90th percentile of the spread (max - min, in logs) of
the 4-8 plane entries over the profile at the table's current speed, the
pairs of counts out of order (a count at least 5 % cheaper in the profile
that the table does not rank below), and the runs whose ladder is the
profile's. Seeded; no timing of this machine enters the numbers.

    python bench/serve/simulate_cost_table.py [--seeds 20]
"""

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python-bindings",
                                "tests"))
from test_serve_controller import (FLAT_FIXED, FLAT_MS, FLAT_ROW, flat_controller,  # noqa: E402
                                   flat_cost, simulate_flat)

from bitplane.serve.controller import CostModel  # noqa: E402

# The metric per plane count of the pinned load test's wide stack (its
# metadata-auto.json), rounded.
WIDE_METRIC = {1: 0.293, 2: 0.377, 3: 0.600, 4: 0.801, 5: 0.900, 6: 0.939, 7: 0.963, 8: 0.977}
TRUE_LADDER = [8, 7, 6, 5, 4, 1]


def run(seed, loop_s=2e-4, speed_sd=0.0, seed_sd=0.0):
    """One controller through the load steps; the table's entries over the
    profile at its current speed, and its ladder."""
    rng = np.random.default_rng(seed)
    cap8 = 4 / flat_cost([8] * 4)
    off = [math.exp(rng.normal(0.0, seed_sd)) for _ in range(8)]
    cost = CostModel([f * o for f, o in zip(FLAT_FIXED, off)],
                     [r * o for r, o in zip(FLAT_ROW, off)], 3e-4)
    ctrl = flat_controller(WIDE_METRIC, cost)
    speed = [1.0]
    for level in (0.5, 1.0, 1.5, 2.0, 3.0):
        def service(planes, level=level):
            if speed_sd:  # the machine's speed wanders (log AR(1))
                speed[0] = math.exp(0.9 * math.log(speed[0]) + rng.normal(0.0, speed_sd))
            seconds = speed[0] * flat_cost(planes) * math.exp(rng.normal(0.0, 0.2) - 0.02)
            return seconds + loop_s * rng.poisson(level * cap8 * seconds)
        simulate_flat(level, rng, ctrl, service=service)
    m = cost.machine_factor
    return {p: cost.batch(p, 4) / (m * FLAT_MS[p] * 1e-3) for p in range(1, 9)}, ctrl.ladder()


def out_of_order(ratio):
    """Pairs (a, b): a at least 5 % cheaper than b in the profile, not in the table."""
    cost = {p: ratio[p] * FLAT_MS[p] for p in ratio}
    return [(a, b) for a in cost for b in cost
            if FLAT_MS[a] < 0.95 * FLAT_MS[b] and cost[a] >= cost[b]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    seeds = range(ap.parse_args().seeds)
    print("| condition | spread of 4-8 planes: median, p90 | pairs out of order | true ladder |")
    print("|---|---|---|---|")
    conditions = {"noisy batches + event loop": {}, "noisy batches": dict(loop_s=0.0),
                  "+ wandering speed": dict(speed_sd=0.05),
                  "+ seed off by 15 %": dict(seed_sd=0.15)}
    for name, kw in conditions.items():
        spreads, pairs, right = [], 0, 0
        for seed in seeds:
            ratio, ladder = run(seed, **kw)
            logs = [math.log(ratio[p]) for p in range(4, 9)]
            spreads.append(max(logs) - min(logs))
            pairs += len(out_of_order(ratio))
            right += ladder == TRUE_LADDER
        spread = f"{100 * np.median(spreads):.0f} %, {100 * np.percentile(spreads, 90):.0f} %"
        print(f"| {name} | {spread} | {pairs} | {right} of {len(seeds)} |")


if __name__ == "__main__":
    main()
