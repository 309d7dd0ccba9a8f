"""What the fault tests (fsar/tests/test_faults_*.py) share: the real processes they
start and stop by PID (gunicorn, `rqworker`, `manage.py cron`, a private
`redis-server`), spare ports, waiting, a connection of the test's own to
PostgreSQL, the product's state they set up (an agent's key, registrations,
open invoices, signed Stripe events, a callback receiver) and the checks that
nothing was lost or applied twice.

The fixtures (`started`, `redis_server`, `agent_secret`) are imported by the
test modules that use them. Ports: FSAR_FAULTS_REDIS_PORTS /
FSAR_FAULTS_HTTP_PORTS ("6390-6399") restrict the ports tried; by default the
system picks free ones.

The fault tests (and core/tests/test_worker.py, which also starts a redis-server and
terminates a backend) are marked `xdist_group("faults")`: under `pytest -n 2 --dist
loadgroup` (CI's PostgreSQL pass) one worker runs them one after another, so two of
them never share the machine's cores, whatever the other worker runs beside them.
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
import pytest
import stripe

from fsar.testing import ROOT, live_database_url

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


# Stripe events and invoices


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


# The AI side's callback endpoint


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


# gunicorn's workers


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
