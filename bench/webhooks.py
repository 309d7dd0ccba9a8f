"""Stripe webhook intake under gunicorn, PostgreSQL and RQ workers.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/13 \\
        .venv/bin/python -m bench webhooks [--seconds=N] [--clients=16] [--workers=N] [--rqworkers=2] \\
        [--worker-nice=10] [--rate=300] [--keep]

Creates its own database (fsar_bench_webhooks) with one customer and enough open
invoices, starts gunicorn (sync workers, DEBUG off) with one extra URL,
`POST /billing/stripe/webhook/bench-noop` (reads the body and answers `{"received": true}`: the
baseline), and `rqworker`s on REDIS_URL at CPU priority nice 10 (as
docs/deployment.md runs them; --worker-nice=0 for the web processes' own). Then it sends signed `invoice.paid`
events to `POST /billing/stripe/webhook/`, each for its own invoice, 10% of them
re-deliveries of an event already sent:

1. at a steady offered rate (--rate events/s, the goal's 300 by default; 16
   clients, open loop, latency counted from when each event was due);
2. flat out (N closed-loop clients), alternating with the baseline so that noise
   hits both alike.

Reports acknowledgements/s and p50/p99 acknowledgement time for both, waits for
the workers to drain, and checks that nothing was lost or applied twice: every
acknowledged event is stored once and processed, every invoice it names is paid
with exactly one payment. Drops the database at the end unless --keep.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import platform
import random
import subprocess
import sys
import time

import stripe

from bench.common import (
    ROOT,
    WORKER_NICE,
    bench_connection,
    bench_db,
    free_port,
    log,
    options,
    own_database,
    pg_version,
    postgres_url_or_none,
    rqworker,
    started_processes,
    wait_for,
)
from bench.load import Request, flat_out, merged, paced

BENCH_DB = bench_db("webhooks")
SECRET = "whsec_bench_webhooks"
INVOICES = 40_000


def main(argv: list[str]) -> int:
    opts = options(argv)
    seconds = float(opts.get("seconds", 10))
    clients = int(opts.get("clients", 16))
    workers = int(opts.get("workers", (os.cpu_count() or 2) * 2 + 1))
    rqworkers = int(opts.get("rqworkers", 2))
    rate = float(opts.get("rate", 300))
    url = postgres_url_or_none("webhooks", needs_redis=True)
    if url is None:
        return 2
    with own_database(url, BENCH_DB, keep="--keep" in argv) as bench_url, started_processes() as processes:
        env = {
            **os.environ,
            "DATABASE_URL": bench_url,
            "DJANGO_SETTINGS_MODULE": "bench.webhook_settings",
            "DEBUG": "0",
            "SECRET_KEY": "bench-webhooks-not-a-real-secret-0123456789",
            "AUDIT_CHAIN_KEY": "bench-webhooks-audit-chain-key-not-a-real-one-0123456789",
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",  # plain HTTP on the loopback
            "LOG_LEVEL": "WARNING",
            "DB_CONN_MAX_AGE": "600",
            "STRIPE_WEBHOOK_SECRET": SECRET,
            "PYTHONWARNINGS": "ignore::UserWarning",
        }
        return run(
            env,
            processes,
            seconds=seconds,
            clients=clients,
            workers=workers,
            rqworkers=rqworkers,
            rate=rate,
            worker_nice=int(opts.get("worker-nice", WORKER_NICE)),
        )


def pg_activity(env: dict) -> dict[str, int]:
    """PostgreSQL's background work so far (checkpoints; autovacuum and autoanalyze runs
    on this database's tables), to tell whether it ran during a phase."""
    with bench_connection(env) as conn:
        checkpoints = conn.execute("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter").fetchone()[0]
        vacuums, analyzes = conn.execute(
            "SELECT coalesce(sum(autovacuum_count), 0), coalesce(sum(autoanalyze_count), 0) FROM pg_stat_user_tables"
        ).fetchone()
    return {"checkpoints": int(checkpoints), "autovacuums": int(vacuums), "autoanalyzes": int(analyzes)}


