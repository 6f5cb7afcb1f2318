"""Item 2: an event is applied only to objects we created, matched by the ids we stored, and with the
object as Stripe holds it now: the event is the trigger, never the truth. A correctly signed event that
Stripe contradicts, or an intent that disagrees with our records, changes nothing and is flagged for an
operator (the event, and the payment's review_reason when the intent is ours); an out-of-date event
applies the current truth, once.

Every PaymentIntent here is real, on the emulator; forged events are signed with our real secret (as
an attacker holding it, or a replayed old delivery, would)."""

import pytest

from billing import stripe_gateway
from billing.models import LedgerKind, LedgerTransaction, Payment, Refund, WebhookEvent
from billing.tests.factories import PaymentFactory
from billing.tests.stripe_events import (
    charge_refund,
    deliver,
    foreign_intent,
    intent_cancel,
    intent_confirm,
    intent_event,
    intent_payment,
    intent_update,
    payment_intent_object,
    stripe_event,
    stripe_id,
)
from booking.models import Booking
from booking.tests.factories import BookingFactory
from payouts.models import ListenerPayout

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_emulator")]


def _awaiting_payment() -> Payment:
    return intent_payment(booking=BookingFactory())


def _nothing_applied(payment: Payment) -> None:
    payment.refresh_from_db()
    assert payment.status == Payment.Status.REQUIRES_PAYMENT_METHOD
    assert Booking.objects.get(pk=payment.booking_id).status == Booking.Status.PENDING
    assert not LedgerTransaction.objects.filter(payment=payment).exists()
    assert not ListenerPayout.objects.filter(payment=payment).exists()


def _flag_reason(event: dict) -> str:
    stored = WebhookEvent.objects.get(stripe_event_id=event["id"])
    assert stored.status == WebhookEvent.Status.FLAGGED
    return stored.last_error


def test_a_signed_succeeded_event_for_an_intent_nobody_paid_confirms_nothing_and_is_flagged():
    # given our real intent, still waiting for the card on Stripe
    payment = _awaiting_payment()
    forged = intent_event("payment_intent.succeeded", payment, status="succeeded", amount_received=payment.amount)

    status = deliver(forged)

    assert status == WebhookEvent.Status.FLAGGED
    assert "Stripe says requires_payment_method" in _flag_reason(forged)
    _nothing_applied(payment)


def test_a_signed_canceled_event_for_a_live_intent_frees_nothing_and_is_flagged():
    payment = _awaiting_payment()
    forged = intent_event("payment_intent.canceled", payment, status="canceled")

    assert deliver(forged) == WebhookEvent.Status.FLAGGED
    assert "is canceled; Stripe says requires_payment_method" in _flag_reason(forged)
    _nothing_applied(payment)


def test_a_foreign_intent_carrying_our_payment_id_pays_nothing_and_is_flagged():
    # given someone else's intent on Stripe, really paid, whose metadata names our payment
    payment = _awaiting_payment()
    foreign = foreign_intent(payment)
    assert foreign["status"] == "succeeded"

    status = deliver(stripe_event("payment_intent.succeeded", foreign))

    assert status == WebhookEvent.Status.FLAGGED
    assert f"claims payment {payment.pk}" in WebhookEvent.objects.get().last_error
    _nothing_applied(payment)


def test_a_foreign_intent_naming_a_payment_that_never_got_an_intent_is_flagged_not_retried():
    # given a booking cancelled before its intent was created: no intent of ours will ever come
    payment = _awaiting_payment()
    Payment.objects.filter(pk=payment.pk).update(stripe_payment_intent_id=None, status=Payment.Status.CANCELED)
    foreign = foreign_intent(payment)

    status = deliver(stripe_event("payment_intent.succeeded", foreign))

    assert status == WebhookEvent.Status.FLAGGED
    assert "none (the payment is canceled)" in WebhookEvent.objects.get().last_error
    assert not LedgerTransaction.objects.filter(payment=payment).exists()


def test_an_event_for_our_payment_whose_intent_stripe_does_not_know_is_flagged():
    # given a payment whose stored intent id Stripe has never heard of (another account's key, a bad restore)
    payment = PaymentFactory(stripe_payment_intent_id=stripe_id("pi"), status=Payment.Status.REQUIRES_PAYMENT_METHOD)
    event = stripe_event("payment_intent.succeeded", payment_intent_object(payment=payment, status="succeeded"))

    assert deliver(event) == WebhookEvent.Status.FLAGGED
    assert "is not on Stripe" in _flag_reason(event)
    _nothing_applied(payment)


