"""Soak: a mixed load at about half the measured capacity, for minutes, watching
latency drift, errors and memory growth.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/12 \\
        .venv/bin/python -m bench soak [--minutes=20] [--clients=16] [--workers=N] [--rate=R] [--db=NAME] [--keep]

Creates its own database (fsar_bench_soak, or --db; the default policy, three committee
members, an API key with every scope, open invoices for the webhooks), starts
gunicorn (sync workers, DEBUG off) and one `rqworker` at nice 10 (as
docs/deployment.md runs them). Then:

1. capacity: the mix below flat out for 10 s with --clients closed-loop clients, then
   the drain of the jobs it queued; the capacity is the machine's cores over the CPU
   per request all of it cost (FSAR's processes and the client). The flat-out rate
   alone overstates it: the rqworker, at nice 10, does little while gunicorn is
   saturated, and the flat-out phase leaves its jobs behind;
2. the soak: the same mix at half that rate (or --rate requests/s), open loop
   (latency counted from when each request was due), for --minutes.

The mix, per 20 requests: 8 registrations (`POST /api/v1/tasks`, every tenth of a
held model), 3 start + finish pairs of tasks registered earlier (6 requests), 1
report (`POST /api/v1/proposals`, every fifth held), 1 vote through the web (a
committee member's session posting the case page's vote form), 3 Stripe webhooks
(`invoice.paid`, signed), 1 metrics read (`GET /api/v1/metrics/tasks?group_by=ai_model`, the last 7 days).

The setup (migrations, 60,000 invoices) is written out with a CHECKPOINT before the
load starts, and the soak itself starts once the worker has worked off what the
capacity phase queued, after another CHECKPOINT: minute one is the yardstick, and the
first timed checkpoint must not sync the setup's files during the soak. The soak's
own checkpoints happen in it as they would in production, and so does autovacuum: when
the server runs with it off (CI machines do), the soak turns it on for its run and
resets it afterwards (bench/common.py autovacuum_on). Each minute's line
also gives p50/p99 per kind of request, the checkpoints begun and the time spent in
their syncs, autovacuums at work, the job queue and the metrics rollups' backlog.

Reports p50/p99 per minute and the 5xx count, and the resident memory (RSS) of
each gunicorn worker and of the rqworker at the start and at the end (and after each
minute, as a series). Goals: no 5xx, every minute's p99 within 1.5× of minute one's, RSS
growth under 10%.
Exits 1 when a goal is missed. Drops the database at the end unless --keep.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os
import platform
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import stripe

from bench.common import (
    ROOT,
    WORKER_NICE,
    autovacuum_on,
    bench_connection,
    checkpoint_stats,
    force_checkpoint,
    free_port,
    log,
    options,
    own_database,
    percentile,
    pg_version,
    postgres_url_or_none,
    rqworker,
    settle,
    started_processes,
    wait_for,
)
from bench.load import GROUPS, cpu_per_request, cpu_snapshot

BENCH_DB = "fsar_bench_soak"
SECRET = "whsec_bench_soak"
PASSWORD = "soak-committee-password-1"
MEMBERS = ["soak-alice", "soak-bob", "soak-carol"]
RELOGIN_SECONDS = {member: 480 + 120 * k for k, member in enumerate(MEMBERS)}  # under the 15 minutes
MODELS = ["gpt-5.1", "claude-sonnet-5", "llama-4-70b"]
TASK_TYPES = ["implement_idea", "idea_implementation", "self_improvement"]
# One cycle of the mix: 20 requests.
MIX = ["register"] * 8 + ["start_finish"] * 3 + ["report", "vote", "metrics"] + ["webhook"] * 3


def main(argv: list[str]) -> int:
    opts = options(argv)
    minutes = float(opts.get("minutes", 20))
    clients = int(opts.get("clients", 16))
    workers = int(opts.get("workers", (os.cpu_count() or 2) * 2 + 1))
    rate = float(opts["rate"]) if "rate" in opts else None
    url = postgres_url_or_none("soak", needs_redis=True)
    if url is None:
        return 2
    # A TERM stops the soak like ^C: the servers it started are stopped (started_processes).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    invoices = int(minutes * 60 * 60) + 5_000  # enough for 3/20 of up to 400 req/s
    name = opts.get("db", BENCH_DB)
    with own_database(url, name, keep="--keep" in argv) as bench_url, started_processes() as processes:
        env = {
            **os.environ,
            "DATABASE_URL": bench_url,
            "DJANGO_SETTINGS_MODULE": "fsar.settings",
            "DEBUG": "0",
            "SECRET_KEY": "bench-soak-not-a-real-secret-0123456789",
            "AUDIT_CHAIN_KEY": "bench-soak-audit-chain-key-not-a-real-one-0123456789",
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",  # plain HTTP on the loopback
            "SECURE_COOKIES": "0",
            "LOG_LEVEL": "WARNING",
            "API_RATE_LIMIT_REQUESTS": "0",
            "DB_CONN_MAX_AGE": "600",
            "STRIPE_WEBHOOK_SECRET": SECRET,
            "MODELS_UNREGISTERED": "allow",
            "PYTHONWARNINGS": "ignore::UserWarning",
        }
        log(f"setting up {name} ({invoices} open invoices) …")
        secret = setup_database(env, invoices)
        log(f"a CHECKPOINT of what the setup wrote took {force_checkpoint(env):.1f} s")
        port = free_port()
        gunicorn = [sys.executable, "-m", "gunicorn", "fsar.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers)]
        master = subprocess.Popen([*gunicorn, "--log-level", "warning", "--no-control-socket"], cwd=ROOT, env=env)
        processes.append(master)
        worker = rqworker(env)
        processes.append(worker)
        # The periodic jobs, as docs/deployment.md runs them (exactly one `cron`): among
        # them the drain that folds finished tasks into the metrics rollups every minute;
        # without it the metrics read's unfolded tail would grow all through the soak.
        processes.append(subprocess.Popen([sys.executable, "manage.py", "cron"], cwd=ROOT, env=env,
                                          stdout=subprocess.DEVNULL))  # fmt: skip
        wait_for(port)
        soak = Soak(port, env, secret, clients)
        with autovacuum_on(env) as autovacuum:
            log(autovacuum)
            return asyncio.run(soak.run(minutes=minutes, rate=rate, master=master, worker=worker, workers=workers))


SETUP = """
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("collectstatic", interactive=False, verbosity=0)  # DEBUG off: pages need the static manifest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from billing.models import Customer, Invoice
from core.roles import COMMITTEE
from reviews.models import PolicyRule
from tasks.services import api_key_create
PolicyRule.objects.create(name="soak-held", priority=1, ai_model_glob="held-*", action="hold")
User = get_user_model()
committee = Group.objects.get_or_create(name=COMMITTEE)[0]
for name in {members!r}:
    User.objects.create_user(username=name, password={password!r}).groups.add(committee)