def django_script(env: dict, script: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


SETUP = f"""
from django.core.management import call_command
call_command("migrate", verbosity=0)
from billing.models import Customer, Invoice
customer = Customer.objects.create(customer_ref="cust_bench", name="Bench Co", stripe_customer_id="cus_bench")
Invoice.objects.bulk_create(
    [Invoice(customer=customer, period=f"{{2000 + i // 12:04d}}-{{i % 12 + 1:02d}}", currency="usd", status="open",
             total_minor=1000, amount_remaining_minor=1000, stripe_invoice_id=f"in_bench_{{i}}")
     for i in range({INVOICES})],
    batch_size=5000,
)
# Settle what was just loaded, as a database in service would be: otherwise autovacuum
# picks the fresh rows up during the measurement.
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("VACUUM ANALYZE")
"""

# Invoices per customer per period are unique: one customer, so periods must differ.
assert INVOICES <= 12 * 7999

CHECK = """
import json
from django.db.models import Count
from billing.models import Invoice, Payment, StripeEvent
sent = json.loads(open(SENT_FILE).read())
# First: events only ever leave `pending`, so 0 here means the rest below is final.
pending = StripeEvent.objects.filter(status="pending").count()
events = StripeEvent.objects.filter(stripe_id__in=sent)
by_status = dict(events.values_list("status").annotate(n=Count("id")))
stored = events.count()
applied = Invoice.objects.filter(stripe_invoice_id__in=[f"in_bench_{s.split('_')[-1]}" for s in sent])
paid = applied.filter(status="paid", amount_paid_minor=1000, amount_remaining_minor=0).count()
payments = Payment.objects.filter(invoice__in=applied)
doubled = payments.values("invoice_id").annotate(n=Count("id")).filter(n__gt=1).count()
print(json.dumps({"stored": stored, "by_status": by_status, "paid": paid, "payments": payments.count(),
                  "doubled": doubled, "pending": pending}))
"""


def run(
    env: dict,
    processes: list,
    *,
    seconds: float,
    clients: int,
    workers: int,
    rqworkers: int,
    rate: float,
    worker_nice: int,
) -> int:
    log(f"setting up {BENCH_DB} ({INVOICES} open invoices) …")
    django_script(env, SETUP)
    port = free_port()
    gunicorn = [sys.executable, "-m", "gunicorn", "fsar.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers)]
    processes.append(subprocess.Popen([*gunicorn, "--log-level", "warning"], cwd=ROOT, env=env))
    for _ in range(rqworkers):
        processes.append(rqworker(env, worker_nice))
    wait_for(port)
    rng = random.Random(7)
    numbers = itertools.count()
    sent: dict[str, bytes] = {}  # event id → body
    acknowledged: set[str] = set()
    duplicates = {"sent": 0}

    def noop() -> Request:
        body = json.dumps({"id": "evt_noop", "type": "noop", "data": {"object": {}}}).encode()
        return Request("POST", "/billing/stripe/webhook/bench-noop", body, {"Content-Type": "application/json"})

    def webhook():
        if sent and rng.random() < 0.10:
            event_id = f"evt_bench_{rng.randrange(len(sent))}"
            body = sent[event_id]
            duplicates["sent"] += 1
        else:
            i = next(numbers)
            if i >= INVOICES:
                raise RuntimeError("ran out of invoices: raise INVOICES")
            event_id = f"evt_bench_{i}"
            obj = {
                "id": f"in_bench_{i}",
                "object": "invoice",
                "status": "paid",
                "total": 1000,
                "amount_paid": 1000,
                "amount_remaining": 0,
                "payments": {
                    "object": "list",
                    "data": [{"id": f"inpay_{i}", "payment": {"type": "payment_intent", "payment_intent": f"pi_{i}"}}],
                },
            }
            body = json.dumps(
                {
                    "id": event_id,
                    "object": "event",
                    "type": "invoice.paid",
                    "created": int(time.time()),
                    "api_version": "2026-10-28.endive",
                    "data": {"object": obj},
                }
            ).encode()
            sent[event_id] = body
        header = stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET)

        def on_status(status: int, event_id=event_id) -> None:
            if status == 200:
                acknowledged.add(event_id)

        headers = {"Content-Type": "application/json", "Stripe-Signature": header}
        return Request("POST", "/billing/stripe/webhook/", body, headers, on_status)

    async def phases() -> dict:
        await flat_out(port, clients, 2, noop)  # warm-up
        await paced(port, clients, 2, rate, webhook)
        # The goal's rate, offered steadily from a drained start: latency while sustaining it.
        before = pg_activity(env)
        results = {"paced": [await paced(port, clients, seconds, rate, webhook)], "noop": [], "webhook": []}
        results["paced_pg"] = {k: v - before[k] for k, v in pg_activity(env).items()}
        for _ in range(2):
            results["noop"].append(await flat_out(port, clients, seconds / 2, noop))
            results["webhook"].append(await flat_out(port, clients, seconds / 2, webhook))
        return results

    results = asyncio.run(phases())

    noop_r, hook_r, paced_r = merged(results["noop"]), merged(results["webhook"]), merged(results["paced"])
    paced_pg = results["paced_pg"]
    # Let the workers drain the queue, then check every acknowledged event.
    sent_file = f"/tmp/{BENCH_DB}-sent.json"
    with open(sent_file, "w") as f:
        json.dump(sorted(acknowledged), f)
    check = CHECK.replace("SENT_FILE", repr(sent_file))
    drain_started = time.perf_counter()
    while True:
        outcome = json.loads(django_script(env, check).splitlines()[-1])
        if outcome["pending"] == 0 or time.perf_counter() - drain_started > 120:
            break
        time.sleep(1)
    drained = time.perf_counter() - drain_started
    log(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    log(
        f"gunicorn {workers} sync workers, {rqworkers} rqworkers at nice {worker_nice}, {clients} concurrent clients, "
        f"{seconds:.0f} s per endpoint, PostgreSQL {pg_version(env)}"
    )
    log("| endpoint | requests | acks/s | p50 ms | p99 ms | statuses |")
    log("|---|---|---|---|---|---|")
    for name, r in (
        ("POST /billing/stripe/webhook/bench-noop (baseline)", noop_r),
        ("POST /billing/stripe/webhook/ (signed invoice.paid, 10% duplicates)", hook_r),
        (f"the same at {rate:.0f} events/s offered", paced_r),
    ):
        log(
            f"| {name} | {r['requests']} | {r['per_second']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | "
            f"{dict(sorted(r['statuses'].items()))} |"
        )
    log(
        f"webhook/noop throughput ratio: {hook_r['per_second'] / noop_r['per_second']:.2f}; "
        f"webhook {hook_r['per_second']:.0f} acks/s flat out (goal ≥ 300), p99 {hook_r['p99']:.1f} ms; "
        f"at {rate:.0f} events/s offered p99 {paced_r['p99']:.1f} ms (goal ≤ 50 ms); flat out, {clients} clients "
        f"wait {clients / hook_r['per_second'] * 1000:.1f} ms on average (Little's law: clients / throughput)"
    )
    log(
        f"during the {rate:.0f}/s phase PostgreSQL ran {paced_pg['checkpoints']} checkpoint(s), "
        f"{paced_pg['autovacuums']} autovacuum(s) and {paced_pg['autoanalyzes']} autoanalyze(s)"
    )
    unique = len(acknowledged)
    lost = unique - outcome["stored"]
    log(
        f"after the run (workers drained in {drained:.1f} s): {unique} distinct events acknowledged "
        f"({duplicates['sent']} re-deliveries sent), {outcome['stored']} stored {outcome['by_status']}, "
        f"{outcome['paid']} invoices paid, {outcome['payments']} payments, {outcome['doubled']} invoices paid twice, "
        f"{lost} lost"
    )
    ok = (
        lost == 0
        and outcome["doubled"] == 0
        and outcome["paid"] == unique
        and outcome["payments"] == unique
        and outcome["by_status"] == {"processed": unique}
    )
    bad = {k: v for r in (noop_r, hook_r, paced_r) for k, v in r["statuses"].items() if k != 200}
    if bad:
        log(f"unexpected statuses: {bad}")
    log("integrity: " + ("OK, zero lost or double-applied events" if ok else "FAILED"))
    return 0 if ok and not bad else 1
