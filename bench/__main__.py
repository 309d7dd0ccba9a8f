"""Run the benchmarks: `python -m bench` runs all, `python -m bench NAME ...` some.

Benchmarks need PostgreSQL (DATABASE_URL) and, where they say so, Redis; each
creates and drops its own database, so they never touch your data."""

import importlib
import sys

# name -> module; each module has main(argv: list[str]) -> int
BENCHMARKS: dict[str, str] = {
    "metrics": "bench.metrics",
    "gate": "bench.gate",
    "webhooks": "bench.webhooks",
    "queue": "bench.queue",
    "longpoll": "bench.longpoll",
    "soak": "bench.soak",
    "audits": "bench.audits",
    "rollback": "bench.rollback",
    "commits": "bench.commits",
}
# Run only when named (`python -m bench soak`): twenty minutes by default.
ON_REQUEST = {"soak"}


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")] or [n for n in BENCHMARKS if n not in ON_REQUEST]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS) or 'none'}")
        return 2
    status = 0
    for name in names:
        print(f"== {name}")
        status |= importlib.import_module(BENCHMARKS[name]).main([a for a in argv if a.startswith("-")])
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
