"""The disk under PostgreSQL's WAL: how long a commit waits for its flush, on an idle machine.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench commits [--seconds=60]

Creates its own database, then for `--seconds` each, one connection in a loop (a pause of
4 ms between statements): an INSERT of a 500-byte row committed durably (as FSAR commits
everything), the same with `synchronous_commit = off` (the commit does not wait for the
flush), and `SELECT 1` (no write: what the machine itself adds). Prints p50, p99, p99.9 and
the worst of each, how many took 25 and 100 ms or more, and the worst eight with when they
came. A durable commit's tail far above the other two is the disk's flush: every request
that commits waits for it (the paced p99 of `bench gate`; `bench gate --disk-probe` watches
for it during a run). docs/benchmarks.md, docs/deployment.md ("The disk under pg_wal").
"""

from __future__ import annotations

import sys
import time

from bench.common import bench_connection, bench_db, log, options, own_database, percentile, postgres_url_or_none

BENCH_DB = bench_db("commits")
MODES = (
    ("durable INSERT (as FSAR commits)", "INSERT INTO probe (t) VALUES (%s)", None),
    ("INSERT with synchronous_commit = off", "INSERT INTO probe (t) VALUES (%s)", "SET synchronous_commit TO off"),
    ("SELECT 1 (no write)", "SELECT 1", None),
)


def loop(url: str, statement: str, setup: str | None, seconds: float) -> list[tuple[float, float]]:
    """(ms, seconds into the loop) of each statement."""
    timings: list[tuple[float, float]] = []
    with bench_connection({"DATABASE_URL": url}) as conn:
        conn.autocommit = True
        if setup:
            conn.execute(setup)
        params = ("x" * 500,) if "%s" in statement else None
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            at = time.monotonic()
            conn.execute(statement, params)
            timings.append(((time.monotonic() - at) * 1000, at - began))
            time.sleep(0.004)
    return timings


def main(argv: list[str]) -> int:
    seconds = float(options(argv).get("seconds", 60))
    url = postgres_url_or_none("commits")
    if url is None:
        return 2
    with own_database(url, BENCH_DB) as bench_url:
        with bench_connection({"DATABASE_URL": bench_url}) as conn:
            conn.execute("CREATE TABLE probe (id bigserial PRIMARY KEY, t text)")
            conn.commit()
        log(f"{seconds:.0f} s each, one connection, 4 ms between statements")
        log("| statement | count | p50 ms | p99 ms | p99.9 ms | max ms | ≥ 25 ms | ≥ 100 ms |")
        log("|---|---|---|---|---|---|---|---|")
        worst_lines = []
        for name, statement, setup in MODES:
            timings = loop(bench_url, statement, setup, seconds)
            values = sorted(ms for ms, _ in timings)
            log(
                f"| {name} | {len(values)} | {percentile(values, 50):.2f} | {percentile(values, 99):.2f} | "
                f"{percentile(values, 99.9):.1f} | {values[-1]:.1f} | {sum(v >= 25 for v in values)} | "
                f"{sum(v >= 100 for v in values)} |"
            )
            worst = sorted(timings, reverse=True)[:8]
            worst_lines.append(f"{name}: worst " + ", ".join(f"{ms:.0f} ms at {at:.1f} s" for ms, at in worst))
        for line in worst_lines:
            log(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
