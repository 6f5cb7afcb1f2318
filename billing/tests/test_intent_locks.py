"""Issue 17 items 4 and 5: PaymentIntent creation holds no row lock across the Stripe call, so a hung
Stripe blocks neither this booking's cancellation nor another talker's booking of the same package;
each Stripe call is bounded by STRIPE_TIMEOUT_SECONDS; a deadlocked task is retried."""

import threading
import time

import pytest
from django.db import OperationalError, connection, connections, transaction

from billing import payments as services
from billing import stripe_gateway
from billing.models import Payment
from billing.tests.test_payment_intents import _book
from booking.models import Booking
from booking.tests.factories import PackageFactory
from booking.tests.test_api import CREATE, _body
from web.testing import auth_client, broker_down
from web.tests.factories import ListenerFactory, TalkerFactory
from web.tests.support import eventually

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def _locked_elsewhere(payment_id: int) -> bool:
    """Whether another transaction holds the payment's row lock (NOWAIT fails at once if so)."""
    try:
        with transaction.atomic():
            Payment.objects.select_for_update(nowait=True).filter(pk=payment_id).first()
        return False
    except OperationalError:
        return True


def test_a_hung_stripe_call_holds_no_lock_and_blocks_no_other_booking_of_the_package(
    celery_worker, stripe_emulator, settings
):
    settings.BOOKING_PAYMENT_WAIT_SECONDS = 0.2
    package = PackageFactory()
    other_talker, other_listener = auth_client(TalkerFactory()), ListenerFactory()
    stripe_emulator.fault("hang", count=1, path_prefix="/v1/payment_intents", seconds=4)
    first = auth_client(TalkerFactory()).post(CREATE, _body(ListenerFactory(), package), format="json")
    assert first.status_code == 202
    payment_id = Payment.objects.get(booking_id=first.json()["booking"]["id"]).pk
    time.sleep(0.5)  # the worker is inside the hung call now

    started = time.monotonic()
    second = other_talker.post(CREATE, _body(other_listener, package), format="json")
    booked_in = time.monotonic() - started
    locked = _locked_elsewhere(payment_id)
    cancelled = auth_client(Booking.objects.get(pk=first.json()["booking"]["id"]).talker).post(
        f"/api/payment/bookings/{first.json()['booking']['id']}/cancel/", {"reason": "changed my mind"}, format="json"
    )
    cancelled_in = time.monotonic() - started - booked_in

    assert second.status_code in (201, 202)
    assert booked_in < 2.0, f"another talker's booking of the package waited {booked_in:.1f} s"
    assert not locked, "the payment's row lock is held across the Stripe call"
    assert cancelled.status_code == 200 and cancelled_in < 2.0
    # The hung call gave up (timeout, the SDK retried); the intent created meanwhile is cancelled too.
    payment = eventually(
        lambda: Payment.objects.filter(pk=payment_id, stripe_payment_intent_id__isnull=False).first(), 30
    )
    eventually(lambda: Payment.objects.get(pk=payment.pk).status == Payment.Status.CANCELED, 30, "intent cancelled")
    assert stripe_gateway.payment_intent_retrieve(payment.stripe_payment_intent_id)["status"] == "canceled"


def test_each_stripe_call_is_bounded_by_the_configured_timeout(stripe_emulator, settings):
    settings.STRIPE_TIMEOUT_SECONDS = 1.0
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    stripe_emulator.fault("hang", count=1, path_prefix="/v1/payment_intents", seconds=10)
    with broker_down():  # no worker creates it meanwhile
        booking = _book()

    started = time.monotonic()
    with pytest.raises(stripe_gateway.TransientStripeError):
        services.payment_intent_create(payment_id=booking.payment.pk)
    assert time.monotonic() - started < 3.0
    stripe_emulator.clear_faults()
    assert Payment.objects.get(pk=booking.payment.pk).status == Payment.Status.AWAITING_INTENT  # left to retry


def _deadlock_once(calls: list) -> None:
    """A real PostgreSQL deadlock on the caller's connection, the first time: it locks booking A then B
    while another connection locks B then A."""
    calls.append(1)
    if len(calls) > 1:
        return
    first, second = _deadlock_once.rows
    other_has_b = threading.Event()
    mine_has_a = threading.Event()

    def other():
        conn = connections.create_connection("default")
        try:
            with conn.cursor() as cursor:
                cursor.execute("BEGIN")
                cursor.execute("SELECT id FROM booking_booking WHERE id = %s FOR UPDATE", [second])
                other_has_b.set()
                mine_has_a.wait(5)
                time.sleep(0.3)  # the task waits first, so PostgreSQL's check aborts the task's transaction
                cursor.execute("SELECT id FROM booking_booking WHERE id = %s FOR UPDATE", [first])
                cursor.execute("COMMIT")
        finally:
            conn.close()

    thread = threading.Thread(target=other)
    thread.start()
    try:
        other_has_b.wait(5)
        with transaction.atomic():
            Booking.objects.select_for_update().filter(pk=first).first()
            mine_has_a.set()
            Booking.objects.select_for_update().filter(pk=second).first()
    finally:
        thread.join()


def test_a_deadlocked_task_is_retried(celery_worker, monkeypatch):
    from billing.tasks import payment_intents_sweep_task

    talker = TalkerFactory()
    _deadlock_once.rows = [_book(talker=talker).pk, _book(talker=TalkerFactory()).pk]
    calls: list = []

    def sweep():
        _deadlock_once(calls)
        return 7

    monkeypatch.setattr(services, "payments_sweep_awaiting_intent", sweep)
    monkeypatch.setattr("workers.retry.backoff_seconds", lambda retries: 0.1)

    result = payment_intents_sweep_task.delay().get(timeout=30)

    assert result == 7
    assert len(calls) == 2  # deadlocked once (PostgreSQL aborted it), then ran again


def test_only_transient_database_errors_count_as_transient():
    from workers.retry import db_error_is_transient

    with pytest.raises(OperationalError) as deadlock:
        with connection.cursor() as cursor:
            cursor.execute("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40P01'; END $$")
    with pytest.raises(Exception) as other:
        with connection.cursor() as cursor:
            cursor.execute("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '22012'; END $$")

    assert db_error_is_transient(deadlock.value)
    assert not db_error_is_transient(other.value)
    assert not db_error_is_transient(ValueError("no"))


def test_stripe_writes_have_their_own_queue_and_every_task_a_time_limit(settings):
    from workers.celery import QUEUES, STRIPE_TASKS, VISIBILITY_TIMEOUT_SECONDS, app
    from workers.retry import BACKOFF_CAP

    def queue_of(name):
        return app.amqp.router.route({}, name)["queue"].name

    assert {queue_of(name) for name in STRIPE_TASKS} == {"stripe"}
    assert queue_of("billing.webhook_process") == "webhooks"
    assert queue_of("billing.payment_intents_sweep") == "payments"
    assert "stripe" in QUEUES
    assert app.conf.task_soft_time_limit < app.conf.task_time_limit
    long_limit = app.tasks["payouts.run_due"].time_limit
    assert long_limit > app.conf.task_time_limit
    assert VISIBILITY_TIMEOUT_SECONDS >= long_limit + BACKOFF_CAP
    assert VISIBILITY_TIMEOUT_SECONDS < 3600
    assert app.conf.broker_transport_options["visibility_timeout"] == VISIBILITY_TIMEOUT_SECONDS
