"""bitplane-sweep as a smoke test on small synthetic models: it runs, and the
table, CSV, JSON and PNG files it writes hold what they should."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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

    with open(out / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    for model, metric in (("mlp", "accuracy"), ("lstm", "bpc")):
        mine = [r for r in rows if r["model"] == model]
        base = [r for r in mine if r["quantizer"] == "fp32"]
        configs = [r for r in mine if r["backend"] == "cpu"]
        assert len(base) == 1 and len(configs) == 3 * 2 * 2
        assert {(r["quantizer"], r["act_bits"], r["planes"]) for r in configs} == {
            (q, a, p) for q in ("uniform", "residual") for a in ("4", "8") for p in ("1", "2", "8")}
        for r in configs:
            assert r["metric_name"] == metric
            assert float(r["latency_ms"]) > 0 and float(r["fp32_ms"]) > 0
            assert float(r["speedup"]) == pytest.approx(
                float(r["fp32_ms"]) / float(r["latency_ms"]), rel=1e-6)
            assert 0 <= float(r["rel_error"]) < 2 and 0 < float(r["weight_error"]) < 1
        # More planes, smaller weight error (same quantizer, same act_bits).
        u8 = {int(r["planes"]): float(r["weight_error"]) for r in configs
              if r["quantizer"] == "uniform" and r["act_bits"] == "8"}
        assert u8[1] > u8[2] > u8[8]
    # The synthetic MLP's labels are its fp32 predictions.
    assert float(next(r for r in rows if r["model"] == "mlp" and r["quantizer"] == "fp32")
                 ["metric"]) == 100.0

    report = json.loads((out / "sweep.json").read_text())
    assert len(report["results"]) == 24 and report["library_version"]
    assert {"metric", "rel_error", "latency_ms", "fp32_ms", "speedup"} <= set(
        report["definitions"])
    lstm = next(m for m in report["models"] if m["name"] == "lstm")
    assert "4 independent streams" in lstm["workload"]
    skipped = {s["backend"] for m in report["models"] for s in m["skipped_backends"]}
    cuda_rows = [r for r in rows if r["backend"] == "cuda"]
    assert ("cuda" in skipped) != bool(cuda_rows)  # skipped with a reason, or it ran
    for name in ("mlp_metric", "mlp_latency", "lstm_metric", "lstm_latency"):
        _check_png(out / f"{name}.png")


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
    assert "rel_error" in res.stdout
    rows = list(csv.DictReader(open(tmp_path / "o" / "sweep.csv")))
    assert [r["planes"] for r in rows] == ["32", "2", "4"]
    # With no labels the metric is the relative output error itself.
    for r in rows[1:]:
        assert float(r["metric"]) == pytest.approx(float(r["rel_error"]))
    assert not list((tmp_path / "o").glob("*.png"))


def test_sweep_reports_bad_arguments(tmp_path, capsys):
    assert sweep.main(["--model", str(tmp_path / "nope.npz"), "--out", str(tmp_path)]
                      + FAST) == 2
    assert "no model file" in capsys.readouterr().err
    assert sweep.main(["--planes", "9", "--out", str(tmp_path)] + FAST) == 2
    with pytest.raises(SystemExit):
        sweep.main(["--planes", "a,b"])