def _customer() -> str:
    return stripe_gateway.call(stripe_gateway.client().v1.customers.create, params={"email": "x@example.com"}).id


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"amount": 100}, "received 100 usd"),
        ({"currency": "eur"}, "is for 3000 eur"),
        ({"metadata": {"payment_id": "999999"}}, "names payment '999999'"),
        ("customer", "belongs to customer"),
    ],
    ids=["amount", "currency", "metadata", "customer"],
)
def test_our_intent_altered_on_stripe_books_nothing_flags_the_event_and_asks_for_review(change, reason):
    # given our intent, altered on Stripe before the talker paid it
    payment = _awaiting_payment()
    intent_update(payment, **({"customer": _customer()} if change == "customer" else change))
    intent_confirm(payment)
    event = intent_event("payment_intent.succeeded", payment)

    status = deliver(event)

    assert status == WebhookEvent.Status.FLAGGED
    assert reason in _flag_reason(event)
    payment.refresh_from_db()
    assert reason in payment.review_reason
    assert payment.status == Payment.Status.REQUIRES_PAYMENT_METHOD
    assert Booking.objects.get(pk=payment.booking_id).status == Booking.Status.PENDING
    assert not LedgerTransaction.objects.filter(payment=payment).exists()


def test_a_flagged_event_is_not_processed_again_by_a_redelivery():
    payment = _awaiting_payment()
    event = stripe_event("payment_intent.succeeded", foreign_intent(payment))
    deliver(event)

    assert deliver(event) == WebhookEvent.Status.FLAGGED
    assert WebhookEvent.objects.get().deliveries == 2
    _nothing_applied(payment)


def test_a_payment_failed_event_delivered_after_the_intent_succeeded_applies_the_success():
    # given a decline, then a good card; only the old payment_failed event arrives (the rest is late)
    payment = _awaiting_payment()
    intent_confirm(payment, payment_method="pm_card_chargeDeclined")
    stale = intent_event("payment_intent.payment_failed", payment)
    paid = intent_confirm(payment)

    status = deliver(stale)

    assert status == WebhookEvent.Status.PROCESSED
    payment.refresh_from_db()
    assert (payment.status, payment.stripe_charge_id) == (Payment.Status.SUCCEEDED, paid["latest_charge"]["id"])
    assert Booking.objects.get(pk=payment.booking_id).status == Booking.Status.CONFIRMED
    # and the success arriving now changes nothing more
    assert deliver(intent_event("payment_intent.succeeded", payment)) == WebhookEvent.Status.IGNORED
    assert LedgerTransaction.objects.filter(payment=payment, kind=LedgerKind.PAYMENT_SUCCEEDED).count() == 1


def test_a_processing_event_delivered_after_the_intent_was_canceled_cancels():
    payment = _awaiting_payment()
    stale = intent_event("payment_intent.processing", payment, status="processing")
    intent_cancel(payment)

    assert deliver(stale) == WebhookEvent.Status.PROCESSED

    payment.refresh_from_db()
    assert payment.status == Payment.Status.CANCELED
    assert Booking.objects.get(pk=payment.booking_id).status == Booking.Status.CANCELLED
    # the canceled event itself, arriving later, changes nothing more
    assert deliver(intent_event("payment_intent.canceled", payment)) == WebhookEvent.Status.IGNORED


def test_a_succeeded_event_delivered_after_a_refund_applies_the_payment_and_the_refund_once():
    # given a paid intent, refunded in full on Stripe before any of their events reached us
    payment = _awaiting_payment()
    intent_confirm(payment)
    succeeded = intent_event("payment_intent.succeeded", payment)
    stripe_gateway.call(
        stripe_gateway.client().v1.refunds.create, params={"payment_intent": payment.stripe_payment_intent_id}
    )

    assert deliver(succeeded) == WebhookEvent.Status.PROCESSED

    # then the current truth is booked: paid, then refunded in full
    payment.refresh_from_db()
    assert (payment.status, payment.amount_refunded) == (Payment.Status.SUCCEEDED, payment.amount)
    assert Booking.objects.get(pk=payment.booking_id).status == Booking.Status.REFUNDED
    assert Refund.objects.get(payment=payment).status == Refund.Status.SUCCEEDED
    assert ListenerPayout.objects.get(payment=payment).status == ListenerPayout.Status.CANCELLED
    kinds = sorted(LedgerTransaction.objects.filter(payment=payment).values_list("kind", flat=True))
    assert kinds == ["payment_succeeded", "refund"]
    # and the same event again (a new copy) changes nothing
    assert deliver(stripe_event("payment_intent.succeeded", succeeded["data"]["object"])) == "ignored"
    assert LedgerTransaction.objects.filter(payment=payment).count() == 2


