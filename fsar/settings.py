"""FSAR settings: everything from the environment, safe defaults for a laptop.

Unset, the app runs on a SQLite file with RQ jobs executed inline (fakeredis),
so `make run` needs no services. DEBUG is off unless set: `make run` and the
tests set DEBUG=1 themselves; with DEBUG off the app refuses to start without a
SECRET_KEY, an AUDIT_CHAIN_KEY and ALLOWED_HOSTS. Production: docs/deployment.md.
"""

import ipaddress
import os
import sys
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    try:
        return float(value) if value.strip() else default
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from exc


def env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


# `manage.py` commands that only compare the models with the migrations: they never
# sign, hash or serve, so they run without the secrets (a CI step or a pre-commit
# hook checks migrations on a machine that has none). Every other command, and
# every server, refuses to start without them.
SCHEMA_ONLY_COMMANDS = {"makemigrations", "showmigrations", "sqlmigrate"}
SCHEMA_ONLY = Path(sys.argv[0]).name == "manage.py" and len(sys.argv) > 1 and sys.argv[1] in SCHEMA_ONLY_COMMANDS


def env_secret(name: str, dev_default: str) -> str:
    """A secret from the environment; the published development value only with DEBUG on.
    Unset for a schema-only command with DEBUG off: empty (Django refuses an empty
    SECRET_KEY the moment anything uses it)."""
    value = os.environ.get(name, "")
    if not value:
        if not DEBUG:
            if SCHEMA_ONLY:
                return ""
            raise ImproperlyConfigured(f"{name} must be set when DEBUG is off.")
        return dev_default
    if value == dev_default and not DEBUG:
        raise ImproperlyConfigured(f"{name} is the development default; set a real one.")
    return value


# Off unless set: an operator who forgets DEBUG=0 must not run production on the
# published development keys. `make run` and the tests set DEBUG=1.
DEBUG = env_bool("DEBUG", False)
DEV_SECRET_KEY = "fsar-insecure-development-key-do-not-use-in-production"
SECRET_KEY = env_secret("SECRET_KEY", DEV_SECRET_KEY)

# The audit chain's entries are HMAC-SHA256 under this key, which never goes into
# the database (audit/keys.py, docs/audit.md). Rotation: the new key here, the
# earlier ones in AUDIT_CHAIN_OLD_KEYS so their segments still verify.
AUDIT_CHAIN_DEV_KEY = "fsar-insecure-development-audit-chain-key-do-not-use-in-production"
AUDIT_CHAIN_KEY = env_secret("AUDIT_CHAIN_KEY", AUDIT_CHAIN_DEV_KEY)
if not DEBUG and len(AUDIT_CHAIN_KEY) < 32 and not (SCHEMA_ONLY and not AUDIT_CHAIN_KEY):
    raise ImproperlyConfigured("AUDIT_CHAIN_KEY must be at least 32 characters (e.g. 64 hex digits).")
AUDIT_CHAIN_OLD_KEYS = env_list("AUDIT_CHAIN_OLD_KEYS")
# The daily verified head is appended here too (one line per day), if set.
AUDIT_ANCHOR_FILE = os.environ.get("AUDIT_ANCHOR_FILE", "")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
if DEBUG and not ALLOWED_HOSTS:
    ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "simple_history",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_rq",
    "ninja",
    "csp",
    "fsar",
    "audit",
    "tasks",
    "reviews",
    "billing",
    "deployments",
    "assurance",
    "indicators",
]

