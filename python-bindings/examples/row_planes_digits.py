"""Per-row plane counts on the bundled digits MLP (docs/row-planes.md).

Scores every layer's rows on the first half of the bundled test set (the
norm baseline and class-based importance), splits them into two plane
classes at a mean-planes budget, and compares accuracy on the second half
with uniform plane counts, together with the weight bytes a forward pass
reads.

    python row_planes_digits.py [--budgets 1.5,2,2.5,3]
"""

import argparse

import numpy as np

import bitplane as bp
from bitplane import models as M
from bitplane import row_planes as rp


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", default="1.5,2,2.5,3", help="mean planes per row, comma-separated")
    ap.add_argument("--classes", type=int, default=2)
    args = ap.parse_args(argv)
    z = np.load(M.bundled_path("digits"))
    n = int(z["n_layers"])
    params = [(z[f"l{i}.weight"], z[f"l{i}.bias"]) for i in range(n)]
    x, y = z["test_x"].astype(np.float32), z["test_y"]
    half = len(x) // 2
    cal_x, cal_y, ev_x, ev_y = x[:half], y[:half], x[half:], y[half:]

    # Each layer's inputs on the calibration half, for the norm baseline.
    inputs = [cal_x]
    for w, b in params[:-1]:
        inputs.append(np.maximum(inputs[-1] @ w.T + b, 0))
    scores = {"norm": [rp.norm_scores(w, a) for (w, _), a in zip(params, inputs)],
              "class": rp.class_scores(params, cal_x, cal_y)}

    def run(row_planes, planes):
        model = M.MLP(params, row_planes=row_planes, nonnegative_input=True)
        acc = float((model(ev_x, planes=planes).argmax(1) == ev_y).mean())
        nbytes = sum(layer.matrix.bytes_read(planes) for layer in model.layers)
        return acc, nbytes

    print(f"digits MLP, {len(ev_x)} held-out samples, act_bits 8")
    print(f"{'plan':<22} {'accuracy':>9} {'weight bytes':>13}")
    for planes in (1, 2, 3, 4):
        acc, nbytes = run(None, planes)
        print(f"{'uniform ' + str(planes):<22} {acc:9.4f} {nbytes:13d}")
    for budget in (float(b) for b in args.budgets.split(",")):
        for name, sc in scores.items():
            counts = [bp.row_planes_from_scores(s, budget, classes=args.classes) for s in sc]
            acc, nbytes = run(counts, 8)
            print(f"{name + ' ' + format(budget, 'g'):<22} {acc:9.4f} {nbytes:13d}")


if __name__ == "__main__":
    main()
