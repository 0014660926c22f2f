"""The SLO controller's decisions: directly, and under a simulated load (a
discrete-event model of the batcher: one server taking up to max_batch queued
rows per call, each call costing fixed + per_unit * sum of planes)."""

import asyncio
import heapq
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
    return SLOController(8, TARGET, MAX_BATCH, CostModel.linear(8, FIXED, PER_UNIT), **kw)


# A measured profile shaped as the wide stack's at batch 4 (docs/serve.md,
# quiet, 1 thread): 8 planes 2.01 ms, 4 planes 1.57, 3 planes 1.58, 2
# planes 1.61, 1 plane 0.64; 5-7 between 4 and 8. A quarter of it per batch,
# the rest per row.
FLAT_MS = {1: 0.64, 2: 1.61, 3: 1.58, 4: 1.57, 5: 1.68, 6: 1.79, 7: 1.90, 8: 2.01}
FLAT_FIXED = [0.25e-3 * FLAT_MS[p] for p in range(1, 9)]
FLAT_ROW = [0.75e-3 * FLAT_MS[p] / 4 for p in range(1, 9)]


def flat_cost(column_planes):
    """Seconds of a batch on the flat profile: the uniform cost at its
    largest count plus 0.3 ms per further count."""
    p = max(column_planes)
    return (FLAT_FIXED[p - 1] + FLAT_ROW[p - 1] * len(column_planes)
            + 3e-4 * (len(set(column_planes)) - 1))


def test_cost_model_learns_a_table_from_batches():
    """A calibration that got the shape wrong (a slope in planes, 8x too
    cheap at 1 plane) learns the measured table from served batches of
    several sizes at each count, and the extra-count term from mixed ones."""
    cost = CostModel.linear(8, fixed=1e-4, per_unit=2e-4)  # the wrong prior
    sizes = (1, 4, 2, 3, 4, 1)
    for rows in sizes * 3:
        for p in range(1, 9):
            cost.observe(rows, p, flat_cost([p] * rows))
    for p in range(1, 9):
        f, r = cost.entry(p)
        assert f == pytest.approx(FLAT_FIXED[p - 1], rel=1e-6)
        assert r == pytest.approx(FLAT_ROW[p - 1], rel=1e-6)
        assert cost.batch(p, 4) == pytest.approx(FLAT_MS[p] * 1e-3, rel=1e-6)
    assert cost.per_extra == 0.0
    for cp in ([8, 1, 1, 1], [4, 2, 2, 1], [8, 7, 6, 5], [3, 1]):
        cost.observe(len(cp), max(cp), flat_cost(cp), len(set(cp)))
    assert cost.per_extra == pytest.approx(3e-4, rel=1e-6)
    assert cost.batch(8, 4, 3) == pytest.approx(flat_cost([8, 4, 1, 1]), rel=1e-6)
    # Between two counts (a queue's mean planes): linear between their costs.
    assert cost.batch(3.5, 4) == pytest.approx(0.5e-3 * (FLAT_MS[3] + FLAT_MS[4]), rel=1e-6)
    with pytest.raises(ValueError, match="every plane count"):
        CostModel([1e-4] * 8, [1e-5] * 7)
    with pytest.raises(ValueError, match=">= 0"):
        CostModel.linear(8, per_row=-1.0)


def test_cost_model_one_batch_size_scales_the_seed():
    """Full batches only (what a loaded server serves) cannot separate a
    count's per-batch from its per-row cost: the seeded split is kept and
    scaled to what the batches measure. A machine twice as slow as at
    calibration is twice as slow at every count (the machine factor). A
    count measured next to another keeps its cost relative to it when the
    machine's speed changes while it is not served (the earlier table kept
    its absolute time: 3x its seed here, on a machine back to 1x), and a
    count never served is its seed scaled as its nearest measured
    neighbours are. A mixed batch whose residual is negative leaves no
    negative extra-count term."""
    cost = CostModel(FLAT_FIXED, FLAT_ROW, window=8, block=4, blocks=4, solve_every=4)
    for _ in range(4):
        cost.observe(4, 8, 2 * flat_cost([8] * 4))
    assert cost.machine_factor == pytest.approx(2.0, rel=1e-6)
    assert cost.batch(8, 4) == pytest.approx(2 * FLAT_MS[8] * 1e-3, rel=1e-6)
    assert cost.entry(8)[0] / cost.entry(8)[1] == pytest.approx(FLAT_FIXED[7] / FLAT_ROW[7])
    for p in range(1, 8):  # not served: the seed, twice as slow
        assert cost.batch(p, 4) == pytest.approx(2 * FLAT_MS[p] * 1e-3, rel=1e-6)
    for _ in range(4):  # 1 plane costs 1.5x its seed next to 8 planes, still at 2x
        for p in (8, 1, 1, 1):
            cost.observe(4, p, 2 * (1.5 if p == 1 else 1.0) * flat_cost([p] * 4))
    assert cost.batch(1, 4) == pytest.approx(3 * FLAT_MS[1] * 1e-3, rel=1e-6)
    assert cost.batch(8, 4) == pytest.approx(2 * FLAT_MS[8] * 1e-3, rel=1e-6)
    for _ in range(40):  # the machine back at 1x, 8 planes alone
        cost.observe(4, 8, flat_cost([8] * 4))
    # (within 0.5 %: the smoothness of M between blocks holds back a change
    # of speed a little in the solve that straddles it)
    assert cost.machine_factor == pytest.approx(1.0, rel=5e-3)
    assert cost.batch(8, 4) == pytest.approx(FLAT_MS[8] * 1e-3, rel=1e-6)
    assert cost.batch(1, 4) == pytest.approx(1.5 * FLAT_MS[1] * 1e-3, rel=5e-3)
    # Between two measured counts: their ratios interpolated (1.5x at 1, 1x at 8).
    for p in range(2, 8):
        ratio = 1.5 + (1 - 1.5) * (p - 1) / 7
        assert cost.batch(p, 4) == pytest.approx(ratio * FLAT_MS[p] * 1e-3, rel=5e-3)
    cost.observe(4, 8, 0.5 * flat_cost([8] * 4), 2)
    assert cost.per_extra == 0.0
    with pytest.raises(ValueError, match="multiple of block"):
        CostModel(FLAT_FIXED, FLAT_ROW, block=8, solve_every=12)


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
                ctrl.cost.observe(len(in_service), max(used[j] for j in in_service), service,
                                  groups)
    return latency, used


CAPACITY_8 = MAX_BATCH / (FIXED + PER_UNIT * MAX_BATCH * 8)  # requests/s at 8 planes


