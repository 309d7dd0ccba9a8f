"""gunicorn settings for FSAR's web processes (docs/deployment.md). gunicorn reads
this file when started from the project directory, or with `-c gunicorn.conf.py`:

    gunicorn                                  # the web instance: sync workers
    GUNICORN_ROLE=longpoll gunicorn           # the decision long-poll: gthread workers

Everything can be set from the environment (GUNICORN_*, below); the rest of FSAR's
environment (STRIPE_*, …) is read here too, the same as the app reads it.
"""

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


ROLE = os.environ.get("GUNICORN_ROLE", "web").strip() or "web"
if ROLE not in ("web", "longpoll"):
    raise SystemExit(f"GUNICORN_ROLE must be web or longpoll, got {ROLE!r}")

wsgi_app = "fsar.wsgi:application"
bind = [os.environ.get("GUNICORN_BIND", "0.0.0.0:8000" if ROLE == "web" else "0.0.0.0:8001")]

# Web: sync workers, (2 × cores) + 1 (gunicorn's rule of thumb; the app is stateless and
# mostly waits on PostgreSQL). Long-poll: few processes with many threads, each waiting
# client costing one sleeping thread (docs/deployment.md, "The decision long-poll").
if ROLE == "web":
    worker_class = "sync"
    workers = _int("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1)
    threads = 1
else:
    worker_class = "gthread"
    workers = _int("GUNICORN_WORKERS", 2)
    threads = _int("GUNICORN_THREADS", 128)

# The slowest request FSAR serves is the billing portal (POST /billing/portal/): up to
# three Stripe calls in a row (customer search, customer create, portal session), each
# STRIPE_TIMEOUT_SECONDS per attempt, retried STRIPE_MAX_NETWORK_RETRIES times after
# stripe-python's back-off (at most 5 s). A worker is killed after `timeout` seconds of
# silence: it must outlast that path, plus a margin for the rest of the request.
STRIPE_CALLS_PER_REQUEST = 3
STRIPE_RETRY_DELAY_MAX = 5
_stripe_timeout = _int("STRIPE_TIMEOUT_SECONDS", 20)
_stripe_retries = _int("STRIPE_MAX_NETWORK_RETRIES", 2)
WORST_STRIPE_SECONDS = STRIPE_CALLS_PER_REQUEST * (
    (_stripe_retries + 1) * _stripe_timeout + _stripe_retries * STRIPE_RETRY_DELAY_MAX
)
timeout = max(_int("GUNICORN_TIMEOUT", 0), WORST_STRIPE_SECONDS + 30)

# Graceful restarts: on SIGHUP (new settings; new code needs USR2, below) or SIGTERM, workers stop taking
# requests and finish the ones they have, for up to `graceful_timeout` seconds.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", timeout)
# The project is imported once, in the master (fsar/wsgi.py also imports every view and
# compiles the templates there), and every worker is a fork of it: a worker replaced after
# `max_requests` starts in milliseconds rather than importing the project (about a second of
# CPU) on a machine that is serving. Equally loaded workers reach `max_requests` together: the
# soak saw all five replaced within 12 s, each import stalling requests for up to half a
# second, before this. A code change therefore needs a restart, not a HUP (docs/deployment.md).
# GUNICORN_PRELOAD=0 imports the project in each worker instead.
preload_app = os.environ.get("GUNICORN_PRELOAD", "1").strip() != "0"
# Recycle workers now and then (jittered, so they do not all restart at once): a guard
# against leaks, sized in requests. 5,000 (the default until docs/benchmarks.md's gate
# runs of 2026-11-30 19:35) meant, at the gate's peak of ~160 requests/s per worker, one of five
# workers replaced every ~6 s, and each replacement's first requests (a new database
# connection, the gate's per-process caches) stalled ~20 requests at once: the open-loop
# p99 at 200 req/s was 24–153 ms with the slow requests bunched, 13 ms with recycling
# rarer. The soak measured a worker's RSS growing ~0.15% a minute (2.9% in 20 minutes at
# 126 req/s), so recycling every 50,000 still caps it at a few percent.
max_requests = _int("GUNICORN_MAX_REQUESTS", 50_000)
max_requests_jitter = max(1, max_requests // 10) if max_requests else 0
keepalive = _int("GUNICORN_KEEPALIVE", 5)  # behind a proxy that reuses connections

# Access log on stdout, error log on stderr. Each access line carries the response's
# X-Request-ID, the id FSAR's own log lines carry for the same request (fsar/logs.py).
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = os.environ.get("GUNICORN_ERROR_LOG", "-")
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms "%(a)s" request_id=%({x-request-id}o)s'

# X-Forwarded-* are trusted only from these addresses: the reverse proxy.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
