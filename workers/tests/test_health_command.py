"""`python -m workers.health worker|beat`, the containers' health checks, run as compose runs them:
a process of its own reading the heartbeats in Redis."""

import os
import socket
import subprocess
import sys
import time

import pytest

from workers import health


def _health(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workers.health", *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def no_heartbeats():
    client = health._client()
    for key in client.scan_iter(match=f"{health.KEY_PREFIX}*"):
        client.delete(key)
    yield client
    for key in client.scan_iter(match=f"{health.KEY_PREFIX}*"):
        client.delete(key)


@pytest.mark.django_db
def test_a_worker_container_is_healthy_by_its_own_worker_only(no_heartbeats):
    # given a fresh heartbeat from a worker in another container only
    health.heartbeat_write("worker", "payments@another-container")
    assert health.check("worker")[0] is True
    # then that container is healthy, and a container whose worker does not beat is not
    assert health.check("worker", "*@another-container")[0] is True
    ok, detail = health.check("worker", "*@this-container")
    assert (ok, detail) == (False, "no worker heartbeat matching *@this-container in the last 60 s")

    # when this host's worker (`-n payments@%h`) beats, the command run on this host says healthy
    health.heartbeat_write("worker", f"payments@{socket.gethostname()}")
    result = _health("worker", "--this-host")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"payments@{socket.gethostname()}" in result.stdout and "another-container" not in result.stdout


@pytest.mark.django_db
def test_a_stale_worker_heartbeat_is_unhealthy(no_heartbeats):
    # (another host's name: the suite's own worker may be beating on this one)
    stale = time.time() - health.MAX_AGE_SECONDS - 5
    no_heartbeats.set(f"{health.KEY_PREFIX}worker:payments@gone-container", str(stale))
    assert health.check("worker", "*@gone-container")[0] is False


@pytest.mark.django_db
def test_beat_is_healthy_while_its_heartbeat_is_fresh(no_heartbeats):
    assert _health("beat").returncode == 1
    health.heartbeat_write("beat")
    assert _health("beat").returncode == 0
    assert _health("scheduler").returncode == 2
