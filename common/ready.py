"""Waiting for a worker's commit without polling: PostgreSQL LISTEN/NOTIFY on a named channel.

A request that answers with what a worker creates (a booking's PaymentIntent, a subscription's first
invoice) waits a short bounded time for it. The worker sends a NOTIFY on the row's channel inside the
transaction that stores it, so PostgreSQL delivers it when, and only if, that transaction commits. The
waiting request LISTENs first, then reads the row once (the worker may be done already), then sleeps on
its database socket until the notification or the deadline, and reads once more: two reads and one
wake-up, where a poll would query every 20-200 ms for the whole wait.

It needs the request's connection in autocommit (outside any transaction) and a session of its own:
through a pooler in transaction mode (pgbouncer) LISTEN does not work, and the wait runs to its
deadline. SQLite (`make run` without DATABASE_URL) has no notifications: there the row is polled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from django.db import connection

T = TypeVar("T")
POLL_FIRST_DELAY, POLL_MAX_DELAY = 0.02, 0.2


def ready_notify(channel: str) -> None:
    """Wake whoever waits on `channel`, when the current transaction commits."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [channel])


def ready_wait(*, channel: str, read: Callable[[], T], done: Callable[[T], bool], timeout: float) -> T:
    """`read()` once `done` says so after a NOTIFY on `channel`, or as it is when `timeout` has passed."""
    if timeout <= 0 or connection.vendor != "postgresql" or connection.in_atomic_block:
        return _poll(read=read, done=done, timeout=timeout)
    with connection.cursor() as cursor:
        cursor.execute(f'LISTEN "{channel}"')
    try:
        value = read()
        if done(value):
            return value
        _sleep_until_notified(channel, deadline=time.monotonic() + timeout)
        return read()
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'UNLISTEN "{channel}"')


def _sleep_until_notified(channel: str, *, deadline: float) -> None:
    raw = connection.connection
    while (remaining := deadline - time.monotonic()) > 0:
        # Notifications of channels an earlier request on this connection listened to may be queued
        # on it (it is reused across requests): only ours ends the wait.
        for notification in raw.notifies(timeout=remaining, stop_after=1):
            if notification.channel == channel:
                return


def _poll(*, read: Callable[[], T], done: Callable[[T], bool], timeout: float) -> T:
    deadline = time.monotonic() + timeout
    delay = POLL_FIRST_DELAY
    while True:
        value = read()
        if done(value) or time.monotonic() >= deadline:
            return value
        time.sleep(delay)
        delay = min(delay * 1.5, POLL_MAX_DELAY)
