"""The SLO controller's decisions: directly, and under a simulated load (a
discrete-event model of the batcher: one server taking up to max_batch queued
rows per call, each call costing fixed + per_unit * sum of planes)."""

import asyncio
import math
import time
from collections import deque

import numpy as np
import pytest

from bitplane.serve.controller import CostModel, SLOController

FIXED, PER_UNIT = 2e-4, 5e-5  # seconds: a call, one row at one plane
TARGET = 0.020
MAX_BATCH = 16


def controller(**kw):
    return SLOController(8, TARGET, MAX_BATCH, CostModel(FIXED, PER_UNIT), **kw)


def test_cost_model_learns_from_batches():
    cost = CostModel(fixed=1e-3, per_unit=1e-3)  # a wrong prior
    for units in (8, 16, 64, 128, 8, 64):
        cost.observe(units, units, 3e-4 + 2e-5 * units)
    assert cost.fixed == pytest.approx(3e-4, rel=1e-6)
    assert cost.per_unit == pytest.approx(2e-5, rel=1e-6)
    with pytest.raises(ValueError):
        CostModel(per_unit=0)


def test_planes_fall_as_the_queue_grows_and_never_below_min():
    c = controller()
    planes = [c.decide(q).planes for q in range(0, 400)]
    assert planes[0] == 8
    assert all(a >= b for a, b in zip(planes, planes[1:])), planes
    assert planes[-1] == 1
    assert len(set(planes)) == 8  # every level is used on the way down
    for floor in (3, 8):
        assert min(c.decide(q, min_planes=floor).planes for q in range(0, 400, 7)) == floor
    # The decision is the largest count whose prediction fits the target.
    d = c.decide(60)
    assert c.predict(60, 1, d.planes) <= 0.7 * TARGET < c.predict(60, 1, d.planes + 1)
    assert c.last == d


def test_deadline_tightens_the_target():
    c = controller()
    assert c.decide(40, budget_s=0.005).planes < c.decide(40).planes
    assert c.decide(40, budget_s=1.0).planes == c.decide(40).planes  # target still binds


def test_measured_p99_matches_numpy(rng):
    c = controller()
    assert c.measured_p99() == 0.0
    for n in (1, 2, 17, 128, 300):
        for v in rng.exponential(0.01, n):
            c.observe_latency(v)
        assert c.measured_p99() == pytest.approx(np.percentile(list(c._latencies), 99),
                                                 rel=1e-12)


def test_feedback_ceiling_follows_measured_p99():
    c = controller(feedback_every=10)
    for _ in range(40):
        c.observe_latency(2 * TARGET)
    assert c.ceiling < 8 and c.measured_p99() == pytest.approx(2 * TARGET)
    low = c.ceiling
    assert c.decide(0).planes == low  # an empty queue gets the ceiling, not more
    for _ in range(400):
        c.observe_latency(0.1 * TARGET)
    assert c.ceiling == 8 > low


def simulate(rate, n, rng, *, planes=None, ctrl=None, min_planes=1, per_row=0.0,
             per_unit=PER_UNIT, per_group=0.0):
    """Poisson arrivals at `rate`/s; fixed `planes` or the controller's choice;
    a call of r rows and u row-planes in g distinct plane counts costs
    FIXED + per_row r + per_unit u + per_group (g - 1).
    Returns latencies and planes per request, in arrival order."""
    arrivals = np.cumsum(rng.exponential(1.0 / rate, n))
    queue, in_service = deque(), []
    busy_until, i = 0.0, 0
    latency, used = np.zeros(n), np.zeros(n, int)
    while i < n or queue or in_service:
        next_arrival = arrivals[i] if i < n else math.inf
        if in_service and busy_until <= next_arrival:
            now = busy_until
            for j in in_service:
                latency[j] = now - arrivals[j]
                if ctrl:
                    ctrl.observe_latency(latency[j])
            in_service = []
        else:
            now = next_arrival
            if ctrl:
                used[i] = ctrl.decide(len(queue) + len(in_service), 1, min_planes).planes
            else:
                used[i] = planes
            queue.append(i)
            i += 1
        if not in_service and queue:
            in_service = [queue.popleft() for _ in range(min(MAX_BATCH, len(queue)))]
            units = int(sum(used[j] for j in in_service))
            groups = len({int(used[j]) for j in in_service})
            service = (FIXED + per_row * len(in_service) + per_unit * units
                       + per_group * (groups - 1))
            busy_until = now + service
            if ctrl:
                ctrl.cost.observe(len(in_service), units, service, groups)
    return latency, used


CAPACITY_8 = MAX_BATCH / (FIXED + PER_UNIT * MAX_BATCH * 8)  # requests/s at 8 planes


