"""Structured logs: one JSON object per line, carrying the request id from the web request into every
Celery task it enqueued, and the booking, payment or payout id the line is about.

The context lives in a contextvar: `web.logs.RequestIdMiddleware` sets `request_id` per request, the
Celery signals in `workers.celery` copy it into the task message's headers and restore it (with the
task's `*_id` arguments) around the task. `log_context(...)` adds fields for a block of code;
`extra={...}` on one call adds them to one line. It lives in `workers`, the lowest layer, so every app
can use it.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import logging

# Never mutated in place: every change sets a new dict, so the shared default is safe.
_EMPTY: dict = {}
_context: contextvars.ContextVar[dict] = contextvars.ContextVar("talkpay_log_context", default=_EMPTY)

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def current_context() -> dict:
    return dict(_context.get())


def current_request_id() -> str | None:
    return _context.get().get("request_id")


@contextlib.contextmanager
def log_context(**fields):
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def context_set(fields: dict) -> contextvars.Token:
    return _context.set(dict(fields))


def context_reset(token: contextvars.Token) -> None:
    _context.reset(token)


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", ...context, ...extra}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_context.get())
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)
