"""The rqworker's memory over many jobs: the soak's job mix run through the real
worker class (settings.RQ["WORKER_CLASS"], core.worker.Worker) in burst mode, in
this process, round after round; RSS after every round, and with --trace the
tracemalloc growers between snapshots.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fsar_x REDIS_URL=redis://127.0.0.1:6379/4 \\
        .venv/bin/python -m bench.rqmem setup           # migrate, data (DEBUG off)
    ... .venv/bin/python -m bench.rqmem run [--jobs=10000] [--trace] [--snap=1000,5000,10000]

The mix per round (as the soak's traffic and cron enqueue them): a case_opened and a
notify_decision per held case of the round, one stripe_events_drain over 30 new
pending Stripe events (invoice.paid), 60 finished tasks for the rollup drain, and
every fourth round the periodic jobs of up to 5 minutes.

    ... .venv/bin/python -m bench.rqmem indicators [--rows=30000] [--steps=3]

The quarter-hourly indicators_tick through the same worker, twice after each of
--steps inserts (by a child process) of --rows finished API tasks: it reads the
current and previous hour and day's tasks into Python, so the worker's RSS follows
the day's traffic (docs: the report of wt/rqmem).
"""

from __future__ import annotations

import gc
import os
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fsar.settings")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "bench-rqmem-not-a-real-secret-0123456789")
os.environ.setdefault("AUDIT_CHAIN_KEY", "bench-rqmem-audit-chain-key-not-a-real-one-0123456789")
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("DB_CONN_MAX_AGE", "600")
os.environ.setdefault("MODELS_UNREGISTERED", "allow")
os.environ.setdefault("STRIPE_WEBHOOK_SECRET", "whsec_bench_rqmem")

# It writes into the database DATABASE_URL names (it does not create its own, as the other
# benchmarks do): only into one named as a throwaway, never by accident into a real one.
_name = os.environ.get("DATABASE_URL", "").rsplit("/", 1)[-1].split("?")[0]
if not (_name.startswith("fsar_bench") or _name.startswith("fsar_rqmem")):
    sys.exit(f"bench.rqmem writes into DATABASE_URL's database: name one fsar_bench* or fsar_rqmem*, not {_name!r}")

import django  # noqa: E402

django.setup()

CASES = 40
INVOICES = 40_000
TASKS_PER_ROUND = 60  # finished tasks for the rollup drain (the soak finishes ~17 a second)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def setup() -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    from billing.models import Customer, Invoice
    from core.roles import COMMITTEE
    from reviews.models import PolicyRule
    from tasks.models import ApiKey
    from tasks.services import Actor, api_key_create, task_register

    call_command("migrate", verbosity=0)
    PolicyRule.objects.create(name="rqmem-held", priority=1, ai_model_glob="held-*", action="hold")
    User = get_user_model()
    committee = Group.objects.get_or_create(name=COMMITTEE)[0]
    for name in ("m-alice", "m-bob", "m-carol"):
        User.objects.create_user(username=name, password="rqmem-password-1").groups.add(committee)
    customer = Customer.objects.create(customer_ref="cust_rqmem", name="Rqmem Co", stripe_customer_id="cus_rqmem")
    Invoice.objects.bulk_create(
        (
            Invoice(customer=customer, period=f"{2000 + i // 12:04d}-{i % 12 + 1:02d}", currency="usd",
                    status="open", total_minor=1000, amount_remaining_minor=1000, stripe_invoice_id=f"in_rq_{i}")
            for i in range(INVOICES)
        ),
        batch_size=5000,
    )  # fmt: skip
    agent = User.objects.create_user(username="rqmem-agent")
    api_key_create(name="rqmem", owner=agent, scopes=["tasks", "reports", "read"])
    actor = Actor.for_key(ApiKey.objects.get(name="rqmem"))
    for i in range(CASES):
        task_register(actor=actor, external_id=f"held-{i}", task_type="t", ai_model=f"held-m{i}")
    print("setup done")


