"""Per-column planes in one RNN step (bp_rnn_step_columns): streams at
different precisions share a step, each equal bit for bit to its own step;
bad counts raise precise errors and leave the state alone."""

import numpy as np
import pytest

import bitplane as bp
from bitplane.layers import GRU, LSTM
from conftest import gauss
from test_rnn import params


@pytest.mark.parametrize("cell", [LSTM, GRU])
@pytest.mark.parametrize("integer", [False, True])
def test_column_planes_equal_each_stream_alone(rng, cell, integer):
    layer = cell(*params(rng, cell.gates, 10, 12)[0], act_bits=6, integer=integer)
    layer.plan_caps["hh"] = 5  # a plan's cap on one operator still holds per column
    cols = [1, 8, 3, 5, 0, 7, 2]
    b = len(cols)
    x = gauss(rng, (4, b, 10))
    state = together = None
    alone = [None] * b
    for t in range(4):
        h, together = layer.step(x[t], together, column_planes=cols)
        for i, p in enumerate(cols):
            want, alone[i] = layer.step(x[t, i:i + 1], alone[i], planes=p or None)
            assert np.array_equal(h[i], want[0]), (t, i, p)
    state = together if cell is GRU else together[1]
    for i in range(b):
        s = alone[i] if cell is GRU else alone[i][1]
        assert np.array_equal(state[i], s[0])


def test_rnn_step_column_planes_errors(rng):
    layer = LSTM(*params(rng, 4, 6, 5)[0])
    x = gauss(rng, (3, 6))
    h, c = np.zeros((3, 5), np.float32), np.zeros((3, 5), np.float32)
    with pytest.raises(ValueError, match="one entry per column of x \\(3\\), got 2"):
        layer.rnn.step(x, h, c, column_planes=[1, 2])
    with pytest.raises(TypeError, match="column_planes\\[1\\] must be an int, got float"):
        layer.rnn.step(x, h, c, column_planes=[1, 2.0, 3])
    with pytest.raises(bp.OutOfRangeError,
                       match="column_planes\\[2\\] must be 0 \\(the options' counts\\) or "
                             "1..8, got 9"):
        layer.rnn.step(x, h, c, column_planes=np.array([1, 2, 9]))
    assert not h.any() and not c.any()
