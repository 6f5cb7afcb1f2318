"""Shared pytest fixtures (loaded from the root conftest): the Stripe emulator, a real Celery
worker, authenticated API clients. Everything here runs for real; nothing is mocked."""

from __future__ import annotations

import contextlib
import time

import pytest
from django.conf import settings
from rest_framework.test import APIClient

WEBHOOK_PATH = "/api/payment/stripe/webhook/"


@pytest.fixture(scope="session")
def stripe_emulator_process():
    """One emulator process for the session; the SDK is pointed at it through settings."""
    from stripe_emulator.testing import EmulatorProcess

    with EmulatorProcess(quiet=True, time_scale=0.01) as emulator:
        original = settings.STRIPE_API_BASE
        settings.STRIPE_API_BASE = emulator.url
        yield emulator
        settings.STRIPE_API_BASE = original


@pytest.fixture
def stripe_emulator(stripe_emulator_process):
    """The emulator with fresh state for each test (webhook endpoints dropped too)."""
    stripe_emulator_process.reset()
    yield stripe_emulator_process


def webhooks_register(emulator, base_url: str) -> None:
    """Register Talkpay's two webhook endpoints on the emulator, as on Stripe: the platform's, and the
    Connect one (connect=true) that alone receives the connected accounts' events (account.updated,
    their payouts). Both at the same URL, each with the secret the settings accept."""
    url = base_url.rstrip("/") + WEBHOOK_PATH
    emulator.register_webhook(url, secret=settings.STRIPE_WEBHOOK_SECRET)
    emulator.register_webhook(url, secret=settings.STRIPE_CONNECT_WEBHOOK_SECRET, connect=True)


_running_worker: list = []


def worker_wait_idle(timeout: float = 30.0) -> None:
    """Let the test worker finish what it has started, then drop what is still queued, so no task of
    one test runs while the next test's database is being emptied."""
    from celery.worker import state

    from workers.celery import QUEUES, app

    deadline = time.monotonic() + timeout
    while (state.active_requests or state.reserved_requests) and time.monotonic() < deadline:
        time.sleep(0.02)
    _revoke_scheduled_retries()
    with app.connection_for_write() as connection:
        for queue in QUEUES:
            connection.default_channel.queue_purge(queue)


def _revoke_scheduled_retries() -> None:
    """Tasks waiting on the worker's timer (a retry's countdown, an ETA) are neither active nor queued:
    revoke them, or one fires while the database is being flushed and deadlocks with it. A revoked
    request is acknowledged when its time comes, without running."""
    from celery.worker import state

    timer = getattr(getattr(_running_worker[0], "consumer", None), "timer", None) if _running_worker else None
    schedule = getattr(timer, "schedule", timer)  # the threads pool's timer wraps kombu's
    for scheduled in getattr(schedule, "queue", None) or []:
        for argument in getattr(scheduled.entry, "args", None) or ():
            if getattr(argument, "id", None):
                state.revoked.add(argument.id)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    # Runs before the test's fixtures (and the database flush) are torn down.
    if _running_worker:
        worker_wait_idle()
    emulator = item.funcargs.get("stripe_emulator") if hasattr(item, "funcargs") else None
    if emulator is not None:
        # no more deliveries (retries of the test's events) to the live server while the database is flushed
        emulator.reset()
    return (yield)


def pytest_configure(config):
    _flush_retries_deadlocks()


def _flush_retries_deadlocks() -> None:
    """A transactional test's teardown empties every table (TRUNCATE). A request still finishing in the
    live server's thread can deadlock with it; PostgreSQL then aborts one side. When the flush is the one
    aborted, it is tried again (the request is done by then) instead of erroring the test."""
    from django.core.management.base import CommandError
    from django.db import OperationalError
    from django.test import TransactionTestCase

    original = TransactionTestCase._fixture_teardown  # type: ignore[attr-defined]
    if getattr(original, "retries_deadlocks", False):
        return

    def teardown(self):
        for attempt in range(3):
            try:
                return original(self)
            except (CommandError, OperationalError) as error:
                if attempt == 2 or "deadlock detected" not in f"{error} {error.__cause__}":
                    raise
                time.sleep(0.5)

    teardown.retries_deadlocks = True  # type: ignore[attr-defined]
    TransactionTestCase._fixture_teardown = teardown  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def celery_worker_session(django_db_setup, django_db_blocker, stripe_emulator_process):
    """A real Celery worker consuming every queue from the test Redis, in threads of this process,
    so it writes to the same test database. Tests that use it need committed data (transaction=True)."""
    from celery.contrib.testing.worker import start_worker

    from workers.celery import QUEUES, app

    with app.connection_for_write() as connection:
        for queue in QUEUES:
            connection.default_channel.queue_purge(queue)
    with django_db_blocker.unblock():
        with start_worker(
            app, pool="threads", concurrency=4, perform_ping_check=False, loglevel="warning", queues=list(QUEUES)
        ) as worker:
            _running_worker.append(worker)
            yield worker
            _running_worker.clear()
        _close_worker_thread_connections()


def _close_worker_thread_connections() -> None:
    """The worker's threads are gone but their PostgreSQL sessions linger until garbage collection;
    end them so the test database can be dropped."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def celery_worker(celery_worker_session, transactional_db):
    return celery_worker_session


def auth_client(user) -> APIClient:
    from web.tokens import UserRefreshToken

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {UserRefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@contextlib.contextmanager
def broker_down(url: str = "redis://127.0.0.1:9/0"):
    """Point the Celery app's producer at a port where nothing listens, as when Redis is down (or at
    `url`: a Redis of the test's own that it stops)."""
    from workers.celery import app

    saved = app.conf.broker_url, app.conf.broker_write_url
    app.conf.broker_url = app.conf.broker_write_url = url
    app._pool = None
    app.amqp._producer_pool = None
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.broker_write_url = saved
        app._pool = None
        app.amqp._producer_pool = None


def throttle_reset() -> None:
    """Forget every throttle count (they live in Redis, shared by processes and kept between runs)."""
    from django.core.cache import caches

    from web.cache import FallbackRedisCache

    cache = caches["throttle"]
    assert isinstance(cache, FallbackRedisCache)
    try:
        client = cache._cache.get_client(write=True)
        keys = list(client.scan_iter(f"{cache.key_prefix}:*"))
        if keys:
            client.delete(*keys)
    except Exception:
        pass
    cache._local.clear()


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    throttle_reset()
    yield


@pytest.fixture
def fresh_notifications():
    """Forget which notifications were sent (markers in Redis outlive a test) and give the mail outbox."""
    from django.core import mail

    from workers.health import _client

    redis = _client()
    for key in redis.scan_iter(match="talkpay:notified:*"):
        redis.delete(key)
    return mail.outbox
