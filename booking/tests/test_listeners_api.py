"""The read-only booking views the web app uses: listeners with their busy slots, and the refund a
cancellation would grant before the participant confirms it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.tests.factories import PaymentFactory
from booking.models import Booking
from booking.tests.factories import BookingFactory
from web.testing import auth_client
from web.tests.factories import ListenerFactory, TalkerFactory

pytestmark = pytest.mark.django_db


def test_listeners_lists_only_active_listeners_taking_bookings(api_client):
    taking = ListenerFactory(username="amy")
    ListenerFactory(username="paused", accepts_bookings=False)
    ListenerFactory(username="gone", is_active=False)
    talker = TalkerFactory()

    body = auth_client(talker).get("/api/payment/listeners/").json()

    assert [row["username"] for row in body["results"]] == ["amy"]
    assert body["results"][0]["id"] == taking.pk
    assert body["results"][0]["busy_slots"] == []


def test_busy_slots_are_the_future_bookings_that_hold_the_listeners_time():
    listener = ListenerFactory()
    soon = timezone.now() + timedelta(days=2)
    held = {
        status: BookingFactory(listener=listener, status=status, scheduled_at=soon + timedelta(hours=i))
        for i, status in enumerate(Booking.SLOT_HOLDING)
    }
    BookingFactory(listener=listener, status=Booking.Status.CANCELLED, scheduled_at=soon + timedelta(hours=5))
    BookingFactory(listener=listener, status=Booking.Status.COMPLETED, scheduled_at=soon + timedelta(hours=6))
    BookingFactory(listener=listener, status=Booking.Status.CONFIRMED, scheduled_at=timezone.now() - timedelta(days=1))

    body = auth_client(TalkerFactory()).get("/api/payment/listeners/").json()

    slots = body["results"][0]["busy_slots"]
    assert [s["starts_at"] for s in slots] == [
        b.scheduled_at.isoformat().replace("+00:00", "Z") for b in sorted(held.values(), key=lambda b: b.scheduled_at)
    ]
    assert set(slots[0]) == {"starts_at", "ends_at"}  # when, never who


def test_listeners_needs_a_signed_in_user(api_client):
    assert api_client.get("/api/payment/listeners/").status_code == 401


def _confirmed(hours_ahead: float):
    starts = timezone.now() + timedelta(hours=hours_ahead)
    booking = BookingFactory(status=Booking.Status.CONFIRMED, scheduled_at=starts)
    PaymentFactory(booking=booking, status="succeeded")
    return booking


def test_cancel_quote_gives_the_policys_refund_without_cancelling():
    early, late = _confirmed(72), _confirmed(2)

    early_quote = auth_client(early.talker).get(f"/api/payment/bookings/{early.pk}/cancel_quote/").json()
    late_quote = auth_client(late.talker).get(f"/api/payment/bookings/{late.pk}/cancel_quote/").json()
    by_listener = auth_client(late.listener).get(f"/api/payment/bookings/{late.pk}/cancel_quote/").json()

    assert early_quote == {"amount": "30.00", "policy": "talker_early"}
    assert late_quote == {"amount": "15.00", "policy": "talker_late"}
    assert by_listener == {"amount": "30.00", "policy": "listener_cancelled"}
    early.refresh_from_db()
    assert early.status == Booking.Status.CONFIRMED


def test_cancel_quote_of_an_unpaid_booking_is_nothing():
    booking = BookingFactory(status=Booking.Status.PENDING)

    quote = auth_client(booking.talker).get(f"/api/payment/bookings/{booking.pk}/cancel_quote/").json()

    assert quote == {"amount": "0.00", "policy": "unpaid"}


def test_cancel_quote_refuses_what_cannot_be_cancelled_and_hides_others_bookings():
    done = BookingFactory(status=Booking.Status.COMPLETED)

    conflict = auth_client(done.talker).get(f"/api/payment/bookings/{done.pk}/cancel_quote/")
    stranger = auth_client(TalkerFactory()).get(f"/api/payment/bookings/{done.pk}/cancel_quote/")

    assert conflict.status_code == 409
    assert conflict.json()["error"]["fields"] == {"status": [conflict.json()["error"]["message"]]}
    assert stranger.status_code == 404


def test_cancel_quote_of_a_disputed_payment_refuses_as_cancel_does():
    # given a confirmed booking whose payment was disputed (won: the booking is confirmed again)
    from billing.models import Dispute

    booking = _confirmed(72)
    Dispute.objects.create(payment=booking.payment, stripe_dispute_id="dp_1", amount=3000, status=Dispute.Status.WON)

    quote = auth_client(booking.talker).get(f"/api/payment/bookings/{booking.pk}/cancel_quote/")
    cancel = auth_client(booking.talker).post(f"/api/payment/bookings/{booking.pk}/cancel/", {}, format="json")

    # then the quote promises no refund that the cancellation would refuse
    assert (quote.status_code, quote.json()["error"]["code"]) == (409, "disputed")
    assert (cancel.status_code, cancel.json()["error"]["code"]) == (409, "disputed")
