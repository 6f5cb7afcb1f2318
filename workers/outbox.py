"""Enqueue work that the database already records, and send it again when it was lost.

Rows are the truth (DESIGN: nothing is lost): a service writes the row, then enqueues its task on
commit. If the broker is down the publish fails fast (well under a second), is logged, and the row
waits for a beat sweeper that enqueues it again. Every task is idempotent, so a sweeper that
overtakes a slow message changes nothing.
"""

import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

logger = logging.getLogger(__name__)


def enqueue_or_leave_to_sweeper(task_name: str, object_id: int | list[int], *, what: str) -> bool:
    """Publish the task named `task_name` with `object_id` (an id, or a list for a task that takes one),
    by its stable name (services never import tasks; the routing table picks the queue). Returns False
    (and logs) when the broker cannot be reached."""
    from workers.celery import app

    try:
        # No result: nobody waits on these tasks (the row is the record), and asking for one subscribes
        # to the result channel on every publish, a second Redis round trip that retries for ~20 s
        # when Redis is down. The broker's own timeouts and retry cap are in workers.celery.
        app.send_task(task_name, args=[object_id], retry=False, ignore_result=True)
    except Exception:
        logger.warning("could not enqueue %s %s; the sweeper will retry", what, object_id)
        return False
    return True


def enqueue_stale(
    queryset: models.QuerySet,
    *,
    stamp_field: str,
    enqueue: Callable[[int], bool],
    limit: int = 500,
) -> int:
    """Enqueue again the rows of `queryset` whose `stamp_field` is older than
    settings.OUTBOX_RESEND_AFTER_SECONDS, oldest first, and stamp each one that reached the broker so
    the next sweep leaves it alone a while."""
    older_than = timezone.now() - timedelta(seconds=settings.OUTBOX_RESEND_AFTER_SECONDS)
    stale = list(
        queryset.filter(**{f"{stamp_field}__lt": older_than}).order_by(stamp_field).values_list("pk", flat=True)[:limit]
    )
    enqueued = 0
    for pk in stale:
        if enqueue(pk):
            queryset.model.objects.filter(pk=pk).update(**{stamp_field: timezone.now()})
            enqueued += 1
    return enqueued
