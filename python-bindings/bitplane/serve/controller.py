"""The SLO controller: how many planes an ``"auto"`` request gets.

Two parts, both free of the web stack so that a simulated load can drive
them in tests:

* :class:`CostModel` learns the compute time of one batched model call as
  ``fixed + per_row * rows + per_unit * units + per_group * (counts - 1)``,
  where ``units`` is the sum over the batch's rows of the planes each row
  uses (a memory-bound product reads n weight slabs per row at n planes; a
  batched kernel that unpacks weights once costs per row whatever the
  planes) and ``counts`` the distinct plane counts in the batch (that
  kernel unpacks the weights once per count). It is a least-squares fit
  over a sliding window of measured batches, seeded by a calibration at
  start-up that times full batches at full and at one plane.

* :class:`SLOController` predicts the latency of a new request at each plane
  count from the rows already queued ahead of it (the batcher serves them in
  batches of at most ``max_batch`` rows first) and picks the largest count
  whose prediction fits the target (times a headroom), at most the
  *operating point*: the plane count that serves the most correct answers
  per second at the measured arrival rate, ``min(arrival, capacity(p)) *
  metric(p)``, the served model's metric per plane count being the price of
  accuracy (measured at start-up on held-out data). Below the capacity of
  all planes that is all planes; beyond it, the count whose latency gain
  best pays for the accuracy it loses, and never one that gains less than
  ``futile`` over a higher count. A feedback ceiling on top follows the
  measured p99 of recent requests: when the measured p99 is over the target
  the ceiling drops one plane, when it is well under the ceiling rises one
  plane again. None of them gives up planes that buy almost no latency (the
  feed-forward judges it from the fit, the feedback from the share of the
  cost that scales with planes). A request's ``min_planes`` is a hard floor.

* Admission: :meth:`SLOController.admits` says whether a request can meet
  the target at the lowest precision it allows, behind the queue as it is;
  the server refuses it at once (503 + Retry-After) when not, so that the
  queue is bounded by predicted wait and accepted requests keep the SLO.
  The headroom a prediction must leave is measured, not fixed: the 99th
  percentile of how much recent requests took longer than predicted
  (:attr:`SLOController.headroom`), so that a server whose predictions hold
  admits up to the target itself and one whose requests overrun their
  predictions keeps that overrun free.

Every decision is recorded (last planes chosen, ceiling, operating point,
arrival rate, predicted latency) so the server can export it as metrics.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Deque, Dict, List, Mapping, Optional, Tuple


__all__ = ["CostModel", "SLOController", "Decision"]


class CostModel:
    """Batch compute time as ``fixed + per_row * rows + per_unit * units +
    per_group * (counts - 1)`` (seconds), ``units`` being the sum over the
    batch's rows of their planes and ``counts`` the distinct plane counts.

    Two per-row terms because kernels differ in what the plane count buys: a
    memory-bound product at batch 1 reads n planes (time ~ units), while the
    batched code kernel unpacks each weight tile once and then costs the
    same per column at any plane count (time ~ rows; measured on a
    1024-4096-4096-1024 stack: 0.5 ms per row at 1 and at 8 planes). A
    model with only ``units`` would promise the controller an 8x saving from
    1 plane that the kernel does not give. The same kernel unpacks the
    weights once per distinct plane count in a batch, so a mixed batch costs
    more than a uniform one of the same rows and units (on that stack, 16
    rows at planes 1..8: 13.7 against 7.8 ms of CPU at 8 planes); without
    the ``per_group`` term a fit reads that as a cost of planes.

    ``observe(rows, units, seconds, counts)`` adds a measured batch; the fit is a
    least squares over the last ``window`` batches, refreshed on every
    observation from running sums (O(1) per batch, since it runs on the
    serving path once per batch; the sums are recomputed exactly once per
    window so that rounding does not accumulate). ``per_group`` is fit with
    the others when the window separates all three, else held and taken
    out. When the batches do not separate the two per-row terms (every row
    at the same planes, so units is a multiple of rows, or one batch size
    only), the split between them is
    kept from before (the calibration measures it) and only their scale and
    the intercept are refit.
    """

    def __init__(self, fixed: float = 1e-4, per_unit: float = 1e-5, window: int = 64,
                 per_row: float = 0.0, per_group: float = 0.0, fit_split: bool = True):
        """fit_split: refit how the cost splits between rows, planes and
        plane counts from served batches (else only its scale and the
        intercept; the split then stays as calibrated)."""
        if fixed < 0 or per_unit <= 0 or per_row < 0 or per_group < 0:
            raise ValueError("cost model needs fixed, per_row, per_group >= 0 and per_unit > 0")
        self.fixed = float(fixed)
        self.per_row = float(per_row)
        self.per_unit = float(per_unit)
        self.per_group = float(per_group)
        self.fit_split = bool(fit_split)
        self._samples: Deque[Tuple[float, float, float, float]] = deque(maxlen=window)
        # sums of r, u, g, t, rr, uu, gg, ru, rg, ug, rt, ut, gt
        self._sums = [0.0] * 13
        self._since_exact = 0

    def predict(self, units: float, rows: float = 0.0, groups: int = 1) -> float:
        return (self.fixed + self.per_group * (groups - 1) + self.per_row * rows
                + self.per_unit * units)

    def plane_share(self, planes: int) -> float:
        """The part of a row's cost at `planes` planes that scales with the
        plane count (0: planes buy nothing; 1: all of it)."""
        per_row = self.per_row + self.per_unit * planes
        return self.per_unit * planes / per_row if per_row > 0 else 0.0

    @staticmethod
    def _terms(r: float, u: float, g: float, t: float):
        return (r, u, g, t, r * r, u * u, g * g, r * u, r * g, u * g, r * t, u * t, g * t)

    def observe(self, rows: float, units: float, seconds: float, groups: int = 1) -> None:
        """A measured batch: `rows` rows whose planes sum to `units`, in
        `groups` distinct plane counts (the batched kernel unpacks the
        weights once per count, a cost the plane sum does not carry)."""
        if rows <= 0 or units <= 0 or not math.isfinite(seconds) or seconds < 0:
            return
        x = (float(rows), float(units), float(max(groups, 1) - 1), float(seconds))
        s = self._sums
        if len(self._samples) == self._samples.maxlen:
            for i, v in enumerate(self._terms(*self._samples[0])):
                s[i] -= v
        self._samples.append(x)
        for i, v in enumerate(self._terms(*x)):
            s[i] += v
        self._since_exact += 1
        if self._since_exact >= self._samples.maxlen:
            self._since_exact = 0
            self._sums = s = [sum(col) for col in zip(*(self._terms(*y) for y in self._samples))]
        n = len(self._samples)
        if n < 4:
            return
        mr, mu, mg, mt = s[0] / n, s[1] / n, s[2] / n, s[3] / n
        vrr = s[4] / n - mr * mr
        vuu = s[5] / n - mu * mu
        vgg = s[6] / n - mg * mg
        vru = s[7] / n - mr * mu
        vrg = s[8] / n - mr * mg
        vug = s[9] / n - mu * mg
        vrt = s[10] / n - mr * mt
        vut = s[11] / n - mu * mt
        vgt = s[12] / n - mg * mt
        # All three terms when the window separates them (the determinant of
        # the correlation matrix of rows, units and plane counts clearly
        # above 0) and the fit is physical.
        if self.fit_split and vrr > 0 and vuu > 0 and vgg > 0:
            det = (vrr * (vuu * vgg - vug * vug) - vru * (vru * vgg - vug * vrg)
                   + vrg * (vru * vug - vuu * vrg))
            if det > 0.01 * vrr * vuu * vgg:
                b_r = (vrt * (vuu * vgg - vug * vug) - vru * (vut * vgg - vug * vgt)
                       + vrg * (vut * vug - vuu * vgt)) / det
                b_u = (vrr * (vut * vgg - vgt * vug) - vrt * (vru * vgg - vug * vrg)
                       + vrg * (vru * vgt - vut * vrg)) / det
                b_g = (vrr * (vuu * vgt - vug * vut) - vru * (vru * vgt - vut * vrg)
                       + vrt * (vru * vug - vuu * vrg)) / det
                if b_r >= 0 and b_u > 0 and b_g >= 0:
                    self.per_row, self.per_unit, self.per_group = b_r, b_u, b_g
                    self.fixed = max(mt - b_r * mr - b_u * mu - b_g * mg, 0.0)
                    return
        # Else the plane-count cost is held and taken out of t.
        pg = self.per_group
        mt -= pg * mg
        vrt -= pg * vrg
        vut -= pg * vug
        det = vrr * vuu - vru * vru
        # Both per-row terms only when the samples separate them well (the
        # squared correlation of rows and units clearly below 1) and the fit
        # is physical (neither cost negative); else keep the split.
        if self.fit_split and vrr > 0 and vuu > 0 and det > 0.02 * vrr * vuu:
            b_r = (vuu * vrt - vru * vut) / det
            b_u = (vrr * vut - vru * vrt) / det
            if b_r >= 0 and b_u > 0:
                self.per_row, self.per_unit = b_r, b_u
                self.fixed = max(mt - b_r * mr - b_u * mu, 0.0)
                return
        # One direction only: fit t = a + c * x along x = per_row * r +
        # per_unit * u at the current split (x in seconds of the old model).
        old_r, old_u = self.per_row, self.per_unit
        mx = old_r * mr + old_u * mu
        vxx = old_r * old_r * vrr + old_u * old_u * vuu + 2 * old_r * old_u * vru
        vxt = old_r * vrt + old_u * vut
        if vxx > 1e-12 * max(mx, 1e-12) ** 2 and vxt > 0:
            c = vxt / vxx
            self.fixed = max(mt - c * mx, 0.0)
        elif mx > 0:  # one batch size only: keep the intercept
            c = (mt - self.fixed) / mx
        else:
            return
        if c > 0:
            self.per_row, self.per_unit = old_r * c, old_u * c


@dataclass
class Decision:
    planes: int
    predicted_s: float
    ceiling: int
    queued_rows: int
    operating: int = 0  # the operating point's planes (0: not computed)
    arrival_rows_s: float = 0.0  # the measured arrival rate it used
    admitted: bool = True  # the target can be met at the floor behind this queue
    floor: int = 1  # the lowest count it would give (min_planes, or the priced floor)


class SLOController:
    """Chooses planes for "auto" requests to keep p99 latency under a target.

    Args:
        max_planes: the model's k.
        target_p99_s: the latency objective, seconds.
        max_batch: rows per batched call (the batcher's limit).
        cost: the cost model (learned from the batcher's measurements).
        headroom: the share of the target a prediction may take until the
            server has measured its own: then ``1 - (p99 of measured minus
            predicted latency) / target`` over the last `window` requests,
            within ``min_headroom``..1 (what is left over covers what the
            predictions miss: parsing, the network, noise).
        min_headroom: the least share of the target a prediction may take,
            however badly recent predictions overran.
        window: recent latencies kept for the feedback p99.
        feedback_every: observations between feedback updates.
        futile: when no plane count fits, planes that would cut the
            predicted latency by less than this fraction are not given up;
            the operating point gives up no plane that raises the correct
            answers per second by less than this fraction.
        min_plane_share: the feedback lowers the ceiling only while at
            least this part of a row's cost scales with the plane count.
        metric: the served model's metric (higher is better, e.g. accuracy)
            per plane count 1..max_planes; None: unknown, every count
            priced alike (then only latency decides).
        rate_tau_s: time constant of the arrival rate's moving average.
        utilization: the share of the worker's time a sustainable load may
            take (a queue at 100 % grows without bound).
    """

    def __init__(self, max_planes: int, target_p99_s: float, max_batch: int,
                 cost: Optional[CostModel] = None, *, headroom: float = 0.7,
                 min_headroom: float = 0.3,
                 window: int = 128, feedback_every: int = 16, futile: float = 0.05,
                 min_plane_share: float = 0.1, metric: Optional[Mapping[int, float]] = None,
                 rate_tau_s: float = 1.0, utilization: float = 0.9):
        if max_planes < 1:
            raise ValueError("max_planes must be >= 1")
        if not target_p99_s > 0:
            raise ValueError("target_p99_s must be > 0")
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.max_planes = int(max_planes)
        self.target_s = float(target_p99_s)
        self.max_batch = int(max_batch)
        self.cost = cost or CostModel()
        if not 0 < min_headroom <= headroom <= 1:
            raise ValueError("need 0 < min_headroom <= headroom <= 1")
        self.prior_headroom = float(headroom)
        self.min_headroom = float(min_headroom)
        self.headroom = self.prior_headroom
        # Measured minus predicted latency of recent requests (seconds):
        # their 99th percentile is the margin a prediction must leave.
        self._overruns: Deque[float] = deque(maxlen=window)
        self.futile = float(futile)
        self.min_plane_share = float(min_plane_share)
        self.ceiling = self.max_planes
        self._latencies: Deque[float] = deque(maxlen=window)
        self.recent_p99 = 0.0  # measured_p99() as of the last feedback update
        self._since_update = 0
        self._feedback_every = int(feedback_every)
        if not rate_tau_s > 0 or not 0 < utilization <= 1:
            raise ValueError("rate_tau_s must be > 0 and utilization in (0, 1]")
        self.rate_tau_s = float(rate_tau_s)
        self.utilization = float(utilization)
        # Measured over predicted latency of recent requests (the ratio of
        # their sums): what the cost model does not see (batches smaller
        # than max_batch, parsing, the event loop, a loaded machine) scales
        # every prediction. A ratio of sums, not a mean of ratios, so that
        # the long waits that admission judges weigh more than short ones,
        # whose relative error is larger (rows that join a request's batch
        # after it do not show in its prediction).
        self._pairs: Deque[Tuple[float, float]] = deque(maxlen=window)
        self._measured_sum = self._predicted_sum = 0.0
        self._since_exact = 0
        self.correction = 1.0
        self._rate = 0.0  # rows/s, as of self._rate_t
        self._rate_t: Optional[float] = None
        self.metric: Optional[List[float]] = None
        self.set_metric(metric)
        self.last = Decision(self.max_planes, 0.0, self.ceiling, 0)

    # -- the price of accuracy ----------------------------------------------
    def set_metric(self, metric: Optional[Mapping[int, float]]) -> None:
        """The served model's metric per plane count (all of 1..max_planes,
        finite; higher is better). Stored as its running maximum over the
        counts (``metric[p - 1]`` = the best of 1..p), so that a count never
        looks better than a higher one through measurement noise: the
        controller then never prefers fewer planes for accuracy."""
        if metric is None:
            self.metric = None
            return
        got = {int(p): float(v) for p, v in metric.items()}
        want = set(range(1, self.max_planes + 1))
        if set(got) != want or not all(math.isfinite(v) for v in got.values()):
            raise ValueError(f"metric must give a finite value for every plane count "
                             f"1..{self.max_planes}, got {sorted(got)}")
        best, out = -math.inf, []
        for p in range(1, self.max_planes + 1):
            best = max(best, got[p])
            out.append(best)
        self.metric = out

    def arrive(self, rows: int, now: float) -> None:
        """Count an offered request of `rows` rows (admitted or not) at time
        `now` (seconds, monotonic) in the arrival rate: an exponential
        moving average with time constant ``rate_tau_s``."""
        if self._rate_t is not None and now > self._rate_t:
            self._rate *= math.exp(-(now - self._rate_t) / self.rate_tau_s)
        self._rate_t = now if self._rate_t is None else max(now, self._rate_t)
        self._rate += rows / self.rate_tau_s

    def arrival_rate(self, now: Optional[float] = None) -> float:
        """Offered rows per second, decayed to `now` (the last arrival when None)."""
        if self._rate_t is None:
            return 0.0
        if now is None or now <= self._rate_t:
            return self._rate
        return self._rate * math.exp(-(now - self._rate_t) / self.rate_tau_s)

    def row_cost(self, planes: int) -> float:
        """Seconds of compute per row at `planes` in full batches."""
        c = self.cost
        return c.fixed / self.max_batch + c.per_row + c.per_unit * planes

    def goodput(self, planes: int, rate: float) -> float:
        """Correct answers per second at `planes` (rows per second times the
        metric) under an offered `rate` of rows per second: the load is
        served up to the sustainable capacity, the rest refused."""
        capacity = self.utilization / max(self.row_cost(planes), 1e-12)
        value = 1.0 if self.metric is None else self.metric[planes - 1]
        return min(rate, capacity) * value

    def operating_point(self, floor: int, top: int, rate: float) -> int:
        """The plane count in floor..top with the most correct answers per
        second at the offered `rate`, preferring more planes unless fewer
        serve at least ``futile`` more (so noise in the cost or the metric
        does not trade planes away). Without a measured rate: `top`."""
        if rate <= 0 or top <= floor:
            return top
        values = {p: self.goodput(p, rate) for p in range(floor, top + 1)}
        best = max(values.values())
        for p in range(top, floor - 1, -1):
            if values[p] >= (1.0 - self.futile) * best:
                return p
        return floor  # not reached: the best itself qualifies

    def admits(self, queued_rows: int, rows: int, planes: int,
               queued_units: Optional[float] = None) -> Tuple[bool, float]:
        """Whether a request of `rows` rows at `planes` (its lowest allowed
        precision) behind this queue is predicted within ``headroom *
        target``; and that prediction. A request that finds the queue empty
        is always admitted: refusing it shortens nobody's wait, and without
        served batches the cost model could not learn that the machine got
        faster (a server calibrated on a loaded machine would refuse
        everything for good). One predicted over the limit is still
        admitted while the measured p99 of recent requests is within it:
        the p99 has room for it, and refusing would shed where the server
        meets its SLO (a Poisson burst at 0.8x the capacity)."""
        t = self.predict(queued_rows, rows, planes, queued_units)
        limit = self.headroom * self.target_s
        if queued_rows == 0 or t <= limit:
            return True, t
        return (t <= self.target_s and len(self._latencies) >= 16
                and self.recent_p99 <= limit), t

    def predict(self, queued_rows: int, rows: int, planes: int,
                queued_units: Optional[float] = None) -> float:
        """Predicted latency of a request of `rows` rows at `planes` planes
        behind `queued_rows` queued rows (whose plane sum is `queued_units`,
        assumed at `planes` when unknown).

        The request's own batch also carries the rows that arrive while it
        waits, up to ``max_batch``: at the measured arrival rate, over the
        time the batches ahead of it take. Without them a request behind a
        busy worker is predicted a partly empty batch that in fact fills up
        (in a closed-loop test that made predictions short by one batch)."""
        total_rows = queued_rows + rows
        batches = max(1, math.ceil(total_rows / self.max_batch))
        ahead_units = queued_rows * planes if queued_units is None else queued_units
        c = self.cost
        t = (batches * c.fixed + c.per_row * total_rows
             + c.per_unit * (ahead_units + rows * planes))
        if queued_rows > 0 and self._rate > 0:
            own = total_rows - (batches - 1) * self.max_batch  # rows in its batch now
            row_s = c.per_row + c.per_unit * planes
            before = t - (c.fixed + row_s * own)  # until its batch starts
            joining = min(self.max_batch - own, self._rate * max(before, row_s * queued_rows))
            t += max(0.0, joining) * row_s
        return self.correction * t

    def decide(self, queued_rows: int, rows: int = 1, min_planes: int = 1,
               budget_s: Optional[float] = None, queued_units: Optional[float] = None,
               now: Optional[float] = None) -> Decision:
        """Planes for a new auto request: the most that fit, never below
        min_planes. With a metric, at most the operating point at the
        demand (the arrival rate as of `now`, or the backlog over the
        target when that is more) and never below the count that serves
        the most correct answers per second at unlimited load.
        ``Decision.admitted`` says whether even that floor is predicted
        within the target behind this queue.

        When no count fits (the queue ahead is already over the target):
        with a metric, the operating point, since a lower count would lose
        more accuracy than the throughput it buys is worth (by correct
        answers per second); else the planes that
        would cut the predicted latency by less than ``futile`` (a
        fraction) are kept: below that, precision is given up for no
        measurable latency (a kernel whose cost hardly depends on the plane
        count). What a plane count buys is judged as a policy, with the
        whole queue at that count (one request's own rows are too few to
        tell).

        budget_s: a tighter objective for this request (its deadline).
        """
        min_planes = max(1, min(int(min_planes), self.max_planes))
        target = self.target_s if budget_s is None else min(self.target_s, budget_s)
        limit = self.headroom * target
        # The demand to serve: the measured arrival rate, or the backlog
        # when it must drain faster than that to meet the target (a burst
        # that the average does not show yet).
        rate = max(self.arrival_rate(now), (queued_rows + rows) / limit)
        ceiling = max(self.ceiling, min_planes)
        # Without a metric there is no price: the ceiling, and latency
        # alone decides below it.
        operating = (self.operating_point(min_planes, ceiling, rate)
                     if self.metric is not None else ceiling)
        # With a metric, no count below the one that serves the most correct
        # answers per second at any load: a count lower still loses more
        # accuracy than its throughput is worth, so it is never chosen, and
        # a request that cannot be served at that count is refused instead.
        floor = (self.operating_point(min_planes, ceiling, math.inf)
                 if self.metric is not None else min_planes)
        top = operating = max(operating, floor)
        chosen = None
        for p in range(top, floor - 1, -1):
            t = self.predict(queued_rows, rows, p, queued_units)
            if t <= limit:
                chosen, predicted = p, t
                break
        if chosen is None and self.metric is not None:
            chosen = operating
            predicted = self.predict(queued_rows, rows, chosen, queued_units)
        elif chosen is None:
            floor_t = self.predict(queued_rows, rows, floor)
            chosen = floor
            for p in range(top, floor, -1):
                t = self.predict(queued_rows, rows, p)
                if t - floor_t <= self.futile * t:
                    chosen = p
                    break
            predicted = self.predict(queued_rows, rows, chosen, queued_units)
        # Admission is judged against the SLO itself (a tighter deadline
        # is the batcher's 504 when it passes).
        admitted = self.admits(queued_rows, rows, floor, queued_units)[0]
        self.last = Decision(chosen, predicted, self.ceiling, int(queued_rows), operating, rate,
                             admitted, floor)
        return self.last

    def observe_latency(self, seconds: float, predicted_s: Optional[float] = None) -> None:
        """Feed one finished request's latency; adjusts the feedback ceiling.
        With the latency predicted for it (``predict``, correction included),
        also the correction (the sum of measured over the sum of uncorrected
        predicted latencies of the recent requests, within 0.5..4) and the
        measured headroom (the p99 of measured minus predicted)."""
        if predicted_s is not None and predicted_s > 0 and math.isfinite(seconds):
            self._overruns.append(seconds - predicted_s)
            pair = (float(seconds), predicted_s / self.correction)
            if len(self._pairs) == self._pairs.maxlen:
                old = self._pairs[0]
                self._measured_sum -= old[0]
                self._predicted_sum -= old[1]
            self._pairs.append(pair)
            self._measured_sum += pair[0]
            self._predicted_sum += pair[1]
            self._since_exact += 1
            if self._since_exact >= self._pairs.maxlen:  # no rounding drift
                self._since_exact = 0
                self._measured_sum = sum(m for m, _ in self._pairs)
                self._predicted_sum = sum(q for _, q in self._pairs)
            if len(self._pairs) >= 16 and self._predicted_sum > 0:
                self.correction = min(4.0, max(0.5, self._measured_sum / self._predicted_sum))
        self._latencies.append(float(seconds))
        self._since_update += 1
        if self._since_update < self._feedback_every or len(self._latencies) < 16:
            return
        self._since_update = 0
        self.recent_p99 = self.measured_p99()
        if len(self._overruns) >= 16:
            margin = max(0.0, _percentile(self._overruns, 0.99))
            self.headroom = min(1.0, max(self.min_headroom, 1.0 - margin / self.target_s))
        p99 = self.recent_p99
        # Lower the ceiling only where a plane less buys something: on a
        # kernel whose cost hardly depends on the plane count it would give
        # up precision for nothing (and a ceiling lowered while the cost
        # model still believed otherwise comes back up).
        useful = self.cost.plane_share(self.ceiling) >= self.min_plane_share
        # Nor below the count that serves the most correct answers per
        # second at any load (with a metric): fewer are never worth it.
        lowest = (1 if self.metric is None
                  else self.operating_point(1, self.max_planes, math.inf))
        if p99 > self.target_s and useful and self.ceiling > lowest:
            self.ceiling = max(1, self.ceiling - 1)
        elif (p99 < 0.5 * self.target_s or not useful) and self.ceiling < self.max_planes:
            self.ceiling += 1

    def measured_p99(self) -> float:
        """The 99th percentile of the recent latencies (linear interpolation,
        as numpy's default). Plain Python: at 128 values it is several times
        cheaper than np.percentile, which showed in profiles of the serving
        path (it runs every 16 requests)."""
        if not self._latencies:
            return 0.0
        return _percentile(self._latencies, 0.99)


def _percentile(values, q: float) -> float:
    """The q-quantile of `values` (not empty) with linear interpolation, as
    numpy's default percentile."""
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)
