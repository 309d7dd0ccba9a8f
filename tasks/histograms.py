"""Duration histograms of the rollups (docs/metrics.md, "Buckets" and "Percentiles"
in tasks/rollups.py's docstring): integer log-spaced buckets within 0.99 % of every
value, percentile_cont over a histogram, the stored dense form, and `Totals`, the
additive figures of a set of finished tasks."""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import operator
from collections import Counter
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


_bisect_bounds = functools.partial(bisect.bisect_right, BOUNDS)


def bucket_index(value: int) -> int:
    """The bucket of a duration in ms: k with BOUNDS[k] ≤ value < BOUNDS[k+1];
    negative values get −1 − (the bucket of −value)."""
    if value >= 0:
        return bisect.bisect_right(BOUNDS, value) - 1
    return -1 - bucket_index(-value)


# The boundaries a bigint can hold, as a PostgreSQL array literal (BOUNDS' last one is past
# 2**63; a value below it counts the same boundaries without it). A literal rather than a
# parameter: psycopg would dump its ~2,000 elements one by one for every statement.
_BOUNDS_SQL = "'{" + ",".join(str(bound) for bound in BOUNDS if bound < 2**63) + "}'::bigint[]"


def bucket_index_sql(value: str) -> str:
    """`bucket_index` of a bigint SQL expression, for PostgreSQL (NULL stays NULL):
    width_bucket(v, boundaries) is how many boundaries are ≤ v, bisect_right's answer.
    A test compares the two at every boundary and on random durations."""
    return (
        f"CASE WHEN {value} >= 0 THEN width_bucket({value}, {_BOUNDS_SQL}) - 1 "
        f"ELSE -width_bucket(-({value}), {_BOUNDS_SQL}) END"
    )


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
    # Stored rows' dense histograms not added up yet: kept as they are until a percentile or
    # the histogram is read, so that a group merged into a wider one (a page's per type × model
    # rows into its per-bucket sums) is added up once, there, rather than at every level.
    # The lists are never changed in place (they may be shared by several Totals).
    _parts: list[list[int]] | None = field(default=None, compare=False, repr=False)

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
            self.add_histogram(histogram)

    def add_histogram(self, histogram: list[int]) -> None:
        """Add a stored row's dense histogram alone (its figures added already)."""
        if not histogram:  # [] when the row's tasks have no duration
            return
        if self._parts is None:
            self._parts = [histogram]
        else:
            self._parts.append(histogram)

    def _add_parts(self) -> None:
        """Add the stored rows' dense histograms kept so far to `_counts`, slice by slice."""
        parts, self._parts = self._parts, None
        if not parts:
            return
        counts = self._counts
        if counts is None:
            counts = self._counts = [0] * (2 * _OFFSET)
            self._low = self._high = parts[0][0] + _OFFSET
        low, high = self._low, self._high
        for stored in parts:
            first = stored[0] + _OFFSET
            end = first + len(stored) - 1
            if first < low:
                low = first
            if end > high:
                high = end
            counts[first:end] = map(operator.add, counts[first:end], itertools.islice(stored, 1, None))
        self._low, self._high = low, high

    def add_durations(self, durations: list[int]) -> None:
        """Count durations into the histogram only: their tasks' count, sum and maximum
        were added already (`add`, from the database's sums)."""
        if not durations:
            return
        if min(durations) < 0:
            mine = self.histogram
            for duration in durations:
                key = bucket_index(duration)
                mine[key] = mine.get(key, 0) + 1
            return
        # The usual case: counted in C (bisect_right(BOUNDS, d) − 1 is bucket_index(d) for
        # d ≥ 0), and kept as one more dense part, added up with the stored rows' histograms.
        counted = Counter(map(_bisect_bounds, durations))
        low = min(counted)
        counts = [0] * (max(counted) - low + 2)
        counts[0] = low - 1
        for position, tasks in counted.items():
            counts[position - low + 1] = tasks
        self.add_histogram(counts)

    def flush(self) -> Totals:
        """Fold the stored rows added so far into `histogram`."""
        parts = self._parts
        if parts is not None and len(parts) == 1 and self._counts is None:
            # One stored row (most groups of a fine read): straight from its dense list.
            dense = parts[0]
            mine, first = self.histogram, dense[0] - 1
            for position, tasks in enumerate(dense):
                if tasks and position:
                    mine[first + position] = mine.get(first + position, 0) + tasks
            self._parts = None
        elif parts is not None:
            self._add_parts()
        counts = self._counts
        if counts is not None:
            mine, low = self.histogram, self._low
            for position, tasks in enumerate(counts[low : self._high], low - _OFFSET):
                if tasks:
                    mine[position] = mine.get(position, 0) + tasks
            self._counts = None
        return self

    def merge(self, other: Totals) -> None:
        self.add(other.count, other.failed, other.timed, other.sum_ms, other.max_ms, None, other.backfilled)
        if other._parts:  # their stored rows not added up yet: kept as they are here too
            if self._parts is None:
                self._parts = list(other._parts)
            else:
                self._parts.extend(other._parts)
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
        if self._counts is None and not self._parts:
            p50, p95 = histogram_percentiles(self.flush().histogram, (0.5, 0.95))
            return p50, p95
        # Stored rows added up in `counts` (most of a page's percentiles): the other tasks are
        # added there too, and the ranks read from its cumulative sums (in C) rather than from
        # a histogram dict folded and sorted bucket by bucket; the same buckets, the same result.
        self._add_parts()
        counts = self._counts
        low, high = self._low, self._high
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
