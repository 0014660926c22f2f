"""bitplane-serve with a precision plan (--plan): per-layer plane ceilings
under the requests' planes, reported in metadata and responses, bit-equal to
the library with the same plan applied; bad plan files stop the start-up with
one line."""

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="bitplane-serve needs the serve extra: "
                                      "pip install './python-bindings[serve-test]'")
httpx = pytest.importorskip("httpx")

from bitplane import models as M  # noqa: E402
from bitplane import plan as P  # noqa: E402
from bitplane.serve import ServeConfig, create_app  # noqa: E402

from conftest import gauss  # noqa: E402
from serve_helpers import ServerThread  # noqa: E402

LAYER_PLANES = [3, 6, 4]
ACT_BITS = 6


@pytest.fixture(scope="module")
def plan_path(tmp_path_factory):
    model = M.build(M.read("digits"), bits=8)
    plan = P.make_plan("digits", "mlp", P.describe(model), LAYER_PLANES, bits=8,
                       method="uniform", clip=0.0, act_bits=ACT_BITS, activation="relu")
    path = tmp_path_factory.mktemp("plan") / "digits-plan.json"
    P.write_plan(plan, path)
    return path


def _body(x, **params):
    return {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                        "data": x.ravel().tolist()}], "parameters": params}


def _array(resp):
    out = resp.json()["outputs"][0]
    return np.array(out["data"], np.float32).reshape(out["shape"])


def test_plan_caps_layers_and_is_reported(plan_path, rng):
    app = create_app(None, ServeConfig(calibrate=False, plan=str(plan_path)))
    ref = P.load_model(plan_path)  # the library with the same plan
    x = gauss(rng, (3, 64))
    with ServerThread(app) as s, httpx.Client(base_url=s.url, timeout=30) as c:
        meta = c.get("/v2/models/digits").json()["parameters"]["plan"]
        assert meta == {"source": "digits-plan.json", "model": "digits", "act_bits": ACT_BITS,
                        "layers": {"linear0": 3, "linear1": 6, "linear2": 4}}
        for planes in (8, 5, 2):
            r = c.post("/v2/models/digits/infer", json=_body(x, planes=planes))
            p = r.json()["parameters"]
            assert r.status_code == 200
            assert p["plan"] == "digits-plan.json" and p["act_bits"] == ACT_BITS
            assert p["layer_planes"] == [min(planes, n) for n in LAYER_PLANES]
            np.testing.assert_array_equal(_array(r), ref(x, planes=planes, act_bits=ACT_BITS))
        # The plan caps, it never raises: all 8 planes without the plan differ.
        full = M.build(M.read("digits"), bits=8)(x, planes=8, act_bits=ACT_BITS)
        r = c.post("/v2/models/digits/infer", json=_body(x, planes=8))
        assert not np.array_equal(_array(r), full)
        # A request's act_bits still wins over the plan's.
        r = c.post("/v2/models/digits/infer", json=_body(x, planes=4, act_bits=8))
        np.testing.assert_array_equal(_array(r), ref(x, planes=4, act_bits=8))


def test_plan_mixed_planes_in_one_batch(plan_path, rng):
    from bitplane.serve.served import load
    m = load(plan=plan_path)
    ref = P.load_model(plan_path)
    x = gauss(rng, (12, 64))
    cp = [int(v) for v in rng.integers(1, 9, 12)]
    y = m.forward_batched(x, cp, ACT_BITS)
    for i, p in enumerate(cp):
        np.testing.assert_array_equal(y[i:i + 1], ref(x[i:i + 1], planes=p, act_bits=ACT_BITS))


def test_plan_on_generation(tmp_path):
    from bitplane.serve.served import load
    gru = M.build(M.read("char-gru"), bits=8)
    plan = P.make_plan("char-gru", "char_gru", P.describe(gru), [5, 3, 4], bits=8,
                       method="uniform", clip=0.0, act_bits=8)
    path = tmp_path / "gru-plan.json"
    P.write_plan(plan, path)
    app = create_app(load(plan=path), ServeConfig(calibrate=False))
    m = app.state.server.model
    prompt = "Hello there"
    with ServerThread(app) as s, httpx.Client(base_url=s.url, timeout=60) as c:
        meta = c.get("/v2/models/char-gru").json()["parameters"]["plan"]
        assert meta["layers"] == {"rnn0": {"input": 5, "recurrent": 3}, "fc": 4}
        out = c.post("/v2/models/char-gru/generate",
                     json={"text_input": prompt, "parameters": {"max_tokens": 8}}).json()
    assert out["plan"] == "gru-plan.json"
    seq = m.encode(prompt) + [m.encode(ch)[0] for ch in out["text_output"]]
    ref = P.load_model(path)
    logits = ref.logits(np.array(seq[:-1])[:, None])[:, 0]
    want = [int(t) for t in np.argmax(logits[len(prompt) - 1:], axis=1)]
    assert [m.encode(ch)[0] for ch in out["text_output"]] == want


@pytest.mark.parametrize("content,message", [
    ("{oops", "not valid JSON"),
    ('{"format": "bitplane-precision-plan", "version": 4}', "version 4 is not supported"),
    (None, "made for a 'char_gru' model"),
])
def test_cli_bad_plan(tmp_path, capsys, content, message):
    from bitplane.serve.cli import main
    path = tmp_path / "bad-plan.json"
    if content is None:  # a good plan for another model
        gru = M.build(M.read("char-gru"), bits=8)
        content = json.dumps(P.make_plan("char-gru", "char_gru", P.describe(gru), [4, 4, 4],
                                         bits=8, method="uniform", clip=0.0, act_bits=8))
    path.write_text(content)
    assert main(["--model", "digits", "--plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("bitplane-serve: ")
    assert len(err.strip().splitlines()) == 1


def test_cli_missing_plan(tmp_path):
    # As a process: one line on stderr, exit status 2, no traceback.
    r = subprocess.run([sys.executable, "-m", "bitplane.serve.cli", "--plan",
                        str(tmp_path / "none.json")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "none.json" in r.stderr and "Traceback" not in r.stderr
