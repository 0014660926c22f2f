"""bitplane-sweep as a smoke test on small synthetic models: it runs, and the
table, CSV, JSON and PNG files it writes hold what they should."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bitplane import _sweep_run as sweep_run
from bitplane import sweep
from model_files import write_char_rnn, write_mlp

FAST = ["--repeats", "2", "--min-time", "0", "--quiet"]


def _check_png(path: Path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, path


def test_sweep_mlp_and_lstm_writes_files(tmp_path, rng, capsys):
    write_mlp(tmp_path / "mlp.npz", rng)
    write_char_rnn(tmp_path / "lstm.npz", rng, arch="char_lstm")
    out = tmp_path / "out"
    rc = sweep.main(["--model", f"{tmp_path / 'mlp.npz'},{tmp_path / 'lstm.npz'}",
                     "--planes", "1,2,8", "--act-bits", "4,8", "--quantizer",
                     "uniform,residual", "--threads", "1", "--tokens", "200", "--streams", "4",
                     "--backend", "cpu,cuda", "--out", str(out)] + FAST)
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| backend" in printed and "fp32 (numpy)" in printed and "sweep.csv" in printed
    assert "cpu speedup" in printed and "timing rounds" in printed

    with open(out / "sweep.csv") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == sweep_run.COLUMNS
        rows = list(reader)
    for model, metric in (("mlp", "accuracy"), ("lstm", "bpc")):
        mine = [r for r in rows if r["model"] == model]
        base = [r for r in mine if r["kind"] == "fp32"]
        configs = [r for r in mine if r["backend"] == "cpu"]
        assert len(base) == 1 and len(configs) == 3 * 2 * 2
        # No sentinel values: the baseline has no quantizer, act_bits or planes.
        assert base[0]["backend"] == "numpy"
        assert base[0]["quantizer"] == base[0]["act_bits"] == base[0]["planes"] == ""
        assert {(r["quantizer"], r["act_bits"], r["planes"]) for r in configs} == {
            (q, a, p) for q in ("uniform", "residual") for a in ("4", "8") for p in ("1", "2", "8")}
        for r in configs + base:
            lat = [float(r[f"latency_{k}_ms"]) for k in ("min", "p25")] + [
                float(r["latency_ms"])] + [float(r[f"latency_{k}_ms"]) for k in ("p75", "max")]
            assert 0 < lat[0] and lat == sorted(lat), r  # min <= p25 <= median <= p75 <= max
            assert float(r["speedup_p25"]) <= float(r["speedup"]) <= float(r["speedup_p75"])
            assert float(r["cpu_ms"]) > 0 and float(r["fp32_cpu_ms"]) > 0
            assert float(r["speedup_cpu"]) > 0
            assert r["threads"] == "1"
            assert float(r["load_before"]) >= 0 and float(r["load_after"]) >= 0
        for r in configs:
            assert r["kind"] == "bitplane" and r["metric_name"] == metric
            assert float(r["fp32_p25_ms"]) <= float(r["fp32_ms"]) <= float(r["fp32_p75_ms"])
            assert int(r["repeats"]) >= 2
            assert 0 <= float(r["rel_error"]) < 2 and 0 < float(r["weight_error"]) < 1
        # More planes, smaller weight error (same quantizer, same act_bits).
        u8 = {int(r["planes"]): float(r["weight_error"]) for r in configs
              if r["quantizer"] == "uniform" and r["act_bits"] == "8"}
        assert u8[1] > u8[2] > u8[8]
    # The synthetic MLP's labels are its fp32 predictions.
    assert float(next(r for r in rows if r["model"] == "mlp" and r["kind"] == "fp32")
                 ["metric"]) == 100.0

    report = json.loads((out / "sweep.json").read_text())
    assert len(report["results"]) == 24 and report["library_version"]
    # Both sides were pinned to the same thread count.
    # (every BLAS the process loaded: NumPy's, and SciPy's when installed)
    blas = [b["num_threads"] for b in report["machine"]["blas_threads"]]
    assert blas and set(blas) == {1}, blas
    assert len(report["machine"]["load_average_before"]) == 3
    assert report["args"]["threads"] == 1 and report["args"]["threads_note"] == ""
    assert isinstance(report["warnings"], list)
    assert {"metric", "rel_error", "latency_ms", "fp32_ms", "speedup", "cpu_ms", "speedup_cpu",
            "rounds", "load_before"} <= set(report["definitions"])
    for r in report["results"]:
        assert set(r) <= set(sweep_run.COLUMNS) and "load_before" not in r
    lstm = next(m for m in report["models"] if m["name"] == "lstm")
    assert "4 independent streams" in lstm["workload"]
    skipped = {s["backend"] for m in report["models"] for s in m["skipped_backends"]}
    cuda_rows = [r for r in rows if r["backend"] == "cuda"]
    assert ("cuda" in skipped) != bool(cuda_rows)  # skipped with a reason, or it ran
    for model in ("mlp", "lstm"):
        for what in ("metric", "latency", "pareto"):
            _check_png(out / f"{model}_{what}.png")


def test_sweep_console_script_on_a_user_linear_stack(tmp_path, rng):
    weights = {"0.weight": rng.standard_normal((32, 20)).astype(np.float32),
               "0.bias": np.zeros(32, np.float32),
               "1.weight": rng.standard_normal((5, 32)).astype(np.float32)}
    np.savez(tmp_path / "stack.npz", **weights)
    np.save(tmp_path / "x.npy", rng.standard_normal((10, 20)).astype(np.float32))
    script = Path(sys.executable).parent / "bitplane-sweep"
    assert script.exists(), "the console entry point bitplane-sweep is not installed"
    res = subprocess.run([str(script), "--model", str(tmp_path / "stack.npz"), "--inputs",
                          str(tmp_path / "x.npy"), "--planes", "2,4", "--act-bits", "8",
                          "--quantizer", "uniform", "--no-plots", "--out",
                          str(tmp_path / "o")] + FAST, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(open(tmp_path / "o" / "sweep.csv")))
    assert [r["planes"] for r in rows] == ["", "2", "4"]
    # No labels but several outputs: agreement with fp32's top output, and
    # the output error in its own column, once.
    header = next(line for line in res.stdout.splitlines() if line.startswith("| backend"))
    assert "agreement" in header and "vs fp32 (pt)" in header
    assert header.count("rel err") == 1 and "rel_error" not in header
    assert rows[0]["metric"] == "100.0"
    for r in rows[1:]:
        assert r["metric_name"] == "agreement" and 0 <= float(r["metric"]) <= 100
        assert float(r["delta"]) == pytest.approx(float(r["metric"]) - 100.0)
    assert not list((tmp_path / "o").glob("*.png"))


def test_single_output_stack_shows_its_error_once(tmp_path, rng, capsys):
    np.savez(tmp_path / "reg.npz", **{"0.weight": rng.standard_normal((8, 6)).astype(np.float32),
                                      "1.weight": rng.standard_normal((1, 8)).astype(np.float32)})
    assert sweep.main(["--model", str(tmp_path / "reg.npz"), "--planes", "2", "--act-bits", "8",
                       "--quantizer", "uniform", "--no-plots", "--out", str(tmp_path / "o")]
                      + FAST) == 0
    header = next(line for line in capsys.readouterr().out.splitlines()
                  if line.startswith("| backend"))
    assert header.count("rel") == 1 and "vs fp32" not in header


def test_sweep_reports_bad_arguments(tmp_path, capsys):
    assert sweep.main(["--model", str(tmp_path / "nope.npz"), "--out", str(tmp_path)]
                      + FAST) == 2
    assert "no model file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sweep.main(["--planes", "a,b"])


@pytest.mark.parametrize("argv, message", [
    (["--planes", "9"], "planes must be 0 (all) or 1..8 (--bits), got 9"),
    (["--act-bits", "17"], "act_bits must be 0 (default 8) or 1..16, got 17"),
    (["--act-bits", "-1"], "act_bits must be 0 (default 8) or 1..16, got -1"),
    (["--bits", "17"], "bits must be 0 (default 8) or 1..16, got 17"),
    (["--quantizer", "ternary"], "method must be 'uniform' or 'residual', got 'ternary'"),
    # NaN compared false with the clock: it silently meant no minimum time.
    (["--min-time", "nan"], "--min-time a finite number >= 0, got"),
])
def test_out_of_range_values_use_the_library_words(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        sweep.parse_args(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_zero_means_the_default_as_in_the_library():
    args = sweep.parse_args(["--planes", "0,2,8", "--act-bits", "0,4", "--bits", "0"])
    assert args.bits == 8 and args.planes == [8, 2] and args.act_bits == [8, 4]


def test_only_unavailable_backends_exit_nonzero_once(tmp_path, rng, capsys):
    import bitplane as bp

    try:
        bp.Context(backend="cuda")
        pytest.skip("a CUDA backend is available here")
    except bp.UnsupportedError:
        pass
    write_mlp(tmp_path / "mlp.npz", rng)
    rc = sweep.main(["--model", str(tmp_path / "mlp.npz"), "--backend", "cuda", "--out",
                     str(tmp_path / "o")] + FAST)
    captured = capsys.readouterr()
    assert rc == 3
    err = captured.err.strip()
    assert err.count("\n") == 0 and err.count("not available") == 1, err
    assert "-Ccmake.define.BP_CUDA=ON" in err and "--backend cpu" in err
    assert "not available" not in captured.out


class FakeMachine:
    """A wall clock and a CPU clock that advance only when a timed call runs:
    call `name` takes `cost[name]` seconds of CPU, and `slow(round)` times
    that of wall time in round `round` (a machine whose load changes from
    round to round; the warm-up calls count as round 0)."""

    def __init__(self, cost, slow):
        self.cost, self.slow = cost, slow
        self.wall = self.cpu = 0.0
        self.calls = []

    def call(self, name, out=None):
        def run():
            self.calls.append(name)
            per_round = len(self.cost)
            round_ = max(len(self.calls) - 1 - per_round, 0) // per_round
            self.cpu += self.cost[name]
            self.wall += self.cost[name] * self.slow(round_)
            return out
        return run


def test_rounds_rotate_the_order_and_pair_each_call_with_its_round():
    from bitplane._sweep_run import time_rounds

    fake = FakeMachine({"b": 1.0, "x": 2.0, "y": 4.0}, slow=lambda r: 1.0)
    outs, b, (x, y) = time_rounds(fake.call("b"), [fake.call("x", 7), fake.call("y", 8)],
                                  repeats=4, min_time=0, clock=lambda: fake.wall,
                                  cpu_clock=lambda: fake.cpu)
    assert outs == [7, 8]
    # Warm-ups (x, y, b), then four rounds, each one rotated by one call.
    assert "".join(fake.calls) == "xyb" + "bxy" "xyb" "ybx" "bxy"
    assert b == {"wall": [1.0] * 4, "cpu": [1.0] * 4}
    assert x["wall"] == [2.0] * 4 and y["cpu"] == [4.0] * 4


def test_rounds_run_at_least_min_time_per_function():
    from bitplane._sweep_run import time_rounds

    # Times that binary floating point holds exactly.
    fake = FakeMachine({"b": 0.125, "x": 0.125, "y": 0.125}, slow=lambda r: 1.0)
    _, b, _ = time_rounds(fake.call("b"), [fake.call("x"), fake.call("y")], repeats=1,
                          min_time=1.5, clock=lambda: fake.wall, cpu_clock=lambda: fake.cpu)
    # 2 functions x 1.5 s = 3 s of rounds of 0.375 s: 8 rounds (the 8th ends at 3 s).
    assert len(b["wall"]) == 8
    _, b, _ = time_rounds(fake.call("b"), [], repeats=3, min_time=0,
                          clock=lambda: fake.wall, cpu_clock=lambda: fake.cpu)
    assert len(b["wall"]) == 3  # the baseline alone when nothing else is timed


def test_speedup_is_the_median_of_per_round_ratios():
    from bitplane._sweep_run import paired, time_rounds

    # The machine is 1x, 100x, 1x, 30x, 1x, 100x, 1x slow in successive
    # rounds: per-side medians swing, per-round ratios do not.
    slow = [1, 100, 1, 30, 1, 100, 1]
    fake = FakeMachine({"b": 0.004, "x": 0.001}, slow=lambda r: slow[min(r, len(slow) - 1)])
    _, b, (x,) = time_rounds(fake.call("b"), [fake.call("x")], repeats=len(slow), min_time=0,
                             clock=lambda: fake.wall, cpu_clock=lambda: fake.cpu)
    t = paired(b, x)
    assert t["rounds"] == len(slow)
    assert t["speedup"] == pytest.approx(4.0) and t["speedup_cpu"] == pytest.approx(4.0)
    assert t["speedup_p25"] == pytest.approx(4.0) and t["speedup_p75"] == pytest.approx(4.0)
    assert t["cpu_ms"] == pytest.approx(1.0) and t["fp32_cpu_ms"] == pytest.approx(4.0)
    assert t["latency"]["max"] == pytest.approx(100.0)  # the spread still shows the load

    # Ratios are taken within a round, not between the sides' medians
    # (which would give 2 / 5 here).
    b = {"wall": [1.0, 2.0, 10.0], "cpu": [1.0, 1.0, 3.0]}
    x = {"wall": [1.0, 5.0, 5.0], "cpu": [0.5, 0.5, 1.0]}
    t = paired(b, x)
    assert t["speedup"] == pytest.approx(1.0)  # per round: 1, 0.4, 2
    assert t["speedup_p25"] == pytest.approx(0.7) and t["speedup_p75"] == pytest.approx(1.5)
    assert t["speedup_cpu"] == pytest.approx(2.0)  # per round: 2, 2, 3


def test_threads_default_to_one_on_a_busy_machine():
    assert sweep.default_threads(0, 2, 0.7) == (2, "")
    threads, note = sweep.default_threads(0, 2, 11.5)
    assert threads == 1 and note.startswith("1 of 2 cores") and "load average, 11.50" in note
    assert sweep.default_threads(2, 2, 11.5) == (2, "")  # a count is kept as given
    assert sweep.default_threads(0, 1, 5.0) == (1, "")


def test_unreliable_numbers_are_flagged():
    from bitplane._sweep_run import warnings_for

    quiet = {"min": 1, "p25": 1.0, "median": 1.0, "p75": 1.05, "max": 1.1}
    noisy = {"min": 1, "p25": 1.0, "median": 1.2, "p75": 2.0, "max": 9}
    row = lambda lat: {"_latency": lat, "_fp32_latency": quiet, "repeats": 9}  # noqa: E731
    model = {"name": "m", "fp32": {"spread": quiet}, "rows": [row(quiet), row(quiet)]}
    assert warnings_for([model], (0.1, 0.1, 0.1), 2) == []
    assert "load average was 3.00 on 2 cores" in warnings_for([model], (3.0, 1, 1), 2)[0]
    assert len(warnings_for([model], (3.0, 1, 1), 2, threads=1)) == 1
    assert "measure the scheduler" in warnings_for([model], (3.0, 1, 1), 2, threads=2)[1]
    model["rows"][1] = row(noisy)
    assert any("1 of 2 configurations" in w for w in warnings_for([model], (0.1, 0, 0), 2))
    model["fp32"]["spread"] = noisy
    assert any("fp32 baseline" in w for w in warnings_for([model], (0.1, 0, 0), 2))


def test_plot_groups_stay_apart_and_pareto_front():
    from bitplane._sweep_run import group_styles, pareto_front

    keys = [(b, q, a) for b in ("cpu", "opencl") for q in ("uniform", "residual")
            for a in (4, 8)]
    styles, offsets = group_styles(keys, True)
    # Every group is drawn differently and at its own x offset.
    assert len({(s["marker"], s["linestyle"]) for s in styles.values()}) == len(keys)
    assert len(set(offsets.values())) == len(keys)
    assert max(abs(o) for o in offsets.values()) <= 0.12 + 1e-9
    pts = [(1.0, 90), (2.0, 95), (1.5, 80), (3.0, 94), (4.0, 97)]
    rows = [{"_latency": {"median": t}, "metric": m} for t, m in pts]
    assert [(r["_latency"]["median"], r["metric"]) for r in pareto_front(rows, True)] == [
        (1.0, 90), (2.0, 95), (4.0, 97)]
    assert [r["metric"] for r in pareto_front(rows, False)] == [90, 80]
