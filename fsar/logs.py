"""Logging: every line says when, how bad, which logger and which request.

`RequestIdMiddleware` (first in MIDDLEWARE) gives each request an id: the
incoming `X-Request-ID` if it is well formed (a proxy's or the AI runner's, so
one id follows a request across systems), else a fresh one. It is echoed in the
response's `X-Request-ID` and put in a context variable that `RequestIdFilter`
copies onto every log record made while the request is served ("-" outside a
request: jobs, commands). gunicorn's access log shows the same id
(gunicorn.conf.py logs the response header).

LOG_FORMAT=json writes one JSON object per line (`JsonFormatter`), for log
shippers; the default is plain text. JSON lines are a json.dumps of five fields,
so this is our own code rather than python-json-logger: a dependency would not
beat twenty lines.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from datetime import UTC, datetime

REQUEST_ID_HEADER = "X-Request-ID"
# What we accept from a caller: short, and nothing that could forge a log line or a header.
WELL_FORMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
NO_REQUEST = "-"

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default=NO_REQUEST)


def incoming_or_new(value: str | None) -> str:
    if value and WELL_FORMED.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        rid = incoming_or_new(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = rid
        token = request_id.set(rid)
        try:
            response = self.get_response(request)
        finally:
            request_id.reset(token)
        response[REQUEST_ID_HEADER] = rid
        return response


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, request_id, message
    (and the traceback as `exc_info`, when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", NO_REQUEST),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
