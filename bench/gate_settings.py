"""Settings for `python -m bench gate` and `queue`: the project's, plus the trivial
baseline endpoints, and (BENCH_GATE=allow) a gate that allows everything without looking,
to measure what the real gate costs on top of registration itself."""

import os

from fsar.settings import *  # noqa: F403

ROOT_URLCONF = "bench.gate_urls"
if os.environ.get("BENCH_GATE") == "allow":
    TASK_GATE = "bench.gate_urls.allow_all"
    TASK_GATE_RECHECK = "bench.gate_urls.allow_all"

if os.environ.get("BENCH_ASYNC_COMMIT") == "1":
    # `bench gate --async-commit`, a diagnostic only: commits do not wait for the WAL flush,
    # so what the disk's flush stalls add to the paced phase's latency shows (docs/benchmarks.md).
    _bench_options = DATABASES["default"].setdefault("OPTIONS", {})  # noqa: F405
    _bench_options["options"] = f"{_bench_options.get('options', '')} -c synchronous_commit=off".strip()