def test_simulated_load_auto_holds_the_slo_where_8_planes_break_it(rng):
    n = 6000
    p99 = lambda lat: float(np.percentile(lat[n // 5:], 99))  # after warm-up  # noqa: E731
    fixed8 = {m: p99(simulate(m * CAPACITY_8, n, rng, planes=8)[0]) for m in (0.5, 1.5)}
    assert fixed8[0.5] <= TARGET < fixed8[1.5]
    mean_planes = {}
    for m in (0.5, 1.5, 2.0, 3.0):
        ctrl = SLOController(8, TARGET, MAX_BATCH, CostModel())  # learns the cost itself
        lat, used = simulate(m * CAPACITY_8, n, rng, ctrl=ctrl)
        assert p99(lat) <= TARGET, (m, p99(lat))
        mean_planes[m] = used[n // 5:].mean()
    assert mean_planes[0.5] > 7.5
    assert mean_planes[0.5] > mean_planes[1.5] > mean_planes[2.0] > mean_planes[3.0]
    # A floor is kept even when it breaks the SLO.
    ctrl = SLOController(8, TARGET, MAX_BATCH, CostModel())
    _, used = simulate(3.0 * CAPACITY_8, 2000, rng, ctrl=ctrl, min_planes=6)
    assert used.min() == 6


def test_simulated_load_precision_comes_back_when_load_falls(rng):
    ctrl = SLOController(8, TARGET, MAX_BATCH, CostModel())
    _, high = simulate(2.5 * CAPACITY_8, 3000, rng, ctrl=ctrl)
    _, low = simulate(0.3 * CAPACITY_8, 3000, rng, ctrl=ctrl)
    assert high[1000:].mean() < 6
    assert low[-500:].mean() > 7.5 and ctrl.ceiling == 8


def test_server_lowers_planes_under_a_burst_and_restores_them(rng):
    """Through the real app: model calls made slow in proportion to their
    plane sum (a sleep, so the result does not depend on the machine's load)."""
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from bitplane.serve import ServeConfig, create_app
    from bitplane.serve.served import load

    digits = load("digits")
    app = create_app(digits, ServeConfig(calibrate=False, max_batch=16, slo_p99_ms=100))
    server = app.state.server
    server.controller.cost = CostModel(FIXED, 1e-4)
    real = server.batcher.forward_batched

    def slow(x, cp, ab):
        time.sleep(FIXED + 1e-4 * sum(cp))
        return real(x, cp, ab)

    server.batcher.forward_batched = slow
    x = rng.standard_normal((1, 64)).astype(np.float32)
    body = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                        "data": x.ravel().tolist()}], "parameters": {"planes": "auto"}}

    async def run():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://serve") as c:
            async def one():
                r = await c.post("/v2/models/digits/infer", json=body)
                assert r.status_code == 200, r.text
                doc = r.json()
                return doc["parameters"]["planes"], doc["outputs"][0]["data"]

            idle = [await one() for _ in range(5)]
            burst = await asyncio.gather(*[one() for _ in range(200)])
            after = [await one() for _ in range(400)]
            return idle, burst, after

    idle, burst, after = asyncio.run(run())
    assert [p for p, _ in idle] == [8] * 5
    burst_planes = [p for p, _ in burst]
    assert min(burst_planes) < 4 and np.mean(burst_planes) < 6
    assert [p for p, _ in after[-20:]] == [8] * 20
    for p, y in idle + burst[::10] + after[-5:]:
        np.testing.assert_array_equal(np.array(y, np.float32), digits.forward(x, p, 8)[0])


def test_cost_model_separates_rows_from_planes():
    cost = CostModel(fixed=1e-3, per_unit=1e-3)  # a wrong prior, no per-row term
    for rows, planes in ((16, 8), (16, 1), (64, 4), (8, 2), (64, 8), (32, 1), (1, 8)):
        cost.observe(rows, rows * planes, 2e-4 + 3e-4 * rows + 1e-5 * rows * planes)
    assert cost.fixed == pytest.approx(2e-4, rel=1e-6)
    assert cost.per_row == pytest.approx(3e-4, rel=1e-6)
    assert cost.per_unit == pytest.approx(1e-5, rel=1e-6)
    assert cost.plane_share(8) == pytest.approx(8e-5 / 3.8e-4)
    # Batches all at one plane count cannot separate the terms: the split is
    # kept (here from the calibration) and the scale refit (the cost doubled).
    cost = CostModel(fixed=2e-4, per_unit=1e-5, per_row=3e-4)
    for rows in (4, 16, 64, 8, 32, 64, 16, 4) * 8:
        cost.observe(rows, 8 * rows, 2e-4 + 2 * (3e-4 * rows + 1e-5 * 8 * rows))
    assert cost.per_row == pytest.approx(6e-4, rel=1e-3)
    assert cost.per_unit == pytest.approx(2e-5, rel=1e-3)
    assert cost.fixed == pytest.approx(2e-4, rel=1e-2)
    with pytest.raises(ValueError):
        CostModel(per_row=-1.0)


def test_planes_that_buy_nothing_are_kept():
    # Cost per row that hardly depends on the plane count (the batched code
    # kernel): when nothing fits, lowering planes would not bring latency
    # back, so the controller keeps them; with cost in the planes it lowers.
    flat = SLOController(8, TARGET, MAX_BATCH, CostModel(FIXED, 1e-7, per_row=PER_UNIT * 8))
    steep = controller()
    for q in (200, 400, 1000):
        assert flat.decide(q).planes == 8
        assert steep.decide(q).planes == 1
        assert flat.decide(q, min_planes=3).planes == 8
    # Where a count still fits, it is chosen as before.
    assert flat.decide(0).planes == 8
    # The feedback ceiling does not fall for a plane-insensitive cost.
    for _ in range(200):
        flat.observe_latency(3 * TARGET)
        steep.observe_latency(3 * TARGET)
    assert flat.ceiling == 8 and steep.ceiling == 1


def test_simulated_overload_on_a_plane_insensitive_cost_keeps_precision(rng):
    """Cost per row, not per plane (as the batched kernel measures on wide
    layers): fewer planes cannot hold the target, so auto must not trade
    precision for nothing; it serves as fixed 8 planes does."""
    per_row, per_unit = PER_UNIT * 8, 1e-7
    cap = MAX_BATCH / (FIXED + MAX_BATCH * (per_row + 8 * per_unit))
    ctrl = SLOController(8, TARGET, MAX_BATCH, CostModel(FIXED, per_unit=1e-5))  # wrong prior
    _, used = simulate(2.0 * cap, 4000, rng, ctrl=ctrl, per_row=per_row, per_unit=per_unit)
    # Once the fit has separated the terms (mixed-plane batches while the
    # prior still believed in planes), precision comes back to 8 and stays.
    assert used[-1000:].mean() > 7.5, used[-1000:].mean()
    assert ctrl.cost.per_row == pytest.approx(per_row, rel=0.05)


def test_cost_model_separates_plane_count_groups():
    cost = CostModel(fixed=1e-3, per_unit=1e-3)
    for rows, planes, groups in ((16, 8, 1), (16, 1, 3), (64, 4, 8), (8, 2, 2), (64, 8, 5),
                                 (32, 1, 1), (1, 8, 1), (24, 3, 6)):
        cost.observe(rows, rows * planes, 2e-4 + 3e-4 * rows + 1e-5 * rows * planes
                     + 2e-3 * (groups - 1), groups)
    assert cost.per_group == pytest.approx(2e-3, rel=1e-6)
    assert cost.per_row == pytest.approx(3e-4, rel=1e-6)
    assert cost.per_unit == pytest.approx(1e-5, rel=1e-6)
    assert cost.fixed == pytest.approx(2e-4, rel=1e-6)
    assert cost.predict(80, 10, 3) == pytest.approx(2e-4 + 3e-3 + 8e-4 + 4e-3)


def test_simulated_mixed_batches_do_not_read_as_a_cost_of_planes():
    """Cost per row plus a cost per distinct plane count in a batch (the
    batched kernel's unpack per count; sized as measured on a wide stack,
    1.7x a row), almost nothing per plane: a fit in rows and units alone
    reads the mixed batches that lowering some requests' planes makes as a
    cost of planes and can stay low (seed 0 of these stayed at 4 planes
    without the plane-count term). Fixed seeds: the failure is not in
    every run."""
    per_row, per_unit, per_group = PER_UNIT * 8, 1e-7, 7e-4
    cap = MAX_BATCH / (FIXED + MAX_BATCH * (per_row + 8 * per_unit))
    for seed in range(5):
        ctrl = SLOController(8, TARGET, MAX_BATCH, CostModel(FIXED, per_unit=1e-5))  # wrong prior
        _, used = simulate(2.0 * cap, 4000, np.random.default_rng(seed), ctrl=ctrl,
                           per_row=per_row, per_unit=per_unit, per_group=per_group)
        assert used[-1000:].mean() > 7.5, (seed, used[-1000:].mean())


def test_cost_model_keeps_a_calibrated_split():
    # fit_split=False (the server after calibration): served batches only
    # rescale the model, whatever they seem to say about the split.
    cost = CostModel(fixed=2e-4, per_unit=1e-6, per_row=4e-4, per_group=7e-4, fit_split=False)
    for rows, planes, groups in ((16, 8, 1), (16, 1, 3), (64, 4, 8), (8, 2, 2), (64, 8, 5)) * 4:
        cost.observe(rows, rows * planes, 2 * (2e-4 + 5e-5 * rows * planes), groups)
    assert cost.per_group == 7e-4
    assert cost.per_unit / cost.per_row == pytest.approx(1e-6 / 4e-4)
