"""HTTP load for the server benchmarks: N clients on one asyncio loop, one
connection per request (gunicorn's sync workers close it after each), either
flat out (closed loop: each client sends the next request as soon as the last
answered) or at a fixed offered rate (open loop)."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.common import CLOCK_TICKS, percentile, process_cpu


@dataclass
class Request:
    method: str
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    on_status: Callable[[int], None] | None = None  # told the answer's status


async def send(port: int, request: Request) -> int:
    """Send one request on a new connection; the answer's HTTP status (0 when there was none)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"{request.method} {request.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in request.headers.items())
    head += f"Content-Length: {len(request.body)}\r\nConnection: close\r\n\r\n"
    writer.write(head.encode() + request.body)
    await writer.drain()
    data = await reader.read()
    writer.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    if request.on_status is not None:
        request.on_status(status)
    return status


GROUPS = ("client", "gunicorn", "postgres", "rq", "other")


def _group(pid: int, comm: str) -> str:
    if pid == os.getpid():
        return "client"
    if comm.startswith("postgres"):
        return "postgres"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return "other"
    if b"gunicorn" in cmdline:
        return "gunicorn"
    if b"rqworker" in cmdline or comm.startswith("rq:"):
        return "rq"
    return "other"


def cpu_snapshot() -> dict[str, float] | None:
    """CPU seconds used so far, by kind of process (this client, gunicorn, PostgreSQL, the
    RQ worker and its work horses, everything else), and the machine's idle and steal
    seconds (/proc/stat); None where there is no /proc. A process's own time plus its
    reaped children's: a child counts in itself while it lives, then in its parent
    (the postmaster, the rqworker), so each second counts once across a difference."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    snap = dict.fromkeys(GROUPS, 0.0)
    snap["idle"] = (fields[3] + fields[4]) / CLOCK_TICKS
    snap["steal"] = (fields[7] if len(fields) > 7 else 0) / CLOCK_TICKS
    snap["machine"] = sum(fields[:8]) / CLOCK_TICKS
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            comm, used = process_cpu(int(entry.name), reaped_children=True)
        except OSError:
            continue
        snap[_group(int(entry.name), comm)] += used
    return snap


def cpu_per_request(before: dict | None, after: dict | None, requests: int) -> dict | None:
    """CPU ms per request by kind of process between two snapshots, and the machine's
    idle and steal share: idle well above zero in a flat-out phase means the server
    waited (on locks, commits, too few workers), not that it ran out of CPU."""
    if before is None or after is None or not requests:
        return None
    wall = after["machine"] - before["machine"]
    out = {g: (after[g] - before[g]) * 1000 / requests for g in GROUPS}
    out["idle"] = (after["idle"] - before["idle"]) / wall if wall else 0.0
    out["steal"] = (after["steal"] - before["steal"]) / wall if wall else 0.0
    return out


def _summary(latencies: list[float], statuses: dict[int, int], per_second: float) -> dict:
    latencies.sort()
    return {
        "requests": len(latencies),
        "per_second": per_second,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "statuses": statuses,
    }


async def flat_out(port: int, clients: int, seconds: float, make_request: Callable[[], Request]) -> dict:
    """Closed loop for `seconds`: throughput, and latency from send to answer."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < deadline:
            request = make_request()
            start = time.perf_counter()
            status = await send(port, request)
            latencies.append((time.perf_counter() - start) * 1000)
            statuses[status] = statuses.get(status, 0) + 1

    before = cpu_snapshot()
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    summary = _summary(latencies, statuses, len(latencies) / (time.perf_counter() - started))
    summary["cpu"] = cpu_per_request(before, cpu_snapshot(), len(latencies))
    return summary


async def paced(port: int, clients: int, seconds: float, rate: float, make_request: Callable[[], Request]) -> dict:
    """Open loop at `rate` requests/s over all clients: request i is due at
    start + i / rate and client i % clients sends it; its latency counts from when
    it was due, so time spent waiting behind a slow answer counts too (no
    coordinated omission)."""
    latencies: list[float] = []
    slow_at: list[tuple[float, float]] = []  # (latency ms, due s into the phase)
    statuses: dict[int, int] = {}
    total = int(seconds * rate)
    start = time.perf_counter() + 0.05

    async def client(k: int) -> None:
        for i in range(k, total, clients):
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            status = await send(port, make_request())
            latencies.append((time.perf_counter() - due) * 1000)
            slow_at.append((latencies[-1], due - start))
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(client(k) for k in range(clients)))
    summary = _summary(latencies, statuses, rate)
    summary["tail"] = _tail(slow_at, summary["p99"])
    return summary


def _tail(slow_at: list[tuple[float, float]], p99: float) -> str:
    """When the slowest 1% were due: spread over the phase (noise, queueing) or bunched
    in one stretch (a stall of the whole server: a checkpoint, a burst of jobs)."""
    tail = sorted(at for latency, at in slow_at if latency >= p99)
    if not tail:
        return "no tail"
    return f"{len(tail)} at or over p99 due {tail[0]:.1f}–{tail[-1]:.1f} s into the phase"


def merged(runs: list[dict]) -> dict:
    """Several runs of one endpoint as one: mean throughput and p50, worst p99, all statuses."""
    statuses: dict[int, int] = {}
    for r in runs:
        for status, n in r["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    cpus = [r["cpu"] for r in runs if r.get("cpu")]
    return {
        "requests": sum(r["requests"] for r in runs),
        "per_second": statistics.fmean(r["per_second"] for r in runs),
        "p50": statistics.fmean(r["p50"] for r in runs),
        "p99": max(r["p99"] for r in runs),
        "statuses": statuses,
        "cpu": {k: statistics.fmean(c[k] for c in cpus) for k in cpus[0]} if cpus else None,
    }
