"""bitplane-search and precision plans: a short NSGA-II run on the bundled
digits MLP (tiny population), reproducibility by seed, the front, the plan
file's round trip, bad plans and command-line errors."""

import argparse
import copy
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymoo", reason="bitplane-search needs the 'search' extra (pymoo)")

import bitplane as bp  # noqa: E402
from bitplane import models as M  # noqa: E402
from bitplane import plan as P  # noqa: E402
from bitplane import search  # noqa: E402
from bitplane._sweep_run import Workload  # noqa: E402
from model_files import write_char_rnn  # noqa: E402

TINY = ["--model", "digits", "--pop", "8", "--generations", "3", "--threads", "1",
        "--quiet"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("search")
    assert search.main(TINY + ["--seed", "3", "--out", str(out)]) == 0
    return out


def _front(out: Path):
    return json.loads((out / "pareto.json").read_text())


def test_writes_front_uniform_plan_and_png(digits_run):
    report = _front(digits_run)
    assert report["genes"] == ["linear0", "linear1", "linear2"]
    assert [u["planes"]["linear0"] for u in report["uniform"]] == list(range(1, 9))
    assert report["search"]["generations"] == 3
    assert report["search"]["distinct_plans"] >= 8
    rows = list(csv.DictReader(open(digits_run / "pareto.csv")))
    assert {r["set"] for r in rows} == {"front", "uniform"}
    assert sum(r["set"] == "uniform" for r in rows) == 8
    assert sum(r["set"] == "front" for r in rows) == len(report["front"])
    png = (digits_run / "pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    # Bytes are exact: the layout formula, summed over the three matrices.
    data = M.read("digits")
    shapes = [w.shape for w, _ in M.linear_params(data)]
    group = bp.Matrix.quantize(np.ones((1, 64), np.float32)).group_size  # the default
    for e in report["front"] + report["uniform"]:
        planes = [e["planes"][f"linear{i}"] for i in range(3)]
        assert e["weight_bytes"] == sum(P.weight_bytes(r, c, n, group)
                                        for (r, c), n in zip(shapes, planes))


def test_weight_bytes_formula():
    # 10 rows pad to 16, 128 columns to 128 bits (64-bit padding): 16 * 16 bytes a plane, and
    # 10 float32 coefficients a plane.
    assert P.weight_bytes(10, 128, 3) == 3 * (16 * 16 + 40)
    assert P.weight_bytes(16, 512, 1) == 16 * 64 + 64
    assert P.weight_bytes(17, 513, 2) == 2 * (32 * 72 + 68)
    # Group scales: one multiplier byte per padded row and group (576 columns: 18 words,
    # groups of 2 words -> 9 groups; the last group may be shorter: 3 words in 2 groups).
    assert P.weight_bytes(17, 513, 2, 64) == 2 * (32 * 72 + 68) + 32 * 9
    assert P.weight_bytes(16, 96, 1, 64) == 16 * 16 + 64 + 16 * 2  # 96 columns pad to 128


def test_front_is_non_dominated_and_covers_uniform(digits_run):
    report = _front(digits_run)
    pts = [(-e["metric"], e["weight_bytes"]) for e in report["front"]]  # both minimized
    assert len(set(pts)) == len(pts)
    for a in pts:
        for b in pts:
            assert not (b != a and b[0] <= a[0] and b[1] <= a[1]), (a, b)
    # Every uniform plan is on the front or weakly dominated by a front plan.
    for u in report["uniform"]:
        f = (-u["metric"], u["weight_bytes"])
        assert any(p[0] <= f[0] and p[1] <= f[1] for p in pts)


def test_same_seed_same_front(digits_run, tmp_path):
    assert search.main(TINY + ["--seed", "3", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "pareto.csv").read_text() == (digits_run / "pareto.csv").read_text()
    strip = lambda r: {k: r[k] for k in ("front", "uniform", "summary", "search")}  # noqa
    a, b = _front(digits_run), _front(tmp_path)
    for r in (a, b):
        del r["search"]["search_seconds"]
    assert strip(a) == strip(b)


def test_plan_reproduces_the_reported_metric(digits_run):
    plan = P.read_plan(digits_run / "plan.json")
    summary = _front(digits_run)["summary"]
    assert plan["reported"]["metric"] == summary["plan_metric"]
    model = P.load_model(digits_run / "plan.json")
    data = M.read(plan["model"])
    wl = Workload(data, argparse.Namespace(tokens=4096, streams=16, inputs=None,
                                           activation=plan["activation"]))
    ref = wl.forward(wl.build(fp32=True))
    assert wl.metric(model(wl.x), ref) == plan["reported"]["metric"]
    layers = P.describe(model)
    assert sum(op.bytes(n) for op, n in zip([o for l in layers for o in l.operators],
                                             P.plan_planes(layers, plan))) == \
        plan["reported"]["weight_bytes"]
    # Its metric is no worse than uniform 4 planes and it reads no more bytes.
    assert summary["plan_metric"] >= summary["uniform_metric"]
    assert summary["plan_weight_bytes"] <= summary["uniform_weight_bytes"]


def test_plan_round_trip(tmp_path, digits_run):
    plan = P.read_plan(digits_run / "plan.json")
    P.write_plan(plan, tmp_path / "again.json")
    assert P.read_plan(tmp_path / "again.json") == plan


class _Spy:
    """A stand-in matrix that records the planes of every product."""

    def __init__(self, m, log, name):
        self.m, self.log, self.name = m, log, name
        self.rows, self.cols, self.bits, self.method = m.rows, m.cols, m.bits, m.method

    def gemm(self, x, planes=None, **kw):
        self.log.append((self.name, planes))
        return self.m.gemm(x, planes=planes, **kw)


@pytest.mark.parametrize("arch", ["char_lstm", "char_gru"])
def test_per_operator_planes_reach_each_matrix(tmp_path, rng, arch):
    write_char_rnn(tmp_path / "rnn.npz", rng, arch=arch)
    model = M.build(M.read(tmp_path / "rnn.npz"), bits=8)
    log = []
    rnn = model.rnn[0]
    forward = rnn.rnn.forward

    def spy_forward(*args, **kwargs):  # the C layer's call: record its plane counts
        log.append(("input", kwargs["planes_ih"]))
        log.append(("recurrent", kwargs["planes_hh"]))
        return forward(*args, **kwargs)

    rnn.rnn = _Wrap(rnn.rnn, forward=spy_forward)
    model.fc.matrix = _Spy(model.fc.matrix, log, "fc")
    layers = P.describe(model)
    plan = P.make_plan(str(tmp_path / "rnn.npz"), arch, layers, [7, 2, 5], bits=8,
                       method="uniform", clip=0.0, act_bits=6)
    assert plan["layers"][0]["operators"] == {"input": 7, "recurrent": 2}
    assert plan["layers"][0]["planes"] == 7
    P.apply_plan(model, plan)
    tokens = rng.integers(0, 20, (5, 3))
    planned = model.logits(tokens)
    assert set(log) == {("input", 7), ("recurrent", 2), ("fc", 5)}
    log.clear()
    model.logits(tokens, planes=3)  # a call's planes caps the plan
    assert set(log) == {("input", 3), ("recurrent", 2), ("fc", 3)}
    # A model built from the plan file computes the same logits, bit for bit.
    P.write_plan(plan, tmp_path / "plan.json")
    again = P.load_model(tmp_path / "plan.json")
    np.testing.assert_array_equal(again.logits(tokens), planned)


class _Wrap:
    """An object that forwards every attribute to `inner` except the given ones."""

    def __init__(self, inner, **override):
        self._inner, self._override = inner, override

    def __getattr__(self, name):
        return self._override[name] if name in self._override else getattr(self._inner, name)


def _good_plan():
    data = M.read("digits")
    model = M.build(data, bits=8)
    return P.make_plan("digits", "mlp", P.describe(model), [3, 2, 4], bits=8,
                       method="uniform", clip=0.0, act_bits=8, activation="relu")


def _set(path, value):
    def edit(plan):
        obj = plan
        for key in path[:-1]:
            obj = obj[key]
        if value is KeyError:
            del obj[path[-1]]
        else:
            obj[path[-1]] = value
    return edit


BAD_PLANS = [
    (_set(["format"], "other"), "format must be 'bitplane-precision-plan', got \"other\""),
    (_set(["version"], 4), "version 4 is not supported (this reader supports versions 1..3)"),
    (_set(["version"], True), "version true is not supported"),
    (_set(["layers", 1, "planes"], 9), "layers[1].planes must be an integer 1..8, got 9"),
    (_set(["layers", 1, "planes"], 2.5), "layers[1].planes must be an integer 1..8, got 2.5"),
    (_set(["layers", 0, "planes"], KeyError), "layers[0].planes must be an integer 1..8, "
                                              "got null"),
    (_set(["layers", 0, "kind"], "conv"), "layers[0].kind must be 'linear', 'lstm' or "
                                          "'gru', got \"conv\""),
    (_set(["layers", 0, "operators"], {"input": 2}), "layers[0].operators: a linear layer "
                                                     "has one matrix"),
    (_set(["layers", 0, "classes"], [{"planes": 3, "rows": [0]}]),
     "layers[0].classes: per-row plane classes need version 2 of the plan format, the plan "
     "says version 1"),
    (_set(["layers", 0, "shape"], [1, 2]), "layers[0]: unknown field 'shape'"),
    (_set(["quantizer", "method"], "log"), "quantizer.method must be 'uniform' or "
                                           "'residual', got \"log\""),
    (_set(["act_bits"], 0), "act_bits must be an integer 1..16, got 0"),
    (_set(["layers"], []), "'layers' must be a non-empty list"),
]


@pytest.mark.parametrize("edit,message", BAD_PLANS)
def test_bad_plan_files_say_what_is_wrong(tmp_path, edit, message):
    plan = _good_plan()
    edit(plan)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(plan))
    with pytest.raises(P.PlanError) as e:
        P.read_plan(path)
    assert isinstance(e.value, ValueError)
    assert str(e.value) == f"{path}: {message}" or str(e.value).startswith(f"{path}: {message}")


def test_bad_plans_against_the_model(tmp_path, rng):
    path = tmp_path / "broken.json"
    path.write_text('{"format": "bitplane-precision-plan", "version": 1,')
    with pytest.raises(P.PlanError, match=r"broken.json: not valid JSON: Expecting"):
        P.read_plan(path)
    model = M.build(M.read("digits"), bits=8)
    plan = _good_plan()
    short = copy.deepcopy(plan)
    del short["layers"][2]
    with pytest.raises(P.PlanError, match=r"2 layers in the plan, 3 in the model"):
        P.apply_plan(model, short)
    wrong = copy.deepcopy(plan)
    wrong["layers"][1]["in_features"] = 255
    with pytest.raises(P.PlanError, match=r"layer 'linear1': in_features is 255 in the plan, "
                                          r"256 in the model"):
        P.apply_plan(model, wrong)
    with pytest.raises(P.PlanError, match=r"quantized uniform with 6 planes, the plan was "
                                          r"made for uniform with 8"):
        P.apply_plan(M.build(M.read("digits"), bits=6), plan)
    with pytest.raises(P.PlanError, match=r"made for a 'mlp' model"):
        P.load_model(plan, "char-gru")
    write_char_rnn(tmp_path / "gru.npz", rng, arch="char_gru")
    gru = M.build(M.read(tmp_path / "gru.npz"), bits=8)
    p = P.make_plan("x", "char_gru", P.describe(gru), [4, 4, 4], bits=8, method="uniform",
                    clip=0.0, act_bits=8)
    p["layers"][0]["operators"] = {"input.r": 3}
    with pytest.raises(P.PlanError, match=r"operators.input.r: per-gate planes need version 3 "
                                          r"of the plan format, the plan says version 1"):
        P.validate(p)
    p["layers"][0]["operators"] = {"hidden": 3}
    with pytest.raises(P.PlanError, match=r"unknown operator 'hidden'"):
        P.validate(p)
    p["layers"][0]["operators"] = {"input": {"planes": 4, "classes": []}}
    with pytest.raises(P.PlanError, match=r"operators.input.classes: per-row plane classes "
                                          r"need version 2"):
        P.validate(p)


def test_search_stops_when_every_plan_is_evaluated(tmp_path):
    # 2 stored planes and 3 layers: 8 plans in all, fewer than 20 generations.
    assert search.main(TINY + ["--bits", "2", "--match-planes", "2", "--pop", "6",
                               "--generations", "20", "--no-plot", "--out", str(tmp_path)]) == 0
    report = _front(tmp_path)
    assert report["search"]["every_plan_evaluated"] is True
    assert report["search"]["distinct_plans"] == 8 and report["search"]["generations"] < 20
    # The front is then exact: checked against all 8 plans scored directly.
    model = P.load_model(tmp_path / "plan.json")
    wl = Workload(M.read("digits"), argparse.Namespace(tokens=4096, streams=16, inputs=None,
                                                       activation="relu"))
    layers = P.describe(model)
    scored = []
    for code in range(8):
        planes = [1 + (code >> i & 1) for i in range(3)]
        P.apply_plan(model, P.make_plan("digits", "mlp", layers, planes, bits=2,
                                        method="uniform", clip=0.0, act_bits=8))
        acc = wl.metric(model(wl.x), None)
        scored.append((-acc, sum(op.bytes(n) for l, n in zip(layers, planes)
                                 for op in l.operators)))
    exact = {f for f in scored if not any(g[0] <= f[0] and g[1] <= f[1] and g != f
                                          for g in scored)}
    assert {(-e["metric"], e["weight_bytes"]) for e in report["front"]} == exact


def test_time_budget_stops_after_a_generation(tmp_path):
    # Any positive budget is spent by the first generation, however fast.
    assert search.main(TINY + ["--time-budget", "1e-9", "--out", str(tmp_path)]) == 0
    report = _front(tmp_path)
    assert report["search"]["generations"] == 1
    assert report["search"]["stopped_by_time_budget"] is True


@pytest.mark.parametrize("argv,message", [
    (["--pop", "2"], "--pop must be >= 4, got 2"),
    (["--objective", "energy"], "argument --objective: invalid choice: 'energy'"),
    (["--match-planes", "9"], "--match-planes must be 1..8 (--bits), got 9"),
    # NaN never compared greater than the elapsed time: no budget at all.
    (["--time-budget", "nan"], "--time-budget must be >= 0, got nan"),
    (["--model", "nope.npz"], "no model file nope.npz"),
])
def test_cli_errors_exit_2_with_one_line(tmp_path, argv, message):
    script = Path(sys.executable).parent / "bitplane-search"
    assert script.exists(), "the console entry point bitplane-search is not installed"
    res = subprocess.run([str(script)] + argv + ["--quiet", "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert lines[0].startswith("bitplane-search: ")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not a zip", b"plain text"])
def test_unreadable_model_file_is_one_line(tmp_path, capsys, content):
    (tmp_path / "m.npz").write_bytes(content)
    assert search.main(TINY[2:] + ["--model", str(tmp_path / "m.npz"), "--out",
                                   str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bitplane-search: "), err
    assert not (tmp_path / "o").exists()


def test_unwritable_output_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert search.main(TINY + ["--generations", "1", "--out", str(tmp_path / "file" / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bitplane-search: cannot write the results:")


def test_char_gru_search_confirms_on_unseen_characters(tmp_path, rng):
    write_char_rnn(tmp_path / "gru.npz", rng, arch="char_gru", n_text=600)
    out = tmp_path / "out"
    assert search.main(["--model", str(tmp_path / "gru.npz"), "--tokens", "200", "--streams",
                        "4", "--confirm-tokens", "200", "--pop", "8", "--generations", "2",
                        "--threads", "1", "--quiet", "--no-plot", "--out", str(out)]) == 0
    report = _front(out)
    assert report["genes"] == ["rnn0.input", "rnn0.recurrent", "fc"]
    for e in report["front"] + report["uniform"]:
        assert np.isfinite(e["confirm_metric"]) and e["confirm_metric"] > 0
    assert "after the 200 searched ones" in report["summary"]["confirm"]["workload"]
    # The cheapest plan no worse than uniform 4 on both sets, and no plan on the front
    # cheaper than it is.
    c, s = report["summary"]["confirm"], report["summary"]
    both = c["confirmed_plan"]
    assert both["metric"] <= s["uniform_metric"] and both["confirm_metric"] <= c["uniform_metric"]
    assert not any(e["weight_bytes"] < both["weight_bytes"] and
                   e["metric"] <= s["uniform_metric"] and
                   e["confirm_metric"] <= c["uniform_metric"] for e in report["front"])
    # The plan reproduces the searched metric, and the confirmation one.
    plan = P.read_plan(out / "plan.json")
    model = P.load_model(plan)
    data = M.read(plan["model"])
    wl = Workload(data, argparse.Namespace(tokens=200, streams=4, inputs=None,
                                           activation="relu"))
    assert M.bits_per_char(model.logits(wl.inputs), wl.targets) == plan["reported"]["metric"]
    assert report["summary"]["plan_metric"] == plan["reported"]["metric"]
    with pytest.raises(SystemExit):
        search.main(["--confirm-tokens", "-1"])
    # One gene per layer: the plan gives the GRU layer one count.
    assert search.main(["--model", str(tmp_path / "gru.npz"), "--tokens", "200", "--streams",
                        "4", "--confirm-tokens", "0", "--granularity", "layer", "--pop", "6",
                        "--generations", "2", "--threads", "1", "--quiet", "--no-plot",
                        "--out", str(tmp_path / "layer")]) == 0
    report = _front(tmp_path / "layer")
    assert report["genes"] == ["rnn0", "fc"] and "confirm" not in report["summary"]
    assert report["search"]["distinct_plans"] <= 64
    for e in report["front"]:
        assert e["planes"]["rnn0.input"] == e["planes"]["rnn0.recurrent"]
        assert "operators" not in e["plan"]["layers"][0]
    assert search.main(["--model", str(tmp_path / "gru.npz"), "--tokens", "200", "--streams",
                        "4", "--confirm-tokens", "401", "--quiet", "--out", str(out)]) == 2


# ---- per-row plane classes (plan format version 2) ---------------------------------


def _class_plan(tmp_path, rng, arch="char_gru"):
    """A char model, and a plan whose recurrent matrix and read-out have
    per-row classes (the input matrix a plain count)."""
    write_char_rnn(tmp_path / "rnn.npz", rng, arch=arch)
    model = M.build(M.read(tmp_path / "rnn.npz"), bits=8)
    layers = P.describe(model)
    rows_hh = layers[0].operators[1].rows
    rows_fc = layers[1].operators[0].rows
    c_hh = rng.integers(2, 7, rows_hh).astype(np.uint8)
    c_fc = np.where(np.arange(rows_fc) % 3 == 0, 6, 3).astype(np.uint8)
    plan = P.make_plan(str(tmp_path / "rnn.npz"), arch, layers,
                       [4, int(c_hh.max()), int(c_fc.max())], bits=8, method="uniform",
                       clip=0.0, act_bits=8, row_planes=[None, c_hh, c_fc])
    return model, plan, c_hh, c_fc


@pytest.mark.parametrize("arch", ["char_lstm", "char_gru"])
def test_plan_classes_round_trip_and_load(tmp_path, rng, arch):
    model, plan, c_hh, c_fc = _class_plan(tmp_path, rng, arch)
    assert plan["version"] == 2
    rec = plan["layers"][0]["operators"]["recurrent"]
    assert rec["planes"] == int(c_hh.max())
    assert [c["planes"] for c in rec["classes"]] == sorted(set(c_hh.tolist()), reverse=True)
    assert plan["layers"][0]["operators"]["input"] == 4
    assert [c["planes"] for c in plan["layers"][1]["classes"]] == [6, 3]
    P.write_plan(plan, tmp_path / "plan.json")
    assert P.read_plan(tmp_path / "plan.json") == plan
    # Each class's rows on one line.
    rows_lines = [l for l in (tmp_path / "plan.json").read_text().splitlines() if '"rows"' in l]
    assert len(rows_lines) == len(rec["classes"]) + 2
    assert all(l.rstrip(",").endswith("]") for l in rows_lines)
    flat = P.plan_row_planes(plan)
    assert flat[0] is None and np.array_equal(flat[1], c_hh) and np.array_equal(flat[2], c_fc)
    built = P.load_model(tmp_path / "plan.json")
    assert np.array_equal(built.rnn[0].w_hh.row_planes, c_hh)
    assert np.all(built.rnn[0].w_ih.row_planes == 8)
    assert np.array_equal(built.fc.matrix.row_planes, c_fc)
    # Every row of the model at min(its count, planes): the recurrent rows
    # of a count agree with a plain model's at that count (the products are
    # exact; checked here on the dequantized weights).
    plain = P.describe(model)[0].operators[1].matrix
    deq = built.rnn[0].w_hh.dequantize()
    for n in set(c_hh.tolist()):
        rows = c_hh == n
        assert np.array_equal(deq[rows], plain.dequantize(n)[rows]), n
    tokens = rng.integers(0, 20, (6, 2))
    a = built.logits(tokens)
    assert np.array_equal(P.load_model(plan).logits(tokens), a)
    # Bytes follow the counts.
    layers = P.describe(built)
    ops = [op for l in layers for op in l.operators]
    plain_ops = [op for l in P.describe(model) for op in l.operators]
    assert ops[1].bytes(int(c_hh.max())) < plain_ops[1].bytes(int(c_hh.max()))
    assert ops[0].bytes(4) == plain_ops[0].bytes(4)
    # A model quantized without the counts cannot take the plan.
    with pytest.raises(P.PlanError, match=r"layer 'rnn0': the plan gives the recurrent matrix "
                                          r"per-row plane classes, which are fixed when it is "
                                          r"quantized, and the model's matrix has none"):
        P.apply_plan(model, plan)
    # ... nor a plan without classes a model with counts.
    plain_plan = P.make_plan(plan["model"], arch, layers, [4, 4, 4], bits=8, method="uniform",
                             clip=0.0, act_bits=8)
    assert plain_plan["version"] == 1
    with pytest.raises(P.PlanError, match=r"the model's recurrent matrix has per-row plane "
                                          r"counts and the plan has no classes"):
        P.apply_plan(built, plain_plan)


def _classes_edit(path, value):
    def edit(plan):
        obj = plan
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value(obj[path[-1]]) if callable(value) else value
    return edit


BAD_CLASSES = [
    (["layers", 0, "operators", "recurrent", "classes", 0, "rows", 0], lambda v: 10 ** 6,
     r"operators.recurrent.classes\[0\].rows\[0\] must be an integer 0..\d+, got 1000000"),
    (["layers", 0, "operators", "recurrent", "classes", 0, "planes"], 9,
     r"operators.recurrent.classes\[0\].planes must be an integer 1..\d, got 9"),
    (["layers", 0, "operators", "recurrent", "classes"],
     lambda v: [v[0], {"planes": v[1]["planes"], "rows": v[1]["rows"] + v[0]["rows"][:1]}] +
     v[2:],
     r"operators.recurrent.classes\[1\].rows\[\d+\]: row \d+ is also in class 0"),
    (["layers", 0, "operators", "recurrent", "classes", 0, "rows"], lambda v: v[1:],
     r"operators.recurrent.classes: 1 of the \d+ rows are in no class \(\d+\)"),
    (["layers", 0, "operators", "recurrent", "classes", 0, "weight"], 2,
     r"operators.recurrent.classes\[0\]: unknown field 'weight'"),
    (["layers", 0, "operators", "recurrent"], lambda v: {"planes": v["planes"]},
     r"operators.recurrent: an operator object gives planes and classes"),
    (["layers", 0, "classes"], [{"planes": 3, "rows": [0]}],
     r"layers\[0\].classes: an LSTM/GRU layer takes classes per operator"),
    (["layers", 1, "classes"], [],
     r"layers\[1\].classes must be a non-empty list"),
    (["version"], 1, r"operators.recurrent.classes: per-row plane classes need version 2"),
]


@pytest.mark.parametrize("path,value,message", BAD_CLASSES)
def test_bad_classes_say_what_is_wrong(tmp_path, rng, path, value, message):
    _, plan, _, _ = _class_plan(tmp_path, rng)
    _classes_edit(path, value)(plan)
    (tmp_path / "bad.json").write_text(json.dumps(plan))
    with pytest.raises(P.PlanError, match=message):
        P.read_plan(tmp_path / "bad.json")


def check_plan_reproduces(path):
    """plan.json rebuilds its model, which gives the reported metric and weight bytes."""
    plan = P.read_plan(path)
    model = P.load_model(plan)
    wl = Workload(M.read(plan["model"]), argparse.Namespace(tokens=200, streams=4, inputs=None,
                                                            activation="relu"))
    assert M.bits_per_char(model.logits(wl.inputs), wl.targets) == plan["reported"]["metric"]
    layers = P.describe(model)
    ops = [op for l in layers for op in l.operators]
    assert sum(op.bytes(n) for op, n in zip(ops, P.plan_planes(layers, plan))) == \
        plan["reported"]["weight_bytes"]
    return plan


def test_row_class_search_genes(tmp_path, rng):
    write_char_rnn(tmp_path / "gru.npz", rng, arch="char_gru", n_text=1400)
    argv = ["--model", str(tmp_path / "gru.npz"), "--tokens", "200", "--streams", "4",
            "--confirm-tokens", "200", "--calibration-tokens", "300", "--granularity",
            "row-class", "--pop", "8", "--generations", "2", "--seed", "5", "--threads", "1",
            "--quiet", "--no-plot"]
    assert search.main(argv + ["--out", str(tmp_path / "a")]) == 0
    report = _front(tmp_path / "a")
    assert report["genes"] == [f"{op}.{g}" for op in ("rnn0.input", "rnn0.recurrent", "fc")
                               for g in ("budget", "classes")]
    assert report["args"]["scores"] == "auto"
    # The uniform plans are budget n with one class.
    for n, u in enumerate(report["uniform"], 1):
        assert set(u["mean_planes"].values()) == {float(n)}
    assert any(len(c) > 1 for e in report["front"] for c in e["rows_per_count"].values()) or \
        report["search"]["distinct_plans"] > 8
    # The same seed gives the same front.
    assert search.main(argv + ["--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "pareto.csv").read_text() == \
        (tmp_path / "b" / "pareto.csv").read_text()
    # plan.json rebuilds the model with its counts and reproduces the metric.
    plan = check_plan_reproduces(tmp_path / "a" / "plan.json")
    # Norm scores on the digits MLP.
    assert search.main(TINY + ["--granularity", "row-class", "--scores", "norm", "--no-plot",
                               "--out", str(tmp_path / "d")]) == 0
    assert search.main(["--model", str(tmp_path / "gru.npz"), "--granularity", "row-class",
                        "--tokens", "200", "--streams", "4", "--calibration-tokens", "100000",
                        "--quiet", "--out", str(tmp_path / "e")]) == 2


def test_server_loads_a_plan_with_classes(tmp_path, rng):
    pytest.importorskip("fastapi", reason="bitplane-serve needs the 'serve' extra")
    from bitplane.serve.served import layer_planes, load

    _, plan, c_hh, _ = _class_plan(tmp_path, rng)
    P.write_plan(plan, tmp_path / "plan.json")
    served = load(plan=tmp_path / "plan.json")
    assert np.array_equal(served.rnn.rnn[0].w_hh.row_planes, c_hh)
    assert layer_planes(served.plan, 3) == [3, 3]


# ---- per-gate planes (plan format version 3) ---------------------------------------

GATE_PLANES = {"char_lstm": [[3, 5, 4, 2], 6, 5], "char_gru": [[3, 5, 4], 6, 5]}


@pytest.mark.parametrize("arch", ["char_lstm", "char_gru"])
def test_gate_plan_round_trip_and_load(tmp_path, rng, arch):
    write_char_rnn(tmp_path / "rnn.npz", rng, arch=arch)
    data = M.read(tmp_path / "rnn.npz")
    fused = M.build(data, bits=8)
    planes = GATE_PLANES[arch]
    plan = P.make_plan(str(tmp_path / "rnn.npz"), arch, P.describe(fused), planes, bits=8,
                       method="uniform", clip=0.0, act_bits=8)
    letters = P.GATE_LETTERS["lstm" if arch == "char_lstm" else "gru"]
    assert plan["version"] == 3
    assert plan["layers"][0]["operators"] == {
        **{f"input.{g}": n for g, n in zip(letters, planes[0])}, "recurrent": 6}
    assert plan["layers"][0]["planes"] == 6
    # A fused-gate layer cannot run gates at different counts.
    with pytest.raises(P.PlanError, match=r"layer 'rnn0': the plan gives the input matrix "
                                          r"per-gate planes, which need a layer made with "
                                          r"split_gates=True; build the model with "
                                          r"bitplane.plan.load_model"):
        P.apply_plan(fused, plan)
    P.write_plan(plan, tmp_path / "plan.json")
    assert P.read_plan(tmp_path / "plan.json") == plan
    model = P.load_model(tmp_path / "plan.json")
    rnn = model.rnn[0]
    assert rnn.rnn.split_gates and rnn.plan_caps == {"ih": planes[0], "hh": 6}
    assert P.plan_planes(P.describe(model), plan) == planes
    # Each gate reaches the C call at its count; a call's planes caps them.
    log = []
    forward = rnn.rnn.forward

    def spy_forward(*args, **kwargs):
        log.append((kwargs["planes_ih"], kwargs["planes_hh"]))
        return forward(*args, **kwargs)

    rnn.rnn = _Wrap(rnn.rnn, forward=spy_forward)
    tokens = rng.integers(0, 20, (6, 3))
    planned = model.logits(tokens)
    assert log == [(planes[0], 6)]
    model.logits(tokens, planes=4)
    assert log[-1] == ([min(n, 4) for n in planes[0]], 4)
    # The same as the layers run at those counts by hand, bit for bit.
    manual = M.build(data, bits=8, split_gates=True)
    x = manual.embed[tokens]
    h, _ = manual.rnn[0](x, planes_ih=planes[0], planes_hh=6)
    np.testing.assert_array_equal(manual.fc(h, planes=5), planned)
    # Bytes: each gate's slabs at its own count.
    op_ih = P.describe(model)[0].operators[0]
    per_gate = sum(rnn.rnn.bytes_read(0, "ih", n, g) for g, n in enumerate(planes[0]))
    assert op_ih.bytes(planes[0]) == per_gate < op_ih.bytes(max(planes[0]))


def test_bad_gate_plans_say_what_is_wrong(tmp_path, rng):
    write_char_rnn(tmp_path / "gru.npz", rng, arch="char_gru")
    gru = M.build(M.read(tmp_path / "gru.npz"), bits=8)
    plan = P.make_plan("x", "char_gru", P.describe(gru), [[2, 3, 4], 4, 4], bits=8,
                       method="uniform", clip=0.0, act_bits=8)
    cases = [
        ({"input.r": 2, "input.z": 3, "input.n": 4, "input": 4},
         r"operators: 'input' is given whole and per gate \(input.r, input.z, input.n\)"),
        ({"input.r": 2, "input.z": 3}, r"operators: 'input' is given per gate for r, z but not "
                                       r"for n; list every gate"),
        ({"input.i": 2}, r"unknown operator 'input.i' \(expected 'input' or 'recurrent', or "
                         r"per gate 'input.r' ... 'recurrent.n' with the GRU gates r, z, n\)"),
        ({"input.r": 9, "input.z": 3, "input.n": 4},
         r"operators.input.r must be an integer 1..8, got 9"),
    ]
    for ops, message in cases:
        p = copy.deepcopy(plan)
        p["layers"][0]["operators"] = ops
        with pytest.raises(P.PlanError, match=message):
            P.validate(p)
    with pytest.raises(ValueError, match=r"per-gate planes and per-row classes on one "
                                         r"operator"):
        P.make_plan("x", "char_gru", P.describe(gru), [[2, 3, 4], 4, 4], bits=8,
                    method="uniform", clip=0.0, act_bits=8,
                    row_planes=[np.arange(48) % 3 + 1, None, None])


def test_gate_search_genes(tmp_path, rng):
    write_char_rnn(tmp_path / "lstm.npz", rng, arch="char_lstm", n_text=600)
    out = tmp_path / "out"
    assert search.main(["--model", str(tmp_path / "lstm.npz"), "--tokens", "200", "--streams",
                        "4", "--confirm-tokens", "200", "--granularity", "gate", "--pop", "8",
                        "--generations", "3", "--seed", "2", "--threads", "1", "--quiet",
                        "--no-plot", "--out", str(out)]) == 0
    report = _front(out)
    assert report["genes"] == [f"rnn0.{op}.{g}" for op in ("input", "recurrent")
                               for g in "ifgo"] + ["fc"]
    assert any(e["plan"]["version"] == 3 for e in report["front"]) or \
        report["search"]["distinct_plans"] > 8
    rows = list(csv.DictReader(open(out / "pareto.csv")))
    assert "rnn0.recurrent.g" in rows[0]
    # plan.json rebuilds the model with split gates and reproduces the metric and bytes.
    plan = check_plan_reproduces(out / "plan.json")
    # Every front plan's bytes are its gates' bytes.
    for e in report["front"]:
        p = e["plan"]
        m = P.load_model(p)
        ls = P.describe(m)
        assert sum(op.bytes(n) for op, n in zip([o for l in ls for o in l.operators],
                                                P.plan_planes(ls, p))) == e["weight_bytes"]


def test_server_loads_a_gate_plan(tmp_path, rng):
    pytest.importorskip("fastapi", reason="bitplane-serve needs the 'serve' extra")
    from bitplane.serve.served import layer_planes, load

    write_char_rnn(tmp_path / "gru.npz", rng, arch="char_gru")
    gru = M.build(M.read(tmp_path / "gru.npz"), bits=8)
    plan = P.make_plan(str(tmp_path / "gru.npz"), "char_gru", P.describe(gru),
                       [4, [2, 5, 3], 4], bits=8, method="uniform", clip=0.0, act_bits=8)
    P.write_plan(plan, tmp_path / "plan.json")
    served = load(plan=tmp_path / "plan.json")
    layer = served.rnn.rnn[0]
    assert layer.rnn.split_gates and layer.plan_caps == {"ih": 4, "hh": [2, 5, 3]}
    assert layer_planes(served.plan, 3) == [3, 3]
    # A streaming step under the plan equals the sequence call, and per-gate caps hold
    # per column too.
    x = rng.standard_normal((2, layer.input_size)).astype(np.float32)
    h, _ = layer.step(x, None, column_planes=[4, 0])
    ref4, _ = layer(x[None, :1], planes=4)
    ref, _ = layer(x[None, 1:])
    np.testing.assert_array_equal(h[0], ref4[0, 0])
    np.testing.assert_array_equal(h[1], ref[0, 0])


def test_descent_seeds_lower_the_cheapest_gene_first(tmp_path, rng):
    from bitplane._search_run import Evaluator, descent

    write_char_rnn(tmp_path / "gru.npz", rng, arch="char_gru", n_text=600)
    args = search.parse_args(["--model", str(tmp_path / "gru.npz"), "--tokens", "200",
                              "--streams", "4", "--confirm-tokens", "0", "--granularity",
                              "gate", "--threads", "1", "--quiet"])

    class Quiet:
        def set_postfix_str(self, s):
            pass

        def update(self, n):
            pass

    ev = Evaluator(args, Quiet())
    path = descent(ev, args)
    n = len(ev.gene_names)  # 3 input gates, 3 recurrent gates, the read-out
    assert n == 7 and path[0] == [5] * n
    floor = ev.score([3] * n)["weight_bytes"]
    assert ev.score(path[-1])["weight_bytes"] < floor
    assert all(ev.score(g)["weight_bytes"] >= floor for g in path[:-1])
    for a, b in zip(path, path[1:]):
        diff = [x - y for x, y in zip(a, b)]
        assert sorted(diff) == [0] * (n - 1) + [1]  # one gene, one plane lower
        ra = ev.score(a)
        rates = {}
        for i in range(n):
            if a[i] > 1:
                t = list(a)
                t[i] -= 1
                r = ev.score(t)
                rates[i] = (r["metric"] - ra["metric"]) / (ra["weight_bytes"] - r["weight_bytes"])
        assert rates[diff.index(1)] == min(rates.values())
