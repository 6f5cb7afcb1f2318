"""payment_intent.* events: the payment follows its PaymentIntent, only forward.

`succeeded` and `canceled` are final on Stripe, so their payload is applied as it stands. The other
states cycle (a declined card sends the intent back to `requires_payment_method`, the talker tries
again), so an event carrying one of them cannot tell whether it is older than what we know: the
handler then reads the intent's current state from Stripe, under the payment's row lock, and applies
that. The reconciliation applies what it reads through the same `payment_intent_apply`.

A decline leaves the payment in `requires_payment_method` (as Stripe leaves the intent) with the
decline reason in `failure_code` / `failure_message`, so the talker can retry the same booking with
another card. `failed` stays reserved for an intent that could not be created at all.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing import ledger, stripe_gateway
from billing.models import Payment
from booking.models import Booking

logger = logging.getLogger(__name__)

PROCESSED = "processed"
IGNORED = "ignored"

S = Payment.Status
# Forward means up this table. The final states are ranked above everything and succeeded above
# canceled, so no event moves a payment out of succeeded, and only Stripe taking the money moves it
# out of canceled. Non-final states cycle on Stripe (a decline returns to requires_payment_method),
# so their ranks alone cannot order them: a non-final payment moves to whatever state was just read
# from Stripe (`fresh`), never to the state an event merely carries.
STATUS_RANK: dict[str, int] = {
    S.AWAITING_INTENT: 0,
    S.REQUIRES_PAYMENT_METHOD: 1,
    S.REQUIRES_CONFIRMATION: 1,
    S.REQUIRES_ACTION: 1,
    S.PROCESSING: 2,
    S.REQUIRES_CAPTURE: 3,
    S.FAILED: 4,
    S.CANCELED: 5,
    # Above canceled: money Stripe says it took is booked whatever we believed before.
    S.SUCCEEDED: 6,
}
# Stripe states nothing comes after.
STRIPE_FINAL = (S.SUCCEEDED, S.CANCELED)
# Payment states the reconciliation asks Stripe about.
NON_FINAL = (S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION, S.REQUIRES_ACTION, S.PROCESSING, S.REQUIRES_CAPTURE)

LEDGER_KIND_PAYMENT = "payment_succeeded"


def payment_succeeded_key(payment_id: int) -> str:
    return f"payment-succeeded-{payment_id}"


def _object_id(value) -> str:
    """A field that is an id or, when expanded, an object with one."""
    if isinstance(value, dict):
        return value.get("id") or ""
    return value or ""


def payment_lock_for_intent(*, payment_intent_id: str, metadata: dict | None = None) -> Payment | None:
    """Our payment for a PaymentIntent, row-locked. Matched by the intent id, or by the `payment_id`
    our worker put in its metadata when the worker's save of the id is not visible yet."""
    match = Q(stripe_payment_intent_id=payment_intent_id)
    payment_id = str((metadata or {}).get("payment_id") or "")
    if payment_id.isdigit():
        match |= Q(pk=int(payment_id), stripe_payment_intent_id__isnull=True)
    # PostgreSQL re-checks the whole condition after waiting for a lock, so a worker saving the id
    # meanwhile still matches through the first branch.
    return (
        Payment.objects.select_for_update(of=("self",)).select_related("booking").filter(match).order_by("pk").first()
    )


def payment_succeed(*, payment: Payment, charge_id: str = "") -> bool:
    """The money is taken: confirm the booking, book the split, create the listener's earning.
    Called under the payment's lock; every effect is keyed, so a second call changes nothing."""
    from payouts.earnings import earning_create_for_payment

    changed = False
    if payment.status != S.SUCCEEDED:
        if payment.status == S.CANCELED:
            logger.warning("payment %s succeeded on Stripe after we saw it canceled", payment.pk)
        payment.status = S.SUCCEEDED
        payment.succeeded_at = payment.succeeded_at or timezone.now()
        payment.failure_code = ""
        payment.failure_message = ""
        changed = True
    if charge_id and payment.stripe_charge_id != charge_id:
        payment.stripe_charge_id = charge_id
        changed = True
    if changed:
        payment.save(
            update_fields=[
                "status",
                "succeeded_at",
                "failure_code",
                "failure_message",
                "stripe_charge_id",
                "updated_at",
            ]
        )

    # One conditional UPDATE (it takes the booking's row lock, after the payment's): only a booking
    # still waiting for its payment is confirmed; a cancelled one stays cancelled (refunded by policy).
    listener_id = payment.booking.listener_id
    confirmed = Booking.objects.filter(pk=payment.booking_id, status=Booking.Status.PENDING).update(
        status=Booking.Status.CONFIRMED, updated_at=timezone.now()
    )
    changed = changed or bool(confirmed)
    _, booked = ledger.ledger_post(
        key=payment_succeeded_key(payment.pk),
        kind=LEDGER_KIND_PAYMENT,
        lines=[
            ledger.debit(ledger.PLATFORM_CASH, payment.amount),
            ledger.credit(ledger.APP_REVENUE, payment.app_fee),
            ledger.credit(ledger.listener_payable(listener_id), payment.listener_amount),
        ],
        currency=payment.currency,
        description=f"Booking #{payment.booking_id} paid: app fee and listener share",
        booking_id=payment.booking_id,
        payment_id=payment.pk,
        metadata={"charge_id": payment.stripe_charge_id},
    )
    _, created = earning_create_for_payment(payment=payment, listener_id=listener_id, known_new=booked)
    return changed or booked or created


