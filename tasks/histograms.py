"""Duration histograms of the rollups (docs/metrics.md, "Buckets" and "Percentiles"
in tasks/rollups.py's docstring): integer log-spaced buckets within 0.99 % of every
value, percentile_cont over a histogram, the stored dense form, and `Totals`, the
additive figures of a set of finished tasks."""

from __future__ import annotations

import bisect
import itertools
import math
import operator
from dataclasses import dataclass, field

from tasks.models import TaskSource, TaskStatus

FAILED = TaskStatus.FAILED.value
BACKFILL = TaskSource.BACKFILL.value

# --- Buckets --------------------------------------------------------------------------

GAMMA = (51, 50)  # γ = 1.02 as a fraction: boundaries are computed in integers.
MAX_RELATIVE_ERROR = (GAMMA[0] - GAMMA[1]) / (GAMMA[0] + GAMMA[1])  # 0.0099


def _boundaries() -> list[int]:
    bounds = [0]
    while bounds[-1] <= 2**63:
        bounds.append(bounds[-1] * GAMMA[0] // GAMMA[1] + 1)
    return bounds


BOUNDS = _boundaries()
_OFFSET = len(BOUNDS)  # bucket indexes run from −len(BOUNDS) to len(BOUNDS) − 1
_REPRESENTATIVES = [
    float(lo) if lo == hi - 1 else 2 * lo * (hi - 1) / (lo + hi - 1) for lo, hi in zip(BOUNDS, BOUNDS[1:], strict=False)
]


def bucket_index(value: int) -> int:
    """The bucket of a duration in ms: k with BOUNDS[k] ≤ value < BOUNDS[k+1];
    negative values get −1 − (the bucket of −value)."""
    if value >= 0:
        return bisect.bisect_right(BOUNDS, value) - 1
    return -1 - bucket_index(-value)


def representative(index: int) -> float:
    """The value a bucket stands for: within MAX_RELATIVE_ERROR of any value in it."""
    if index < 0:
        return -_REPRESENTATIVES[-1 - index]
    return _REPRESENTATIVES[index]


def histogram_percentile(histogram: dict[int, int], fraction: float) -> float | None:
    """percentile_cont over a histogram {bucket index: count}: the values at ranks
    ⌊p(n−1)⌋ and ⌈p(n−1)⌉ (0-based, ascending) are their buckets' representatives."""
    return histogram_percentiles(histogram, (fraction,))[0]


def histogram_percentiles(histogram: dict[int, int], fractions: tuple[float, ...]) -> list[float | None]:
    """`histogram_percentile` of each fraction, sorting the buckets once."""
    if not histogram:
        return [None] * len(fractions)
    indexes, counts = zip(*sorted(histogram.items()), strict=True)
    ends = list(itertools.accumulate(counts))  # ranks below each bucket's end
    n = ends[-1]
    if n == 0:
        return [None] * len(fractions)

    def value(rank: int) -> float:
        return representative(indexes[bisect.bisect_right(ends, rank)])

    found: list[float | None] = []
    for fraction in fractions:
        position = fraction * (n - 1)
        first, second = math.floor(position), math.ceil(position)
        low = value(first)
        found.append(low if first == second else low + (value(second) - low) * (position - first))
    return found


# --- Accumulating ---------------------------------------------------------------------


def dense(histogram: dict[int, int]) -> list[int]:
    """The stored form of a histogram: [first bucket index, its count, the next one's, …],
    zeros inside, [] when empty. A JSON list of small integers: compact, and quick to
    decode and merge (reading rollups is mostly decoding them)."""
    if not histogram:
        return []
    first = min(histogram)
    counts = [0] * (max(histogram) - first + 1)
    for index, tasks in histogram.items():
        counts[index - first] = tasks
    return [first, *counts]


@dataclass
class Totals:
    """Additive figures of a set of finished tasks; `histogram` is {bucket index: tasks}
    with no zero counts."""

    count: int = 0
    failed: int = 0
    timed: int = 0
    sum_ms: int = 0
    max_ms: int | None = None
    histogram: dict[int, int] = field(default_factory=dict)
    # Of `count`, the tasks the AI side backfilled (source=backfill), which the metrics page marks.
    backfilled: int = 0
    # Stored rows being added up: one count per bucket (index + _OFFSET), summed slice by
    # slice in C rather than bucket by bucket; folded into `histogram` when read.
    _counts: list[int] | None = field(default=None, compare=False, repr=False)
    _low: int = field(default=0, compare=False, repr=False)
    _high: int = field(default=0, compare=False, repr=False)
    # The first stored row's dense histogram while it is the only one (most groups of a
    # fine read hold one row: no counts list to allocate and fill for them).
    _dense: list[int] | None = field(default=None, compare=False, repr=False)

    def add_task(self, status: str, duration: int | None, source: str | None = None) -> None:
        self.count += 1
        if source == BACKFILL:
            self.backfilled += 1
        if status == FAILED:
            self.failed += 1
        if duration is not None:
            self.timed += 1
            self.sum_ms += duration
            if self.max_ms is None or duration > self.max_ms:
                self.max_ms = duration
            key = bucket_index(duration)
            self.histogram[key] = self.histogram.get(key, 0) + 1

    def add(self, count, failed, timed, sum_ms, max_ms, histogram: list[int] | None, backfilled: int = 0) -> None:
        """Add a stored row's figures (`histogram` in its stored, dense form)."""
        self.count += count
        self.backfilled += backfilled
        self.failed += failed
        self.timed += timed
        self.sum_ms += sum_ms
        if max_ms is not None and (self.max_ms is None or max_ms > self.max_ms):
            self.max_ms = max_ms
        if histogram:
            if self._counts is None and self._dense is None:
                self._dense = histogram  # the first stored row: kept as it is until a second one comes
            else:
                self._add_dense(histogram)

    def _add_dense(self, histogram: list[int]) -> None:
        counts = self._counts
        if counts is None:
            counts = self._counts = [0] * (2 * _OFFSET)
            self._low = self._high = histogram[0] + _OFFSET
        dense, self._dense = self._dense, None
        for stored in (dense, histogram) if dense is not None else (histogram,):
            first = stored[0] + _OFFSET
            end = first + len(stored) - 1
            self._low, self._high = min(self._low, first), max(self._high, end)
            counts[first:end] = map(operator.add, counts[first:end], itertools.islice(stored, 1, None))

    def add_durations(self, durations: list[int]) -> None:
        """Count durations into the histogram only: their tasks' count, sum and maximum
        were added already (`add`, from the database's sums)."""
        mine = self.histogram
        for duration in durations:
            key = bucket_index(duration)
            mine[key] = mine.get(key, 0) + 1

    def flush(self) -> Totals:
        """Fold the stored rows added so far into `histogram`."""
        dense = self._dense
        if dense is not None:
            mine, first = self.histogram, dense[0] - 1
            for position, tasks in enumerate(dense):
                if tasks and position:
                    mine[first + position] = mine.get(first + position, 0) + tasks
            self._dense = None
        counts = self._counts
        if counts is not None:
            mine, low = self.histogram, self._low
            for position, tasks in enumerate(counts[low : self._high], low - _OFFSET):
                if tasks:
                    mine[position] = mine.get(position, 0) + tasks
            self._counts = None
        return self

    def merge(self, other: Totals) -> None:
        self.add(other.count, other.failed, other.timed, other.sum_ms, other.max_ms, other._dense, other.backfilled)
        theirs = other._counts
        if theirs is not None:  # stored rows not yet folded into its histogram: added slice by slice, in C
            low, high = other._low, other._high
            counts = self._counts
            if counts is None:
                counts = self._counts = [0] * (2 * _OFFSET)
                self._low, self._high = low, high
            else:
                self._low, self._high = min(self._low, low), max(self._high, high)
            counts[low:high] = map(operator.add, counts[low:high], theirs[low:high])
        for index, tasks in other.histogram.items():
            self.histogram[index] = self.histogram.get(index, 0) + tasks

    def percentile(self, fraction: float) -> float | None:
        return histogram_percentile(self.flush().histogram, fraction)

    def median_and_p95(self) -> tuple[float | None, float | None]:
        counts = self._counts
        if counts is None:
            p50, p95 = histogram_percentiles(self.flush().histogram, (0.5, 0.95))
            return p50, p95
        # Stored rows added up in `counts` (most of a page's percentiles): the other tasks are
        # added there too, and the ranks read from its cumulative sums (in C) rather than from
        # a histogram dict folded and sorted bucket by bucket; the same buckets, the same result.
        dense, self._dense = self._dense, None
        low, high = self._low, self._high
        if dense is not None:
            first = dense[0] + _OFFSET
            end = first + len(dense) - 1
            low, high = min(low, first), max(high, end)
            counts[first:end] = map(operator.add, counts[first:end], itertools.islice(dense, 1, None))
        mine = self.histogram
        if mine:
            for index, tasks in mine.items():
                counts[index + _OFFSET] += tasks
            low, high = min(low, min(mine) + _OFFSET), max(high, max(mine) + _OFFSET + 1)
            self.histogram = {}
        self._low, self._high = low, high
        ends = list(itertools.accumulate(counts[low:high]))
        n = ends[-1] if ends else 0
        if n == 0:
            return None, None

        def value(rank: int) -> float:
            return representative(bisect.bisect_right(ends, rank) + low - _OFFSET)

        found: list[float] = []
        for fraction in (0.5, 0.95):
            position = fraction * (n - 1)
            first, second = math.floor(position), math.ceil(position)
            at_first = value(first)
            found.append(at_first if first == second else at_first + (value(second) - at_first) * (position - first))
        return found[0], found[1]
