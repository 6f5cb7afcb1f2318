"""create_booking's bounded wait for the PaymentIntent: woken by the worker's commit (LISTEN/NOTIFY),
not by polling the payment row."""

import threading
import time

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from billing.intent_ready import payment_intent_ready_notify, payment_intent_wait
from billing.models import Payment
from billing.tests.factories import PaymentFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _store_intent_later(payment_id: int, *, after: float, notify_id: int | None = None, commit: bool = True):
    """What the worker does, from another thread (its own connection): store the intent and notify."""

    def work():
        time.sleep(after)
        try:
            with transaction.atomic():
                Payment.objects.filter(pk=payment_id).update(
                    status=Payment.Status.REQUIRES_PAYMENT_METHOD,
                    stripe_payment_intent_id=f"pi_ready{payment_id}",
                    client_secret=f"pi_ready{payment_id}_secret_x",
                )
                payment_intent_ready_notify(payment_id=notify_id or payment_id)
                if not commit:
                    raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def _payment_reads(queries) -> int:
    return sum(1 for query in queries.captured_queries if 'FROM "billing_payment"' in query["sql"])


def test_the_wait_ends_when_the_intent_is_committed_with_two_reads_of_the_payment():
    payment = PaymentFactory()
    worker = _store_intent_later(payment.pk, after=0.6)

    started = time.monotonic()
    with CaptureQueriesContext(connection) as queries:
        waited = payment_intent_wait(payment_id=payment.pk, timeout=5)
    elapsed = time.monotonic() - started
    worker.join()

    assert waited.status == Payment.Status.REQUIRES_PAYMENT_METHOD
    assert waited.client_secret == f"pi_ready{payment.pk}_secret_x"
    assert 0.6 <= elapsed < 3, elapsed  # woken by the commit, long before the 5 s deadline
    assert _payment_reads(queries) == 2  # before listening's first check and after the wake-up; no polling


def test_an_intent_already_stored_answers_at_once():
    payment = PaymentFactory(status=Payment.Status.REQUIRES_PAYMENT_METHOD, client_secret="pi_x_secret_y")

    started = time.monotonic()
    waited = payment_intent_wait(payment_id=payment.pk, timeout=5)

    assert waited.client_secret == "pi_x_secret_y"
    assert time.monotonic() - started < 1


def test_a_rolled_back_store_does_not_end_the_wait():
    payment = PaymentFactory()
    worker = _store_intent_later(payment.pk, after=0.1, commit=False)

    started = time.monotonic()
    waited = payment_intent_wait(payment_id=payment.pk, timeout=1.0)
    worker.join()

    assert waited.status == Payment.Status.AWAITING_INTENT
    assert time.monotonic() - started >= 1.0


def test_another_payments_intent_does_not_end_the_wait():
    payment, other = PaymentFactory(), PaymentFactory()
    worker = _store_intent_later(other.pk, after=0.1)

    started = time.monotonic()
    waited = payment_intent_wait(payment_id=payment.pk, timeout=1.0)
    worker.join()

    assert waited.status == Payment.Status.AWAITING_INTENT
    assert time.monotonic() - started >= 1.0


def test_the_connection_stops_listening_after_the_wait():
    payment = PaymentFactory()

    payment_intent_wait(payment_id=payment.pk, timeout=0.1)

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_listening_channels()")
        assert cursor.fetchone()[0] == 0
