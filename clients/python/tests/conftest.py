"""The client against the real server: gunicorn (gthread, as docs/deployment.md
runs the long-poll) in a subprocess on the test database, with REDIS_URL when
the run has it (CI's PostgreSQL pass: the pub/sub path) and without (SQLite:
the sleep-and-check loop). Tests that use it are transactional, so that what
they write is committed where the server reads it. Run from the repository root
(`make test`, or `.venv/bin/pytest clients/python/tests`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fsar.testing import ROOT, live_database_url

LOG_DIR = Path(os.environ.get("FSAR_TEST_SERVER_LOGS", "/tmp"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """gunicorn serving the project on the test database; stopped by its PID."""

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = LOG_DIR / f"fsar-client-test-server-{os.getpid()}-{self.port}.log"
        server_env = {
            **os.environ,
            "DATABASE_URL": live_database_url(),
            # As docs/deployment.md runs the long-poll: threads share a small pool (PostgreSQL only).
            "DB_CONN_MAX_AGE": "0",
            "DB_POOL_MAX_SIZE": "4",
            "DEBUG": "1",
            "LOG_LEVEL": "WARNING",
            # As the suite's own tests run (conftest.py): model versions are deployments' tests' subject.
            "MODELS_UNREGISTERED": "allow",
            **env,
        }
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "fsar.wsgi",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--worker-class",
            "gthread",
            "--workers",
            "1",
            "--threads",
            "32",
            "--log-level",
            "warning",
            # gunicorn's control socket is one path per user (~/.gunicorn): leave it to servers that need it.
            "--no-control-socket",
        ]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=server_env, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 120) -> None:
        """Until it answers anything: a path under /api/ that no endpoint matches is a
        JSON 404 that touches no database (a busy test database must not slow this)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the test server exited; see {self.log}:\n{self.log.read_text()[-3000:]}")
            try:
                httpx.get(f"{self.url}/api/ready", timeout=5)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the test server did not answer within {timeout} s; see {self.log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def live_fsar(django_db_setup, django_db_blocker) -> Iterator[LiveServer]:
    server = LiveServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def agent_key(transactional_db, make_api_key):
    """An API key with every scope, as the AI side holds it."""
    return make_api_key()


class RequestLog:
    """httpx event hooks recording (method, path, time) of every request sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, float]] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> None:
        with self._lock:
            self.sent.append((request.method, request.url.path, time.monotonic()))

    def paths(self, method: str, suffix: str) -> list[str]:
        with self._lock:
            return [path for m, path, _ in self.sent if m == method and path.endswith(suffix)]

    def wait_for(self, method: str, suffix: str, *, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.paths(method, suffix):
            if time.monotonic() > deadline:
                raise AssertionError(f"the client sent no {method} …{suffix} within {timeout} s: {self.sent}")
            time.sleep(0.02)


@pytest.fixture
def requests_sent() -> RequestLog:
    return RequestLog()


@pytest.fixture
def fsar(live_fsar, agent_key, requests_sent):
    """The client under test, talking to the live server with the agent's key."""
    from fsar_client import FSAR

    _, secret = agent_key
    client = FSAR(
        live_fsar.url,
        secret,
        http_client=httpx.Client(event_hooks={"request": [requests_sent]}),
        async_http_client=httpx.AsyncClient(event_hooks={"request": [_async_hook(requests_sent)]}),
    )
    yield client
    client.close()


def _async_hook(log: RequestLog):
    async def hook(request: httpx.Request) -> None:
        log(request)

    return hook


def report_md(report_id: str, *, severity: int, proposal: str = "implement_idea: add a cache") -> str:
    return "\n".join(
        [
            "# FSAR Proposal Report",
            f"- id: {report_id}",
            "- timestamp: 2026-11-30T10:00:00Z",
            f"- severity: {severity}",
            "- block_execution: false",
            "- proposal:",
            "",
            proposal,
            "",
            "## Risks",
            "- it might break",
            "",
            "## Mitigations",
            "- test it",
            "",
        ]
    )


class DroppingProxy:
    """A TCP proxy in front of the server that can drop answers: for the next
    `drop(prefix, n)` requests whose request line starts with `prefix`, it passes
    the request on, lets the server answer (so whatever it did is committed),
    and closes the client's connection without the answer: a connection lost
    on the way back, as a flaky network loses it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._drops: dict[bytes, int] = {}
        self.forwarded: list[bytes] = []
        self.dropped: list[bytes] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def drop(self, prefix: str, times: int = 1) -> None:
        with self._lock:
            self._drops[prefix.encode()] = times

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _should_drop(self, request_line: bytes) -> bool:
        with self._lock:
            for prefix, left in self._drops.items():
                if request_line.startswith(prefix) and left > 0:
                    self._drops[prefix] = left - 1
                    return True
        return False

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        client_file, upstream_file = client.makefile("rb"), upstream.makefile("rb")
        try:
            while True:
                request = _read_message(client_file)
                if request is None:
                    return
                request_line = request.split(b"\r\n", 1)[0]
                with self._lock:
                    self.forwarded.append(request_line)
                upstream.sendall(request)
                if self._should_drop(request_line):
                    _read_message(upstream_file)  # the server has answered: it did the work
                    with self._lock:
                        self.dropped.append(request_line)
                    return
                response = _read_message(upstream_file)
                if response is None:
                    return
                client.sendall(response)
        except OSError:
            return
        finally:
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


def _read_message(stream) -> bytes | None:
    """One HTTP/1.1 message (head and a Content-Length or chunked body), as bytes."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = stream.readline()
        if not line:
            return None
        head += line
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        elif name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return head + stream.read(length)
    body = b""
    while True:
        size_line = stream.readline()
        body += size_line
        size = int(size_line.split(b";")[0].strip(), 16)
        body += stream.read(size + 2)
        if size == 0:
            return head + body


@pytest.fixture
def dropping_proxy(live_fsar) -> Iterator[DroppingProxy]:
    proxy = DroppingProxy(live_fsar.port)
    yield proxy
    proxy.close()
