"""Notifications by email (Django's email backend: the console in development), sent by workers.

A service calls `notification_enqueue(task_name, object_id)` (or `notification_enqueue_many` with a
list, for a task that takes one) inside its transaction: the task is
published on commit, so nobody is told about something that was rolled back. The task renders the
message from the row and sends it with `notification_send_once`, which keeps a marker in Redis so a
redelivered task (Redis delivery is at-least-once) does not send the same message twice.
A notification lost with the broker down is not re-sent: it is a courtesy, the row is the record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from workers.outbox import enqueue_or_leave_to_sweeper

logger = logging.getLogger(__name__)
SENT_MARKER_SECONDS = 30 * 86400


def notification_task(name: str) -> Callable[[Callable[..., int]], Any]:
    """A notification's task (returns whether it sent, or how many): late acks, and retried with backoff
    while the mail server is unreachable."""
    return shared_task(name=name, acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)


def notification_enqueue(task_name: str, object_id: int) -> None:
    transaction.on_commit(lambda: enqueue_or_leave_to_sweeper(task_name, object_id, what="notification"))


def notification_enqueue_many(task_name: str, object_ids: list[int]) -> None:
    """One message for a batch (its task takes the list): a payout run records 100 transfers per
    transaction, and one publish per payout cost more of the run's CPU than the rest of its bookkeeping."""
    if object_ids:
        ids = list(object_ids)
        transaction.on_commit(lambda: enqueue_or_leave_to_sweeper(task_name, ids, what="notifications"))


def notification_send_once(*, key: str, to: list[str], subject: str, body: str) -> bool:
    """Send unless a message with this key was sent already; True when sent now."""
    from workers.health import _client

    recipients = [address for address in to if address]
    if not recipients:
        logger.info("notification has no recipient", extra={"notification": key})
        return False
    marker = f"talkpay:notified:{key}"
    redis = _client()
    if not redis.set(marker, "1", nx=True, ex=SENT_MARKER_SECONDS):
        return False
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception:
        redis.delete(marker)  # let the retry send it
        raise
    logger.info("notification sent", extra={"notification": key, "recipients": len(recipients)})
    return True