# --- Refunds and disputes: read from Stripe, checked against the payment matched by our ids ----------


def _paid() -> tuple[Payment, str]:
    payment = _awaiting_payment()
    intent = intent_confirm(payment)
    assert deliver(intent_event("payment_intent.succeeded", payment)) == WebhookEvent.Status.PROCESSED
    return payment, intent["latest_charge"]["id"]


def _refund_payload(*, charge_id: str, payment_intent_id: str, amount: int) -> dict:
    return {
        "id": stripe_id("re"),
        "object": "refund",
        "amount": amount,
        "charge": charge_id,
        "currency": "usd",
        "metadata": {},
        "payment_intent": payment_intent_id,
        "status": "succeeded",
    }


def test_a_signed_refund_event_for_an_unpaid_intent_confirms_nothing_and_is_flagged():
    # given our real intent, unpaid, and a forged refund "of" it: a refund would mean it was paid
    payment = _awaiting_payment()
    forged = stripe_event(
        "charge.refund.updated",
        _refund_payload(charge_id=stripe_id("ch"), payment_intent_id=payment.stripe_payment_intent_id, amount=3000),
    )

    assert deliver(forged) == WebhookEvent.Status.FLAGGED
    assert "is not on Stripe" in _flag_reason(forged)
    _nothing_applied(payment)
    assert not Refund.objects.exists()


def test_a_charge_refunded_event_listing_refunds_stripe_never_made_books_nothing():
    payment, charge_id = _paid()
    charge = stripe_gateway.webhook_reads.charge_retrieve(charge_id)
    forged_refund = _refund_payload(
        charge_id=charge_id, payment_intent_id=payment.stripe_payment_intent_id, amount=3000
    )
    forged = stripe_event(
        "charge.refunded",
        {**charge, "amount_refunded": 3000, "refunded": True, "refunds": {"object": "list", "data": [forged_refund]}},
    )

    assert deliver(forged) == WebhookEvent.Status.IGNORED  # Stripe lists no refund of the charge

    payment.refresh_from_db()
    assert payment.amount_refunded == 0 and not Refund.objects.exists()
    assert Booking.objects.get(pk=payment.booking_id).status == Booking.Status.CONFIRMED
    assert ListenerPayout.objects.get(payment=payment).status == ListenerPayout.Status.PENDING


def test_someone_elses_real_refund_named_as_ours_is_flagged():
    # given our paid payment, and a foreign paid intent refunded on Stripe
    payment, _ = _paid()
    other = foreign_intent(PaymentFactory())
    theirs = charge_refund(other["latest_charge"], 1000)
    forged = stripe_event("charge.refund.updated", {**theirs, "payment_intent": payment.stripe_payment_intent_id})

    assert deliver(forged) == WebhookEvent.Status.FLAGGED
    assert "is not of our payment" in _flag_reason(forged)
    payment.refresh_from_db()
    assert payment.amount_refunded == 0 and not Refund.objects.exists()


def test_a_dispute_event_stripe_never_opened_freezes_nothing(stripe_emulator):
    payment, charge_id = _paid()
    forged = stripe_event(
        "charge.dispute.created",
        {
            "id": stripe_id("dp"),
            "object": "dispute",
            "amount": 3000,
            "charge": charge_id,
            "currency": "usd",
            "payment_intent": payment.stripe_payment_intent_id,
            "reason": "fraudulent",
            "status": "needs_response",
            "balance_transactions": [{"id": stripe_id("txn"), "net": -4500, "fee": 1500, "type": "adjustment"}],
        },
    )

    assert deliver(forged) == WebhookEvent.Status.FLAGGED
    assert "is not on Stripe" in _flag_reason(forged)
    assert Booking.objects.get(pk=payment.booking_id).status == Booking.Status.CONFIRMED
    assert not LedgerTransaction.objects.filter(key__startswith="dispute-").exists()


def test_a_real_dispute_of_another_charge_named_as_ours_is_flagged(stripe_emulator):
    payment, charge_id = _paid()
    other = foreign_intent(PaymentFactory())
    dispute = stripe_emulator.post(f"/_emulator/charges/{other['latest_charge']}/dispute", {"reason": "fraudulent"})
    forged = stripe_event(
        "charge.dispute.created", {**dispute, "charge": charge_id, "payment_intent": payment.stripe_payment_intent_id}
    )

    assert deliver(forged) == WebhookEvent.Status.FLAGGED
    assert "is not of our payment" in _flag_reason(forged)
    assert Booking.objects.get(pk=payment.booking_id).status == Booking.Status.CONFIRMED