MIDDLEWARE = [
    "fsar.logs.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "fsar.middleware.ApiBodyLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "fsar.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "fsar.urls"
WSGI_APPLICATION = "fsar.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "fsar.context_processors.roles",
                "csp.context_processors.nonce",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool("DB_SERVER_SIDE_BINDING", True):
    DATABASES["default"].setdefault("OPTIONS", {}).update({"server_side_binding": True, "prepare_threshold": 2})
    # A prepared statement keeps its parse, but by default PostgreSQL switches it to one
    # generic plan after five executions when that plan looks no dearer on average: made
    # without the values, it cannot see that `status = 'held'` matches a handful of rows
    # where `status = 'succeeded'` matches millions, and walked a million-task table's
    # primary key for the held list (107 ms instead of 0.2: docs/benchmarks.md). So every
    # execution is planned for its values (PostgreSQL's plan_cache_mode; `auto` is its default).
    PLAN_CACHE_MODES = ("force_custom_plan", "auto", "force_generic_plan")
    DB_PLAN_CACHE_MODE = os.environ.get("DB_PLAN_CACHE_MODE", "").strip() or PLAN_CACHE_MODES[0]
    if DB_PLAN_CACHE_MODE not in PLAN_CACHE_MODES:
        raise ImproperlyConfigured(f"DB_PLAN_CACHE_MODE must be one of {', '.join(PLAN_CACHE_MODES)}")
    _options = DATABASES["default"]["OPTIONS"]
    _options["options"] = f"{_options.get('options', '')} -c plan_cache_mode={DB_PLAN_CACHE_MODE}".strip()
# A connection pool per process (psycopg_pool, Django's own) instead of one connection per
# thread: for threaded workers (gthread), such as the decision long-poll's, where threads
# outnumber the connections PostgreSQL should see. Replaces persistent connections.
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DB_POOL_MAX_SIZE > 0:
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(2, DB_POOL_MAX_SIZE),
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": 30,
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent writers (runserver threads, the periodic loop) wait instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Browser tests use live_server threads, which cannot share an in-memory database.
    DATABASES["default"].setdefault("TEST", {})["NAME"] = os.environ.get("TEST_DB_NAME") or str(
        BASE_DIR / ".test-db.sqlite3"
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The session's user is read with its role groups in one statement (core/auth.py).
# Django's ModelBackend stays second only for sessions logged in before that backend
# (it never answers a login: RolesBackend's refusal stops there); it can go once those
# have expired (SESSION_COOKIE_AGE, two weeks, after the change).
AUTHENTICATION_BACKENDS = ["core.auth.RolesBackend", "django.contrib.auth.backends.ModelBackend"]
# Django's database sessions, the session row read by a statement built once (core/sessions.py).
SESSION_ENGINE = "core.sessions"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# HTTPS (docs/deployment.md, "Behind a reverse proxy"). With DEBUG off, cookies
# are secure and plain-HTTP requests are redirected to HTTPS unless told
# otherwise; HSTS is off until SECURE_HSTS_SECONDS is set, since browsers
# remember it. The proxy SSL header names the header in which the proxy says a
# request came over HTTPS: the proxy must set it on every request and drop any
# copy sent by the client. Empty turns it off (TLS ends at gunicorn).
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Load balancers probe over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
_proxy_ssl_header = os.environ.get("SECURE_PROXY_SSL_HEADER", "" if DEBUG else "X-Forwarded-Proto").strip()
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https")

# Content-Security-Policy on every response (django-csp; docs/architecture.md, "Pages and
# the Content-Security-Policy"). Scripts and styles come only from our own static files:
# no inline <script> (unless nonce="{{ request.csp_nonce }}"), no inline <style> or style=""
# attributes, no remote images (a hostile report's image is never even requested).
# Forms post only here, and to Stripe's billing portal (the POST that redirects there).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF, "https://billing.stripe.com"],
    }
}

