"""The one kind of error every app's services raise when a request breaks their rules.

A `Refused` carries a message a person can act on, the HTTP status the API answers
with, and extra fields for the answer's body (the field at fault, the case). The
API has one handler for it (fsar/api.py); the pages show the message as a form
error. Each app subclasses it (TaskError, ReviewError, ModelError) and its kinds."""

from __future__ import annotations

from typing import Any


class Refused(Exception):
    """A request the rules refuse; `status_code` is the HTTP answer, `extra` joins the body."""

    status_code = 409

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra
