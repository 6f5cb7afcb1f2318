"""Item 2: an event is applied only to objects we created, matched by the ids we stored, and only when it
agrees with our records; anything else changes nothing and is flagged for an operator (the event, or the
payment's review_reason)."""

import pytest

from billing.models import LedgerTransaction, Payment, WebhookEvent
from billing.tests.factories import PaymentFactory
from billing.tests.stripe_events import deliver, payment_intent_object, stripe_event, stripe_id
from booking.models import Booking
from booking.tests.factories import BookingFactory
from payouts.models import ListenerPayout

pytestmark = pytest.mark.django_db


def _awaiting_payment() -> Payment:
    return PaymentFactory(
        booking=BookingFactory(),
        stripe_payment_intent_id=stripe_id("pi"),
        status=Payment.Status.REQUIRES_PAYMENT_METHOD,
    )


def _nothing_applied(payment: Payment) -> None:
    payment.refresh_from_db()
    assert payment.status == Payment.Status.REQUIRES_PAYMENT_METHOD
    assert Booking.objects.get(pk=payment.booking_id).status == Booking.Status.PENDING
    assert not LedgerTransaction.objects.filter(payment=payment).exists()
    assert not ListenerPayout.objects.filter(payment=payment).exists()


def test_a_foreign_intent_carrying_our_payment_id_pays_nothing_and_is_flagged():
    payment = _awaiting_payment()
    foreign = payment_intent_object(payment=payment, intent_id=stripe_id("pi"), status="succeeded")

    status = deliver(stripe_event("payment_intent.succeeded", foreign))

    assert status == WebhookEvent.Status.FLAGGED
    assert f"claims payment {payment.pk}" in WebhookEvent.objects.get().last_error
    _nothing_applied(payment)


@pytest.mark.parametrize("change", [{"amount_received": 100}, {"currency": "eur"}], ids=["amount", "currency"])
def test_our_intent_taking_another_amount_or_currency_books_nothing_and_asks_for_review(change):
    payment = _awaiting_payment()
    intent = {**payment_intent_object(payment=payment, status="succeeded"), **change}

    deliver(stripe_event("payment_intent.succeeded", intent))

    _nothing_applied(payment)
    assert payment.review_reason


def test_a_flagged_event_is_not_processed_again_by_a_redelivery():
    payment = _awaiting_payment()
    foreign = payment_intent_object(payment=payment, intent_id=stripe_id("pi"), status="succeeded")
    event = stripe_event("payment_intent.succeeded", foreign)
    deliver(event)

    assert deliver(event) == WebhookEvent.Status.FLAGGED
    assert WebhookEvent.objects.get().deliveries == 2
    _nothing_applied(payment)
