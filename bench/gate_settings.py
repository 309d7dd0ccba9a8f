"""Settings for `python -m bench gate` and `queue`: the project's, plus the trivial
baseline endpoints, and (BENCH_GATE=allow) a gate that allows everything without looking,
to measure what the real gate costs on top of registration itself."""

import os

from fsar.settings import *  # noqa: F403

ROOT_URLCONF = "bench.gate_urls"
if os.environ.get("BENCH_GATE") == "allow":
    TASK_GATE = "bench.gate_urls.allow_all"
    TASK_GATE_RECHECK = "bench.gate_urls.allow_all"