# Request bodies: the bulk backfill endpoint takes up to 10,000 tasks at once, and the
# report upload page several files. Only those two (the upload views) take up to
# API_BULK_MAX_BODY_BYTES, and the audit uploads (API and page) AUDITS_MAX_BODY_BYTES;
# fsar.middleware.ApiBodyLimitMiddleware answers a 413 past the
# limits (JSON on the API). Every other form keeps Django's default cap on what it
# reads into memory (DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MiB): a 400 above it.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 1024 * 1024)
API_BULK_MAX_BODY_BYTES = env_int("API_BULK_MAX_BODY_BYTES", 16 * 1024 * 1024)
# Audit evidence (a promptfoo results.json or a garak report.jsonl), stored as received.
AUDITS_MAX_REPORT_BYTES = env_int("AUDITS_MAX_REPORT_BYTES", 16 * 1024 * 1024)
# The body of POST /api/v1/audits/runs: the report plus JSON escaping or multipart framing.
AUDITS_MAX_BODY_BYTES = env_int("AUDITS_MAX_BODY_BYTES", 2 * AUDITS_MAX_REPORT_BYTES + 64 * 1024)
# Approvals an inconclusive audit run's case needs.
AUDITS_CASE_QUORUM = env_int("AUDITS_CASE_QUORUM", 1)

