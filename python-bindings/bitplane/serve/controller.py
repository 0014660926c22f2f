"""The SLO controller: how many planes an ``"auto"`` request gets.

Two parts, both free of the web stack so that a simulated load can drive
them in tests:

* :class:`CostModel` is a measured table: per plane count p, the compute
  time of one batched model call of r rows all at p planes, ``fixed[p] +
  per_row[p] * r``, and for a batch that mixes counts the cost at its
  largest count plus ``per_extra`` per further count. Seeded at start-up by
  timing the served model at every count (the server's calibration),
  refreshed from the batches it serves: a machine factor per block of
  batches apart from each count's line, so that a change of the machine's
  speed moves every count alike and counts measured at different loads
  keep their order (a small robust least-squares fit every 16 batches,
  O(1) per batch in between). No slope in planes is assumed: what a plane
  buys is whatever the kernels measure.

* :class:`SLOController` predicts the latency of a new request at each plane
  count from the rows already queued ahead of it (the batcher serves them in
  batches of at most ``max_batch`` rows first) and picks the largest count
  whose prediction fits the target (times a headroom), at most the
  *operating point*: the plane count that serves the most correct answers
  per second at the measured arrival rate, ``min(arrival, capacity(p)) *
  metric(p)``, the served model's metric per plane count being the price of
  accuracy (measured at start-up on held-out data). Below the capacity of
  all planes that is all planes; beyond it, the count whose latency gain
  best pays for the accuracy it loses. Only counts on the *ladder* are ever
  chosen: all planes, then each next count whose full batch is at least
  ``futile`` cheaper per row than the previous rung's (so on a kernel that
  costs the same from 4 planes down to 2, 3 and 2 are skipped and the step
  below 4 is 1). A feedback ceiling on top follows the measured p99 of
  recent requests: when it is over the target the ceiling drops to the next
  rung, when it is well under, it rises to the next rung. A request's
  ``min_planes`` is a hard floor, and so is the quality floor: the fewest
  planes whose metric is at least ``min_metric_share`` of the best count's
  (the server's ``--min-metric-share``, 0.9 by default).

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
from typing import Deque, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np


__all__ = ["CostModel", "SLOController", "Decision"]


class CostModel:
    """Batch compute time per plane count: a measured table.

    For each plane count ``p`` in 1..k a batch of ``rows`` rows all at ``p``
    planes costs ``fixed[p] + per_row[p] * rows`` seconds: what each count
    costs as measured, with no assumption about how cost follows planes. (A
    slope in planes, the earlier model, predicted 4 planes at half the
    8-plane cost on a stack whose batch-4 calls cost the same from 4 planes
    down to 2.) A batch mixing counts costs what a uniform batch at its
    largest count costs plus ``per_extra`` for each further count: the
    batched kernel unpacks weight tiles once at the longest code and masks
    the shorter columns (docs/kernels.md), and a mixed batch may go to a
    different kernel than a uniform one; ``per_extra`` is fit from measured
    mixed batches and is never below 0.

    Seeded by a calibration (the server times the served model at every
    count at start-up; :meth:`linear` builds a table from a slope, for a
    prior and the tests' linear profiles). ``observe`` refreshes it from
    served batches. The machine's speed changes under load (the worker
    shares cores with the event loop and the load generator), and a table
    that kept each count's absolute time as last measured ranked counts
    served at different loads out of order. So a uniform batch ``b`` at
    ``p`` is modelled as ``t_b = M(j_b) * line_p(rows_b)``: a *machine
    factor* ``M`` per block ``j`` of ``block`` consecutive uniform batches,
    times the count's *line* (its ``fixed``, ``per_row`` at factor 1); an
    entry is ``M * line_p``, M the geometric mean of the latest
    ``_NOW_BLOCKS`` blocks' (one block of 8 batches carried its noise into
    every prediction). Every ``solve_every``
    uniform batches, over the last ``blocks`` blocks:

    * the split of a count's line (``fixed`` against ``per_row``) is the
      least-squares line through its own batches when their sizes spread
      (as the table did before the factor; its scale is left to the next
      step). A split solved jointly with M let sizes that change with time
      (small batches when a queue drains) read as a change of speed. A
      count measured in the window only at fewer rows than its largest
      batch takes the split of its nearest counts that learned theirs;
    * M and each count's scale are solved jointly, in logs, as a small
      regularized least-squares problem (:func:`_solve_blocks`): ``sum_b
      w_b (y_b - m_j - sigma_p)^2 + sum_p anchor_p sigma_p^2 + smooth *
      sum_j (m_j - m_(j-1))^2``, ``y_b = log(t_b / line_p(rows_b))``,
      ``sigma_p`` the change of count p's scale. Counts served in the same
      blocks, or linked through other counts, fix their relative cost
      whatever the machine did meanwhile. A count served alone cannot tell
      the machine from its own cost: when it is new (anchor far below the
      smoothness) it takes the change itself, right when its seed was
      wrong and harmless for predicting it; a count's anchor grows with
      what its batches that have left the window tied it to other counts
      (:func:`_links`: per block, ``W_c O / (W_c + O)`` of its and the
      other counts' robust weights; up to a window's worth), so what they
      taught is kept and a count measured before, served alone, leaves a
      change of speed to M. (Anchored by its batch count, a count whose
      few batches fell in a block where the speed changed kept their
      misfit for good, and one served alone for a window anchored
      whatever its last shared blocks had said.) The weights ``w_b`` are
      robust: a block in which the speed changed holds batches at two
      speeds that one factor cannot fit. A count's first batches (fewer
      than ``_MIN_BATCHES``) stay out of the fit;
    * a measured count's entry is its line shrunk, in logs, towards the
      ratio (line over seed) that its better-measured neighbours imply, by
      ``k / (n + k)``: ``n`` its evidence (its batches in the window and
      its anchor, at least ``_MIN_BATCHES``), ``k = (noise /
      _SHAPE_SPREAD)^2`` with ``noise`` the solve's robust residual scale
      (:meth:`_shrink_to_neighbours`). A count served in a few noisy
      batches at a bad moment (a burst slows the machine and lengthens the
      queue, so that is when the controller tries fewer planes) looks
      dear, is then not chosen again, and nothing would correct it: it
      kept an entry out of order with its neighbours. Without noise
      nothing is shrunk;
    * a count never measured is its seed scaled by the ratio (line over
      seed) of the nearest measured counts' entries (interpolated between
      the one below and the one above); a count measured before keeps its
      line while it is not served, and M carries it.

    Between solves ``observe`` is O(1): a count with no line of its own yet
    takes its batches' residual over M at once (a seed that made it look
    cheap is corrected after one batch, not sixteen), until the next solve
    (kept beyond it, a residual measured at one batch size and applied at
    every size made 13 of 200 simulated runs keep 2 planes on the ladder
    at 0.6-0.9x their cost); before the first solve every batch scales
    every count alike (the seed is all there is).
    M itself moves only at a solve: one batch at a size whose split is still
    the seed's would move every count's prediction by its misfit.
    A mixed batch refits ``per_extra`` at factor 1 (measured minus the
    uniform cost at its largest count, over the extra counts, summed over
    the last ``window`` such batches); mixed batches do not inform M, whose
    comparison would rest on ``per_extra`` itself.

    Costs (docs/serve.md): a solve is numpy work on at most ``block *
    blocks`` batches and a linear system of ``blocks`` + the served counts
    unknowns per sweep (at most ``_SWEEPS``), then O(k^2) for the
    shrinkage; the table is rebuilt lazily, O(k), at most once per batch.
    """

    _SMOOTH = 0.01  # a jump of log M between blocks costs this many batches' squared residual
    _ANCHOR = 0.001  # a new count's line staying as it was, in batches (far below _SMOOTH)
    _NEW_PRIOR = 0.5  # a new count's own correction counts this many batches of none
    _SWEEPS = 3  # per solve at most (the weights carry over)
    # Blocks whose mean log M predicts: the latest alone (8 batches) passed
    # its noise to every prediction, and in a simulated overload with
    # lognormal batch times (sigma 0.2) the served p99 was a median over
    # seven seeds of 1.04-1.15x the target at 2x the capacity; over the
    # latest 4 (32 batches, the window the table used before) 1.04-1.07x.
    _NOW_BLOCKS = 4
    _MIN_BATCHES = 3  # in the window, for a count's first line of its own
    # How far (log) a count's ratio over its seed is expected to be from
    # what its neighbours imply: the prior that weighs against a count's
    # few noisy batches. In a simulated overload stepping 0.5x-3x on the
    # flat profile (noisy batches, the event loop's work, 20 seeds;
    # bench/serve/simulate_cost_table.py) the median spread of 4-8 planes'
    # entries around the profile was 22 % without it and 3 % at 0.04 (9 %
    # at 0.1, before the evidence's floor of _MIN_BATCHES); 0.04 keeps a
    # count's three noisy batches at a bad moment within 10 % (its test).
    _SHAPE_SPREAD = 0.04

    def __init__(self, fixed: Sequence[float], per_row: Sequence[float], per_extra: float = 0.0,
                 *, window: int = 32, block: int = 8, blocks: int = 32, solve_every: int = 16):
        """fixed, per_row: seconds per batch and per row at plane counts
        1..k (index p - 1); per_extra: seconds per extra plane count in a
        batch; window: mixed batches kept for per_extra; block: uniform
        batches per machine-factor block; blocks: blocks in a solve;
        solve_every: uniform batches between solves (a multiple of block)."""
        fixed, per_row = [float(v) for v in fixed], [float(v) for v in per_row]
        if not fixed or len(fixed) != len(per_row):
            raise ValueError("cost model needs fixed and per_row for every plane count 1..k")
        if not all(math.isfinite(v) and v >= 0 for v in fixed + per_row + [per_extra]):
            raise ValueError("cost model needs finite fixed, per_row, per_extra >= 0")
        if not all(f + r > 0 for f, r in zip(fixed, per_row)):
            raise ValueError("cost model needs a batch to cost more than 0 at every plane count")
        if window < 2 or block < 1 or blocks < 2:
            raise ValueError("cost model needs window >= 2, block >= 1, blocks >= 2")
        if solve_every < block or solve_every % block:
            raise ValueError("cost model needs solve_every a multiple of block")
        k = self.max_planes = len(fixed)
        self.seed_fixed, self.seed_row = fixed, per_row
        self.seed_extra = float(per_extra)
        self.window, self.block, self.blocks = int(window), int(block), int(blocks)
        self.solve_every = int(solve_every)
        self.batches = 0  # batches observed
        self.solves = 0  # joint solves run
        self.version = 0  # bumped whenever a prediction may have changed
        # Each count's line at factor 1, its ratio over the seed (for
        # interpolating unmeasured counts), whether it was measured, and
        # what its batches that have left the window tied it to other
        # counts, in batches (its anchor: _links).
        self._fixed, self._row = list(fixed), list(per_row)
        self._ratio = [1.0] * k
        self._measured = [False] * k
        self._split_learned = np.zeros(k, bool)  # from its own batches of several sizes
        self._retired = np.zeros(k)
        # Per count, the log factor from its own line to its entry: its
        # ratio shrunk towards what its better-measured neighbours imply
        # (_shrink_to_neighbours; 0 for a count with no line of its own).
        self._pull = [0.0] * k
        # The last solve's robust residual scale (log), without a floor.
        self._noise = 0.0
        # The window of uniform batches, a ring: count index, rows, seconds.
        size = self.block * self.blocks
        self._p = np.zeros(size, np.intp)
        self._r, self._t = np.zeros(size), np.zeros(size)
        self._w = np.ones(size)  # robust weights of the last solve (new batches: 1)
        self._uniform = 0  # uniform batches observed
        # log M now (the mean of the last solve's latest blocks); before the first solve,
        # the running mean over all batches; per count with no line of its
        # own yet, the sums of its batches' log(measured / line).
        self._m_now = 0.0
        self._first_n, self._first_y = 0, 0.0  # before the first solve: all batches
        self._new_n, self._new_y = [0] * k, [0.0] * k
        # Mixed batches: (measured minus uniform at the largest count, at
        # factor 1; extra counts).
        self._mixed = _Window(self.window, _pair_terms)
        self._extra = self.seed_extra
        self._table: List[Tuple[float, float]] = []
        self._table_version = -1

    @classmethod
    def linear(cls, max_planes: int, fixed: float = 1e-4, per_unit: float = 1e-5,
               per_row: float = 0.0, per_extra: float = 0.0, **kw) -> "CostModel":
        """A table from a slope: ``fixed + (per_row + per_unit * p) * rows``
        at p planes (a prior before anything is measured, and the tests'
        linear profiles)."""
        return cls([fixed] * max_planes, [per_row + per_unit * p for p in range(1, max_planes + 1)],
                   per_extra, **kw)

    # -- the table ----------------------------------------------------------
    @property
    def machine_factor(self) -> float:
        """M now: the machine's speed as a factor on every count's line (1
        before anything is measured: the calibration's machine)."""
        return math.exp(self._m_now)

    @property
    def per_extra(self) -> float:
        """Seconds per extra plane count in a mixed batch, now."""
        return self._extra * self.machine_factor

    def entry(self, planes: int) -> Tuple[float, float]:
        """(fixed, per_row) seconds of a uniform batch at `planes` now."""
        if self._table_version != self.version:
            self._table = self._build_table()
            self._table_version = self.version
        return self._table[planes - 1]

    def _build_table(self) -> List[Tuple[float, float]]:
        """Every count's line times the machine factor; a count with no line
        of its own yet, times its correction from the batches since the
        last solve. O(k), once per change."""
        out = []
        for i in range(self.max_planes):
            s = math.exp(self._m_now + self._pull[i] + self._new_correction(i))
            out.append((self._fixed[i] * s, self._row[i] * s))
        return out

    def _new_correction(self, i: int) -> float:
        """Log correction of count i since the last solve, for a count with
        no line of its own yet (0 otherwise): its batches' residual over the
        machine factor, shrunk towards none by _NEW_PRIOR."""
        n = self._new_n[i]
        if n == 0:
            return 0.0
        return (self._new_y[i] - n * self._m_now) / (n + self._NEW_PRIOR)

    def batch(self, planes: float, rows: float, groups: int = 1) -> float:
        """Seconds of a batch of `rows` rows whose largest plane count is
        `planes`, in `groups` distinct counts. A fractional `planes` (a
        queue's mean) interpolates between the neighbouring counts."""
        p = min(max(planes, 1.0), float(self.max_planes))
        lo = int(p)
        f, r = self.entry(lo)
        t = f + r * rows
        if p > lo:
            f2, r2 = self.entry(lo + 1)
            t += (p - lo) * (f2 + r2 * rows - t)
        return t + self.per_extra * (max(groups, 1) - 1)

    def predict(self, rows: float, planes: float, groups: int = 1) -> float:
        """The same as :meth:`batch` (the batcher's and the tests' name)."""
        return self.batch(planes, rows, groups)

    def table(self, rows: int) -> Dict[int, float]:
        """Predicted seconds of a uniform batch of `rows` rows at every count."""
        return {p: self.batch(p, rows) for p in range(1, self.max_planes + 1)}

    # -- learning -------------------------------------------------------------
    def observe(self, rows: float, planes: int, seconds: float, groups: int = 1) -> None:
        """A measured batch of `rows` rows whose largest plane count is
        `planes`, in `groups` distinct counts, that took `seconds`."""
        if (rows <= 0 or not 1 <= planes <= self.max_planes or not math.isfinite(seconds)
                or seconds <= 0):
            return
        # Python numbers from here on (callers may pass numpy ones): what the
        # table and the controller compute from them is exported as JSON.
        i, rows, seconds, groups = int(planes) - 1, float(rows), float(seconds), max(int(groups), 1)
        self.batches += 1
        self.version += 1
        if groups > 1:
            self._observe_mixed(i, rows, seconds, groups)
        else:
            self._observe_uniform(i, rows, seconds)

    def _observe_uniform(self, i: int, rows: float, seconds: float) -> None:
        """Into the window (and, for a count with no line of its own yet,
        its correction); solves when due."""
        slot = self._uniform % len(self._t)
        self._p[slot], self._r[slot], self._t[slot], self._w[slot] = i, rows, seconds, 1.0
        self._uniform += 1
        y = math.log(seconds / (self._fixed[i] + self._row[i] * rows))
        if not self.solves:  # the seed is all there is: every batch scales every count
            self._first_n += 1
            self._first_y += y
            self._m_now = self._first_y / self._first_n
        elif not self._measured[i]:
            self._new_n[i] += 1
            self._new_y[i] += y
        if self._uniform % self.solve_every == 0:
            self._solve()

    def _observe_mixed(self, i: int, rows: float, seconds: float, groups: int) -> None:
        """per_extra from a mixed batch, at factor 1."""
        f, r = self.entry(i + 1)
        self._mixed.push(((seconds - f - r * rows) / self.machine_factor, groups - 1.0))
        extra, count = self._mixed.sums
        self._extra = max(extra / count, 0.0)

    def _solve(self) -> None:
        """The machine factor per block and every served count's line over
        the window (class docstring): first the split of each count whose
        batch sizes spread, from its own batches, then the scales and the
        factors jointly; then the unmeasured counts' interpolated lines."""
        k = self.max_planes
        n = min(self._uniform, len(self._t))
        idx = np.arange(self._uniform - n, self._uniform)
        slots = idx % len(self._t)
        p, r, t = self._p[slots], self._r[slots], self._t[slots]
        counts = np.bincount(p, minlength=k).astype(float)
        fixed, row = np.array(self._fixed), np.array(self._row)
        anchor = self._anchors()
        a, b, ok, mean_rows = _own_splits(p, r, t, counts, k)
        ok &= counts >= anchor  # (else its batches that left say more)
        at = fixed + row * mean_rows  # the split moves, the line at the mean rows stays
        scale = at / np.where(ok, a + b * mean_rows, 1.0)
        fixed, row = np.where(ok, a * scale, fixed), np.where(ok, b * scale, row)
        self._split_learned |= ok
        fixed, row = self._neighbours_split(fixed, row, p, r, counts, mean_rows)
        # A count's first batches (fewer than _MIN_BATCHES) stay out: through a
        # line that is still a guess, one batch would tie the machine factor
        # of blocks far apart (a count served once early and once late in
        # the window moved every other count's line by 30 % in simulation).
        use = (counts >= self._MIN_BATCHES)[p] | np.array(self._measured)[p]
        if not use.any():
            return  # (the first batches still scale every count alike)
        j = (idx - idx[0]) // self.block
        y = np.log(t / (fixed[p] + row[p] * r))
        w = self._w[slots]
        blocks = int(j[-1]) + 1
        m, sigma, w[use], self._noise = _solve_blocks(p[use], j[use], blocks, y[use], anchor,
                                                      self._SMOOTH, self._SWEEPS, w[use])
        self._w[slots] = w
        links = _links(p[use], j[use], blocks, w[use], k)
        for i in np.flatnonzero(counts):
            if counts[i] < self._MIN_BATCHES and not self._measured[i]:
                continue  # one or two batches: their split cannot be told, the neighbours' is used
            s = math.exp(sigma[i])
            self._fixed[i], self._row[i] = float(fixed[i]) * s, float(row[i]) * s
            self._ratio[i] = float((self._fixed[i] + self._row[i] * mean_rows[i])
                                   / (self.seed_fixed[i] + self.seed_row[i] * mean_rows[i]))
            self._measured[i] = True
        # (at least the batches it took to be measured: a count served
        # alone until its batches left the window has no links left, and a
        # noise-free machine's rounding would then replace its line)
        evidence = np.where(self._measured, np.maximum(counts + self._retired,
                                                       self._MIN_BATCHES), 0.0)
        self._shrink_to_neighbours(evidence)
        self._interpolate_unmeasured()
        if n == len(self._t):  # the oldest blocks leave the window before the next solve
            leaving = links[:self.solve_every // self.block].sum(axis=0)
            self._retired = np.minimum(self._retired + leaving, len(self._t))
        self._m_now = float(np.mean(m[-self._NOW_BLOCKS:]))
        self._new_n, self._new_y = [0] * k, [0.0] * k
        self.solves += 1

    def _neighbours_split(self, fixed, row, p, r, counts, mean_rows):
        """A count measured in the window only at fewer rows than the
        largest batch there, whose split was never learned, takes the split
        (fixed share of the largest batch) of the nearest counts that
        learned theirs (interpolated between the one below and the one
        above), keeping its cost at the rows it was measured at: its cost at
        a full batch is otherwise the seed's split extrapolated (a count
        served in three 1-row batches on a slope-shaped seed looked 35 %
        cheaper at 4 rows than it is, and the ladder took it)."""
        learned = np.flatnonzero(self._split_learned)
        if not len(learned):
            return fixed, row
        big = float(r.max())
        top = np.zeros(self.max_planes)
        np.maximum.at(top, p, r)
        share = fixed / (fixed + row * big)
        fixed, row = fixed.copy(), row.copy()
        for i in np.flatnonzero((counts > 0) & (top < big) & ~self._split_learned):
            below, above = learned[learned < i], learned[learned > i]
            if not len(below) or not len(above):
                f = share[below[-1] if len(below) else above[0]]
            else:
                lo, hi = below[-1], above[0]
                f = share[lo] + (share[hi] - share[lo]) * (i - lo) / (hi - lo)
            at = fixed[i] + row[i] * mean_rows[i]
            x = at / (f + (1.0 - f) * mean_rows[i] / big)
            fixed[i], row[i] = f * x, (1.0 - f) * x / big
        return fixed, row

    def _anchors(self) -> np.ndarray:
        """Per count, how many batches' worth its line resists a change:
        what its batches that have left the window tied it to other counts
        (_links; what they taught is kept), plus
        _ANCHOR, a thousandth of that for a count never measured (its line
        is a guess from its neighbours: a change the first batches show is
        its own, not the machine's)."""
        base = np.where(self._measured, self._ANCHOR, self._ANCHOR * 1e-3)
        return self._retired + base

    def _interpolate_unmeasured(self) -> None:
        """A count never measured: its seed scaled by the ratio of the
        nearest measured counts (interpolated between the one below and
        the one above): a seed whose shape was wrong is corrected near what
        was measured. (A single global ratio let a simulated server with a
        slope-shaped seed on a flat profile keep choosing unmeasured counts
        as cheap.)"""
        known = [i for i in range(self.max_planes) if self._measured[i]]
        if not known:
            return
        entries = [r * math.exp(d) for r, d in zip(self._ratio, self._pull)]
        for i in range(self.max_planes):
            if not self._measured[i]:
                s = self._implied_ratio(i, known, entries)
                self._fixed[i], self._row[i] = self.seed_fixed[i] * s, self.seed_row[i] * s

    def _implied_ratio(self, i: int, known: Sequence[int], ratios: Sequence[float]) -> float:
        """Count i's ratio over its seed as the counts in `known` (not
        empty) imply: the nearest one below and the nearest above,
        interpolated; the nearest one where there is only one side."""
        below = max((q for q in known if q < i), default=None)
        above = min((q for q in known if q > i), default=None)
        if below is None or above is None:
            return ratios[above if below is None else below]
        lo, hi = ratios[below], ratios[above]
        return lo + (hi - lo) * (i - below) / (above - below)

    def _shrink_to_neighbours(self, evidence: np.ndarray) -> None:
        """Each measured count's entry: its own ratio over its seed shrunk,
        in logs, towards the ratio that the measured counts with more
        evidence imply (_implied_ratio over their entries, taken from the
        most evidence down), by ``k / (n + k)``: n its evidence in batches
        (its batches in the window plus those that left it, counted by what
        they tied to other counts: _links; at least _MIN_BATCHES), k =
        (noise / _SHAPE_SPREAD)^2 the batches of the last solve's residual
        noise that weigh as much as the prior that a count's ratio is its
        neighbours' within _SHAPE_SPREAD. A count served in a few noisy
        batches then ends near its neighbours' shape instead of out of
        order with them (the batches that made it look dear also made the
        controller stop choosing it, so nothing else would correct them);
        a well-measured one, or any count on a machine without noise, keeps
        its own line."""
        k = (self._noise / self._SHAPE_SPREAD) ** 2
        entries = list(self._ratio)
        pull = [0.0] * self.max_planes
        done: List[int] = []
        for i in sorted(range(self.max_planes), key=lambda q: -evidence[q]):
            if not self._measured[i]:
                continue
            if done and k > 0:
                implied = self._implied_ratio(i, done, entries)
                pull[i] = k / (evidence[i] + k) * math.log(implied / self._ratio[i])
                entries[i] = self._ratio[i] * math.exp(pull[i])
            done.append(i)
        self._pull = pull


def _solve_blocks(p, j, blocks, y, anchor, smooth, sweeps, w):
    """The joint fit of CostModel's docstring over uniform batches (count
    index p, block j in 0..blocks-1, y = log(measured / line)), each
    count's scale held to its line's by `anchor` (in batches), from robust
    weights w:
    returns log M per block, the log change of each count's scale (0 where
    it has no batches) and the weights.

    Each sweep solves one weighted linear system in log M per block and
    the scale of each served count. The weights are robust (Cauchy, scaled
    by the residuals' median absolute deviation, at least _FLOOR): a block
    in which the machine's speed changed holds batches at two speeds that
    its one factor cannot fit, and at full weight their misfit spread into
    the lines of every count linked to them (by a few per cent: enough to
    reorder counts 6 % apart). They carry over between solves (the window
    moves by two blocks), so that a solve needs few sweeps."""
    k = len(anchor)
    served = np.flatnonzero(np.bincount(p, minlength=k))
    c = len(served)
    pos = np.zeros(k, np.intp)
    pos[served] = np.arange(c)
    q = pos[p]  # each batch's count among the served
    size = blocks + c
    diag_m, diag_s = np.arange(blocks), np.arange(blocks, size)
    smoothing = np.zeros((size, size))
    edge = np.arange(blocks - 1)
    smoothing[edge, edge] += smooth
    smoothing[edge + 1, edge + 1] += smooth
    smoothing[edge, edge + 1] = smoothing[edge + 1, edge] = -smooth
    cell = j * c + q
    for _ in range(sweeps):
        a = smoothing.copy()
        a[diag_m, diag_m] += np.bincount(j, w, blocks)
        a[:blocks, blocks:] = np.bincount(cell, w, blocks * c).reshape(blocks, c)
        a[blocks:, :blocks] = a[:blocks, blocks:].T
        a[diag_s, diag_s] = np.bincount(q, w, c) + anchor[served]
        wy = w * y
        x = np.linalg.solve(a, np.concatenate([np.bincount(j, wy, blocks), np.bincount(q, wy, c)]))
        m, s = x[:blocks], x[blocks:]
        e = y - m[j] - s[q]
        a_e = np.abs(e)
        noise = 1.4826 * float(np.partition(a_e, len(a_e) // 2)[len(a_e) // 2])
        scale = max(noise, _FLOOR)
        w_new = 1.0 / (1.0 + (e / (2.385 * scale)) ** 2)
        done = np.abs(w_new - w).max() < 1e-3
        w = w_new
        if done:
            break
    sigma = np.zeros(k)
    sigma[served] = s
    return m, sigma, w, noise


def _links(p, j, blocks, w, k):
    """Per block and count, how much the count's batches there tie its
    scale to the other counts': ``W_c O / (W_c + O)`` (the precision, in
    batches, of the difference of two means), W_c the count's robust
    weight in the block and O the other counts'. 0 for a count alone in a
    block: there its batches cannot tell its cost from the machine's."""
    own = np.bincount(j * k + p, w, blocks * k).reshape(blocks, k)
    other = own.sum(axis=1, keepdims=True) - own
    total = np.maximum(own + other, 1e-300)
    return own * other / total


_FLOOR = 0.01  # the least residual scale of the robust weights (1 % of a batch's time)


def _own_splits(p, r, t, n, k):
    """Per count, the least-squares line through its own batches' times
    (a, b), and where it may replace the count's split: at least 3 batches
    whose sizes spread (variance over 1 % of the squared mean) and a line
    with no negative term. The machine's speed in the window enters it as
    noise; the line's scale is then the joint fit's."""
    safe = np.maximum(n, 1.0)
    mr, mt = np.bincount(p, r, k) / safe, np.bincount(p, t, k) / safe
    vrr = np.bincount(p, r * r, k) / safe - mr * mr
    cov = np.bincount(p, r * t, k) / safe - mr * mt
    b = cov / np.where(vrr > 0, vrr, 1.0)
    a = mt - b * mr
    return a, b, (n >= 3) & (vrr > 0.01 * mr * mr) & (a >= 0) & (b >= 0), mr


def _pair_terms(x: Tuple[float, float]) -> Tuple[float, float]:
    return x


class _Window:
    """The last `size` items and the sums of `terms(item)` over them: O(1)
    per item on the serving path, recomputed exactly once per `size` items
    so that rounding does not accumulate."""

    def __init__(self, size: int, terms):
        self.items: Deque = deque(maxlen=size)
        self.terms = terms
        self.sums: List[float] = []
        self._since_exact = 0

    def push(self, item) -> None:
        new = self.terms(item)
        if not self.sums:
            self.sums = [0.0] * len(new)
        if len(self.items) == self.items.maxlen:
            for j, v in enumerate(self.terms(self.items[0])):
                self.sums[j] -= v
        self.items.append(item)
        for j, v in enumerate(new):
            self.sums[j] += v
        self._since_exact += 1
        if self._since_exact >= self.items.maxlen:
            self._since_exact = 0
            self.sums = [sum(col) for col in zip(*map(self.terms, self.items))]


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
            server has measured its own: then ``1 - margin / target``, the
            margin being the p99 of measured minus predicted latency over
            the last `window` requests (held: `margin_hold`),
            within ``min_headroom``..1 (what is left over covers what the
            predictions miss: parsing, the network, noise).
        min_headroom: the least share of the target a prediction may take,
            however badly recent predictions overran.
        window: recent latencies kept for the feedback p99.
        margin_hold: feedback updates over which the largest p99 overrun is
            held as the margin (16: the last 368 requests at the defaults).
            The p99 of 128 overruns is their 2nd largest, and under a
            sustained overload it dipped by chance often enough that the
            admitted predictions filled each dip's larger limit: in
            simulation (a noisy batch cost, the event loop's work growing
            with the offered load) the served p99 was a median 1.13x the
            target at 2x and 3x the capacity, 1.03x with the hold. A longer
            hold keeps a transient's overrun (a ramp of clients) longer and
            refused a closed-loop load that fixed 8 planes serves.
        feedback_every: observations between feedback updates.
        futile: a plane count whose full batch costs per row more than
            ``1 - futile`` of a higher count's is never chosen (it buys no
            measurable throughput: :meth:`ladder`); when no count fits,
            planes that would cut the predicted latency by less than this
            fraction are not given up; the operating point gives up no
            plane that raises the correct answers per second by less than
            this fraction.
        metric: the served model's metric (higher is better, e.g. accuracy)
            per plane count 1..max_planes; None: unknown, every count
            priced alike (then only latency decides).
        min_metric_share: an accuracy floor for every decision: no count
            whose metric is below this share of the best count's
            (:meth:`quality_floor`; 0: none, and without a metric none).
            Correct answers per second alone can prefer a count whose
            answers are mostly wrong: on the served wide stack 1 plane
            (top-1 0.29 against 0.98 at 8) costs 4.7x less than 8 planes
            in the learned table, and near the admission limit the
            controller served it.
        rate_tau_s: time constant of the arrival rate's moving average.
        utilization: the share of the worker's time a sustainable load may
            take (a queue at 100 % grows without bound).
    """

    def __init__(self, max_planes: int, target_p99_s: float, max_batch: int,
                 cost: Optional[CostModel] = None, *, headroom: float = 0.7,
                 min_headroom: float = 0.3,
                 window: int = 128, margin_hold: int = 16, feedback_every: int = 16,
                 futile: float = 0.05,
                 metric: Optional[Mapping[int, float]] = None,
                 min_metric_share: float = 0.0,
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
        self.cost = cost or CostModel.linear(self.max_planes)
        if self.cost.max_planes != self.max_planes:
            raise ValueError(f"cost model has {self.cost.max_planes} plane counts, the model "
                             f"{self.max_planes}")
        if not 0 < min_headroom <= headroom <= 1:
            raise ValueError("need 0 < min_headroom <= headroom <= 1")
        self.prior_headroom = float(headroom)
        self.min_headroom = float(min_headroom)
        self.headroom = self.prior_headroom
        # Measured minus predicted latency of recent requests (seconds):
        # their 99th percentile is the margin a prediction must leave.
        self._overruns: Deque[float] = deque(maxlen=window)
        if margin_hold < 1:
            raise ValueError("margin_hold must be >= 1")
        # The p99 overruns of the last `margin_hold` feedback updates: the
        # margin is their largest.
        self._held_margins: Deque[float] = deque(maxlen=int(margin_hold))
        if not 0 <= futile < 1:
            raise ValueError("futile must be in [0, 1)")
        self.futile = float(futile)
        self._ladder: List[int] = []
        self._ladder_of: Tuple[Optional[CostModel], int] = (None, -1)  # (cost, its version)
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
        # Wall time over compute time of recent batches (ratio of sums), for
        # the metrics: a batch holds the queue from its hand-off to the
        # worker thread until the event loop takes the next one, and under
        # load the loop (parsing, answering, refusing) delays both ends,
        # which the compute timings of the cost table do not see. Not a
        # factor in the predictions: the correction learns the same ratio
        # from finished requests, and in simulations with the loop's work
        # growing with the offered load, scaling predictions by it as well
        # held the p99 no better in steady overload and worse when the load
        # stepped between 0.8x and 3x.
        self._service = _Window(32, _pair_terms)  # (compute, service) seconds
        self.service_factor = 1.0
        # Seconds from a batch taking a request to its answer (observe_answer).
        self._answers: Deque[float] = deque(maxlen=window)
        self._since_answer_tail = 0
        self.answer_tail_s = 0.0
        self._rate = 0.0  # rows/s, as of self._rate_t
        self._rate_t: Optional[float] = None
        if not 0.0 <= min_metric_share <= 1.0:  # NaN fails too
            raise ValueError(f"min_metric_share must be in [0, 1], got {min_metric_share}")
        self.min_metric_share = float(min_metric_share)
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

    def quality_floor(self) -> int:
        """The fewest planes whose metric is at least ``min_metric_share``
        of the best count's (1 without a metric, a share of 0 or a best
        metric <= 0). The stored metric is a running maximum, so every count
        above it qualifies too."""
        if self.metric is None or self.min_metric_share <= 0 or self.metric[-1] <= 0:
            return 1
        want = self.min_metric_share * self.metric[-1]
        return next(p for p, v in enumerate(self.metric, 1) if v >= want)

    def arrive(self, rows: int, now: float) -> None:
        """Count an offered request of `rows` rows (admitted or not) at time
        `now` (seconds, monotonic) in the arrival rate: an exponential
        moving average with time constant ``rate_tau_s``."""
        rows, now = float(rows), float(now)
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
        """Seconds of compute per row at `planes` in full batches (the table)."""
        return self.cost.batch(planes, self.max_batch) / self.max_batch

    def ladder(self) -> List[int]:
        """The plane counts worth choosing, most first: all planes, then each
        next the largest count whose full-batch row costs at most ``1 -
        futile`` of the previous one's. A count in between buys less than
        `futile` over a higher one (the batched kernel at batch 4 on a wide
        stack costs the same from 4 planes down to 2): choosing it would
        give up precision for no throughput. Recomputed once per change of
        the cost model (O(k))."""
        if self._ladder_of[0] is not self.cost or self._ladder_of[1] != self.cost.version:
            rungs = [self.max_planes]
            cost = self.row_cost(self.max_planes)
            for p in range(self.max_planes - 1, 0, -1):
                c = self.row_cost(p)
                if c <= (1.0 - self.futile) * cost:
                    rungs.append(p)
                    cost = c
            self._ladder, self._ladder_of = rungs, (self.cost, self.cost.version)
        return self._ladder

    def snap(self, planes: int) -> int:
        """The fewest planes on the ladder that are at least `planes`: the
        counts below a rung down to the next buy nothing over it."""
        return min(p for p in self.ladder() if p >= planes)

    def _rungs(self, floor: int, top: int) -> List[int]:
        """Ladder counts in snap(floor)..snap(top), most first (not empty)."""
        lo, hi = self.snap(floor), self.snap(max(top, floor))
        return [p for p in self.ladder() if lo <= p <= hi]

    def goodput(self, planes: int, rate: float) -> float:
        """Correct answers per second at `planes` (rows per second times the
        metric) under an offered `rate` of rows per second: the load is
        served up to the sustainable capacity, the rest refused."""
        capacity = self.utilization / max(self.row_cost(planes), 1e-12)
        value = 1.0 if self.metric is None else self.metric[planes - 1]
        return min(rate, capacity) * value

    def operating_point(self, floor: int, top: int, rate: float) -> int:
        """The plane count on the ladder in floor..top (both snapped up to
        it) with the most correct answers per second at the offered
        `rate`, preferring more planes unless fewer serve at least
        ``futile`` more (so noise in the cost or the metric does not trade
        planes away). Without a measured rate: the most."""
        rungs = self._rungs(floor, top)
        if rate <= 0 or len(rungs) == 1:
            return rungs[0]
        values = [self.goodput(p, rate) for p in rungs]
        best = max(values)
        return next(p for p, v in zip(rungs, values) if v >= (1.0 - self.futile) * best)

    def admits(self, queued_rows: int, rows: int, planes: int,
               queued_units: Optional[float] = None) -> Tuple[bool, float]:
        """Whether a request of `rows` rows at `planes` (its lowest allowed
        precision) behind this queue is predicted within ``headroom *
        target``; and that prediction. A request that finds the queue empty
        is always admitted: refusing it shortens nobody's wait, and without
        served batches the cost model could not learn that the machine got
        faster (a server calibrated on a loaded machine would refuse
        everything for good). One predicted over the limit (but within the
        target) is still admitted while the measured p99 of recent requests
        is within the limit and the offered load is one the server can
        sustain at `planes`: the p99 has room for it, and refusing would
        shed where the server meets its SLO (a Poisson burst at 0.8x the
        capacity). Under a sustained overload that room is not there: every
        admitted request then queues up to the limit, and the recent p99
        (over 128 requests) dips under the limit by chance often enough that
        admitting up to the target itself put the served p99 over it (a
        simulated 2x overload: predictions up to 39.8 ms, p99 45-50 ms, on
        a 40 ms target)."""
        t = self.predict(queued_rows, rows, planes, queued_units)
        limit = self.headroom * self.target_s
        if queued_rows == 0 or t <= limit:
            return True, t
        return (t <= self.target_s and len(self._latencies) >= 16
                and not self.p99_over_limit() and self.sustainable(planes)), t

    def p99_over_limit(self) -> bool:
        """Whether the measured p99 of recent requests is over admission's
        limit (``headroom * target``): admission then admits nothing
        predicted over that limit, and the server sheds late what its queue
        made late."""
        return self.recent_p99 > self.headroom * self.target_s

    def sustainable(self, planes: int) -> bool:
        """Whether the offered load (the arrival rate) fits the capacity at
        `planes` in full batches at the sustainable ``utilization``."""
        return self.arrival_rate() * self.row_cost(planes) <= self.utilization

    def refuses_all(self, queued_rows: int, queued_units: Optional[float] = None) -> bool:
        """Whether :meth:`admits` would refuse every request behind this
        queue: even one row at each plane count is predicted over the
        limit. The server asks before it parses a request, so that under
        overload a refusal costs no parsing (at 2x the capacity on a
        1024-wide model, parsing the refused requests' JSON took CPU the
        admitted ones needed). The cheapest count first: while it is
        admitted (the common case) that is the only prediction made."""
        if queued_rows == 0:
            return False
        cheapest = min(range(1, self.max_planes + 1), key=self.row_cost)
        if self.admits(queued_rows, 1, cheapest, queued_units)[0]:
            return False
        return not any(self.admits(queued_rows, 1, p, queued_units)[0]
                       for p in range(1, self.max_planes + 1) if p != cheapest)

    def predict(self, queued_rows: int, rows: int, planes: int,
                queued_units: Optional[float] = None) -> float:
        """Predicted latency of a request of `rows` rows at `planes` planes
        behind `queued_rows` queued rows (whose plane sum is `queued_units`,
        assumed at `planes` when unknown), from the cost table.

        The full batches ahead cost what the table gives at the queue's mean
        plane count (interpolated between counts); the request's own batch
        costs the table's at the most planes in it, plus the extra-count
        term when it mixes its planes with the queue's. It also carries the
        rows that arrive while the request waits, up to ``max_batch``: at
        the measured arrival rate, over the time the batches ahead of it
        take. Without them a request behind a busy worker is predicted a
        partly empty batch that in fact fills up (in a closed-loop test
        that made predictions short by one batch)."""
        total_rows = queued_rows + rows
        mb = self.max_batch
        batches = max(1, math.ceil(total_rows / mb))
        mean = (queued_units / queued_rows
                if queued_rows > 0 and queued_units is not None else float(planes))
        own = total_rows - (batches - 1) * mb  # rows in its batch now
        shared = own > rows  # queued rows share its batch
        top = max(float(planes), mean) if shared else float(planes)
        groups = 2 if shared and mean != planes else 1
        c = self.cost
        before = (batches - 1) * c.batch(mean, mb)  # until its batch starts
        t = before + c.batch(top, own, groups)
        if queued_rows > 0 and self._rate > 0:
            row_s = c.batch(top, 1) - c.batch(top, 0)
            joining = min(mb - own, self._rate * max(before, row_s * queued_rows))
            t += max(0.0, joining) * row_s
        return self.correction * t

    def observe_service(self, compute_s: float, service_s: float) -> None:
        """A batch's compute time (timed in the worker, as the cost model
        learns it) and its service time (from its hand-off until the event
        loop could take the next batch). The service factor is the ratio of
        their sums over the last 32 batches, within 1..4 (exported as a
        metric: how much of the queue's time is hand-offs and waits for the
        event loop)."""
        if not (math.isfinite(compute_s) and math.isfinite(service_s)) or compute_s <= 0:
            return
        self._service.push((compute_s, max(service_s, compute_s)))
        compute, service = self._service.sums
        if len(self._service.items) >= 8:
            self.service_factor = min(4.0, max(1.0, service / compute))

    def observe_answer(self, seconds: float) -> None:
        """Seconds from a batch taking a request to its answer being ready
        (its batch's compute, the hand-offs, the event loop's wait, the
        encoding). Their p99 over the last ``window`` requests (updated
        every ``feedback_every``, 0 until 16 are measured) is
        ``answer_tail_s``: what late shedding expects to follow a request's
        place in a batch, beside the batch's predicted compute. The compute
        alone left the answers of the batches it let through up to a few
        milliseconds past the SLO at 3x the capacity on the wide stack."""
        if not math.isfinite(seconds) or seconds < 0:
            return
        self._answers.append(float(seconds))
        self._since_answer_tail += 1
        if self._since_answer_tail >= self._feedback_every and len(self._answers) >= 16:
            self._since_answer_tail = 0
            self.answer_tail_s = _percentile(self._answers, 0.99)

    def decide(self, queued_rows: int, rows: int = 1, min_planes: int = 1,
               budget_s: Optional[float] = None, queued_units: Optional[float] = None,
               now: Optional[float] = None) -> Decision:
        """Planes for a new auto request: the most on the ladder (counts
        that buy at least ``futile`` over the next higher one) that fit,
        never below min_planes or the quality floor (``min_metric_share``).
        With a metric, at most the operating point at the demand (the
        arrival rate as of `now`, or the backlog over the target when that
        is more) and never below the count that serves the most correct
        answers per second at unlimited load.
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
        min_planes = max(1, min(max(int(min_planes), self.quality_floor()), self.max_planes))
        target = self.target_s if budget_s is None else min(self.target_s, budget_s)
        limit = self.headroom * target
        # The demand to serve: the measured arrival rate, or the backlog
        # when it must drain faster than that to meet the target (a burst
        # that the average does not show yet).
        rate = max(self.arrival_rate(now), (queued_rows + rows) / limit)
        ceiling = max(self.ceiling, min_planes)
        # Without a metric every count is priced alike: the operating point
        # is then the most planes whose capacity serves the demand (within
        # `futile`), so that an overload is served in batches of one count
        # rather than mixing counts, which cost the largest one's.
        operating = self.operating_point(min_planes, ceiling, rate)
        # With a metric, no count below the one that serves the most correct
        # answers per second at any load: a count lower still loses more
        # accuracy than its throughput is worth, so it is never chosen, and
        # a request that cannot be served at that count is refused instead.
        # min_planes itself snaps up the ladder: the counts between it and
        # the rung above buy nothing over that rung.
        floor = (self.operating_point(min_planes, ceiling, math.inf)
                 if self.metric is not None else self.snap(min_planes))
        top = operating = max(operating, floor)
        rungs = self._rungs(floor, top)
        chosen = None
        for p in rungs:
            t = self.predict(queued_rows, rows, p, queued_units)
            if t <= limit:
                chosen, predicted = p, t
                break
        if chosen is None:
            chosen = operating
            predicted = self.predict(queued_rows, rows, chosen, queued_units)
        # Admission is judged against the SLO itself (a tighter deadline
        # is the batcher's 504 when it passes).
        admitted = self.admits(queued_rows, rows, floor, queued_units)[0]
        self.last = Decision(chosen, predicted, self.ceiling, int(queued_rows), operating, rate,
                             admitted, floor)
        return self.last

    def observe_latency(self, seconds: float, predicted_s: Optional[float] = None,
                        correction: Optional[float] = None) -> None:
        """Feed one finished request's latency; adjusts the feedback ceiling.
        With the latency predicted for it (``predict``, correction included),
        also the correction (the sum of measured over the sum of uncorrected
        predicted latencies of the recent requests, within 0.5..4) and the
        measured headroom (the p99 of measured minus predicted).

        correction: the correction the prediction was made with (the current
        one when None). A request finishes a queue's wait after it was
        predicted, and the correction has moved meanwhile: dividing by the
        current one fed the correction back into itself, which at a 100-batch
        SLO swung it between its bounds (0.5 and 4) in simulation while the
        uncorrected predictions were within 2 % of the measured latencies."""
        if predicted_s is not None and predicted_s > 0 and math.isfinite(seconds):
            # Python floats (callers may pass numpy ones): the correction and
            # headroom made from them reach the server's JSON metadata, and a
            # numpy bool from a comparison with them made it answer 500.
            seconds, predicted_s = float(seconds), float(predicted_s)
            self._overruns.append(seconds - predicted_s)
            made_with = self.correction if correction is None else float(correction)
            pair = (float(seconds), predicted_s / made_with)
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
            self._held_margins.append(max(0.0, _percentile(self._overruns, 0.99)))
            margin = max(self._held_margins)
            self.headroom = min(1.0, max(self.min_headroom, 1.0 - margin / self.target_s))
        p99 = self.recent_p99
        # The ceiling moves along the ladder: a step down goes straight to
        # the next count that is measurably cheaper (the counts in between
        # would give up precision for nothing), a step up to the next rung
        # above; where the table changed under it, it snaps up to a rung.
        # Never below the count that serves the most correct answers per
        # second at any load (with a metric): fewer are never worth it.
        rungs = self.ladder()
        lowest = (rungs[-1] if self.metric is None
                  else self.operating_point(1, self.max_planes, math.inf))
        ceiling = self.snap(self.ceiling)
        if p99 > self.target_s and ceiling > lowest:
            ceiling = next(p for p in rungs if p < ceiling)
        elif p99 < 0.5 * self.target_s and ceiling < self.max_planes:
            ceiling = next(p for p in reversed(rungs) if p > ceiling)
        self.ceiling = ceiling

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
