"""Structured logs: JSON lines, and the web request's id carried into the Celery task it enqueued."""

import json
import logging
import time

import pytest
from django.db import transaction

from workers.celery import app
from workers.logs import JsonFormatter, log_context

probe_logger = logging.getLogger("talkpay.tests.probe")


@app.task(name="tests.log_probe")
def log_probe(booking_id: int) -> None:
    probe_logger.warning("probe ran")


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record):
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def json_lines():
    handler = _Lines()
    logging.getLogger().addHandler(handler)
    yield handler.lines
    logging.getLogger().removeHandler(handler)


def test_a_line_is_one_json_object_with_context_and_extra(json_lines):
    with log_context(request_id="req-1", payout_id=7):
        probe_logger.warning("payout sent", extra={"amount_cents": 2700})
    [line] = [line for line in json_lines if line["message"] == "payout sent"]
    assert line["level"] == "WARNING" and line["logger"] == "talkpay.tests.probe"
    assert (line["request_id"], line["payout_id"], line["amount_cents"]) == ("req-1", 7, 2700)


@pytest.mark.django_db
def test_the_request_id_is_returned_and_a_bad_one_replaced(api_client):
    assert api_client.get("/api/health/", HTTP_X_REQUEST_ID="lb-123").headers["X-Request-ID"] == "lb-123"
    replaced = api_client.get("/api/health/", HTTP_X_REQUEST_ID="bad id\nwith newline").headers["X-Request-ID"]
    assert replaced != "bad id\nwith newline" and len(replaced) == 32


def test_the_request_id_reaches_the_task_with_its_ids(celery_worker, json_lines):
    # given a web request's context (the middleware sets it) that enqueues a task on commit
    with log_context(request_id="req-into-task"), transaction.atomic():
        transaction.on_commit(lambda: log_probe.apply_async(args=[42]))
    # when the worker runs it, then its log line carries the request id, the task and the booking id
    deadline = time.monotonic() + 10
    while not [line for line in json_lines if line["message"] == "probe ran"] and time.monotonic() < deadline:
        time.sleep(0.05)
    [line] = [line for line in json_lines if line["message"] == "probe ran"]
    assert line["request_id"] == "req-into-task"
    assert line["task"] == "tests.log_probe" and line["booking_id"] == 42 and line["task_id"]


def test_a_task_enqueued_outside_a_request_has_no_request_id(celery_worker, json_lines):
    log_probe.apply_async(args=[43])
    deadline = time.monotonic() + 10
    while not [line for line in json_lines if line["message"] == "probe ran"] and time.monotonic() < deadline:
        time.sleep(0.05)
    [line] = [line for line in json_lines if line["message"] == "probe ran"]
    assert "request_id" not in line and line["booking_id"] == 43
