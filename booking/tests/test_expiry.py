"""Abandoned checkouts: a booking left unpaid is cancelled, frees its slot, and its PaymentIntent is
cancelled on Stripe by the worker; paid or recent bookings are left alone."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from billing import payments as billing_services
from billing import stripe_gateway
from billing.models import Payment
from booking import services
from booking.models import Booking
from booking.tests.factories import PackageFactory
from web.tests.factories import ListenerFactory, TalkerFactory


def _book(listener, scheduled_at, *, minutes_ago: int) -> Booking:
    booking = services.booking_create(
        talker=TalkerFactory(), listener_id=listener.pk, package_id=PackageFactory().pk, scheduled_at=scheduled_at
    )
    Booking.objects.filter(pk=booking.pk).update(created_at=timezone.now() - timedelta(minutes=minutes_ago))
    return booking


def test_an_unpaid_booking_expires_frees_the_slot_and_its_intent_is_cancelled(celery_worker, stripe_emulator, settings):
    settings.BOOKING_PENDING_EXPIRY_MINUTES = 30
    listener = ListenerFactory()
    slot = timezone.now() + timedelta(days=2)
    abandoned = _book(listener, slot, minutes_ago=31)
    payment = billing_services.payment_intent_create(payment_id=abandoned.payment.pk)
    recent = _book(listener, slot + timedelta(hours=2), minutes_ago=5)

    assert services.bookings_expire_unpaid() == 1

    abandoned.refresh_from_db()
    assert abandoned.status == Booking.Status.CANCELLED
    assert abandoned.cancel_reason.startswith("Expired")
    assert Booking.objects.get(pk=recent.pk).status == Booking.Status.PENDING
    deadline = time.monotonic() + 30
    while stripe_gateway.payment_intent_retrieve(payment.stripe_payment_intent_id)["status"] != "canceled":
        assert time.monotonic() < deadline, "the PaymentIntent was not cancelled on Stripe"
        time.sleep(0.05)
    rebooked = _book(listener, slot, minutes_ago=0)
    assert rebooked.status == Booking.Status.PENDING


@pytest.mark.django_db
def test_a_paid_booking_never_expires(settings):
    settings.BOOKING_PENDING_EXPIRY_MINUTES = 30
    booking = _book(ListenerFactory(), timezone.now() + timedelta(days=2), minutes_ago=120)
    Payment.objects.filter(booking=booking).update(status=Payment.Status.SUCCEEDED, stripe_payment_intent_id="pi_x")

    assert services.bookings_expire_unpaid() == 0
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.PENDING


@pytest.mark.django_db
def test_a_booking_whose_intent_was_never_created_expires_with_its_payment_canceled(settings):
    settings.BOOKING_PENDING_EXPIRY_MINUTES = 30
    booking = _book(ListenerFactory(), timezone.now() + timedelta(days=2), minutes_ago=45)

    assert services.bookings_expire_unpaid() == 1
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.CANCELLED
    assert Payment.objects.get(booking=booking).status == Payment.Status.CANCELED
