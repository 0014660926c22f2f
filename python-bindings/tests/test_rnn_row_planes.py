"""Per-row plane counts in the C recurrent layers from Python
(RNN.quantize(row_planes=...), LSTM/GRU(row_planes=(ih, hh))): counts
constant per gate equal per-gate planes of split gates bit for bit; the
counts and bytes come back; files keep them; bad counts raise precise
errors."""

import numpy as np
import pytest

import bitplane as bp
from bitplane.layers import GRU, LSTM
from conftest import gauss
from test_rnn import params


@pytest.mark.parametrize("cell", [LSTM, GRU])
@pytest.mark.parametrize("integer", [False, True])
def test_gate_counts_equal_per_gate_planes(rng, cell, integer):
    hs, g = 24, cell.gates
    p = params(rng, g, 10, hs)[0]
    gi = rng.integers(1, 9, g)
    gh = rng.integers(1, 9, g)
    counts = (np.repeat(gi, hs).astype(np.uint8), np.repeat(gh, hs).astype(np.uint8))
    counted = cell(*p, row_planes=counts, integer=integer)
    split = cell(*p, split_gates=True, integer=integer)
    x = gauss(rng, (6, 3, 10))
    for cap in (8, 5, 2):
        want, _ = split(x, planes_ih=np.minimum(gi, cap).tolist(),
                        planes_hh=np.minimum(gh, cap).tolist(), act_bits=6)
        got, _ = counted(x, planes=cap, act_bits=6)
        assert np.array_equal(got, want), cap
        state = None
        for t in range(x.shape[0]):  # steps equal the sequence
            h, state = counted.step(x[t], state, planes=cap, act_bits=6)
            assert np.array_equal(h, got[t])


def test_counts_bytes_and_files(rng, tmp_path):
    hs = 32
    p = params(rng, 3, 16, hs, layers=2)
    c_ih = rng.integers(1, 9, 3 * hs).astype(np.uint8)
    c_hh = np.where(np.arange(3 * hs) // 16 % 2, 2, 8).astype(np.uint8)
    for split in (False, True):
        rnn = bp.RNN.quantize("gru", p, split_gates=split, row_planes=[(c_ih, None),
                                                                       (None, c_hh)])
        gates = range(3) if split else [-1]
        got = np.concatenate([rnn.row_planes(0, "ih", gate) for gate in gates])
        assert np.array_equal(got, c_ih)
        assert np.all(np.concatenate([rnn.row_planes(0, "hh", gate) for gate in gates]) == 8)
        plain = bp.RNN.quantize("gru", p, split_gates=split)
        # Half the rows at 8 planes, half at 2 in 16-row blocks: the bytes of 5.
        assert sum(rnn.bytes_read(1, "hh", 0, gate) for gate in gates) == \
            sum(plain.bytes_read(1, "hh", 5, gate) for gate in gates)
        again = bp.RNN.from_bytes(rnn.to_bytes())
        assert np.array_equal(np.concatenate([again.row_planes(1, "hh", gate)
                                              for gate in gates]), c_hh)
        rnn.save(tmp_path / "rnn.bin")
        loaded = bp.RNN.load(tmp_path / "rnn.bin")
        x = gauss(rng, (20 * 2, 16))
        for n in (0, 3):
            a = rnn.forward(x, 20, planes_ih=n or None, planes_hh=n or None)
            b = loaded.forward(x, 20, planes_ih=n or None, planes_hh=n or None)
            assert all(np.array_equal(u, v) for u, v in zip(a[:2], b[:2]))
    # The layer objects expose the counts and the bytes they read.
    layer = GRU(*p[0], row_planes=(None, c_hh))
    assert np.array_equal(layer.w_hh.row_planes, c_hh)
    assert np.all(layer.w_ih.row_planes == 8)
    assert layer.w_hh.bytes_read() == GRU(*p[0]).w_hh.bytes_read(5)


def test_bad_counts_are_refused(rng):
    p = params(rng, 4, 6, 8)
    ok = np.full(32, 3, np.uint8)
    with pytest.raises(ValueError, match=r"row_planes\[0\]\.hh must have one entry per row of "
                                         r"weight_hh \(32\), got 31"):
        bp.RNN.quantize("lstm", p, row_planes=[(ok, ok[:31])])
    bad = ok.copy()
    bad[7] = 9
    with pytest.raises(bp.Error, match=r"row_planes\[0\]\.ih\[7\] must be in 1\.\.8 \(bits\), "
                                       r"got 9"):
        bp.RNN.quantize("lstm", p, row_planes=[(bad, None)])
    with pytest.raises(ValueError, match=r"row_planes must have one entry per layer \(1\), "
                                         r"got 2"):
        bp.RNN.quantize("lstm", p, row_planes=[None, None])
    with pytest.raises(ValueError, match=r"row_planes\[0\] must be None or a pair"):
        bp.RNN.quantize("lstm", p, row_planes=[ok])
    with pytest.raises(TypeError, match=r"row_planes\[0\]\.ih\[0\] must be an int"):
        bp.RNN.quantize("lstm", p, row_planes=[(["a"] * 32, None)])
