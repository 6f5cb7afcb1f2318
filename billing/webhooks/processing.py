"""Processing a stored event: once, under its row lock, through the dispatch table."""

from __future__ import annotations

import logging
import traceback
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from billing.models import WebhookEvent
from billing.webhooks.dispatch import webhook_handler_for

logger = logging.getLogger(__name__)

OUTCOMES = (WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED)
DONE = OUTCOMES
# Pending events older than this with no worker on them are enqueued again by the sweeper (the broker
# was down when they arrived, or a message was lost). Longer than the retry backoff of a failing event.
SWEEP_AFTER = timedelta(minutes=30)


class WebhookHandlerFailed(Exception):
    """The handler raised; the error is stored on the event, the task decides whether to retry."""


def webhook_event_enqueue(*, webhook_event_id: int) -> bool:
    """Hand the event to a worker. A broker outage is logged, not raised: the event is stored, and the
    sweeper (run by the reconciliation job) enqueues it again."""
    from billing.tasks import webhook_process_task

    try:
        webhook_process_task.apply_async(args=[webhook_event_id], retry=False)
    except Exception:
        logger.warning("could not enqueue webhook event %s; the sweeper will retry", webhook_event_id)
        return False
    return True


def webhook_event_process(*, webhook_event_id: int, last_try: bool = True, force: bool = False) -> str:
    """Run the event's handler once, under the event's row lock, and store the outcome.

    An event already processed or ignored is left alone unless `force` (a replay), and a replay never
    turns a processed event into anything else. A handler error is stored (status `failed` on the last
    try, still `pending` while retries remain) and raised as `WebhookHandlerFailed`.
    """
    failure: Exception | None = None
    with transaction.atomic():
        # The raw body and headers are for audit and replay by hand; the handler needs the payload only.
        event = (
            WebhookEvent.objects.select_for_update().defer("raw_body", "headers").filter(pk=webhook_event_id).first()
        )
        if event is None:
            return "missing"
        if event.status in DONE and not force:
            return event.status
        previous = event.status
        event.attempts += 1
        handler = webhook_handler_for(event.type)
        if handler is None:
            outcome = WebhookEvent.Status.IGNORED
        else:
            try:
                with transaction.atomic():
                    outcome = handler(event.payload)
                    if outcome not in OUTCOMES:
                        raise ValueError(f"handler for {event.type} returned {outcome!r}")
            except Exception as error:
                failure = error
        if failure is not None:
            event.status = WebhookEvent.Status.FAILED if last_try else WebhookEvent.Status.PENDING
            if previous in DONE:
                event.status = previous
            event.last_error = "".join(traceback.format_exception(failure, limit=-8))[-4000:]
            event.save(update_fields=["status", "attempts", "last_error"])
        else:
            event.status = WebhookEvent.Status.PROCESSED if previous == WebhookEvent.Status.PROCESSED else outcome
            event.last_error = ""
            event.processed_at = timezone.now()
            event.save(update_fields=["status", "attempts", "last_error", "processed_at"])
    if failure is not None:
        logger.warning(
            "webhook %s %s failed (attempt %s): %s", event.type, event.stripe_event_id, event.attempts, failure
        )
        raise WebhookHandlerFailed(f"{event.type} {event.stripe_event_id}: {failure}") from failure
    return event.status


def webhook_event_replay(*, stripe_event_id: str) -> str:
    """Run an event again now, whatever its status (admin action, `manage.py replay_webhook`).
    Handlers are idempotent, so replaying a processed event changes nothing."""
    webhook_event_id = WebhookEvent.objects.values_list("pk", flat=True).get(stripe_event_id=stripe_event_id)
    try:
        return webhook_event_process(webhook_event_id=webhook_event_id, last_try=True, force=True)
    except WebhookHandlerFailed:
        return WebhookEvent.Status.FAILED


def webhook_events_sweep(*, older_than: timedelta = SWEEP_AFTER, limit: int = 500) -> int:
    """Enqueue again events still pending long after they arrived. Safe to overdo: processing is
    locked and a done event is skipped."""
    cutoff = timezone.now() - older_than
    stale = list(
        WebhookEvent.objects.filter(status=WebhookEvent.Status.PENDING, received_at__lt=cutoff)
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(webhook_event_enqueue(webhook_event_id=pk) for pk in stale)