customer = Customer.objects.create(customer_ref="cust_soak", name="Soak Co", stripe_customer_id="cus_soak")
Invoice.objects.bulk_create(
    (Invoice(customer=customer, period=f"{{2000 + i // 12:04d}}-{{i % 12 + 1:02d}}", currency="usd", status="open",
             total_minor=1000, amount_remaining_minor=1000, stripe_invoice_id=f"in_soak_{{i}}")
     for i in range({invoices})),
    batch_size=5000,
)
agent = User.objects.create_user(username="soak-agent")
_, secret = api_key_create(name="soak", owner=agent, scopes=["tasks", "reports", "read"])
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("VACUUM ANALYZE")
print(secret)
"""


def setup_database(env: dict, invoices: int) -> str:
    assert invoices <= 12 * 7999  # one customer: periods must differ
    script = SETUP.format(members=MEMBERS, password=PASSWORD, invoices=invoices)
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise RuntimeError(f"setting up the database failed:\n{out.stderr[-3000:]}")
    return out.stdout.strip().splitlines()[-1]


def sustained_capacity(before: dict | None, after: dict | None, requests: int) -> float | None:
    """Requests a second the machine's cores sustain at the CPU per request measured
    between two snapshots (the client, gunicorn, PostgreSQL and the RQ worker; not
    whatever else runs on the machine)."""
    cpu = cpu_per_request(before, after, requests)
    if cpu is None:
        return None
    ours = sum(cpu[g] for g in GROUPS if g != "other")
    return (os.cpu_count() or 1) * 1000 / ours if ours else None


def host_probe() -> float:
    """CPU ms this thread needs for a fixed piece of pure-Python work. Our own load is the
    same every minute, so when this rises the host is giving each of our cycles less (a
    neighbour on the same cores, a lower clock), and every request slows with it."""
    began = time.thread_time()
    total = 0
    for i in range(300_000):
        total += i * i % 7
    return (time.thread_time() - began) * 1000


def rss_kib(pid: int) -> int:
    """Resident memory of `pid` in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


