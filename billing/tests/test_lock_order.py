"""Issue 10 item 18: the paths that lock payments, bookings and users run at once for one talker and
one package, and PostgreSQL reports no deadlock (its own counter, `pg_stat_database.deadlocks`)."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from billing.tests.stripe_events import deliver, intent_confirm, intent_event, intent_payment
from booking import services as booking_services
from booking.tests.factories import BookingFactory, PackageFactory
from web.tests.factories import ListenerFactory, TalkerFactory

ROUNDS = 12


def _deadlocks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_item18_payments_cancellations_and_new_bookings_of_one_talker_at_once_never_deadlock(settings, stripe_emulator):
    # The subject is lock order, not the cap on one talker's unpaid bookings (issue 11).
    settings.BOOKING_PENDING_MAX_PER_TALKER = 1000
    # given one talker with many bookings of one package, half being paid and half cancelled at once,
    # while the same talker books more sessions of the same package
    talker, package = TalkerFactory(), PackageFactory()
    listeners = [ListenerFactory() for _ in range(ROUNDS)]
    payments = [
        intent_payment(booking=BookingFactory(talker=talker, package=package, listener=listener))
        for listener in listeners
    ]
    succeeded = {}
    for payment in payments:  # paid on Stripe; each event is delivered at the start signal
        intent_confirm(payment)
        succeeded[payment.pk] = intent_event("payment_intent.succeeded", payment)
    before = _deadlocks()
    start = threading.Barrier(3 * ROUNDS)

    def pay(payment):
        start.wait()
        deliver(succeeded[payment.pk])

    def cancel(payment):
        start.wait()
        try:
            booking_services.booking_cancel(booking_id=payment.booking_id, user=talker)
        except Exception as error:  # a lost race against the payment is fine: not a deadlock
            assert "deadlock" not in str(error).lower(), error

    def book(listener):
        start.wait()
        booking_services.booking_create(
            talker=talker,
            listener_id=listener.pk,
            package_id=package.pk,
            scheduled_at=timezone.now() + timedelta(days=10),
        )

    jobs = [(pay, p) for p in payments] + [(cancel, p) for p in payments] + [(book, li) for li in listeners]

    def run(job):
        try:
            job[0](job[1])
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        for future in [pool.submit(run, job) for job in jobs]:
            future.result()

    # then PostgreSQL found no deadlock among them
    assert _deadlocks() == before
