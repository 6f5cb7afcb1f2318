"""Issue 17 item 3: lost work is found within a minute or two, by stamps rather than ages of half an
hour, and the unpaid-booking expiry never runs ahead of a payment's unprocessed events."""

from datetime import timedelta

import pytest
from celery.signals import before_task_publish
from django.conf import settings as django_settings
from django.utils import timezone

from billing.models import Payment, WebhookEvent
from billing.webhooks import processing
from booking import services as booking_services
from booking.models import Booking
from booking.tests.test_expiry import _book
from web.tests.factories import ListenerFactory
from workers.schedules import SCHEDULES

pytestmark = pytest.mark.django_db


def _event(*, seconds_ago: float, intent_id: str = "pi_sweep", kind: str = "payment_intent.succeeded") -> WebhookEvent:
    payload = {"id": f"evt_{intent_id}_{seconds_ago}", "type": kind, "data": {"object": {"id": intent_id}}}
    event = WebhookEvent.objects.create(stripe_event_id=payload["id"], type=kind, payload=payload, raw_body="{}")
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(seconds=seconds_ago))
    return event


def _swept() -> list[int]:
    published = []

    def record(sender=None, body=None, **kwargs):
        published.append(body[0][0])

    before_task_publish.connect(record, weak=False)
    try:
        processing.webhook_events_sweep()
    finally:
        before_task_publish.disconnect(record)
    return published


def test_a_stranded_event_is_enqueued_again_after_a_minute_not_half_an_hour(settings):
    settings.WEBHOOK_SWEEP_AFTER_SECONDS = 60
    stranded = _event(seconds_ago=90)
    fresh = _event(seconds_ago=10, intent_id="pi_fresh")

    assert _swept() == [stranded.pk]
    assert _swept() == []  # stamped: its new message gets a minute of its own
    WebhookEvent.objects.filter(pk=stranded.pk).update(sweep_after=timezone.now() - timedelta(seconds=1))
    assert _swept() == [stranded.pk]
    assert fresh.pk not in _swept()


def test_an_event_waiting_for_its_scheduled_retry_is_left_to_it_until_then(settings):
    settings.WEBHOOK_SWEEP_AFTER_SECONDS = 60
    retrying = _event(seconds_ago=3600)
    processing.webhook_event_retry_scheduled(webhook_event_id=retrying.pk, countdown=120)

    assert _swept() == []
    WebhookEvent.objects.filter(pk=retrying.pk).update(sweep_after=timezone.now() - timedelta(seconds=1))
    assert _swept() == [retrying.pk]  # the retry's message never came


def test_expiry_never_cancels_a_booking_whose_payment_events_are_unprocessed(settings):
    settings.BOOKING_PENDING_EXPIRY_MINUTES = 30
    booking = _book(ListenerFactory(), timezone.now() + timedelta(days=2), minutes_ago=45)
    Payment.objects.filter(booking=booking).update(
        status=Payment.Status.REQUIRES_PAYMENT_METHOD, stripe_payment_intent_id="pi_unapplied"
    )
    charge_event = _event(seconds_ago=600, intent_id="ch_unapplied", kind="charge.succeeded")
    charge_event.payload["data"]["object"]["payment_intent"] = "pi_unapplied"
    charge_event.save(update_fields=["payload"])
    intent_event = _event(seconds_ago=600, intent_id="pi_unapplied")

    assert booking_services.bookings_expire_unpaid() == 0
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.PENDING

    WebhookEvent.objects.filter(pk=intent_event.pk).update(status=WebhookEvent.Status.PROCESSED)
    assert booking_services.bookings_expire_unpaid() == 0  # the charge's event is still unapplied

    WebhookEvent.objects.filter(pk=charge_event.pk).update(status=WebhookEvent.Status.PROCESSED)
    assert booking_services.bookings_expire_unpaid() == 1
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.CANCELLED


def test_every_sweeper_runs_every_minute_and_stuck_payouts_resume_within_two():
    # Sweepers of lost work; the fee sweep only catches up the books (Stripe settles fees late), every 10 min.
    sweepers = {
        name: when
        for name, (task, when, _) in SCHEDULES.items()
        if "sweep" in task and task != "billing.payment_fees_sweep"
    }

    assert {task for task, _, _ in SCHEDULES.values()} >= {"billing.webhook_events_sweep", "payouts.sweep_stuck"}
    assert all(getattr(when, "seconds", 3600) <= 60 for when in sweepers.values()), sweepers
    assert django_settings.PAYOUT_RESEND_AFTER_SECONDS <= 120
    assert django_settings.WEBHOOK_SWEEP_AFTER_SECONDS <= 120