def run(total: int, trace: bool, snaps: list[int], queue_name: str = "default") -> None:
    import django_rq
    from django.utils import timezone
    from rq import Queue

    from billing.models import StripeEvent
    from fsar.periodic import PERIODIC_JOBS
    from reviews import jobs as review_jobs
    from reviews.models import Case
    from tasks.models import ExecutionTask

    minute = [job for job, seconds in PERIODIC_JOBS if seconds <= 300]
    cases = list(Case.objects.values_list("pk", "version"))
    assert cases, "run setup first"
    if queue_name == "default":
        queue: Queue = django_rq.get_queue("default")
        worker = django_rq.get_worker("default")
    else:  # a second run beside the first, on a queue of its own
        from django.conf import settings
        from django.utils.module_loading import import_string

        queue = Queue(queue_name, connection=django_rq.get_connection("default"))
        worker = import_string(settings.RQ["WORKER_CLASS"])([queue], connection=queue.connection)
    queue.empty()
    print(f"worker class {type(worker).__module__}.{type(worker).__name__}, {len(cases)} cases, periodic {len(minute)}")
    if trace:
        tracemalloc.start(int(os.environ.get("TRACE_FRAMES", "8")))
    done, n_event, rnd = 0, 0, 0
    snapshots: dict[int, tracemalloc.Snapshot] = {}
    start = rss_kib()
    print(f"jobs 0 rss {start / 1024:.1f} MiB")
    began = time.monotonic()
    next_print = 500
    while done < total:
        rnd += 1
        events = []
        for _ in range(30):
            n_event += 1
            i = n_event % INVOICES
            events.append(
                StripeEvent(
                    stripe_id=f"evt_rq_{os.getpid()}_{n_event}", type="invoice.paid", api_version="2026-10-28.endive",
                    created=1_800_000_000 + n_event, livemode=False,
                    payload={"id": f"evt_rq_{os.getpid()}_{n_event}", "object": "event", "type": "invoice.paid",
                             "created": 1_800_000_000 + n_event,
                             "data": {"object": {"id": f"in_rq_{i}", "object": "invoice", "status": "paid",
                                                 "total": 1000, "amount_paid": 1000, "amount_remaining": 0,
                                                 "payment_intent": f"pi_rq_{n_event}"}}},
                )
            )  # fmt: skip
        StripeEvent.objects.bulk_create(events)
        now = timezone.now()
        ExecutionTask.objects.bulk_create(
            ExecutionTask(external_id=f"rq-{os.getpid()}-{rnd}-{k}", task_type=f"type-{k % 7}",
                          ai_model=f"model-{k % 5}", status="succeeded" if k % 9 else "failed",
                          source="api", created_at=now, started_at=now, finished_at=now,
                          duration_ms=(k * 37) % 20_000, rollup_pending=True)
            for k in range(TASKS_PER_ROUND)
        )  # fmt: skip
        jobs = 0
        for case_id, version in cases[(rnd * 5) % len(cases) :][:5]:
            queue.enqueue(review_jobs.case_opened, case_id)
            queue.enqueue(review_jobs.notify_decision, case_id, "approved", version)
            jobs += 2
        queue.enqueue("billing.jobs.stripe_events_drain")
        jobs += 1
        if rnd % 4 == 0:
            for job in minute:
                queue.enqueue(job)
                jobs += 1
        worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
        done += jobs
        if done >= next_print:
            next_print += 500
            print(f"jobs {done} rss {rss_kib() / 1024:.1f} MiB  ({time.monotonic() - began:.0f} s)", flush=True)
        if trace:
            for s in snaps:
                if s not in snapshots and done >= s:
                    gc.collect()  # cyclic garbage not yet collected is not growth
                    snapshots[s] = tracemalloc.take_snapshot().filter_traces(
                        [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *")]
                    )
                    print(f"snapshot at {done} jobs; traced {tracemalloc.get_traced_memory()[0] / 1024:.0f} KiB")
                    keys = sorted(snapshots)
                    if len(keys) >= 2:
                        print(f"=== tracemalloc growth {keys[-2]} -> {keys[-1]} jobs (by line) ===")
                        for stat in snapshots[keys[-1]].compare_to(snapshots[keys[-2]], "lineno")[:15]:
                            print(stat, flush=True)
    print(f"failed jobs: {queue.failed_job_registry.count}; done {done}, rss {rss_kib() / 1024:.1f} MiB")
    keys = sorted(snapshots)
    for a, b in zip(keys, keys[1:], strict=False):
        print(f"\n=== tracemalloc growth {a} -> {b} jobs (by line) ===")
        for stat in snapshots[b].compare_to(snapshots[a], "lineno")[:15]:
            print(stat)
    if len(keys) >= 2:
        print(f"\n=== top growers {keys[0]} -> {keys[-1]} with tracebacks ===")
        for stat in snapshots[keys[-1]].compare_to(snapshots[keys[0]], "traceback")[:6]:
            print(f"{stat.size_diff / 1024:+.1f} KiB, {stat.count_diff:+d} blocks")
            for line in stat.traceback.format()[-16:]:
                print("   ", line)


def _add_finished(rows: int, tag: str) -> None:
    from tasks.models import ExecutionTask

    now = timezone_now()
    ExecutionTask.objects.bulk_create(
        (
            ExecutionTask(external_id=f"ind-{tag}-{k}", task_type=f"type-{k % 7}", ai_model=f"model-{k % 5}",
                          status="succeeded", source="api", created_at=now, started_at=now, finished_at=now,
                          duration_ms=k % 20_000, cost_micros=k, rollup_pending=False)
            for k in range(rows)
        ),
        batch_size=5000,
    )  # fmt: skip


def timezone_now():
    from django.utils import timezone

    return timezone.now()


def indicators(rows: int, steps: int) -> None:
    import subprocess
    from datetime import timedelta

    import django_rq
    from django.conf import settings
    from django.utils.module_loading import import_string
    from rq import Queue

    from indicators.jobs import indicators_tick
    from tasks.models import ExecutionTask

    queue = Queue("rqmem-indicators", connection=django_rq.get_connection("default"))
    queue.empty()
    worker = import_string(settings.RQ["WORKER_CLASS"])([queue], connection=queue.connection)

    def tick(label: str) -> None:
        began = time.monotonic()
        queue.enqueue(indicators_tick)
        worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
        day = ExecutionTask.objects.filter(finished_at__gte=timezone_now() - timedelta(hours=24)).count()
        took = time.monotonic() - began
        print(f"{label}: {day} tasks finished in the last 24 h, rss {rss_kib() / 1024:.1f} MiB ({took:.1f} s)")

    print(f"start: rss {rss_kib() / 1024:.1f} MiB")
    tick("tick")
    tick("tick")
    for step in range(steps):
        code = f"from bench import rqmem; rqmem._add_finished({rows}, '{os.getpid()}-{step}')"
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
        tick(f"+{rows} tick")
        tick(f"+{rows} tick")
    print(f"failed jobs: {queue.failed_job_registry.count}")


if __name__ == "__main__":
    args = sys.argv[1:]
    opts = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
    if args and args[0] == "setup":
        setup()
    elif args and args[0] == "indicators":
        indicators(int(opts.get("rows", 30_000)), int(opts.get("steps", 3)))
    else:
        run(
            int(opts.get("jobs", 10_000)),
            "--trace" in args,
            [int(s) for s in opts.get("snap", "1000,5000,10000").split(",")],
            opts.get("queue", "default"),
        )
