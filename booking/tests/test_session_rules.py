"""Item 3: a session starts only in its window around scheduled_at, completes only once it has run, and
its earning is held after completion by default; item 9: a talker cannot squat slots with unpaid bookings."""

from datetime import timedelta

import pytest
from django.utils import timezone

from booking.models import Booking
from booking.tests.factories import BookingFactory, PackageFactory
from payouts.tests.factories import ListenerPayoutFactory
from web.testing import auth_client
from web.tests.factories import ListenerFactory, TalkerFactory

pytestmark = pytest.mark.django_db


def _start(booking, user=None):
    return auth_client(user or booking.listener).post(f"/api/payment/bookings/{booking.pk}/start_session/")


def _complete(booking, user=None):
    return auth_client(user or booking.listener).post(f"/api/payment/bookings/{booking.pk}/complete_session/")


def _confirmed(*, starts_in: timedelta, **fields) -> Booking:
    return BookingFactory(status=Booking.Status.CONFIRMED, scheduled_at=timezone.now() + starts_in, **fields)


def _in_progress(*, scheduled_ago: timedelta, started_ago: timedelta, minutes: int = 20) -> Booking:
    now = timezone.now()
    return BookingFactory(
        status=Booking.Status.IN_PROGRESS,
        package=PackageFactory(duration_minutes=minutes),
        scheduled_at=now - scheduled_ago,
        started_at=now - started_ago,
    )


def test_a_session_scheduled_next_year_cannot_start_or_complete_now():
    booking = _confirmed(starts_in=timedelta(days=300))

    started = _start(booking)
    completed = _complete(booking)

    assert started.status_code == 400
    assert started.json()["error"]["code"] == "too_early"
    assert completed.status_code == 400
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED and booking.started_at is None


def test_a_session_starts_from_its_window_before_scheduled_at(settings):
    settings.SESSION_START_EARLY_MINUTES = 15
    early = _confirmed(starts_in=timedelta(minutes=16))
    in_window = _confirmed(starts_in=timedelta(minutes=14))

    assert _start(early).status_code == 400
    assert _start(in_window).status_code == 200


def test_a_session_cannot_start_once_its_window_has_closed(settings):
    settings.SESSION_START_LATE_MINUTES = 30
    late = _confirmed(starts_in=-timedelta(minutes=31))

    response = _start(late)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_late"


def test_a_session_cannot_complete_right_after_it_started():
    booking = _in_progress(scheduled_ago=timedelta(0), started_ago=timedelta(seconds=5))

    response = _complete(booking)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_early"
    booking.refresh_from_db()
    assert booking.status == Booking.Status.IN_PROGRESS


def test_a_session_completes_once_it_has_run_its_minimum(settings):
    settings.SESSION_MIN_RUN_PERCENT = 50
    short = _in_progress(scheduled_ago=timedelta(minutes=9), started_ago=timedelta(minutes=9))
    enough = _in_progress(scheduled_ago=timedelta(minutes=11), started_ago=timedelta(minutes=11))

    assert _complete(short).status_code == 400
    completed = _complete(enough)
    assert completed.status_code == 200
    assert completed.json()["actual_duration_minutes"] == 11


def test_a_session_completes_once_its_scheduled_end_is_reached_even_if_started_late():
    # Started 25 minutes late, a 20-minute session's scheduled end has passed: the talker's time is up.
    booking = _in_progress(scheduled_ago=timedelta(minutes=26), started_ago=timedelta(minutes=1))

    assert _complete(booking).status_code == 200


def test_a_completed_sessions_earning_is_held_by_default(settings):
    earning = ListenerPayoutFactory(payable_at=None)
    booking = earning.booking
    now = timezone.now()
    Booking.objects.filter(pk=booking.pk).update(
        status=Booking.Status.IN_PROGRESS,
        scheduled_at=now - timedelta(minutes=30),
        ends_at=now - timedelta(minutes=10),
        started_at=now - timedelta(minutes=25),
        completed_at=None,
    )

    assert _complete(booking).status_code == 200

    earning.refresh_from_db()
    assert settings.PAYOUT_HOLD_HOURS >= 24
    assert earning.payable_at >= timezone.now() + timedelta(hours=settings.PAYOUT_HOLD_HOURS - 1)


def test_a_talker_cannot_hold_more_than_the_cap_of_unpaid_bookings(settings):
    settings.BOOKING_PENDING_MAX_PER_TALKER = 2
    talker, listener, package = TalkerFactory(), ListenerFactory(), PackageFactory()
    for hours in (30, 40):
        BookingFactory(
            talker=talker, listener=listener, package=package, scheduled_at=timezone.now() + timedelta(hours=hours)
        )
    body = {
        "listener_id": listener.pk,
        "package_id": package.pk,
        "scheduled_at": (timezone.now() + timedelta(hours=50)).isoformat(),
    }

    response = auth_client(talker).post("/api/payment/bookings/create_booking/", body, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "too_many_pending"
    assert Booking.objects.filter(talker=talker).count() == 2


def test_a_session_never_started_by_the_end_of_its_window_is_refunded_in_full(stripe_emulator, settings):
    from billing.models import Refund
    from billing.tests.refund_support import StripeEvents, paid_booking, shift_schedule
    from payouts.models import ListenerPayout

    settings.SESSION_START_LATE_MINUTES = 30
    booking = paid_booking(StripeEvents())
    shift_schedule(booking, hours_from_now=-1)  # an hour ago; nobody started it

    quote = auth_client(booking.talker).get(f"/api/payment/bookings/{booking.pk}/cancel_quote/")
    response = auth_client(booking.talker).post(f"/api/payment/bookings/{booking.pk}/cancel/", format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["refund"]["policy"] == "not_started"
    assert response.json()["refund"]["amount"] == "30.00"
    assert quote.status_code == 200 and quote.json()["policy"] == "not_started", quote.content
    assert Refund.objects.get(payment__booking=booking).amount == 3000
    assert ListenerPayout.objects.get(booking=booking).payable_at is None
