"""The SLO controller: how many planes an ``"auto"`` request gets.

Two parts, both free of the web stack so that a simulated load can drive
them in tests:

* :class:`CostModel` learns the compute time of one batched model call as
  ``fixed + per_unit * units``, where ``units`` is the sum over the batch's
  rows of the planes each row uses (a row at n planes reads n weight slabs, so
  compute grows linearly in it). It is a least-squares fit over a sliding
  window of measured batches, seeded by a calibration at start-up.

* :class:`SLOController` predicts the latency of a new request at each plane
  count from the rows already queued ahead of it (the batcher serves them in
  batches of at most ``max_batch`` rows first) and picks the largest count
  whose prediction fits the target (times a headroom). A feedback ceiling on
  top follows the measured p99 of recent requests: when the measured p99 is
  over the target the ceiling drops one plane, when it is well under the
  ceiling rises one plane again. A request's ``min_planes`` is a hard floor.

Every decision is recorded (last planes chosen, ceiling, predicted latency)
so the server can export it as metrics.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Deque, Optional, Tuple

import numpy as np

__all__ = ["CostModel", "SLOController", "Decision"]


class CostModel:
    """Batch compute time as ``fixed + per_unit * units`` (seconds).

    ``observe(units, seconds)`` adds a measured batch; the fit is refreshed on
    every observation over the last ``window`` batches: a 2-parameter least
    squares from running sums, O(1) per batch, since it runs on the serving
    path once per batch (the sums are recomputed exactly once per window so
    that rounding does not accumulate). With too little spread in ``units``
    to fit a slope, the intercept is kept and the slope rescaled.
    """

    def __init__(self, fixed: float = 1e-4, per_unit: float = 1e-5, window: int = 64):
        if fixed < 0 or per_unit <= 0:
            raise ValueError("cost model needs fixed >= 0 and per_unit > 0")
        self.fixed = float(fixed)
        self.per_unit = float(per_unit)
        self._samples: Deque[Tuple[float, float]] = deque(maxlen=window)
        self._sums = [0.0, 0.0, 0.0, 0.0]  # sum u, sum t, sum u*u, sum u*t
        self._since_exact = 0

    def predict(self, units: float) -> float:
        return self.fixed + self.per_unit * units

    def observe(self, units: float, seconds: float) -> None:
        if units <= 0 or not math.isfinite(seconds) or seconds < 0:
            return
        u, t = float(units), float(seconds)
        s = self._sums
        if len(self._samples) == self._samples.maxlen:
            ou, ot = self._samples[0]
            s[0] -= ou
            s[1] -= ot
            s[2] -= ou * ou
            s[3] -= ou * ot
        self._samples.append((u, t))
        s[0] += u
        s[1] += t
        s[2] += u * u
        s[3] += u * t
        self._since_exact += 1
        if self._since_exact >= self._samples.maxlen:
            self._since_exact = 0
            self._sums = s = [sum(a for a, _ in self._samples), sum(b for _, b in self._samples),
                              sum(a * a for a, _ in self._samples),
                              sum(a * b for a, b in self._samples)]
        n = len(self._samples)
        if n < 4:
            return
        mean_u, mean_t = s[0] / n, s[1] / n
        var_u = s[2] / n - mean_u * mean_u
        if var_u <= 1e-12 * max(1.0, mean_u) ** 2:  # rounding of identical samples
            # One batch size only: keep the intercept, rescale the slope.
            per_unit = (mean_t - self.fixed) / mean_u
            if per_unit > 0:
                self.per_unit = per_unit
            return
        slope = (s[3] / n - mean_u * mean_t) / var_u
        if slope > 0:
            self.per_unit = slope
            self.fixed = max(mean_t - slope * mean_u, 0.0)


@dataclass
class Decision:
    planes: int
    predicted_s: float
    ceiling: int
    queued_rows: int


class SLOController:
    """Chooses planes for "auto" requests to keep p99 latency under a target.

    Args:
        max_planes: the model's k.
        target_p99_s: the latency objective, seconds.
        max_batch: rows per batched call (the batcher's limit).
        cost: the cost model (learned from the batcher's measurements).
        headroom: a prediction must fit ``headroom * target`` (the rest is
            left for parsing, the network and noise).
        window: recent latencies kept for the feedback p99.
        feedback_every: observations between feedback updates.
    """

    def __init__(self, max_planes: int, target_p99_s: float, max_batch: int,
                 cost: Optional[CostModel] = None, *, headroom: float = 0.7,
                 window: int = 128, feedback_every: int = 16):
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
        self.headroom = float(headroom)
        self.ceiling = self.max_planes
        self._latencies: Deque[float] = deque(maxlen=window)
        self._since_update = 0
        self._feedback_every = int(feedback_every)
        self.last = Decision(self.max_planes, 0.0, self.ceiling, 0)

    def predict(self, queued_rows: int, rows: int, planes: int,
                queued_units: Optional[float] = None) -> float:
        """Predicted latency of a request of `rows` rows at `planes` planes
        behind `queued_rows` queued rows (whose plane sum is `queued_units`,
        assumed at `planes` when unknown)."""
        total_rows = queued_rows + rows
        batches = max(1, math.ceil(total_rows / self.max_batch))
        ahead_units = queued_rows * planes if queued_units is None else queued_units
        units = ahead_units + rows * planes
        return batches * self.cost.fixed + self.cost.per_unit * units

    def decide(self, queued_rows: int, rows: int = 1, min_planes: int = 1,
               budget_s: Optional[float] = None, queued_units: Optional[float] = None) -> Decision:
        """Planes for a new auto request: the most that fit, never below min_planes.

        budget_s: a tighter objective for this request (its deadline).
        """
        min_planes = max(1, min(int(min_planes), self.max_planes))
        target = self.target_s if budget_s is None else min(self.target_s, budget_s)
        limit = self.headroom * target
        chosen, predicted = min_planes, self.predict(queued_rows, rows, min_planes, queued_units)
        for p in range(max(self.ceiling, min_planes), min_planes - 1, -1):
            t = self.predict(queued_rows, rows, p, queued_units)
            if t <= limit:
                chosen, predicted = p, t
                break
        self.last = Decision(chosen, predicted, self.ceiling, int(queued_rows))
        return self.last

    def observe_latency(self, seconds: float) -> None:
        """Feed one finished request's latency; adjusts the feedback ceiling."""
        self._latencies.append(float(seconds))
        self._since_update += 1
        if self._since_update < self._feedback_every or len(self._latencies) < 16:
            return
        self._since_update = 0
        p99 = self.measured_p99()
        if p99 > self.target_s and self.ceiling > 1:
            self.ceiling -= 1
        elif p99 < 0.5 * self.target_s and self.ceiling < self.max_planes:
            self.ceiling += 1

    def measured_p99(self) -> float:
        if not self._latencies:
            return 0.0
        return float(np.percentile(np.fromiter(self._latencies, float), 99))