# Background jobs. Without REDIS_URL, jobs run inline in the calling process
# through a fakeredis connection (RECIPES.md); with it, real rqworker processes,
# which run each job in their own process instead of forking one per job (core/worker.py).
RQ = {"WORKER_CLASS": "core.worker.Worker"}
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    RQ_QUEUES = {"default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 600}}
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    import fakeredis
    import redis

    _fake_pool = redis.ConnectionPool(connection_class=fakeredis.FakeRedisConnection)
    RQ_QUEUES = {
        "default": {
            "HOST": "unused",
            "PORT": 0,
            "DB": 0,
            "ASYNC": False,
            "REDIS_CLIENT_KWARGS": {"connection_pool": _fake_pool},
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
RQ_SHOW_ADMIN_LINK = True

# /healthz/ready: a bearer token for monitoring systems (operators need none), and how
# old its cached schema check may get (it is refreshed after every migrate too).
HEALTHZ_TOKEN = os.environ.get("HEALTHZ_TOKEN", "")
HEALTHZ_SCHEMA_SECONDS = env_int("HEALTHZ_SCHEMA_SECONDS", 300)
# /metrics (Prometheus text format): the bearer token a scraper sends. Unset: /metrics
# answers 404 to everyone (docs/deployment.md, "Prometheus metrics").
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")

# The metrics' "auto" engine answers exactly (from the task rows) for windows of at most
# this many finished tasks, and from the hourly rollups above it (docs/metrics.md). Below it
# a read costs the rollup statement (which learns the count) plus the exact one, growing
# with the window's tasks: 2,000 keeps that near the rollup read alone (docs/benchmarks.md).
METRICS_EXACT_MAX_TASKS = env_int("METRICS_EXACT_MAX_TASKS", 2_000)
# `seed_demo` / `make run` keep the demo API key's secret here (default: .demo-api-key in the project).
DEMO_KEY_FILE = os.environ.get("DEMO_KEY_FILE", "")

# Tasks still `running` this long after they started are marked failed ("abandoned").
TASK_RUNNING_TIMEOUT_SECONDS = env_int("TASK_RUNNING_TIMEOUT_SECONDS", 6 * 3600)
# How often the embedded periodic loop (make run) runs the periodic jobs.
PERIODIC_LOOP_SECONDS = env_int("PERIODIC_LOOP_SECONDS", 60)
# The decision long-poll (GET /api/v1/tasks/{id}/decision?wait=N): the longest wait a
# request gets (0: answer at once, for servers that run only sync workers; docs/deployment.md),
# and, without Redis, how often a waiting request re-reads its task.
TASK_DECISION_MAX_WAIT_SECONDS = env_int("TASK_DECISION_MAX_WAIT_SECONDS", 60)
TASK_DECISION_POLL_SECONDS = env_float("TASK_DECISION_POLL_SECONDS", 0.5)

# The execution gate, composed in fsar/ so that `tasks` never imports `reviews`.
TASK_GATE = "fsar.gate.decide"
# Asked again at `start` (and on a re-registration of an allowed task): the gate's answer at the moment of use.
TASK_GATE_RECHECK = "fsar.gate.recheck"
# PostgreSQL: statement_timeout (ms) on each of the gate's queries; past it 503 + Retry-After, never allow. 0: off.
GATE_STATEMENT_TIMEOUT_MS = env_int("GATE_STATEMENT_TIMEOUT_MS", 250)
# Extra keys for the task API's `gate` (case status and rationale), composed the same way:
# called with a list of tasks (a page), returns {task id: keys}.
TASK_GATE_DETAILS = "fsar.gate.task_gate_details"
# Tasks on an AI model version nobody registered (deployments): "hold" (until it is
# registered and approved), "deny", or "allow" (only the policy rules decide).
MODELS_UNREGISTERED = os.environ.get("MODELS_UNREGISTERED", "hold").strip().lower() or "hold"
if MODELS_UNREGISTERED not in ("hold", "deny", "allow"):
    raise ImproperlyConfigured(f"MODELS_UNREGISTERED must be hold, deny or allow, got {MODELS_UNREGISTERED!r}")
# Rollouts (deployments, docs/rollouts.md). Analysis thresholds, candidate against stable over a
# step's window: failure rate at most stable × ratio (or stable + the absolute slack, whichever
# is larger), p95 duration and mean cost per task at most stable × their ratios; fewer finished
# tasks than the minimum sample (on either side) is inconclusive.
ROLLOUT_MAX_FAILURE_RATIO = float(os.environ.get("ROLLOUT_MAX_FAILURE_RATIO", "") or 1.5)
ROLLOUT_FAILURE_RATE_SLACK = float(os.environ.get("ROLLOUT_FAILURE_RATE_SLACK", "") or 0.02)
ROLLOUT_MAX_P95_RATIO = float(os.environ.get("ROLLOUT_MAX_P95_RATIO", "") or 1.25)
ROLLOUT_MAX_COST_RATIO = float(os.environ.get("ROLLOUT_MAX_COST_RATIO", "") or 1.25)
ROLLOUT_MIN_SAMPLE = env_int("ROLLOUT_MIN_SAMPLE", 20)
# Rollback drills: a rollout starts only if its rollback target passed one within this many seconds.
ROLLOUT_DRILL_MAX_AGE = env_int("ROLLOUT_DRILL_MAX_AGE", 7 * 86_400)
ROLLOUT_DRILL_INTERVAL = env_int("ROLLOUT_DRILL_INTERVAL", 86_400)  # seconds between scheduled drills
ROLLOUT_DRILL_SHARE = float(os.environ.get("ROLLOUT_DRILL_SHARE", "") or 1.0)  # percent of traffic
ROLLOUT_DRILL_WINDOW_HOURS = env_int("ROLLOUT_DRILL_WINDOW_HOURS", 6)
ROLLOUT_DRILL_MIN_TASKS = env_int("ROLLOUT_DRILL_MIN_TASKS", 20)
ROLLOUT_DRILL_TIMEOUT_SECONDS = float(os.environ.get("ROLLOUT_DRILL_TIMEOUT_SECONDS", "") or 5)
ROLLOUT_DRILL_BODY_MAX_BYTES = env_int("ROLLOUT_DRILL_BODY_MAX_BYTES", 65_536)
# health_url GETs go only to public addresses; CIDRs listed here are allowed too (tests: 127.0.0.1/32).
ROLLOUT_DRILL_ALLOWED_NETWORKS = env_list("ROLLOUT_DRILL_ALLOWED_NETWORKS")
for _network in ROLLOUT_DRILL_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(f"ROLLOUT_DRILL_ALLOWED_NETWORKS: {exc}") from exc
# Committee decisions need a TOTP-verified session from every member (else only from members who enrolled).
REVIEWS_REQUIRE_TOTP = env_bool("REVIEWS_REQUIRE_TOTP", False)
# Signed callbacks to the AI side (reviews): seconds to wait for the receiver.
REVIEWS_CALLBACK_TIMEOUT_SECONDS = env_int("REVIEWS_CALLBACK_TIMEOUT_SECONDS", 5)
# Callbacks go only to public addresses; networks listed here (CIDRs, e.g. an on-premise
# agent's "10.20.0.0/16" or "127.0.0.1/32") are allowed too (reviews/callback_urls.py).
REVIEWS_CALLBACK_ALLOWED_NETWORKS = env_list("REVIEWS_CALLBACK_ALLOWED_NETWORKS")
for _network in REVIEWS_CALLBACK_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(f"REVIEWS_CALLBACK_ALLOWED_NETWORKS: {exc}") from exc
# How long a committee member's claim on a case lasts (others may still vote meanwhile).
REVIEWS_CLAIM_MINUTES = env_int("REVIEWS_CLAIM_MINUTES", 60)
# Policy changes: approvals a change needs from committee members (not its proposer), and hours to decide.
REVIEWS_POLICY_CHANGE_QUORUM = env_int("REVIEWS_POLICY_CHANGE_QUORUM", 2)
REVIEWS_POLICY_CHANGE_SLA_HOURS = env_int("REVIEWS_POLICY_CHANGE_SLA_HOURS", 72)
# Committee SLA reminders: mail when this fraction of a case's time to decide has passed.
REVIEWS_SLA_REMINDER_FRACTION = env_float("REVIEWS_SLA_REMINDER_FRACTION", 0.8)
# Links in notification mails start with this (no trailing slash).
SITE_URL = os.environ.get("SITE_URL", "http://localhost:8000").rstrip("/")
# Per-API-key rate limit: requests per fixed window (0 = no limit), answered 429 + Retry-After.
API_RATE_LIMIT_REQUESTS = env_int("API_RATE_LIMIT_REQUESTS", 0)
API_RATE_LIMIT_WINDOW_SECONDS = env_int("API_RATE_LIMIT_WINDOW_SECONDS", 60)

# Billing and Stripe (billing/stripe_client.py is the one module that calls Stripe).
# Without STRIPE_API_KEY, billing works on local data and says Stripe is not configured.
STRIPE_API_KEY = os.environ.get("STRIPE_API_KEY", "")
STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
STRIPE_WEBHOOK_TOLERANCE = env_int("STRIPE_WEBHOOK_TOLERANCE", 300)  # seconds a signature stays valid
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "")  # another server, e.g. localstripe in tests
STRIPE_TIMEOUT_SECONDS = env_int("STRIPE_TIMEOUT_SECONDS", 20)
STRIPE_MAX_NETWORK_RETRIES = env_int("STRIPE_MAX_NETWORK_RETRIES", 2)
BILLING_CURRENCY = os.environ.get("BILLING_CURRENCY", "usd").lower()
BILLING_DAYS_UNTIL_DUE = env_int("BILLING_DAYS_UNTIL_DUE", 30)

# Logs go to stderr: time, level, logger, request id and message (fsar/logs.py), as text
# or, with LOG_FORMAT=json, one JSON object per line. LOG_LEVEL applies to FSAR's loggers
# and Django's alike.
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {LOG_LEVEL!r}")
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text").strip().lower() or "text"
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "fsar.logs.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "fsar.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        # SQL is logged only with DEBUG on, and then only at DEBUG: not even LOG_LEVEL=DEBUG shows it.
        "django.db.backends": {"level": "INFO"},
    },
}

# Email: the console in development; set EMAIL_HOST (and friends) for SMTP.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "FSAR <fsar@localhost>")

# History is a record, not an undo button: no reverting from the admin.
SIMPLE_HISTORY_REVERT_DISABLED = True
# Change reasons are free text (a cancel reason may be 2,000 characters): never truncated.
SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True

# The metrics covering index (tasks.0004) uses INCLUDE, which only PostgreSQL has;
# SQLite gets a plain index on finished_at, as intended.
SILENCED_SYSTEM_CHECKS = ["models.W040"]
