"""Faults injected for real: PostgreSQL connections terminated, Redis killed, an RQ
worker and a gunicorn worker SIGKILLed mid-flight. Each test runs the real
processes (gunicorn, `rqworker`, `manage.py cron`) on the test database, with a
private `redis-server` it starts and stops itself, and checks that nothing was
lost or applied twice.

PostgreSQL only (CI's PostgreSQL pass): it needs `pg_terminate_backend`, row locks
and real processes sharing the database. `redis-server` must be on PATH (CI
installs it). Ports: FSAR_FAULTS_REDIS_PORTS / FSAR_FAULTS_HTTP_PORTS ("6390-6399")
restrict the ports tried; by default the system picks free ones.

How each test was checked against the protection it tests (revert the
protection, run the test, see it fail, restore) is written in docs/testing.md.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import stripe

from fsar.testing import ROOT, live_database_url

pytestmark = [
    pytest.mark.postgres(reason="kills PostgreSQL connections, Redis and workers"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WEB_APP_NAME = "fsar-faults-web"
WEBHOOK_SECRET = "whsec_faults_test"
LOG_DIR = Path(os.environ.get("FSAR_TEST_SERVER_LOGS", "/tmp"))


# Processes and ports


def spare_port(env_name: str) -> int:
    """A port nothing listens on: from the range in `env_name` ("6390-6399") if set, else the system's pick."""
    span = os.environ.get(env_name, "")
    if not span:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    low, high = (int(p) for p in span.split("-"))
    for port in range(low, high + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {env_name}={span}")


def wait_listening(port: int, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited ({process.returncode}); see {log}:\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listened on {port} within {timeout} s; see {log}")


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc), children first."""
    found: list[int] = []
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return found
    for child in children:
        found += [child, *descendants(child)]
    return found


class Started:
    """A process this test started, in its own process group (so that SIGKILL takes
    a worker's forked work horse with it, as a machine's crash would); stopped by PID."""

    def __init__(self, name: str, command: list[str], env: dict) -> None:
        self.log = LOG_DIR / f"fsar-faults-{name}-{os.getpid()}-{time.monotonic_ns()}.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to it and every process it forked (an RQ work horse is in a process
        group of its own), as a machine's crash would: no handler, no cleanup."""
        if self.alive():
            for pid in [self.process.pid, *descendants(self.process.pid)]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.process.wait()

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


class PrivateRedis:
    """A redis-server of the test's own, on a spare port, without persistence (a
    restart comes back empty, the worst case)."""

    def __init__(self) -> None:
        self.port = spare_port("FSAR_FAULTS_REDIS_PORTS")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.server: Started | None = None
        self.start()

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.server = Started("redis", command, dict(os.environ))
        wait_listening(self.port, self.server.process, self.server.log)

    def kill(self) -> None:
        assert self.server is not None
        self.server.kill()

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel, nothing is answered."""
        assert self.server is not None
        os.kill(self.server.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.server is not None
        os.kill(self.server.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.server is not None and self.server.alive():
            os.kill(self.server.pid, signal.SIGCONT)
            self.server.stop()


def process_env(redis: PrivateRedis, **extra: str) -> dict:
    url = live_database_url()
    return {
        **os.environ,
        # The web processes name themselves, so that the test terminates their connections only.
        "DATABASE_URL": f"{url}?application_name={WEB_APP_NAME}",
        "REDIS_URL": redis.url,
        "DB_CONN_MAX_AGE": "600",  # persistent connections, as in production: the ones we terminate
        "DB_POOL_MAX_SIZE": "0",
        "LOG_LEVEL": "WARNING",
        "MODELS_UNREGISTERED": "allow",
        "API_RATE_LIMIT_REQUESTS": "0",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "REVIEWS_CALLBACK_ALLOWED_NETWORKS": "127.0.0.1/32",
        "PYTHONWARNINGS": "ignore",
        **extra,
    }


class Gunicorn(Started):
    """gunicorn (sync workers, as docs/deployment.md runs the API) on a spare port."""

    def __init__(self, env: dict, workers: int = 3) -> None:
        self.port = spare_port("FSAR_FAULTS_HTTP_PORTS")
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "gunicorn", "fsar.wsgi", "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(workers), "--log-level", "warning", "--no-control-socket", "--timeout", "60",
            # The project is imported once, in the master, and each worker is a fork of it: a worker
            # starts (and a killed one is replaced) in milliseconds, which keeps the file fast.
            "--preload",
        ]  # fmt: skip
        super().__init__("gunicorn", command, env)
        wait_listening(self.port, self.process, self.log)
        httpx.get(f"{self.url}/api/ready", timeout=30)  # every worker imported the project

    def worker_pids(self) -> list[int]:
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(p) for p in path.read_text().split()]


def rqworker(env: dict) -> Started:
    return Started("rqworker", [sys.executable, "manage.py", "rqworker", "default"], env)


class Supervised:
    """What docs/deployment.md asks of the process manager for `rqworker` (systemd's
    Restart=always): start it again a second after it exits. RQ's worker quits on a
    Redis error in the middle of a job; its restart is how it comes back."""

    def __init__(self, start) -> None:
        self.start = start
        self.current: Started = start()
        self.restarts = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.stopping.wait(0.2):
            if not self.current.alive():
                if self.stopping.wait(1.0):
                    return
                self.current = self.start()
                self.restarts += 1

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)
        self.current.stop()


def cron(env: dict) -> Started:
    return Started("cron", [sys.executable, "manage.py", "cron", "fsar.tests.fast_cron"], env)


@pytest.fixture
def started() -> Iterator[list]:
    """Everything a test starts, stopped (by PID) when it ends, whatever happened."""
    processes: list = []
    yield processes
    for process in reversed(processes):
        process.stop()


@pytest.fixture
def redis_server(started) -> PrivateRedis:
    server = PrivateRedis()
    started.append(server)
    return server


def eventually(check, *, timeout: float = 30, every: float = 0.1, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what or check}")
        time.sleep(every)


def admin_connection(autocommit: bool = True, dbname: str | None = None) -> psycopg.Connection:
    """A connection of the test's own to the test database (or `dbname`)."""
    from django.db import connection

    s = connection.settings_dict
    return psycopg.connect(
        host=s.get("HOST") or "127.0.0.1", port=s.get("PORT") or 5432, user=s.get("USER") or "postgres",
        password=s.get("PASSWORD") or None, dbname=dbname or s["NAME"], autocommit=autocommit,
    )  # fmt: skip


# The product's state


@pytest.fixture
def agent_secret(make_api_key) -> str:
    """An API key with every scope, the default policy, and a rule that holds `held-*` models."""
    from reviews import policy
    from reviews.defaults import install_default_rules
    from reviews.models import PolicyRule

    install_default_rules()
    PolicyRule.objects.create(name="faults-held", priority=1, ai_model_glob="held-*", action="hold")
    policy.clear_cache()
    return make_api_key()[1]


def registration(external_id: str, i: int, *, held_every: int = 5) -> dict:
    """Every `held_every`-th registration (i = 0, 5, 10 …) is of a held model; 0: none."""
    return {
        "external_id": external_id,
        "task_type": "implement_idea",
        "ai_model": "held-model" if held_every and i % held_every == 0 else "gpt-5.1",
        "customer": f"cust-{i % 3}",
    }


def assert_registered_once_each(external_ids: list[str], answers: dict[str, dict]) -> None:
    """Each id is one task with one creation history row; a held one has its case;
    each last answer says what is stored (id and decision)."""
    from reviews.models import Case
    from tasks.models import ExecutionTask

    tasks = {t.external_id: t for t in ExecutionTask.objects.filter(external_id__in=external_ids)}
    assert sorted(tasks) == sorted(external_ids)
    assert ExecutionTask.objects.filter(external_id__in=external_ids).count() == len(external_ids)
    created = ExecutionTask.history.filter(external_id__in=external_ids, history_type="+")
    per_id: dict[str, int] = {}
    for external_id in created.values_list("external_id", flat=True):
        per_id[external_id] = per_id.get(external_id, 0) + 1
    assert per_id == dict.fromkeys(external_ids, 1)
    for external_id, task in tasks.items():
        assert task.gate_decision in ("allow", "hold"), (external_id, task.gate_decision)
        if task.gate_decision == "hold":
            assert task.gate_case and Case.objects.filter(pk=int(task.gate_case)).exists(), external_id
        answer = answers[external_id]
        assert (answer["id"], answer["gate"]["decision"]) == (task.pk, task.gate_decision), external_id


# (a) PostgreSQL connections terminated


def test_database_connections_terminated_during_a_burst_lose_and_duplicate_nothing(started, redis_server, agent_secret):
    """200 registrations from 8 threads while the web processes' connections are
    terminated every 0.3 s, and for 1.5 s new connections are refused as well
    (ALLOW_CONNECTIONS false): every answer is 201/200 or 503 with Retry-After; after
    the 503s are retried each external_id is stored once with its history row, every
    held task has its case, and nothing answered during the outage was a decision.

    Protection: fsar/api.py's on_database_unavailable (without it: 500s) and the
    gate's GateUnavailable (without it: see docs/testing.md)."""
    from django.db import connection

    server = Gunicorn(process_env(redis_server), workers=3)
    started.append(server)
    database = connection.settings_dict["NAME"]
    headers = {"Authorization": f"Bearer {agent_secret}"}
    ids = [f"burst-{i}" for i in range(200)]
    answers: dict[str, dict] = {}
    seen: list[tuple[str, float, float, int, str | None]] = []  # id, sent, answered, status, Retry-After
    lock = threading.Lock()
    done = threading.Event()
    outage: dict[str, float] = {}
    errors: list[BaseException] = []

    def client(mine: list[int]) -> None:
        try:
            with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
                for i in mine:
                    while True:
                        sent = time.monotonic()
                        response = http.post("/api/v1/tasks", json=registration(ids[i], i))
                        with lock:
                            seen.append((ids[i], sent, time.monotonic(), response.status_code,
                                         response.headers.get("Retry-After")))  # fmt: skip
                        if response.status_code != 503:
                            answers[ids[i]] = response.json()
                            break
                        time.sleep(min(float(response.headers.get("Retry-After") or 1), 1.0))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    def killer() -> None:
        with admin_connection(dbname="postgres") as admin:  # a database may not refuse its own
            terminate = (
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND application_name = %s"
            )
            start = time.monotonic()
            while not done.is_set():
                admin.execute(terminate, (database, WEB_APP_NAME))
                if "start" not in outage and time.monotonic() - start > 1.0:
                    admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
                    admin.execute(terminate, (database, WEB_APP_NAME))
                    outage["start"] = time.monotonic()
                    try:
                        while time.monotonic() - outage["start"] < 1.5:
                            admin.execute(terminate, (database, WEB_APP_NAME))
                            time.sleep(0.1)
                    finally:
                        outage["end"] = time.monotonic()
                        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
                time.sleep(0.3)

    kill_thread = threading.Thread(target=killer)
    clients = [threading.Thread(target=client, args=(list(range(k, 200, 8)),)) for k in range(8)]
    kill_thread.start()
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(timeout=240)
    done.set()
    kill_thread.join(timeout=30)

    assert not errors, errors
    assert not any(thread.is_alive() for thread in clients), "the clients did not finish"
    assert "end" in outage, "the outage did not happen"
    statuses = {status for *_, status, _ in seen}
    assert statuses <= {200, 201, 503}, statuses
    assert all(retry_after and int(retry_after) >= 1 for *_, status, retry_after in seen if status == 503)
    assert 503 in statuses, "no request met a terminated connection: the fault was not injected"
    during = [s for s in seen if outage["start"] <= s[1] and s[2] <= outage["end"]]
    assert during, "no request was sent and answered during the outage"
    assert {s[3] for s in during} == {503}, "a decision was answered while the database was unreachable"
    assert_registered_once_each(ids, answers)


# (b) Redis down


def invoice_paid_event(n: int) -> dict:
    return {
        "id": f"evt_faults_{n}",
        "object": "event",
        "type": "invoice.paid",
        "created": 1_800_000_000 + n,
        "api_version": "2026-10-28.endive",
        "livemode": False,
        "data": {
            "object": {
                "id": f"in_faults_{n}",
                "object": "invoice",
                "status": "paid",
                "total": 1000,
                "amount_paid": 1000,
                "amount_remaining": 0,
                "payment_intent": f"pi_faults_{n}",
            }
        },
    }


def open_invoices(count: int) -> None:
    from billing.models import Customer, Invoice

    customer = Customer.objects.create(customer_ref="cust_faults", name="Faults Co", stripe_customer_id="cus_faults")
    Invoice.objects.bulk_create(
        Invoice(customer=customer, period=f"{2000 + n // 12:04d}-{n % 12 + 1:02d}", currency="usd", status="open",
                total_minor=1000, amount_remaining_minor=1000, stripe_invoice_id=f"in_faults_{n}")
        for n in range(count)
    )  # fmt: skip


def deliver(http: httpx.Client, event: dict) -> httpx.Response:
    body = json.dumps(event)
    signature = stripe.WebhookSignature.generate_signature_header(body, WEBHOOK_SECRET)
    return http.post(
        "/billing/stripe/webhook/", content=body,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    )  # fmt: skip


def assert_events_applied_once(numbers: range) -> None:
    """Every event processed in one attempt; every invoice paid, with one payment and
    one history row naming the event."""
    from billing.models import Invoice, Payment, StripeEvent

    events = {e.stripe_id: e for e in StripeEvent.objects.filter(stripe_id__startswith="evt_faults_")}
    assert sorted(events) == sorted(f"evt_faults_{n}" for n in numbers)
    assert {(e.status, e.attempts) for e in events.values()} == {(StripeEvent.Status.PROCESSED, 1)}
    for n in numbers:
        invoice = Invoice.objects.get(stripe_invoice_id=f"in_faults_{n}")
        assert invoice.status == "paid"
        assert Payment.objects.filter(invoice=invoice).count() == 1
        applied = invoice.history.filter(history_change_reason__contains=f"(evt_faults_{n})")
        assert applied.count() == 1, (n, list(applied.values_list("history_change_reason", flat=True)))


def report_markdown(report_id: str, severity: int) -> str:
    return (
        f"# FSAR Proposal Report\n- id: {report_id}\n- timestamp: 2026-11-30T10:00:00Z\n- severity: {severity}\n"
        "- block_execution: false\n- proposal:\n\nimplement_idea: a fault test proposal\n\n## Risks\n"
        "- none\n\n## Mitigations\n- none\n"
    )


def test_redis_down_webhooks_are_stored_and_drained_once_when_it_is_back(started, redis_server, agent_secret):
    """Redis killed under gunicorn, an RQ worker and the cron: Stripe webhooks are
    still verified (a bad signature is refused), stored and acknowledged;
    registrations and reports are unaffected (201, decisions as usual; what their
    commit enqueues is logged and left to the periodic jobs). Redis comes back empty:
    the cron, still running, enqueues the periodic drain, and every stored event is
    applied exactly once.

    Protection: billing/webhooks.py's schedule_drain (Redis errors caught), core/jobs.py's
    enqueue_on_commit (idem), fsar/management/commands/cron.py (the scheduler survives)."""
    from billing.models import StripeEvent
    from reviews.models import Report
    from tasks.models import ExecutionTask

    open_invoices(12)
    env = process_env(redis_server)
    server = Gunicorn(env, workers=2)
    worker = Supervised(lambda: rqworker(env))
    scheduler = cron(env)
    started.extend([server, worker, scheduler])
    with httpx.Client(base_url=server.url, timeout=30) as http:
        # Everything works while Redis is up: one event goes all the way.
        assert deliver(http, invoice_paid_event(0)).status_code == 200
        eventually(lambda: StripeEvent.objects.filter(stripe_id="evt_faults_0", status="processed").exists(),
                   what="the first event is applied")  # fmt: skip

        redis_server.kill()
        answers = [deliver(http, invoice_paid_event(n)) for n in range(1, 12)]
        assert [a.status_code for a in answers] == [200] * 11, [a.text for a in answers]
        acknowledged = [{"received": f"evt_faults_{n}", "duplicate": False} for n in range(1, 12)]
        assert [a.json() for a in answers] == acknowledged
        again = deliver(http, invoice_paid_event(3))
        assert (again.status_code, again.json()["duplicate"]) == (200, True)
        forged = http.post("/billing/stripe/webhook/", content=json.dumps(invoice_paid_event(99)),
                           headers={"Stripe-Signature": "t=1,v1=00", "Content-Type": "application/json"})  # fmt: skip
        assert forged.status_code == 400
        assert StripeEvent.objects.filter(status="pending").count() == 11

        auth = {"Authorization": f"Bearer {agent_secret}"}
        registered = [
            http.post("/api/v1/tasks", json=registration(f"redis-down-{i}", i), headers=auth) for i in range(10)
        ]
        assert [r.status_code for r in registered] == [201] * 10, [r.text for r in registered]
        decisions = ["hold" if i % 5 == 0 else "allow" for i in range(10)]
        assert [r.json()["gate"]["decision"] for r in registered] == decisions
        reports = [
            http.post("/api/v1/proposals", content=report_markdown(f"rep-redis-down-{severity}", severity),
                      headers={**auth, "Content-Type": "text/markdown"})
            for severity in (3, 30)
        ]  # fmt: skip
        assert [r.status_code for r in reports] == [201, 201], [r.text for r in reports]
        assert ExecutionTask.objects.filter(external_id__startswith="redis-down-").count() == 10
        assert Report.objects.filter(report_id__startswith="rep-redis-down-").count() == 2

        time.sleep(2)  # the cron and the worker meet the dead Redis
        assert scheduler.alive(), f"the cron scheduler died with Redis; see {scheduler.log}"
        assert StripeEvent.objects.filter(status="pending").count() == 11  # nothing could drain them
        redis_server.start()  # empty: the drain flag and every queued job are gone
        eventually(lambda: not StripeEvent.objects.filter(status="pending").exists(), timeout=60,
                   what="the periodic drain applies the stored events once Redis is back")  # fmt: skip
    assert_events_applied_once(range(12))
    assert scheduler.alive(), f"the cron scheduler died; see {scheduler.log}"


# (c) An RQ worker SIGKILLed mid-drain and mid-callback


class CallbackReceiver:
    """The AI side's callback endpoint: records (FSAR-Event-Id, body) of every POST;
    `hold_at` makes the n-th request wait until released (the worker is killed meanwhile)."""

    def __init__(self, hold_at: int) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.received: list[tuple[str, dict]] = []
        self.arrived = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.received.append((self.headers["FSAR-Event-Id"], body))
                if len(receiver.received) == hold_at:
                    receiver.arrived.set()
                    receiver.release.wait(30)
                try:
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", spare_port("FSAR_FAULTS_HTTP_PORTS")), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/callback"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_rq_worker_killed_mid_drain_and_mid_callback_applies_once_and_delivers_at_least_once(
    started, redis_server, make_api_key
):
    """A worker draining 30 stored Stripe events is SIGKILLed (with its work horse)
    while one event's transaction waits on a row lock; another, sending 12
    callbacks, while the AI side holds the fifth request. A new worker (and the
    cron's periodic drain and callback retry) finish the work: every event applied
    exactly once, every callback delivered at least once, each time with the same
    FSAR-Event-Id and body.

    Protection: the event's effects and its status commit in one transaction
    (billing/webhooks.py event_process), the delivery's status is recorded after
    the POST (reviews/jobs.py deliver_callback) and pending due deliveries are
    re-enqueued (retry_due_callbacks)."""
    from billing.models import StripeEvent
    from reviews.models import CallbackDelivery, CallbackEndpoint
    from tasks.models import ExecutionTask

    events = range(30)
    open_invoices(len(events))
    env = process_env(redis_server)
    server = Gunicorn(env, workers=2)
    started.append(server)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for n in events:  # stored; no worker runs yet, so all wait in the queue
            assert deliver(http, invoice_paid_event(n)).status_code == 200
    assert StripeEvent.objects.filter(status="pending").count() == len(events)

    # Event 10's invoice is locked: the drain applies 0-9, then waits inside event 10's transaction.
    with admin_connection(autocommit=False) as locker:
        locker.execute("SELECT id FROM billing_invoice WHERE stripe_invoice_id = 'in_faults_10' FOR UPDATE")
        worker = rqworker(env)
        started.extend([worker, cron(env)])
        eventually(lambda: StripeEvent.objects.filter(status="processed").count() == 10, timeout=60,
                   what="the drain applied the first ten events")  # fmt: skip
        time.sleep(0.3)
        worker.kill()
        locker.rollback()
    started.append(rqworker(env))
    eventually(lambda: not StripeEvent.objects.exclude(status="processed").exists(), timeout=60,
               what="a new worker applies the rest")  # fmt: skip
    assert_events_applied_once(events)

    # Callbacks: the AI side holds the fifth request while the worker is killed.
    receiver = CallbackReceiver(hold_at=5)
    try:
        api_key, _ = make_api_key()
        endpoint = CallbackEndpoint.objects.create(api_key=api_key, url=receiver.url, secret="cb-secret")
        tasks = ExecutionTask.objects.bulk_create(
            ExecutionTask(external_id=f"cb-{n}", task_type="implement_idea", ai_model="gpt-5.1", submitted_by=api_key)
            for n in range(12)
        )
        deliveries = [CallbackDelivery(endpoint=endpoint, type="released", task_id=t.pk, payload={}) for t in tasks]
        for delivery, task in zip(deliveries, tasks, strict=True):
            delivery.payload = {"event_id": str(delivery.event_id), "type": "released", "task": {"id": task.pk}}
        CallbackDelivery.objects.bulk_create(deliveries)  # due now: the cron's retry enqueues them
        assert receiver.arrived.wait(60), "no callback reached the fifth request"
        busy = [w for w in started if isinstance(w, Started) and "rqworker" in w.log.name and w.alive()]
        for w in busy:
            w.kill()
        receiver.release.set()
        started.append(rqworker(env))
        eventually(lambda: not CallbackDelivery.objects.exclude(status="delivered").exists(), timeout=60,
                   what="every callback is delivered")  # fmt: skip
    finally:
        receiver.stop()
    expected = {str(d.event_id): d.payload for d in CallbackDelivery.objects.all()}
    got: dict[str, list[dict]] = {}
    for event_id, body in receiver.received:
        got.setdefault(event_id, []).append(body)
    assert sorted(got) == sorted(expected)  # each at least once, none unknown
    assert all(bodies == [expected[event_id]] * len(bodies) for event_id, bodies in got.items())
    assert any(len(bodies) > 1 for bodies in got.values()), "the killed send was not sent again"


# (d) A gunicorn worker SIGKILLed mid-request


def worker_talking_to(server: Gunicorn, port: int) -> int | None:
    """The gunicorn worker with an open TCP connection to `port` (from /proc)."""
    remote = f":{port:04X}"
    inodes_to_port = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[2].endswith(remote) and fields[3] == "01":  # ESTABLISHED
                inodes_to_port.add(fields[9])
    for pid in server.worker_pids():
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes_to_port:
                return pid
    return None


def test_gunicorn_worker_killed_mid_request_leaves_no_partial_rows(started, redis_server, agent_secret):
    """16 clients register while one gunicorn worker is SIGKILLed at random, and
    another is SIGKILLed after committing a held task and before answering (it waits
    on a paused Redis to enqueue the case's notification). Each client whose
    connection broke sends the same request again: the retry answers 200 with the
    task that was committed (or 201 when nothing was); no task lacks its history
    row or its case.

    Protection: registration commits the task, its history row and its case in one
    transaction, and a repeated external_id answers the stored task (tasks/services.py)."""
    from tasks.models import ExecutionTask

    server = Gunicorn(process_env(redis_server), workers=3)
    started.append(server)
    headers = {"Authorization": f"Bearer {agent_secret}"}
    ids = [f"killed-{i}" for i in range(16 * 12)]
    answers: dict[str, dict] = {}
    broken: list[str] = []
    errors: list[BaseException] = []

    def register(http: httpx.Client, i: int, external_id: str) -> None:
        # Allowed models only: a held one would enqueue on Redis, which the victim's step pauses.
        for _attempt in range(5):
            try:
                response = http.post("/api/v1/tasks", json=registration(external_id, i, held_every=0))
            except httpx.TransportError:
                broken.append(external_id)
                continue
            assert response.status_code in (200, 201), response.text
            answers[external_id] = response.json()
            return
        raise AssertionError(f"{external_id}: no answer in 5 attempts")

    def client(mine: list[int]) -> None:
        try:
            with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
                for i in mine:
                    register(http, i, ids[i])
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    clients = [threading.Thread(target=client, args=(list(range(k, len(ids), 16)),)) for k in range(16)]
    for thread in clients:
        thread.start()
    time.sleep(1.0)
    for _ in range(5):  # mid-request: the 16 clients keep every worker busy (again if it was between two)
        os.kill(server.worker_pids()[0], signal.SIGKILL)
        time.sleep(0.5)
        if broken:
            break

    # A held registration commits, then its worker waits on the paused Redis: kill it there.
    redis_server.pause()
    victim: dict = {}

    def held() -> None:
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
            try:
                victim["first"] = http.post("/api/v1/tasks", json=registration("killed-victim", 0))
            except httpx.TransportError as exc:
                victim["broken"] = exc

    sender = threading.Thread(target=held)
    sender.start()
    eventually(lambda: ExecutionTask.objects.filter(external_id="killed-victim").exists(), timeout=30,
               what="the held registration commits")  # fmt: skip
    eventually(lambda: worker_talking_to(server, redis_server.port) is not None, timeout=10,
               what="the victim's worker waits on Redis")  # fmt: skip
    os.kill(worker_talking_to(server, redis_server.port), signal.SIGKILL)
    sender.join(timeout=30)
    redis_server.resume()
    for thread in clients:
        thread.join(timeout=120)
    assert not errors, errors
    assert "broken" in victim, f"the victim's request was answered: {victim}"

    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        retried = http.post("/api/v1/tasks", json=registration("killed-victim", 0))
    stored = ExecutionTask.objects.get(external_id="killed-victim")
    assert retried.status_code == 200, retried.text
    assert (retried.json()["id"], retried.json()["gate"]["decision"]) == (stored.pk, "hold")
    answers["killed-victim"] = retried.json()
    assert broken, "no client's request was cut by the first kill"
    assert_registered_once_each([*ids, "killed-victim"], answers)