async def http(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    """One request on a new connection: (status, headers as a list of (name, value), body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    writer.write(head.encode() + body)
    await writer.drain()
    data = await reader.read()
    writer.close()
    if not data.startswith(b"HTTP/"):
        return 0, [], b""
    raw_head, _, rest = data.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    parsed = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:] if ":" in line]
    return status, parsed, rest


def cookies_from(parsed_headers: list) -> dict[str, str]:
    found = {}
    for name, value in parsed_headers:
        if name.lower() == "set-cookie":
            key, _, rest = value.partition("=")
            found[key] = rest.split(";", 1)[0]
    return found


class Soak:
    def __init__(self, port: int, env: dict, secret: str, clients: int) -> None:
        self.port = port
        self.env = env
        self.clients = clients
        self.api = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        self.counter = itertools.count()
        self.mix = itertools.count()
        self.invoice = itertools.count()
        self.registered: collections.deque[int] = collections.deque(maxlen=5000)
        self.sessions: dict[str, dict[str, str]] = {}
        self.cpu: dict | None = None
        self.cpu_by_minute: dict[int, tuple[float, float, float]] = {}
        self.login_locks = collections.defaultdict(asyncio.Lock)
        self.open_cases: list[tuple[int, int]] = []
        self.run_id = int(time.time())

    # The requests of the mix; each returns the statuses it got.

    async def register(self) -> list[int]:
        i = next(self.counter)
        body = {
            "external_id": f"soak-{self.run_id}-{i}",
            "task_type": TASK_TYPES[i % 3],
            "ai_model": "held-model" if i % 10 == 0 else MODELS[i % 3],
            "customer": f"cust-{i % 7}",
        }
        status, _, answer = await http(self.port, "POST", "/api/v1/tasks", json.dumps(body).encode(), self.api)
        if status == 201 and i % 10:
            self.registered.append(json.loads(answer)["id"])
        return [status]

    async def start_finish(self) -> list[int]:
        if not self.registered:
            return await self.register()
        task_id = self.registered.popleft()
        started, _, _ = await http(self.port, "POST", f"/api/v1/tasks/{task_id}/start", b"{}", self.api)
        outcome = {"outcome": "failed" if task_id % 10 == 0 else "succeeded", "cost_micros": 1200, "tokens": 900}
        finished, _, _ = await http(
            self.port, "POST", f"/api/v1/tasks/{task_id}/finish", json.dumps(outcome).encode(), self.api
        )
        return [started, finished]

    async def report(self) -> list[int]:
        i = next(self.counter)
        severity = 30 if i % 5 == 0 else 6
        body = (
            f"# FSAR Proposal Report\n- id: soak-report-{self.run_id}-{i}\n- timestamp: 2026-11-30T10:00:00Z\n"
            f"- severity: {severity}\n- block_execution: false\n- proposal:\n\nimplement_idea: soak proposal {i}\n\n"
            "## Risks\n- slow failure\n\n## Mitigations\n- audits\n"
        ).encode()
        headers = {**self.api, "Content-Type": "text/markdown"}
        status, _, _ = await http(self.port, "POST", "/api/v1/proposals", body, headers)
        return [status]

    async def login(self, member: str) -> dict[str, str]:
        status, headers, _ = await http(self.port, "GET", "/login/")
        cookies = cookies_from(headers)
        if "csrftoken" not in cookies:
            raise RuntimeError(f"GET /login/ answered {status} without a CSRF cookie: {headers}")
        form = urlencode({"username": member, "password": PASSWORD, "csrfmiddlewaretoken": cookies["csrftoken"]})
        status, headers, _ = await http(
            self.port, "POST", "/login/", form.encode(),
            {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={cookies['csrftoken']}"},
        )  # fmt: skip
        if status != 302:
            raise RuntimeError(f"login of {member} answered {status}")
        session = {**cookies, **cookies_from(headers), "at": str(time.time())}
        self.sessions[member] = session
        return session

    async def vote(self) -> list[int]:
        if not self.open_cases:
            return await self.register()
        member = random.choice(MEMBERS)
        # Votes need a login within 15 minutes: a member logs in again after 8, 10 or 12
        # (by member), once. The lock keeps the member's concurrent votes from each logging in
        # (a herd of password hashes, ~0.3 s of CPU each, stalled every request for a second
        # at minute 10); the staggering keeps the three members, who first logged in together
        # when the soak began, from logging in again in the same second, as people don't
        # (all three at minute 10 made it 1.51x minute one's p99, 2026-12-01).
        async with self.login_locks[member]:
            session = self.sessions.get(member)
            if session is None or time.time() - float(session["at"]) > RELOGIN_SECONDS[member]:
                session = await self.login(member)
        case_id, version = random.choice(self.open_cases)
        form = urlencode({
            "choice": random.choice(["approve", "reject", "request_changes"]),
            "rationale": "The soak benchmark votes with a rationale of enough words.",
            "version": version,
            "csrfmiddlewaretoken": session["csrftoken"],
        })  # fmt: skip
        cookie = f"csrftoken={session['csrftoken']}; sessionid={session['sessionid']}"
        status, _, _ = await http(
            self.port, "POST", f"/reviews/cases/{case_id}/vote/", form.encode(),
            {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
        )  # fmt: skip
        return [status]

    async def webhook(self) -> list[int]:
        n = next(self.invoice)
        event = {
            "id": f"evt_soak_{self.run_id}_{n}", "object": "event", "type": "invoice.paid",
            "created": 1_800_000_000 + n, "api_version": "2026-10-28.endive", "livemode": False,
            "data": {"object": {"id": f"in_soak_{n}", "object": "invoice", "status": "paid", "total": 1000,
                                "amount_paid": 1000, "amount_remaining": 0, "payment_intent": f"pi_soak_{n}"}},
        }  # fmt: skip
        body = json.dumps(event)
        signature = stripe.WebhookSignature.generate_signature_header(body, SECRET)
        status, _, _ = await http(
            self.port, "POST", "/billing/stripe/webhook/", body.encode(),
            {"Stripe-Signature": signature, "Content-Type": "application/json"},
        )  # fmt: skip
        return [status]

    async def metrics(self) -> list[int]:
        status, _, _ = await http(self.port, "GET", "/api/v1/metrics/tasks?group_by=ai_model", headers=self.api)
        return [status]

    # Keeping the votes' cases fresh: open cases (else recent ones) and their versions, from the database.

    async def refresh_cases(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with bench_connection(self.env) as conn:
                rows = conn.execute(
                    "SELECT id, version FROM reviews_case WHERE status = 'open' ORDER BY id DESC LIMIT 200"
                ).fetchall()
                if not rows:
                    # Held tasks share their case and few reports are held: when every open case
                    # is decided, members still post the form on recent cases (a refused vote:
                    # the same session, CSRF, form and service path, answered with a message).
                    rows = conn.execute("SELECT id, version FROM reviews_case ORDER BY id DESC LIMIT 50").fetchall()
            self.open_cases = [(r[0], r[1]) for r in rows]
            try:
                await asyncio.wait_for(stop.wait(), timeout=2)
            except TimeoutError:
                pass

    # Load.

    def next_request(self):
        return getattr(self, MIX[next(self.mix) % len(MIX)])

    async def flat_out(self, seconds: float) -> float:
        done = 0
        deadline = time.perf_counter() + seconds

        slowest: dict[str, float] = collections.defaultdict(float)

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                request = self.next_request()
                began = time.perf_counter()
                answered = len(await request())  # not `done += len(await …)`: that reads `done` before awaiting
                done += answered
                slowest[request.__name__] = max(slowest[request.__name__], time.perf_counter() - began)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(self.clients)))
        elapsed = time.perf_counter() - started
        log(
            f"flat out: {done} requests in {elapsed:.1f} s; slowest per kind (s): "
            + ", ".join(f"{k} {v:.2f}" for k, v in sorted(slowest.items()))
        )
        self.flat_out_requests = done
        return done / elapsed

    async def paced(self, seconds: float, rate: float, minutes: dict, on_minute) -> None:
        """Open loop at `rate` mix items/s; each item's latency counts from when it was due,
        and is filed under the minute it was due in. `on_minute(n)` is called as minute n ends."""
        total = int(seconds * rate)
        start = time.perf_counter() + 0.05
        senders = self.clients * 4  # open loop: enough senders that a slow answer delays no other request

        async def client(k: int) -> None:
            for i in range(k, total, senders):
                due = start + i / rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                request = self.next_request()
                statuses = await request()
                latency = (time.perf_counter() - due) * 1000
                minute = minutes[int((due - start) // 60)]
                minute["latencies"].append(latency)
                minute["kinds"][request.__name__].append(latency)
                for status in statuses:
                    minute["statuses"][status] += 1

        async def clock() -> None:
            for n in range(1, int(seconds // 60) + 1):
                await asyncio.sleep(max(0.0, start + n * 60 - time.perf_counter()))
                on_minute(n)

        ticking = asyncio.create_task(clock())
        await asyncio.gather(*(client(k) for k in range(senders)))
        await ticking  # the last minute ends (and is read) just after its last request is due

    def readings(self, n: int, requests: int) -> None:
        """What might make a later minute slower than the first, logged as minute n ends:
        the CPU each request cost that minute (by kind of process) and the machine's idle
        share, the host probe, the tables with the most dead rows, the oldest snapshot
        holding back vacuum, checkpoints so far, autovacuums running, the job queue.

        CPU per request that stays flat while latency grows points at the host or at
        waiting; CPU per request that grows points at our own work (bloat, a growing read)."""
        import redis

        now = cpu_snapshot()
        cpu = cpu_per_request(self.cpu, now, requests)
        self.cpu = now
        probe = host_probe()
        if cpu is not None:
            self.cpu_by_minute[n] = (sum(cpu[g] for g in GROUPS), cpu["idle"], probe)
            log(
                f"  minute {n} CPU ms per request: "
                + ", ".join(f"{g} {cpu[g]:.2f}" for g in GROUPS)
                + f"; idle {cpu['idle'] * 100:.0f}%, steal {cpu['steal'] * 100:.0f}%; host probe {probe:.1f} ms"
            )
        with bench_connection(self.env) as conn:
            tables = conn.execute(
                "SELECT relname, n_live_tup, n_dead_tup, autovacuum_count FROM pg_stat_user_tables "
                "ORDER BY n_dead_tup DESC LIMIT 5"
            ).fetchall()
            vacuuming = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'autovacuum:%'"
            vacuums = conn.execute(vacuuming).fetchone()[0]
            pending = conn.execute("SELECT count(*) FROM execution_tasks WHERE rollup_pending").fetchone()[0]
            # Vacuum cannot remove a row version a snapshot in this database may still see.
            horizon = conn.execute(
                "SELECT coalesce(max(age(backend_xmin)), 0), coalesce(max(now() - xact_start), interval '0') "
                "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        queued = redis.Redis.from_url(self.env["REDIS_URL"]).llen("rq:queue:default")
        begun, synced, segments = checkpoint_stats(self.env)
        began_before, synced_before, segments_before = self.checkpoints
        self.checkpoints = (begun, synced, segments)
        log(
            f"  after minute {n}: checkpoints begun {begun - began_before}, time in their syncs "
            f"{synced - synced_before:.0f} ms, WAL segments created {max(0, segments - segments_before)}, "
            f"autovacuums running {vacuums}, "
            f"jobs queued {queued}, rollup pending {pending}; oldest snapshot {horizon[0]} transactions old, "
            f"longest transaction {horizon[1].total_seconds():.1f} s; most dead rows: "
            + ", ".join(f"{t} {dead} dead/{live} live ({count} autovacuums)" for t, live, dead, count in tables)
        )

    def rss(self, master: subprocess.Popen, worker: subprocess.Popen) -> dict[str, int]:
        found = {f"gunicorn worker {pid}": rss_kib(pid) for pid in children(master.pid)}
        found[f"rqworker {worker.pid}"] = rss_kib(worker.pid)
        return found

    async def run(self, *, minutes: float, rate: float | None, master, worker, workers: int) -> int:
        stop = asyncio.Event()
        refresher = asyncio.create_task(self.refresh_cases(stop))
        log("warming up and measuring capacity (the mix flat out, 10 s) …")
        await self.flat_out(3)
        await asyncio.to_thread(settle, self.env, before="measuring")  # the warm-up's jobs are not counted
        cpu_before = cpu_snapshot()
        flat_out = await self.flat_out(10)
        # Minute one is the yardstick: it starts once the worker has worked off what the
        # flat-out phase queued (held reports' cases, Stripe events), as gate's paced phases do.
        await asyncio.to_thread(settle, self.env)
        # The capacity is what the machine sustains: the flat-out rate leaves the jobs its
        # requests queued for later (the rqworker runs at nice 10 and gets little CPU while
        # gunicorn is saturated), so it overstates it. Counted instead: the machine's cores
        # over the CPU each request costs FSAR's processes and the client, over the flat-out
        # phase and the drain of what it queued.
        capacity = sustained_capacity(cpu_before, cpu_snapshot(), self.flat_out_requests) or flat_out
        log(f"flat out {flat_out:.0f} req/s, leaving jobs behind; sustained capacity {capacity:.0f} req/s")
        rate = rate or capacity / 2
        # Items, not requests: start_finish is two requests. Pace items so that requests come at `rate`.
        per_item = sum(2 if kind == "start_finish" else 1 for kind in MIX) / len(MIX)
        item_rate = rate / per_item
        before = self.rss(master, worker)
        self.checkpoints = checkpoint_stats(self.env)
        load_before = os.getloadavg()
        log(f"soaking at {rate:.0f} req/s for {minutes:g} min …")
        self.cpu = cpu_snapshot()
        by_minute: dict = collections.defaultdict(
            lambda: {"latencies": [], "statuses": collections.Counter(), "kinds": collections.defaultdict(list)}
        )
        snapshots: dict[int, dict[str, int]] = {}
        readings: list[asyncio.Future] = []

        def on_minute(n: int) -> None:
            # Every minute, so that a step (a periodic job's peak kept by the allocator: the
            # quarter-hourly indicators_tick) shows as one, apart from a steady leak.
            snapshots[n] = self.rss(master, worker)
            data = by_minute[n - 1]
            latencies = sorted(data["latencies"])
            log(
                f"minute {n}: {len(latencies)} items, p50 {percentile(latencies, 50):.1f} ms, "
                f"p99 {percentile(latencies, 99):.1f} ms, statuses {dict(sorted(data['statuses'].items()))}"
            )
            log(
                "  per kind p50/p99 ms: "
                + ", ".join(
                    f"{kind} {percentile(sorted(v), 50):.1f}/{percentile(sorted(v), 99):.1f}"
                    for kind, v in sorted(data["kinds"].items())
                )
            )
            readings.append(
                asyncio.get_running_loop().run_in_executor(None, self.readings, n, sum(data["statuses"].values()))
            )

        await self.paced(minutes * 60, item_rate, by_minute, on_minute)
        await asyncio.gather(*readings)  # the last minute's readings, before the table
        after = self.rss(master, worker)
        one = snapshots.get(1, before)
        stop.set()
        await refresher

        machine = f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores"
        log(f"machine: {machine}, Python {platform.python_version()}")
        log(
            f"gunicorn {workers} sync workers, 1 rqworker at nice {WORKER_NICE}, PostgreSQL {pg_version(self.env)}; "
            f"load average at start {load_before[0]:.2f}, at end {os.getloadavg()[0]:.2f}"
        )
        log("| minute | requests | p50 ms | p99 ms | 5xx | statuses | CPU ms/request | idle | host probe ms |")
        log("|---|---|---|---|---|---|---|---|---|")
        first_p99 = None
        worst_ratio, errors = 0.0, 0
        for minute in sorted(by_minute):
            data = by_minute[minute]
            latencies = sorted(data["latencies"])
            if not latencies:
                continue
            p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
            first_p99 = first_p99 or p99
            worst_ratio = max(worst_ratio, p99 / first_p99)
            fivexx = sum(n for status, n in data["statuses"].items() if status >= 500 or status == 0)
            errors += fivexx
            cpu, idle, probe = self.cpu_by_minute.get(minute + 1, (float("nan"),) * 3)
            log(
                f"| {minute + 1} | {sum(data['statuses'].values())} | {p50:.1f} | {p99:.1f} | {fivexx} | "
                f"{dict(sorted(data['statuses'].items()))} | {cpu:.2f} | {idle * 100:.0f}% | {probe:.1f} |"
            )
        # Growth is judged from the end of minute one: a worker's first jobs and pages import
        # and cache what it needs once (the rqworker grows by a third in its first minute).
        log("| process | RSS at start (MiB) | after minute 1 | at end | growth from start | from minute 1 |")
        log("|---|---|---|---|---|---|")
        worst_growth = 0.0
        for name, start_kib in before.items():
            one_kib, end_kib = one.get(name, 0), after.get(name, 0)
            if not end_kib:  # gunicorn replaced it (max_requests, gunicorn.conf.py)
                log(f"| {name} | {start_kib / 1024:.1f} | {one_kib / 1024:.1f} | replaced | — | — |")
                continue
            growth = (end_kib - one_kib) / one_kib if one_kib else float("nan")
            total = (end_kib - start_kib) / start_kib if start_kib else float("nan")
            if one_kib:
                worst_growth = max(worst_growth, growth)
            log(
                f"| {name} | {start_kib / 1024:.1f} | {one_kib / 1024:.1f} | {end_kib / 1024:.1f} | "
                f"{total * 100:+.1f}% | {growth * 100:+.1f}% |"
            )
        # A replacement worker is judged against the largest original worker after minute one.
        first_workers = [kib for name, kib in one.items() if name.startswith("gunicorn") and kib]
        for name in sorted(after.keys() - before.keys()):
            growth = (after[name] - max(first_workers)) / max(first_workers) if first_workers else float("nan")
            if first_workers:
                worst_growth = max(worst_growth, growth)
            log(f"| {name} (started during the soak) | — | — | {after[name] / 1024:.1f} | — | {growth * 100:+.1f}% |")
        for name in before:
            series = [snapshots[n].get(name, 0) / 1024 for n in sorted(snapshots)]
            log(f"{name} RSS after each minute (MiB): " + ", ".join(f"{mib:.1f}" for mib in series))
        log(
            f"5xx (and dropped connections): {errors} (goal 0); worst minute's p99 / minute one's: {worst_ratio:.2f} "
            f"(goal ≤ 1.5); worst RSS growth after minute one {worst_growth * 100:.1f}% (goal < 10%)"
        )
        return 0 if errors == 0 and worst_ratio <= 1.5 and worst_growth < 0.10 else 1
