"""What the infer parser's checks cost: bitplane.serve.protocol.parse_infer
on JSON bodies of 1x64, 64x64 and 64x784 float32 values, against the same
function of another revision of protocol.py (a file: `git show
REV:python-bindings/bitplane/serve/protocol.py > old.py`), interleaved
round by round (ABBA order), medians of 21 rounds. Both must give the same
float32 bits. Used for the JSON data element check (docs/errors.md).

    python bench/serve/parse_cost.py OLD_PROTOCOL.py
"""

import importlib.util
import statistics
import sys
import time

import numpy as np
import orjson

from bitplane.serve import protocol as new


def load_old(path: str):
    spec = importlib.util.spec_from_file_location("protocol_old", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["protocol_old"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    old = load_old(sys.argv[1])
    rng = np.random.default_rng(0)
    for rows, cols, calls in [(1, 64, 1000), (64, 64, 60), (64, 784, 6)]:
        data = rng.standard_normal(rows * cols).astype(np.float32).tolist()
        body = orjson.dumps({"inputs": [{"name": "input", "shape": [rows, cols],
                                         "datatype": "FP32", "data": data}]})
        parse = {name: (lambda m=m: m.parse_infer(body, None, in_features=cols, max_rows=64,
                                                  max_planes=8, default_planes=8))
                 for name, m in (("new", new), ("old", old))}
        a, b = parse["new"]().x, parse["old"]().x
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), "the parsers disagree"
        times = {name: [] for name in parse}
        for r in range(21):
            for name in (("new", "old") if r % 2 else ("old", "new")):
                start = time.perf_counter()
                for _ in range(calls):
                    parse[name]()
                times[name].append((time.perf_counter() - start) / calls)
        t_new, t_old = statistics.median(times["new"]), statistics.median(times["old"])
        print(f"{rows}x{cols}: parse_infer {t_new * 1e6:.1f} us, the other revision "
              f"{t_old * 1e6:.1f} us, ratio {t_new / t_old:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