def _payment_canceled(*, payment: Payment, intent: dict) -> bool:
    if payment.status in (S.SUCCEEDED, S.CANCELED):
        return False
    payment.status = S.CANCELED
    payment.save(update_fields=["status", "updated_at"])
    booking = Booking.objects.select_for_update().get(pk=payment.booking_id)
    if booking.status == Booking.Status.PENDING:
        # The intent can never be paid now: free the listener's slot.
        booking.status = Booking.Status.CANCELLED
        booking.cancelled_at = timezone.now()
        booking.cancel_reason = f"Payment canceled ({intent.get('cancellation_reason') or 'by Stripe'})."
        booking.save(update_fields=["status", "cancelled_at", "cancel_reason", "updated_at"])
    return True


def _payment_pending_state(*, payment: Payment, intent: dict) -> bool:
    """A non-final state read from Stripe: mirror it, with the last decline if there is one."""
    status = intent["status"]
    error = intent.get("last_payment_error") or {}
    failure_code = (error.get("decline_code") or error.get("code") or "")[:64] if error else ""
    failure_message = (error.get("message") or "") if error else ""
    update = {}
    if payment.status != status and status in STATUS_RANK:
        update["status"] = status
    if error and (failure_code, failure_message) != (payment.failure_code, payment.failure_message):
        update["failure_code"] = failure_code
        update["failure_message"] = failure_message
    if not update:
        return False
    for field, value in update.items():
        setattr(payment, field, value)
    payment.save(update_fields=[*update, "updated_at"])
    return True


def payment_intent_apply(*, payment: Payment, intent: dict, fresh: bool) -> bool:
    """Move a row-locked payment to what `intent` says, only forward. `fresh` means the intent was
    just read from Stripe; otherwise a non-final state is first re-read. Returns whether anything changed."""
    if payment.status == S.SUCCEEDED:
        # An older event, or a duplicate: the success and its effects were applied together, once.
        return False
    if payment.status == S.CANCELED and intent.get("status") != S.SUCCEEDED:
        # Only Stripe taking the money (ranked above canceled) moves a canceled payment.
        return False
    if intent.get("status") not in STRIPE_FINAL and not fresh:
        intent = stripe_gateway.payment_intent_retrieve(intent["id"])
    if payment.stripe_payment_intent_id != intent["id"]:
        payment.stripe_payment_intent_id = intent["id"]
        payment.save(update_fields=["stripe_payment_intent_id", "updated_at"])
    status = intent.get("status")
    if status == S.SUCCEEDED:
        if intent.get("amount_received") not in (None, payment.amount):
            logger.error(
                "payment %s: Stripe received %s, we expected %s", payment.pk, intent["amount_received"], payment.amount
            )
        return payment_succeed(payment=payment, charge_id=_object_id(intent.get("latest_charge")))
    if status == S.CANCELED:
        return _payment_canceled(payment=payment, intent=intent)
    if STATUS_RANK.get(status, -1) < STATUS_RANK[S.REQUIRES_PAYMENT_METHOD]:
        logger.warning("payment %s: unknown PaymentIntent status %r", payment.pk, status)
        return False
    return _payment_pending_state(payment=payment, intent=intent)


def handle_payment_intent(event: dict) -> str:
    intent = event["data"]["object"]
    with transaction.atomic(savepoint=False):  # joins the dispatcher's transaction
        payment = payment_lock_for_intent(payment_intent_id=intent["id"], metadata=intent.get("metadata"))
        if payment is None:
            logger.info("%s %s: no payment of ours for %s", event["type"], event["id"], intent["id"])
            return IGNORED
        return PROCESSED if payment_intent_apply(payment=payment, intent=intent, fresh=False) else IGNORED


HANDLERS = {
    "payment_intent.succeeded": handle_payment_intent,
    "payment_intent.payment_failed": handle_payment_intent,
    "payment_intent.canceled": handle_payment_intent,
    "payment_intent.requires_action": handle_payment_intent,
    "payment_intent.processing": handle_payment_intent,
    "payment_intent.amount_capturable_updated": handle_payment_intent,
}