def test_simulated_load_auto_holds_the_slo_where_8_planes_break_it(rng):
    n = 6000
    p99 = lambda lat: float(np.percentile(lat[n // 5:], 99))  # after warm-up  # noqa: E731
    fixed8 = {m: p99(simulate(m * CAPACITY_8, n, rng, planes=8)[0]) for m in (0.5, 1.5)}
    assert fixed8[0.5] <= TARGET < fixed8[1.5]
    mean_planes = {}
    for m in (0.5, 1.5, 2.0, 3.0):
        ctrl = SLOController(8, TARGET, MAX_BATCH, CostModel.linear(8))  # learns the cost itself
        lat, used = simulate(m * CAPACITY_8, n, rng, ctrl=ctrl)
        assert p99(lat) <= TARGET, (m, p99(lat))
        mean_planes[m] = used[n // 5:].mean()
    assert mean_planes[0.5] > 7.5
    assert mean_planes[0.5] > mean_planes[1.5] > mean_planes[2.0] > mean_planes[3.0]
    # A floor is kept even when it breaks the SLO.
    ctrl = SLOController(8, TARGET, MAX_BATCH, CostModel.linear(8))
    _, used = simulate(3.0 * CAPACITY_8, 2000, rng, ctrl=ctrl, min_planes=6)
    assert used.min() == 6


def test_simulated_load_precision_comes_back_when_load_falls(rng):
    ctrl = SLOController(8, TARGET, MAX_BATCH, CostModel.linear(8))
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
    # Count-bounded admission: every request of the burst is served, so that
    # the planes it got show (SLO admission: test_server_sheds_what_the_slo_cannot_serve).
    app = create_app(digits, ServeConfig(calibrate=False, max_batch=16, slo_p99_ms=100,
                                         admission="queue"))
    server = app.state.server
    server.controller.cost = CostModel.linear(8, FIXED, 1e-4)
    real = server.batcher.forward_batched

    def slow(x, cp, ab):
        time.sleep(FIXED + 1e-4 * sum(cp))
        return real(x, cp, ab)

    server.batcher.forward_batched = slow
    # Each decision's priced floor as of that decision (the cost model is
    # refit from the served batches meanwhile, and the floor with it).
    decisions = []
    decide = server.controller.decide

    def recorded(*a, **kw):
        decisions.append(decide(*a, **kw))
        return decisions[-1]

    server.controller.decide = recorded
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
    print("burst planes", np.bincount(burst_planes, minlength=9)[1:])
    # Lower under the burst, by the price of accuracy (the digits metric
    # measured at start-up is flat from 5 planes up, 0.94 at 1): never below
    # the priced floor.
    assert min(burst_planes) < 8 and np.mean(burst_planes) < 7
    assert len(decisions) == 605 and all(d.planes >= d.floor for d in decisions)
    assert [p for p, _ in after[-20:]] == [8] * 20
    for p, y in idle + burst[::10] + after[-5:]:
        np.testing.assert_array_equal(np.array(y, np.float32), digits.forward(x, p, 8)[0])


def test_planes_that_buy_nothing_are_kept():
    # Cost per row that hardly depends on the plane count (the batched code
    # kernel): when nothing fits, lowering planes would not bring latency
    # back, so the controller keeps them; with cost in the planes it lowers.
    flat = SLOController(8, TARGET, MAX_BATCH,
                         CostModel.linear(8, FIXED, 1e-7, per_row=PER_UNIT * 8))
    steep = controller()
    assert flat.ladder() == [8] and steep.ladder() == list(range(8, 0, -1))
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
    wrong = CostModel.linear(8, FIXED, per_unit=1e-5)  # a prior that believes in planes
    ctrl = SLOController(8, TARGET, MAX_BATCH, wrong)
    _, used = simulate(2.0 * cap, 4000, rng, ctrl=ctrl, per_row=per_row, per_unit=per_unit)
    # Once the table has learned the counts the prior made look cheap,
    # precision comes back to 8 and stays.
    assert used[-1000:].mean() > 7.5, used[-1000:].mean()
    # (full batches at 8 planes: their cost, not its split, is measured)
    assert ctrl.row_cost(8) == pytest.approx(FIXED / MAX_BATCH + per_row + 8 * per_unit,
                                             rel=0.05)
    assert ctrl.ladder() == [8]


def test_simulated_mixed_batches_do_not_read_as_a_cost_of_planes():
    """Cost per row plus a cost per distinct plane count in a batch (the
    batched kernel's unpack per count; sized as measured on a wide stack,
    1.7x a row), almost nothing per plane: a fit in rows and units alone
    reads the mixed batches that lowering some requests' planes makes as a
    cost of planes and can stay low (seed 0 of these stayed at 4 planes
    without the plane-count term). The cost table fits mixed batches only
    into its extra-count term, never into a count's line. Fixed seeds: the
    failure was not in every run."""
    per_row, per_unit, per_group = PER_UNIT * 8, 1e-7, 7e-4
    cap = MAX_BATCH / (FIXED + MAX_BATCH * (per_row + 8 * per_unit))
    for seed in range(5):
        wrong = CostModel.linear(8, FIXED, per_unit=1e-5)  # a prior that believes in planes
        ctrl = SLOController(8, TARGET, MAX_BATCH, wrong)
        _, used = simulate(2.0 * cap, 4000, np.random.default_rng(seed), ctrl=ctrl,
                           per_row=per_row, per_unit=per_unit, per_group=per_group)
        assert used[-1000:].mean() > 7.5, (seed, used[-1000:].mean())


# -- the price of accuracy and admission ------------------------------------

# A metric per plane count shaped as the digits MLP's: flat down to 5
# planes, a knee at 3-4, steep below.
METRIC = {1: 0.30, 2: 0.80, 3: 0.95, 4: 0.975, 5: 0.98, 6: 0.98, 7: 0.981, 8: 0.981}


def _shed_late(batch, now, arrivals, used, predicted, made_with, ctrl, late, alone):
    """The batch without the requests predicted to end past the target
    (as the server's batcher sheds them; never one that found the server
    empty, `alone`), each fed back to the controller with its projected
    latency and marked in `late`."""
    ends = now + ctrl.cost.batch(max(used[j] for j in batch), len(batch),
                                 len({int(used[j]) for j in batch}))
    kept = []
    for j in batch:
        if ends <= arrivals[j] + ctrl.target_s or alone[j]:
            kept.append(j)
            continue
        ctrl.observe_latency(ends - arrivals[j], predicted[j], made_with[j])
        used[j] = 0
        if late is not None:
            late[j] = True
    return kept


def simulate_admission(rate, n, rng, ctrl, *, planes=None, per_row=0.0, per_unit=PER_UNIT,
                       per_group=0.0, admission=True, service=None, max_batch=MAX_BATCH,
                       min_planes=1, shed_late=False, late=None):
    """As simulate(), with the server's admission: every arrival is counted
    in the controller's arrival rate; an auto request (planes None) takes
    the controller's decision, a fixed one its planes; either is refused
    when not admitted (latency NaN, planes 0). `service`: a batch's plane
    counts -> its seconds, instead of the cost above. shed_late: as the
    server's batcher, while the controller's p99 is over its limit a
    request whose batch is predicted to end past the target is refused
    when the batch is taken, its projected latency fed back (latency NaN,
    planes 0, and `late` (a boolean array) marks it)."""
    arrivals = np.cumsum(rng.exponential(1.0 / rate, n))
    queue, in_service = deque(), []
    busy_until, i = 0.0, 0
    latency, used = np.full(n, np.nan), np.zeros(n, int)
    predicted, made_with = np.zeros(n), np.ones(n)
    alone = np.zeros(n, bool)  # found nothing queued or in service
    while i < n or queue or in_service:
        next_arrival = arrivals[i] if i < n else math.inf
        if in_service and busy_until <= next_arrival:
            now = busy_until
            for j in in_service:
                latency[j] = now - arrivals[j]
                ctrl.observe_latency(latency[j], predicted[j], made_with[j])
            in_service = []
        else:
            now = next_arrival
            ctrl.arrive(1, now)
            waiting = list(queue) + in_service
            units = float(sum(used[j] for j in waiting))
            if planes is None:
                d = ctrl.decide(len(waiting), 1, min_planes, queued_units=units, now=now)
                p, ok, t = d.planes, d.admitted, d.predicted_s
            else:
                p = planes
                ok, t = ctrl.admits(len(waiting), 1, planes, units)
            if ok or not admission:
                used[i], predicted[i], made_with[i] = p, t, ctrl.correction
                alone[i] = not waiting
                queue.append(i)
            i += 1
        while not in_service and queue:
            in_service = [queue.popleft() for _ in range(min(max_batch, len(queue)))]
            if shed_late and ctrl.p99_over_limit():
                in_service = _shed_late(in_service, now, arrivals, used, predicted, made_with,
                                        ctrl, late, alone)
        if in_service and busy_until <= now:
            units = int(sum(used[j] for j in in_service))
            groups = len({int(used[j]) for j in in_service})
            if service is None:
                seconds = (FIXED + per_row * len(in_service) + per_unit * units
                           + per_group * (groups - 1))
            else:
                seconds = service([int(used[j]) for j in in_service])
            busy_until = now + seconds
            ctrl.cost.observe(len(in_service), max(used[j] for j in in_service), seconds, groups)
    return latency, used


def test_metric_is_validated_and_made_monotone():
    c = controller(metric={**METRIC, 6: 0.99})  # noise: 6 planes above 7 and 8
    assert c.metric[5:] == [0.99, 0.99, 0.99]  # never better with fewer planes
    with pytest.raises(ValueError, match="every plane count 1..8"):
        controller(metric={1: 0.5, 2: 0.9})
    with pytest.raises(ValueError, match="finite"):
        controller(metric={**METRIC, 3: float("nan")})


# The served wide stack's top-1 per plane count (bench/serve/make_model.py's
# seeded stack, 512 held-out rows, act_bits 8): goodput alone prefers 1
# plane there when 1 plane is cheap enough.
WIDE_METRIC = {1: 0.293, 2: 0.377, 3: 0.600, 4: 0.801, 5: 0.900, 6: 0.939, 7: 0.963, 8: 0.977}


def test_quality_floor_keeps_auto_at_a_share_of_the_best_metric():
    """With min_metric_share, no decision goes below the fewest planes whose
    metric is that share of the best count's, however long the queue; a
    request's min_planes above it still counts; no metric or a share of 0:
    no floor."""
    c = controller(metric=WIDE_METRIC, min_metric_share=0.9)
    assert c.quality_floor() == 5  # 0.900 >= 0.9 * 0.977 > 0.801
    decisions = [c.decide(q) for q in range(0, 400, 3)]
    assert decisions[0].planes == 8
    assert min(d.planes for d in decisions) == 5
    assert all(d.floor >= 5 for d in decisions)
    assert min(c.decide(q, min_planes=7).planes for q in range(0, 400, 7)) == 7
    # The floor is the one admission judges: a queue that 5 planes cannot
    # serve is refused, not answered at 1-4 planes.
    assert not c.decide(399).admitted
    assert controller(metric=WIDE_METRIC, min_metric_share=0.6).quality_floor() == 3
    assert controller(metric=WIDE_METRIC, min_metric_share=1.0).quality_floor() == 8
    assert controller(metric=WIDE_METRIC).quality_floor() == 1  # default 0: none
    assert controller(min_metric_share=0.9).quality_floor() == 1  # no metric
    low = controller(min_metric_share=0.9)
    assert min(low.decide(q).planes for q in range(0, 400, 3)) == 1
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="min_metric_share must be in"):
            controller(metric=WIDE_METRIC, min_metric_share=bad)


def test_operating_point_prices_accuracy():
    """Correct answers per second, min(rate, capacity(p)) * metric(p): all
    planes below capacity, the knee of the metric beyond it; a cost that
    does not follow planes never buys a plane; no metric: the most planes
    that are sustainable; never below the floor."""
    steep = controller(metric=METRIC)
    cap8 = steep.utilization / steep.row_cost(8)  # rows/s at 8 planes
    assert steep.operating_point(1, 8, 0.5 * cap8) == 8
    assert steep.operating_point(1, 8, 0.0) == 8  # no measured rate yet
    ops = [steep.operating_point(1, 8, m * cap8) for m in (1.2, 1.5, 2.0, 3.0, 5.0)]
    assert ops == sorted(ops, reverse=True) and ops[0] < 8
    # Never into the steep part of the curve: 1 plane's 0.30 loses to 2-3
    # planes' 0.80-0.95 whatever the rate.
    assert min(ops) >= 2 and steep.operating_point(1, 8, 100 * cap8) >= 2
    assert steep.operating_point(5, 8, 3 * cap8) == 5
    # The choice is the best goodput, or more planes within `futile` of it.
    for m in (1.5, 2.0, 3.0):
        rate = m * cap8
        best = max(steep.goodput(p, rate) for p in range(1, 9))
        op = steep.operating_point(1, 8, rate)
        assert steep.goodput(op, rate) >= 0.95 * best
        assert all(steep.goodput(p, rate) < 0.95 * best for p in range(op + 1, 9))
    flat = SLOController(8, TARGET, MAX_BATCH,
                         CostModel.linear(8, FIXED, 1e-7, per_row=PER_UNIT * 8),
                         metric=METRIC)
    assert all(flat.operating_point(1, 8, m * cap8) == 8 for m in (0.5, 2, 10))
    blind = controller()  # no metric: latency alone decides
    assert blind.operating_point(1, 8, 0.5 * cap8) == 8
    op = blind.operating_point(1, 8, 2 * cap8)
    assert blind.utilization / blind.row_cost(op) >= 0.95 * 2 * cap8 > \
        blind.utilization / blind.row_cost(op + 1)


def test_arrival_rate_is_a_moving_average():
    c = controller(rate_tau_s=0.5)
    assert c.arrival_rate() == 0.0
    t = 0.0
    for _ in range(4000):  # 2000 rows/s for 4 s (8 time constants)
        t += 1 / 1000
        c.arrive(2, t)
    assert c.arrival_rate(t) == pytest.approx(2000, rel=0.01)
    assert c.arrival_rate(t + 0.5) == pytest.approx(2000 / math.e, rel=0.01)


def test_admission_refuses_what_the_floor_cannot_serve():
    c = controller()
    ok, t = c.admits(0, 1, 8)
    assert ok and t == c.predict(0, 1, 8)
    q = next(q for q in range(2000) if not c.admits(q, 1, 1)[0])
    assert c.predict(q, 1, 1) > 0.7 * TARGET >= c.predict(q - 1, 1, 1)
    assert not c.decide(q, 1, 1).admitted and c.decide(q - 1, 1, 1).admitted
    assert not c.decide(q - 1, 1, 8).admitted  # min_planes 8: its own floor
    # A request alone is always admitted, even when predicted over: refusing
    # it helps no one, and serving it lets the cost model learn.
    slow = SLOController(8, TARGET, MAX_BATCH, CostModel.linear(8, fixed=1.0, per_unit=1e-3))
    assert slow.admits(0, 4, 8) == (True, slow.predict(0, 4, 8))
    assert not slow.admits(1, 4, 8)[0] and slow.decide(0, 4).admitted


def test_refuses_all_is_admission_at_every_plane_count():
    """The server's check before parsing refuses exactly where one row at
    every plane count would be refused: never an empty queue, never a
    queue that some count could still serve."""
    c = controller()
    assert not c.refuses_all(0)
    for q in range(0, 3000, 7):
        every = not any(c.admits(q, 1, p)[0] for p in range(1, 9))
        assert c.refuses_all(q) == (every and q > 0), q
    q = next(q for q in range(3000) if c.refuses_all(q))
    assert c.admits(q - 1, 1, 1)[0] and not c.admits(q, 1, 1)[0]


@pytest.mark.parametrize("kind", ["planes matter", "planes do not matter", "mixed batches"])
def test_simulated_overload_with_admission(kind, rng):
    """Poisson load from 0.5x to 3x of the 8-plane capacity, three costs:
    planes matter (cost per row-plane), planes do not matter (cost per
    row), and a cost per row plus per distinct plane count in a batch (the
    batched kernel's unpack per count). Fixed 8 planes without admission
    breaks the SLO from 1.5x; auto with admission keeps the p99 of what it
    serves within the target at every level, serves the operating point's
    planes (the metric's knee where planes matter, 8 where they do not),
    and refuses less than fixed 8 planes with admission where planes buy
    throughput."""
    costs = {"planes matter": dict(per_row=0.0, per_unit=PER_UNIT, per_group=0.0),
             "planes do not matter": dict(per_row=PER_UNIT * 8, per_unit=1e-7, per_group=0.0),
             "mixed batches": dict(per_row=PER_UNIT * 8, per_unit=1e-7, per_group=7e-4)}[kind]
    cost8 = FIXED + MAX_BATCH * (costs["per_row"] + 8 * costs["per_unit"])
    cap = MAX_BATCH / cost8  # requests/s at 8 planes in full batches
    n = 4000
    tail = slice(n // 4, None)

    def fresh():
        c = costs
        return SLOController(8, TARGET, MAX_BATCH,
                             CostModel.linear(8, FIXED, per_unit=max(c["per_unit"], 1e-9),
                                              per_row=c["per_row"], per_extra=c["per_group"]),
                             metric=METRIC,
                             rate_tau_s=0.05)  # 4000 arrivals last 0.6-3.3 s here

    def p99(lat):
        served = lat[tail][~np.isnan(lat[tail])]
        return float(np.percentile(served, 99)), 1.0 - len(served) / len(lat[tail])

    lat, _ = simulate_admission(1.5 * cap, n, rng, fresh(), planes=8, admission=False, **costs)
    assert p99(lat)[0] > TARGET  # fixed 8 planes breaks the SLO at 1.5x
    planes_at = {}
    for m in (0.5, 1.0, 1.5, 2.0, 3.0):
        lat, used = simulate_admission(m * cap, n, rng, fresh(), **costs)
        tail_p99, shed = p99(lat)
        # The p99 of 3000 simulated Poisson arrivals has a spread of its own:
        # about one seed in 60 (seed 33: 22.2 ms at 1.5x where planes do not
        # matter) lands up to 11 % over while the measured headroom is still
        # learning the batch in service. Fixed 8 without admission is 26-27x
        # over at 1.5x (above), so the bound still tells control from none.
        assert tail_p99 <= 1.15 * TARGET, (kind, m, tail_p99)
        served = used[tail][used[tail] > 0]
        planes_at[m] = served.mean()
        if m == 0.5:
            assert shed == 0 and planes_at[m] == 8
        lat8, _ = simulate_admission(m * cap, n, rng, fresh(), planes=8, **costs)
        shed8 = p99(lat8)[1]
        if kind == "planes matter" and m >= 1.5:
            assert shed < shed8, (m, shed, shed8)
            # the knee: 2-5 planes, never the 0.30 of 1 plane
            assert 2 <= np.median(served) <= 5, (m, np.bincount(served))
        elif kind != "planes matter":
            assert planes_at[m] > 7.9, (kind, m, np.bincount(served))
            assert shed <= shed8 + 0.05, (kind, m, shed, shed8)
    if kind == "planes matter":
        assert planes_at[0.5] > planes_at[1.5] >= planes_at[3.0]


FLAT_TARGET = 0.040  # 20 batches of 4 rows at 8 planes on the flat profile


def flat_controller(metric=None, cost=None):
    return SLOController(8, FLAT_TARGET, 4, cost or CostModel(FLAT_FIXED, FLAT_ROW, 3e-4),
                         metric=metric, rate_tau_s=0.05)


def simulate_flat(rate_x, rng, ctrl, n=4000, service=flat_cost, **kw):
    """simulate_admission() on the flat profile (batches of up to 4 rows; or
    another `service` cost) at `rate_x` times the 8-plane capacity; the
    served latencies, plane counts and refused share of the last three
    quarters."""
    cap8 = 4 / flat_cost([8] * 4)
    lat, used = simulate_admission(rate_x * cap8, n, rng, ctrl, service=service, max_batch=4,
                                   **kw)
    lat, used = lat[n // 4:], used[n // 4:]
    served = ~np.isnan(lat)
    return lat[served], used[served], 1.0 - served.mean()


@pytest.mark.parametrize("metric", [None, METRIC], ids=["no metric", "metric"])
def test_simulated_flat_profile_holds_the_slo_to_twice_the_breaking_load(metric, rng):
    """The wide stack's batch-4 profile (FLAT_MS: 4, 3 and 2 planes cost
    the same, 1 plane 0.32x of 8): fixed 8 planes breaks the SLO at 1.25x
    its capacity (p99 9-11x the target over 20 seeds; 0.5-2.2x at 1x);
    auto holds it to 2.5x. It never chooses 2 or 3 planes, which buy
    nothing over 4: without a metric it serves the overload at 4 and 1
    planes, at 2.5x at 1 plane (the only real gain, 3.1x the capacity) in
    uniform batches, and refuses nothing; with the tests' metric (1 plane 0.30) it stays at 4 and
    refuses what 4 planes cannot serve. A min_planes floor is kept. Over
    20 seeds the p99 reached at most 1.02x the target."""
    assert flat_controller(metric).ladder() == [8, 7, 6, 5, 4, 1]
    fixed8 = {m: np.percentile(simulate_flat(m, rng, flat_controller(metric), planes=8,
                                             admission=False)[0], 99) for m in (0.5, 1.25)}
    assert fixed8[0.5] <= FLAT_TARGET < 5 * FLAT_TARGET < fixed8[1.25]
    for m in (0.5, 1.25, 2.5):
        lat, used, shed = simulate_flat(m, rng, flat_controller(metric))
        assert np.percentile(lat, 99) <= 1.05 * FLAT_TARGET, (m, np.percentile(lat, 99))
        assert not np.isin(used, [2, 3]).any(), (m, np.bincount(used))
        if m == 0.5:
            assert shed == 0 and (used == 8).all()
        elif metric is None:  # at 1.25x (4 planes' capacity: 1.28x) 4 and 1 planes
            assert shed <= 0.01, (m, shed, np.bincount(used))
            assert m < 2 or np.median(used) == 1, (m, np.bincount(used))
        else:
            assert np.median(used) == 4 and used.min() == 4, (m, np.bincount(used))
    _, used, _ = simulate_flat(2.5, rng, flat_controller(metric), min_planes=5)
    assert used.min() == 5, np.bincount(used)


def test_simulated_flat_profile_learns_a_mis_seeded_table(rng):
    """A calibration that measured a slope (8 planes right, each plane an
    eighth of it: 1-4 planes look 2-8x cheaper than they are) on the flat
    profile at 2x the 8-plane capacity: the table learns the counts it
    serves, the SLO holds (over 20 seeds the p99 reached at most 1.02x the
    target), and the choices end where a right seed puts them (1 plane
    without a metric, 4 with it) after trying at most a few batches at the
    counts the seed made look cheap. (With the metric it never serves 1-3
    planes, so their entries stay the seed's, scaled by the 4 planes'
    measured ratio.)"""
    for metric, settle in ((None, 1), (METRIC, 4)):
        wrong = CostModel.linear(8, FLAT_FIXED[7], FLAT_ROW[7] / 8)
        ctrl = flat_controller(metric, wrong)
        assert ctrl.ladder() == list(range(8, 0, -1))
        lat, used, _ = simulate_flat(2.0, rng, ctrl)
        assert np.percentile(lat, 99) <= 1.05 * FLAT_TARGET, (metric, np.percentile(lat, 99))
        assert np.median(used[len(used) // 2:]) == settle, np.bincount(used)
        assert np.isin(used, [2, 3]).mean() <= 0.05, np.bincount(used)
        # (exact from batches of several sizes; from a window of nearly all
        # full batches, the seed's split scaled: within 1 % at 4 rows)
        assert ctrl.cost.batch(settle, 4) == pytest.approx(flat_cost([settle] * 4), rel=0.01)
        assert ctrl.cost.batch(8, 4) == pytest.approx(flat_cost([8] * 4), rel=0.01)
        if metric is None:  # it tried them: they buy nothing over 4
            assert 2 not in ctrl.ladder() and 3 not in ctrl.ladder(), ctrl.ladder()


def test_server_sheds_what_the_slo_cannot_serve(rng):
    """Through the real app, model calls slowed as above: a burst of fixed
    8-plane requests beyond what the SLO allows is partly refused at once
    (503, Retry-After, the reason), the rest served within the target; the
    metadata shows the controller's inputs (the metric per plane count
    measured at start-up, the cost model, the arrival rate) and the metrics
    the refusals and the price of accuracy."""
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from bitplane.serve import ServeConfig, create_app
    from bitplane.serve.served import load

    digits = load("digits")
    app = create_app(digits, ServeConfig(calibrate=False, max_batch=16, slo_p99_ms=100))
    server = app.state.server
    server.controller.cost = CostModel.linear(8, FIXED, 1e-4)
    real = server.batcher.forward_batched

    def slow(x, cp, ab):
        time.sleep(FIXED + 1e-4 * sum(cp))
        return real(x, cp, ab)

    server.batcher.forward_batched = slow
    x = rng.standard_normal((1, 64)).astype(np.float32)
    body = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                        "data": x.ravel().tolist()}], "parameters": {"planes": 8}}

    async def run():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://serve") as c:
            async def one():
                t = time.monotonic()
                r = await c.post("/v2/models/digits/infer", json=body)
                return r, time.monotonic() - t

            burst = await asyncio.gather(*[one() for _ in range(300)])
            meta = (await c.get("/v2/models/digits")).json()
            metrics = (await c.get("/metrics")).text
            return burst, meta, metrics

    burst, meta, metrics = asyncio.run(run())
    ok = [r for r, _ in burst if r.status_code == 200]
    shed = [r for r, _ in burst if r.status_code != 200]
    assert ok and shed, (len(ok), len(shed))
    from bitplane.serve.batcher import LATE_PREFIX

    late = [r for r in shed if r.json()["error"].startswith(LATE_PREFIX)]
    at_once = [r for r in shed if not r.json()["error"].startswith(LATE_PREFIX)]
    for r in shed:
        assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
    for r in at_once:
        assert "the SLO (p99 100 ms) cannot be met behind" in r.json()["error"]
    # Admitted: predicted within 0.7 x the target, at most ~85 rows queued
    # (0.8 ms a row at 8 planes, 0.2 ms a batch), however many arrive.
    assert len(at_once) >= 50, len(at_once)
    print("late", len(late), "at once", len(at_once), "ok", len(ok))
    for r in ok[::10]:
        np.testing.assert_array_equal(np.array(r.json()["outputs"][0]["data"], np.float32),
                                      digits.forward(x, 8, 8)[0])
    ctl = meta["parameters"]["controller"]
    assert ctl["admission"] == "slo" and ctl["slo_p99_ms"] == 100
    per = {int(p): v for p, v in ctl["metric"]["per_planes"].items()}
    assert sorted(per) == list(range(1, 9)) and per[8] > 0.9 and per[1] < per[8]
    # The server's default accuracy floor for auto: 0.9 of the best count's metric.
    assert ctl["min_metric_share"] == 0.9
    floor = min(p for p in per if per[p] >= 0.9 * max(per.values()))
    assert ctl["quality_floor_planes"] == floor
    assert f'bitplane_controller_quality_floor_planes{{model="digits"}} {floor}.0' in metrics
    table = ctl["cost_seconds"]["per_planes"]
    assert sorted(table, key=int) == [str(p) for p in range(1, 9)]  # JSON keys
    assert table["8"]["full_batch"] > 0  # refit from the served batches
    assert ctl["ladder_planes"][0] == 8
    assert 'bitplane_cost_batch_seconds{model="digits",planes="8"}' in metrics
    assert ctl["arrival_rows_per_s"] > 0
    assert f'bitplane_rejected_total{{model="digits",reason="slo"}} {len(at_once)}.0' in metrics
    if late:
        assert f'bitplane_rejected_total{{model="digits",reason="slo_late"}} {len(late)}.0' \
            in metrics
    assert 'bitplane_model_metric{model="digits",planes="8"}' in metrics
    assert "bitplane_controller_operating_planes" in metrics
    assert f'bitplane_controller_headroom{{model="digits"}} {ctl["headroom"]}' in metrics
    # hand-offs and the event loop's waits on top of the compute: at least 1
    assert 1.0 <= ctl["service_factor"] <= 4.0
    assert 'bitplane_controller_service_factor{model="digits"}' in metrics
    assert ctl["cost_seconds"]["machine_factor"] > 0
    assert 'bitplane_cost_machine_factor{model="digits"}' in metrics


def test_prediction_correction_learns_what_the_cost_model_misses():
    """Requests take 1.8x what the cost model predicts (batches smaller than
    it assumes, parsing, a loaded machine): the correction learns it and
    admission tightens accordingly (the corrected predictions now hold, so
    once the overruns of the requests predicted before the correction
    learned it have left the overrun window and the margin's hold, the
    measured headroom is the whole target); it is bounded and starts at 1."""
    c = controller()
    q = next(q for q in range(2000) if not c.admits(q, 1, 8)[0])
    assert c.correction == 1.0
    for i in range(600):  # 128 in the window, then 16 updates of 16 held
        if i == 200:
            assert c.headroom < 1.0  # the first 16 requests overran by 0.8x
        t = c.predict(q // 2, 1, 8)
        c.observe_latency(1.8 * t / c.correction, t)  # measured = 1.8 x uncorrected
    assert c.correction == pytest.approx(1.8, rel=1e-6)
    assert c.headroom == pytest.approx(1.0)
    q2 = next(q for q in range(2000) if not c.admits(q, 1, 8)[0])
    assert c.predict(q2, 1, 8) > TARGET >= c.predict(q2 - 1, 1, 8)
    assert q2 < 0.8 * q
    for _ in range(200):
        c.observe_latency(100.0, 1e-6)
    assert c.correction == 4.0


def simulate_closed_loop(users, n, ctrl, *, planes=8, retry_s=1e-3):
    """`users` clients that each send one request, wait for its answer and
    send the next at once (a refused one retries after `retry_s`): the
    latency is bounded by users / throughput whatever the offered rate, as
    in a closed-loop load generator. The batcher as in simulate(), cost
    FIXED + PER_UNIT per row-plane. Returns the served latencies and
    whether each request sent was refused, in order."""
    # (time, user), a heap; the users start one after another at the
    # 8-plane capacity's pace (a ramp, as a load generator spawns them).
    gap = (FIXED + MAX_BATCH * 8 * PER_UNIT) / MAX_BATCH
    sends = [(u * gap, u) for u in range(users)]
    queue, in_service, latency, refused = deque(), [], [], []
    busy_until, sent = 0.0, 0
    while (sends and sent < n) or queue or in_service:
        next_send = sends[0][0] if sends and sent < n else math.inf
        if in_service and busy_until <= next_send:
            now = busy_until
            for user, t0, predicted, made_with in in_service:
                latency.append(now - t0)
                ctrl.observe_latency(now - t0, predicted, made_with)
                heapq.heappush(sends, (now, user))
            in_service = []
        else:
            now, user = heapq.heappop(sends)
            sent += 1
            ctrl.arrive(1, now)
            ok, t = ctrl.admits(len(queue) + len(in_service), 1, planes,
                                float(planes * (len(queue) + len(in_service))))
            refused.append(not ok)
            if ok:
                queue.append((user, now, t, ctrl.correction))
            else:
                heapq.heappush(sends, (now + retry_s, user))
        if not in_service and queue:
            in_service = [queue.popleft() for _ in range(min(MAX_BATCH, len(queue)))]
            service = FIXED + PER_UNIT * planes * len(in_service)
            busy_until = now + service
            ctrl.cost.observe(len(in_service), planes, service)
    return np.array(latency), np.array(refused)


def test_admission_does_not_shed_where_fixed_8_meets_the_slo(rng):
    """The headroom follows what the server measures: where fixed 8 planes
    meets the target without admission, admission refuses nothing, even
    when the queue is predicted well over 0.7 x the target (the fixed
    headroom that once refused 0.3-24 % of a closed-loop load test that
    fixed 8 served within its SLO). Where predictions overrun, the
    headroom shrinks by the overrun's p99."""
    cost8 = FIXED + MAX_BATCH * 8 * PER_UNIT
    users = int(0.8 * TARGET * MAX_BATCH / cost8)  # queueing ~0.8 x target
    lat, _ = simulate_closed_loop(users, 6000, controller(), retry_s=math.inf)
    assert np.percentile(lat[1000:], 99) <= TARGET  # no admission: within the SLO
    ctrl = controller()
    assert ctrl.predict(users - 1, 1, 8) > 0.7 * TARGET  # the old limit would refuse
    lat, refused = simulate_closed_loop(users, 8000, ctrl)
    # Past the start (the prior headroom, a correction learned from the
    # users' ramp), nothing is refused and the p99 holds. The ramp's
    # requests (1.2x their predictions) leave the correction's window in
    # about 330 completions, which with the refused users retrying every
    # millisecond is the first 3000 sends.
    assert refused[:3000].any()
    assert not refused[-4000:].any() and np.percentile(lat[-3000:], 99) <= TARGET
    assert ctrl.headroom > 0.9 and ctrl.correction < 1.1  # predictions hold
    # Poisson arrivals below the 8-plane capacity, fixed 8 within the target
    # without admission: with it, almost none refused. Not none: a rare burst
    # (about one seed in 200) queues past the limit and one to three of the
    # 4000 are refused, as predicted over the SLO; the bound is a quarter of
    # the 1 % that a p99 leaves.
    cap = MAX_BATCH / cost8
    lat8, _ = simulate_admission(0.8 * cap, 4000, rng, controller(metric=METRIC), planes=8,
                                 admission=False)
    assert np.percentile(lat8[1000:], 99) <= TARGET
    for planes in (8, None):  # fixed 8 and auto, both with admission
        lat, used = simulate_admission(0.8 * cap, 4000, rng, controller(metric=METRIC),
                                       planes=planes)
        refused = np.isnan(lat)
        assert refused.mean() <= 0.0025, (planes, int(refused.sum()))
        assert (used[~refused] > 0).all() and (used[refused] == 0).all()
    # Requests that take 5 ms longer than predicted (what the cost model
    # does not see): the headroom leaves those 5 ms free.
    late = controller()
    for _ in range(64):
        late.observe_latency(0.010 + 0.005, 0.010)
    assert late.headroom == pytest.approx(1 - 0.005 / TARGET)
    for _ in range(128):  # a wild overrun is bounded by min_headroom
        late.observe_latency(1.0, 0.010)
    assert late.headroom == late.min_headroom
    with pytest.raises(ValueError, match="min_headroom"):
        controller(headroom=0.2)
    with pytest.raises(ValueError, match="margin_hold must be >= 1"):
        controller(margin_hold=0)


def test_admission_over_the_limit_while_the_p99_has_room():
    """A request predicted over headroom x target but within the target is
    admitted while the measured p99 of recent requests is within the limit,
    and refused once it is not; one predicted over the target never is."""
    c = controller()
    for _ in range(32):  # half 6 ms over their predictions, half under: 7 ms at most
        c.observe_latency(0.007, 0.001)
        c.observe_latency(0.001, 0.007)
    assert c.correction == pytest.approx(1.0, rel=0.1)  # the sums about agree
    assert c.headroom == pytest.approx(0.7) and c.recent_p99 == pytest.approx(0.007)
    limit = c.headroom * TARGET
    between = next(q for q in range(2000) if c.predict(q, 1, 8) > limit)
    over = next(q for q in range(2000) if c.predict(q, 1, 8) > TARGET)
    assert c.predict(between, 1, 8) <= TARGET
    assert c.admits(between, 1, 8)[0] and not c.admits(over, 1, 8)[0]
    for _ in range(64):  # now the p99 is over the limit: no more room
        c.observe_latency(0.019, 0.013)
        c.observe_latency(0.007, 0.013)
    assert c.recent_p99 > c.headroom * TARGET
    between = next(q for q in range(2000) if c.predict(q, 1, 8) > c.headroom * TARGET)
    assert c.predict(between, 1, 8) <= TARGET and not c.admits(between, 1, 8)[0]


def test_controller_state_is_plain_python_after_learning(rng):
    """After the cost table has learned from served batches (numpy solves)
    and admission has judged an overload, what the server exports is plain
    Python (a numpy bool in the last decision made GET /v2/models/{name}
    answer 500 in a load test)."""
    import json

    c = flat_controller(METRIC)
    simulate_flat(2.0, rng, c, n=3000)
    state = {"table": c.cost.table(4), "entry": c.cost.entry(4), "extra": c.cost.per_extra,
             "m": c.cost.machine_factor, "row": c.row_cost(4), "sustainable": c.sustainable(4),
             "admits": c.admits(200, 1, 4), "last": vars(c.last)}
    json.dumps(state)  # numpy bools and arrays would raise
    assert isinstance(c.last.admitted, bool) and isinstance(c.sustainable(4), bool)
    assert all(type(v) is float for v in c.cost.entry(4)) and type(c.cost.per_extra) is float


def test_service_factor_is_wall_over_compute_time_of_recent_batches():
    """The service factor: the ratio of sums of service over compute time of
    the last 32 batches, from 8 batches on, within 1..4; a service time
    below its compute time (clock granularity) counts as the compute time;
    it does not scale predictions (the correction learns what it measures
    from finished requests)."""
    c = controller()
    before = c.predict(40, 1, 8)
    for _ in range(7):
        c.observe_service(0.002, 0.003)
    assert c.service_factor == 1.0  # too few batches
    c.observe_service(0.002, 0.003)
    assert c.service_factor == pytest.approx(1.5)
    for _ in range(32):  # the window moves on
        c.observe_service(0.001, 0.0012)
    assert c.service_factor == pytest.approx(1.2)
    for _ in range(32):
        c.observe_service(0.001, 0.0005)
    assert c.service_factor == pytest.approx(1.0)
    for _ in range(32):
        c.observe_service(0.001, 0.1)
    assert c.service_factor == 4.0
    c.observe_service(0.0, 0.1)  # ignored
    c.observe_service(0.001, float("nan"))
    assert c.service_factor == 4.0 and c.predict(40, 1, 8) == before


def test_simulated_overload_on_a_noisy_machine_holds_the_slo(rng):
    """The flat profile at 2x and 3x the 8-plane capacity on a noisy machine:
    each batch costs the profile's time times a lognormal factor (sigma 0.2)
    plus 0.2 ms of the event loop's work per request that arrived meanwhile
    (parsing, refusing: the loop delays the worker's next batch). The median
    over seven seeds of the p99 of what is served stays within 15 % of the
    target. Before the margin's hold (``margin_hold``) and while admission
    still went over the limit under a sustained overload
    (``SLOController.admits``), that median was 1.18-1.24x at 2x and
    1.11-1.20x at 3x (six sets of seven seeds each); with them 1.02-1.09x
    and 0.98-1.07x (twelve sets), and with the cost table's machine factor
    (predicting from its latest 4 blocks) 1.04-1.11x and 0.98-1.06x (ten
    sets)."""
    cap8 = 4 / flat_cost([8] * 4)
    for level in (2.0, 3.0):
        p99s = []
        for _ in range(7):
            def noisy(planes, level=level):
                seconds = flat_cost(planes) * math.exp(rng.normal(0.0, 0.2) - 0.02)
                return seconds + 2e-4 * rng.poisson(level * cap8 * seconds)
            lat, used, shed = simulate_flat(level, rng, flat_controller(METRIC), n=8000,
                                            service=noisy)
            p99s.append(np.percentile(lat, 99) / FLAT_TARGET)
            assert 0 < shed < 1
        assert np.median(p99s) <= 1.15, (level, p99s)


def test_cost_table_keeps_the_true_order_when_the_machine_speed_changes():
    """The flat profile, seeded right, served in phases at different counts
    while the machine's speed changes (1x, 1.6x, 1x, 1.6x, 1x): each phase
    also serves a few batches at 8 planes, so every phase measures two
    counts close together in time. The relative costs did not change, so
    the table must rank the counts as the true profile does (within 5 %)
    and the ladder must keep 4 planes (what the quiet load test lost:
    docs/serve.md)."""
    cost = CostModel(FLAT_FIXED, FLAT_ROW, 3e-4)
    phases = ((1.0, 5), (1.6, 4), (1.0, 7), (1.6, 6), (1.0, 1))
    for speed, p in phases:
        for b in range(40):
            q = 8 if b % 5 == 0 else p
            cost.observe(4, q, speed * flat_cost([q] * 4))
    truth = {p: FLAT_MS[p] for p in range(1, 9)}
    table = cost.table(4)
    for a in range(1, 9):
        for b in range(1, 9):
            if truth[a] < 0.95 * truth[b]:
                assert table[a] < table[b], (a, b, table)
    ctrl = SLOController(8, FLAT_TARGET, 4, cost)
    assert 4 in ctrl.ladder(), ctrl.ladder()


def test_cost_table_learns_a_mis_shaped_seed_while_the_machine_speed_changes():
    """A seed shaped as a slope (8 planes right, each plane an eighth of it:
    1-7 planes look up to 4x cheaper than on the flat profile) served in
    phases while the machine's speed changes (1x, 1.6x, 1.3x), phases not
    aligned with the blocks: some serve a count next to 8 planes (which
    fixes its cost relative to 8 whatever the speed), some serve one
    measured count alone (4 planes at 1.6x, then at 1x: the machine factor
    follows, 4 keeps its cost), the last serves 1 plane alone at 1.6x. The
    table ends within 1 % of the true profile at the current speed, so it
    ranks the counts as the profile does and the ladder is the true one.
    (The earlier table, which kept each count's absolute time, ended with 2-7
    planes at 0.63-0.81x their cost and the ladder without 6.)"""
    cost = CostModel.linear(8, FLAT_FIXED[7], FLAT_ROW[7] / 8)
    phases = ((1.0, (8, 4, 4, 4, 4)), (1.6, (8, 1, 1, 1, 1)), (1.6, (4,)), (1.0, (4,)),
              (1.3, (8, 6, 6, 6, 6)), (1.0, (8, 2, 3, 5, 7)), (1.6, (1,)))
    for speed, cycle in phases:
        for b in range(45):
            q = cycle[b % len(cycle)]
            cost.observe(4, q, speed * flat_cost([q] * 4))
    assert cost.solves == 45 * len(phases) // cost.solve_every
    for p in range(1, 9):
        assert cost.batch(p, 4) == pytest.approx(1.6 * FLAT_MS[p] * 1e-3, rel=0.01), p
    ctrl = SLOController(8, FLAT_TARGET, 4, cost)
    assert ctrl.ladder() == [8, 7, 6, 5, 4, 1]


def test_late_shedding_holds_the_slo_on_a_noisy_machine(rng):
    """The noisy machine above with the server's late shedding: while the
    measured p99 is over admission's limit, a request whose batch is
    predicted to end past the target is refused when its batch is taken
    (and fed back with that projected latency). The tail that admission's
    margin did not cover (the median p99 over seven seeds 1.04-1.12x the
    target at 2x-3x without it, same seeds) is then shed instead of served
    late: the median p99 is within the target, and the late refusals are a
    small share of the requests (0.07-0.3 % when measured), the total
    refused share hardly moves."""
    cap8 = 4 / flat_cost([8] * 4)
    n = 8000
    for level in (2.0, 3.0):
        p99s, lates, sheds = [], [], []
        for _ in range(7):
            def noisy(planes, level=level):
                seconds = flat_cost(planes) * math.exp(rng.normal(0.0, 0.2) - 0.02)
                return seconds + 2e-4 * rng.poisson(level * cap8 * seconds)
            late = np.zeros(n, bool)
            lat, used, shed = simulate_flat(level, rng, flat_controller(METRIC), n=n,
                                            service=noisy, shed_late=True, late=late)
            p99s.append(np.percentile(lat, 99) / FLAT_TARGET)
            lates.append(late[n // 4:].mean())
            sheds.append(shed)
        assert np.median(p99s) <= 1.0, (level, p99s)
        assert np.median(lates) <= 0.01 and max(lates) > 0, (level, lates)
        assert np.median(sheds) <= 0.83, (level, sheds)


def test_answer_tail_is_the_p99_of_recent_answers():
    """observe_answer: the p99 of the last `window` times from a batch's
    start to a request's answer, from 16 on, updated every feedback_every;
    non-finite or negative times are ignored."""
    c = controller()
    for _ in range(15):
        c.observe_answer(0.002)
    assert c.answer_tail_s == 0.0  # too few
    c.observe_answer(0.002)
    assert c.answer_tail_s == pytest.approx(0.002)
    for t in [0.001] * 126 + [0.05, 0.05]:  # two slow answers in the last 128
        c.observe_answer(t)
    assert c.answer_tail_s == pytest.approx(_np_p99([0.001] * 126 + [0.05, 0.05]))
    for bad in (float("nan"), float("inf"), -1.0):
        c.observe_answer(bad)
    assert c.answer_tail_s == pytest.approx(_np_p99([0.001] * 126 + [0.05, 0.05]))


def _np_p99(values):
    return float(np.percentile(values, 99))


def test_cost_table_count_served_in_a_few_batches_at_a_bad_moment_stays_near_its_neighbours(rng):
    """The flat profile, seeded right, on a noisy machine (lognormal batch
    times, sigma 0.2, as in the noisy overload above): 8, 6 and 4 planes
    are served throughout, 7 planes in only three batches, all at a moment
    when the machine ran 1.6x slower (a burst that also made the queue
    long enough for the controller to try 7), and never again. Three noisy
    batches are little evidence against the shape of 7's measured
    neighbours: in the median over five runs its entry stays within 15 %
    of its cost at the current speed and within 10 % of 8 planes' (it is
    5.5 % under it; 1.03-1.10x and 0.98-1.03x over 60 sets of five), and
    the well-measured counts stay within 8 % of theirs. The table before
    took the three batches' residual whole and anchored it by their count
    once they left the window: 7 ended at 1.26-1.84x its cost, 1.20-1.73x
    8 planes'."""
    cycle, runs = (8, 6, 4, 6), []
    for _ in range(5):
        cost = CostModel(FLAT_FIXED, FLAT_ROW, 3e-4)
        for b in range(800):
            slow = 300 <= b < 303
            q = 7 if slow else cycle[b % len(cycle)]
            seconds = (1.6 if slow else 1.0) * flat_cost([q] * 4)
            cost.observe(4, q, seconds * math.exp(rng.normal(0.0, 0.2)))
        table, m = cost.table(4), cost.machine_factor
        for p in (8, 6, 4):
            assert table[p] == pytest.approx(m * FLAT_MS[p] * 1e-3, rel=0.08), (p, m, table)
        runs.append((table[7] / (m * FLAT_MS[7] * 1e-3), table[7] / table[8]))
    own, over_8 = np.median(runs, axis=0)
    assert own <= 1.15 and over_8 <= 1.10, runs


class _TwoModeModel:
    """A stand-in for a served model whose calls advance a fake clock by the
    flat profile's cost, 1.6x as long in every other call on average (the
    two modes the wide stack's timings came in at batch 4)."""

    bits, in_features = 8, 16

    def __init__(self, rng):
        self.rng, self.now = rng, 0.0

    def clock(self):
        return self.now

    def forward_batched(self, x, column_planes, act_bits):
        seconds = flat_cost([max(column_planes)] * len(column_planes))
        self.now += seconds * (1.6 if self.rng.random() < 0.5 else 1.0)
        return np.zeros((len(x), 1), np.float32)


def test_calibration_keeps_the_counts_in_order_when_timings_have_two_modes():
    """The start-up calibration takes the fastest of its interleaved rounds:
    with timings in two modes 1.6x apart, the seeded table is each count's
    fast mode, in the profile's order (3 and 2 planes within 5 % of 4, as
    FLAT_MS has them). Medians of 5 rounds put counts in either mode and out
    of order (all 3 of these seeds)."""
    from bitplane.serve.app import _calibrate

    for seed in range(3):
        model = _TwoModeModel(np.random.default_rng(seed))
        cost = _calibrate(model, 4, clock=model.clock)
        for p in range(1, 9):
            assert cost.batch(p, 4) == pytest.approx(FLAT_MS[p] * 1e-3, rel=0.01), (seed, p)
