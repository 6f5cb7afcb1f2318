"""Liveness and readiness: the database, the broker and a worker's heartbeat."""

import time

import pytest

from web.testing import broker_down
from workers import health

READY = "/api/health/ready/"


def _clear_heartbeats():
    client = health._client()
    for key in client.scan_iter(match=f"{health.KEY_PREFIX}*"):
        client.delete(key)


@pytest.mark.django_db
def test_liveness_answers_without_auth(api_client):
    response = api_client.get("/api/health/")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_ready_when_database_broker_and_a_worker_are_there(celery_worker, api_client):
    # the worker's heartbeat bootstep beats every 10 s (an earlier test may have cleared the last beat)
    deadline = time.monotonic() + health.INTERVAL_SECONDS + 5
    while not health.heartbeat_ages(f"worker:{celery_worker.hostname}") and time.monotonic() < deadline:
        time.sleep(0.2)
    response = api_client.get(READY)
    assert response.status_code == 200, response.json()
    checks = response.json()["checks"]
    assert all(check["ok"] for check in checks.values())
    assert celery_worker.hostname in checks["worker"]["detail"]


@pytest.mark.django_db
def test_not_ready_when_the_broker_is_down(api_client):
    with broker_down():  # the Celery app points at a port where nothing listens
        response = api_client.get(READY)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is False and "Connection" in body["checks"]["broker"]["detail"]


@pytest.mark.django_db
def test_not_ready_when_no_worker_beats(api_client):
    _clear_heartbeats()
    response = api_client.get(READY)
    assert response.status_code == 503
    assert response.json()["checks"]["worker"] == {"ok": False, "detail": "no worker heartbeat in the last 60 s"}


@pytest.mark.django_db
def test_a_stale_heartbeat_does_not_count(api_client):
    _clear_heartbeats()
    health._client().set(f"{health.KEY_PREFIX}worker:worker@gone", "1000.0")
    assert health.check("worker")[0] is False
    assert api_client.get(READY).status_code == 503


@pytest.mark.django_db
def test_beat_health_follows_its_heartbeat():
    _clear_heartbeats()
    assert health.check("beat")[0] is False
    health.heartbeat_write("beat")
    assert health.check("beat")[0] is True
