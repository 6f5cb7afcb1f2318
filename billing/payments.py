"""Payments: recording a booking's payment, creating its PaymentIntent, and applying what Stripe says
of it (success, decline, cancellation). Billing's rows and the ledger are written here; the booking
and the earning are changed only through their owners' services (`billing.owners`).

payment_intent.* events: the payment follows its PaymentIntent, only forward.

An event is the trigger, never the truth (DESIGN rule 7): the handler (`billing.webhooks.payments`)
matches it to our payment by the intent id we stored, then reads the intent from Stripe, under the
payment's row lock, and applies what Stripe holds now. A payload claiming a final state Stripe does not
hold (a forged `succeeded`), or an intent that disagrees with our payment (`payment_intent_disagreement`:
metadata, customer, amount, currency), is flagged for an operator and changes nothing. Older events
(non-final states cycle: a declined card sends the intent back to `requires_payment_method`) therefore
apply the current state too. The reconciliation applies what it reads through the same `payment_intent_apply`.

A decline leaves the payment in `requires_payment_method` (as Stripe leaves the intent) with the
decline reason in `failure_code` / `failure_message`, so the talker can retry the same booking with
another card. `failed` stays reserved for an intent that could not be created at all.
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing import ledger, owners, stripe_gateway
from billing.intent_ready import payment_intent_ready_notify
from billing.models import LedgerKind, Payment, StripeCustomer
from billing.webhooks.outcomes import EventFlagged
from common import locks
from common.prepared import PreparedQuery, row_save
from workers.outbox import enqueue_or_leave_to_sweeper, enqueue_stale

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


def payment_succeeded_key(payment_id: int) -> str:
    return f"payment-succeeded-{payment_id}"


def object_id(value) -> str:
    """A field that is an id or, when expanded, an object with one."""
    if isinstance(value, dict):
        return value.get("id") or ""
    return value or ""


class IntentNotRecordedYet(Exception):
    """An event names one of our payments (metadata) whose PaymentIntent id we have not stored yet: the
    creating worker has not committed. The event is retried; it never pays a payment by metadata."""


def _payment_for_intent_locked(intent_id: str):
    # The talker's Stripe customer comes in the same query (`payment_intent_disagreement` checks the
    # intent's customer against it): a subquery, so `FOR UPDATE OF` still locks the payment's row only.
    talker_customer = StripeCustomer.objects.filter(user_id=OuterRef("talker_id")).values("stripe_customer_id")[:1]
    return (
        locks.lock(Payment.objects.select_related("booking").filter(stripe_payment_intent_id=intent_id))
        .annotate(_talker_customer_id=Coalesce(Subquery(talker_customer), Value("")))
        .order_by()[:1]
    )


# Every payment_intent.* event runs it: compiled once (common.prepared), it costs about a tenth of the CPU
# it took (0.4 ms against 3-4 ms, measured in-process).
_PAYMENT_FOR_INTENT_LOCKED = PreparedQuery(_payment_for_intent_locked, intent_id=str)


def payment_lock_for_intent(*, payment_intent_id: str, metadata: dict | None = None) -> Payment | None:
    """Our payment for a PaymentIntent, row-locked, matched by the intent id we stored, and only by it:
    anyone can create an intent carrying our `payment_id` in its metadata. When the metadata names a
    payment still waiting for its intent id, the event came before our worker's commit and is retried."""
    payment = _PAYMENT_FOR_INTENT_LOCKED.first(intent_id=payment_intent_id)
    if payment is not None:
        return payment
    payment_id = str((metadata or {}).get("payment_id") or "")
    if payment_id.isdigit():
        named = Payment.objects.filter(pk=int(payment_id)).values_list("stripe_payment_intent_id", "status").first()
        if named is None:
            return None
        named_intent, named_status = named
        if not named_intent and named_status == S.AWAITING_INTENT:
            raise IntentNotRecordedYet(f"payment {payment_id} has no PaymentIntent id yet; {payment_intent_id} waits")
        # Kept as a flagged event (with this reason) for an operator, never applied.
        raise EventFlagged(
            f"PaymentIntent {payment_intent_id} claims payment {payment_id}, whose intent is "
            f"{named_intent or f'none (the payment is {named_status})'}"
        )
    return None


def _talker_customer_id(payment: Payment) -> str:
    """The talker's Stripe customer, read once per payment object (a succeeded event checks the intent
    in its handler and again when applying it: one query, not two), or none when the payment was
    locked by `payment_lock_for_intent`, which reads it with the payment."""
    cached = getattr(payment, "_talker_customer_id", None)
    if cached is None:
        talkers = StripeCustomer.objects.filter(user_id=payment.talker_id).values_list("stripe_customer_id", flat=True)
        cached = payment._talker_customer_id = talkers.first() or ""  # type: ignore[attr-defined]
    return cached


def payment_intent_disagreement(*, payment: Payment, intent: dict) -> str:
    """Why Stripe's PaymentIntent (as just read) cannot be applied to our payment, or "" when it can:
    its metadata names another payment or booking, it belongs to another customer than the talker's, or
    it asks for or took another amount or currency (an intent updated after we created it)."""
    metadata = intent.get("metadata") or {}
    if (metadata.get("payment_id"), metadata.get("booking_id")) != (str(payment.pk), str(payment.booking_id)):
        return (
            f"PaymentIntent {intent.get('id')} names payment {metadata.get('payment_id')!r}, booking "
            f"{metadata.get('booking_id')!r}; ours is payment {payment.pk}, booking {payment.booking_id}"
        )
    customer = object_id(intent.get("customer"))
    if customer != _talker_customer_id(payment):
        return f"PaymentIntent {intent.get('id')} belongs to customer {customer or 'none'}, not the talker's"
    currency = (intent.get("currency") or "").lower()
    ours = f"the booking is {payment.amount} {payment.currency}"
    if intent.get("status") == S.SUCCEEDED and intent.get("amount_received") != payment.amount:
        return f"Stripe received {intent.get('amount_received')} {currency}; {ours}"
    if intent.get("amount") != payment.amount or currency != payment.currency.lower():
        return f"the PaymentIntent is for {intent.get('amount')} {currency}; {ours}"
    return ""


def payment_review_mark(*, payment_id: int, reason: str) -> bool:
    """Ask an operator to look at a payment (shown in the admin); the payment is not booked meanwhile."""
    reason = reason[:255]
    marked = Payment.objects.filter(pk=payment_id).exclude(review_reason=reason)
    if not marked.update(review_reason=reason, updated_at=timezone.now()):
        return False
    logger.error("payment %s flagged for review: %s", payment_id, reason)
    return True


_SUCCEEDED_FIELDS = ("status", "succeeded_at", "failure_code", "failure_message", "stripe_charge_id", "updated_at")


def payment_succeed(*, payment: Payment, charge_id: str = "") -> bool:
    """The money is taken: confirm the booking, book the split, create the listener's earning.
    Called under the payment's lock; every effect is keyed, so a second call changes nothing."""
    changed = False
    newly_succeeded = payment.status != S.SUCCEEDED
    if payment.status != S.SUCCEEDED:
        if payment.status == S.CANCELED:
            logger.warning("payment %s succeeded on Stripe after we saw it canceled", payment.pk)
        payment.status = S.SUCCEEDED
        payment.succeeded_at = payment.succeeded_at or timezone.now()
        payment.failure_code = ""
        payment.failure_message = ""
        changed = True
        # One message for both follow-ups, the receipt and Stripe's fee (billing.tasks), published on commit.
        transaction.on_commit(lambda: payment_succeeded_followup_enqueue(payment_id=payment.pk))
    if charge_id and payment.stripe_charge_id != charge_id:
        payment.stripe_charge_id = charge_id
        changed = True
    if changed:
        row_save(payment, update_fields=_SUCCEEDED_FIELDS)

    # Only a booking still waiting for its payment is confirmed (its owner takes the booking's lock,
    # after the payment's); a cancelled one stays cancelled (refunded by policy).
    listener_id = payment.booking.listener_id
    confirmed = owners.bookings().booking_confirm_paid(booking_id=payment.booking_id)
    changed = changed or confirmed
    _, booked = ledger.ledger_post(
        key=payment_succeeded_key(payment.pk),
        kind=LedgerKind.PAYMENT_SUCCEEDED,
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
        # Booked in the transaction that makes the payment succeeded, under its lock: new if it was not.
        known_new=newly_succeeded,
    )
    _, created = owners.payouts().earning_create_for_payment(payment=payment, listener_id=listener_id, known_new=booked)
    if newly_succeeded and not confirmed and payment.booking.status == "cancelled":
        # The talker paid a booking that was cancelled before the money came in (a broker outage can
        # delay the PaymentIntent's cancellation): give it all back, once.
        from billing.refunds import refund_paid_after_cancel  # billing.refunds imports this module

        refund_paid_after_cancel(payment=payment)
    return changed or booked or created


def _payment_canceled(*, payment: Payment, intent: dict) -> bool:
    if payment.status in (S.SUCCEEDED, S.CANCELED):
        return False
    payment.status = S.CANCELED
    payment.save(update_fields=["status", "updated_at"])
    # The intent can never be paid now: free the listener's slot (only a booking still pending).
    owners.bookings().booking_cancel_by_system(
        booking_id=payment.booking_id,
        reason=f"Payment canceled ({intent.get('cancellation_reason') or 'by Stripe'}).",
    )
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
        mismatch = payment_intent_disagreement(payment=payment, intent=intent)
        if mismatch:
            # Not booked as ours: an operator decides (refund what was taken, or settle by hand).
            if payment_review_mark(payment_id=payment.pk, reason=mismatch):
                payment.review_reason = mismatch[:255]
                return True
            return False
        return payment_succeed(payment=payment, charge_id=object_id(intent.get("latest_charge")))
    if status == S.CANCELED:
        return _payment_canceled(payment=payment, intent=intent)
    if STATUS_RANK.get(status, -1) < STATUS_RANK[S.REQUIRES_PAYMENT_METHOD]:
        logger.warning("payment %s: unknown PaymentIntent status %r", payment.pk, status)
        return False
    return _payment_pending_state(payment=payment, intent=intent)


# --- Recording a payment and creating its PaymentIntent ------------------------------------------


def payment_record_for_booking(*, booking, **fields) -> Payment:
    """Our payment row for a booking: its amount and the split as the booking fixed them."""
    return Payment.objects.create(
        booking=booking,
        talker_id=booking.talker_id,
        currency=booking.currency,
        amount=booking.total_amount,
        app_fee=booking.app_fee,
        listener_amount=booking.listener_amount,
        **fields,
    )


def payment_create_for_booking(*, booking) -> Payment:
    """Record the booking's payment, to be created on Stripe by a worker once this transaction commits."""
    payment = payment_record_for_booking(booking=booking, intent_requested_at=timezone.now())
    transaction.on_commit(lambda: payment_intent_enqueue(payment_id=payment.pk))
    return payment


def payment_succeeded_followup_enqueue(*, payment_id: int) -> bool:
    """Send the talker's receipt and book Stripe's fee, in one task (one message, where they were two).
    Lost with the broker down, the fee is booked by its sweeper (`billing.fees.payment_fees_sweep`) and
    the receipt, a courtesy, is not sent again (workers.notify)."""
    return enqueue_or_leave_to_sweeper("billing.payment_succeeded_followup", payment_id, what="payment follow-up")


def payment_intent_enqueue(*, payment_id: int) -> bool:
    """Ask a worker to create the PaymentIntent. A broker outage is logged, not raised: the payment
    row is already committed and the sweeper enqueues it again once the broker is back."""
    return enqueue_or_leave_to_sweeper("billing.payment_intent_create", payment_id, what="PaymentIntent for payment")


def stripe_customer_get_or_create(*, user) -> str:
    existing = StripeCustomer.objects.filter(user=user).values_list("stripe_customer_id", flat=True).first()
    if existing:
        return existing
    # The idempotency key is derived from the user, so two workers racing here get the same customer.
    customer_id = stripe_gateway.customer_create(
        user_id=user.pk, email=user.email, name=user.get_full_name() or user.username
    )
    try:
        with transaction.atomic():
            StripeCustomer.objects.create(user=user, stripe_customer_id=customer_id)
    except IntegrityError:
        pass
    return StripeCustomer.objects.get(user=user).stripe_customer_id


def _intent_description(booking) -> str:
    """From the booking's own snapshot, never the package (an admin may rename it): the parameters
    sent under one idempotency key must be the same on every retry."""
    minutes = round((booking.ends_at - booking.scheduled_at).total_seconds() / 60)
    return f"Talkpay booking #{booking.pk}: {minutes}-minute session"


def payment_intent_create(*, payment_id: int) -> Payment:
    """Create the PaymentIntent for a payment, once, without holding a row lock across Stripe.

    The payment row (recorded with the booking) is the request; Stripe is called outside any
    transaction, under the idempotency key `pi-payment-<id>`, so concurrent or repeated workers get the
    same intent; then the result is stored under the payment's row lock alone (common.locks: never
    the booking, the talker or the package). A hung Stripe call therefore blocks nobody else: not a
    cancellation of this booking, not another talker's booking of the same package.
    """
    payment = Payment.objects.select_related("talker", "booking").get(pk=payment_id)
    if payment.stripe_payment_intent_id or payment.status != Payment.Status.AWAITING_INTENT:
        return payment
    customer_id = stripe_customer_get_or_create(user=payment.talker)
    try:
        intent = stripe_gateway.payment_intent_create(
            payment_id=payment.pk,
            booking_id=payment.booking_id,
            amount=payment.amount,
            currency=payment.currency,
            customer_id=customer_id,
            application_fee=payment.app_fee,
            description=_intent_description(payment.booking),
        )
    except stripe_gateway.PermanentStripeError as error:
        with transaction.atomic():
            payment = locks.lock(Payment.objects.filter(pk=payment_id)).get()
            if payment.stripe_payment_intent_id or payment.status != Payment.Status.AWAITING_INTENT:
                return payment
            payment.status = Payment.Status.FAILED
            payment.failure_code = error.code or "stripe_error"
            payment.failure_message = error.message
            payment.save(update_fields=["status", "failure_code", "failure_message", "updated_at"])
            payment_intent_ready_notify(payment_id=payment_id)
            return payment
    return _payment_intent_store(payment_id=payment_id, intent=intent)


def _payment_intent_store(*, payment_id: int, intent: dict) -> Payment:
    with transaction.atomic():
        payment = locks.lock(Payment.objects.filter(pk=payment_id)).get()
        if payment.stripe_payment_intent_id:
            return payment  # another worker stored it first: the same intent, by the idempotency key
        cancelled_meanwhile = payment.status == Payment.Status.CANCELED
        payment.stripe_payment_intent_id = intent["id"]
        payment.client_secret = intent["client_secret"]
        payment.status = intent["status"]
        payment.save(update_fields=["stripe_payment_intent_id", "client_secret", "status", "updated_at"])
        payment_intent_ready_notify(payment_id=payment_id)  # delivered on commit: create_booking's wait
        if cancelled_meanwhile:
            # The booking was cancelled while Stripe was creating the intent: cancel the intent too, by
            # the cancellation's own path (recorded, swept), so no payable intent outlives its booking.
            from billing.refunds import payment_cancel_unpaid  # billing.refunds imports this module

            payment_cancel_unpaid(payment=payment)
        return payment


def payment_events_unprocessed(*, payment: Payment) -> bool:
    """Whether Stripe sent events about this payment's intent that are not processed yet (or failed)."""
    from billing.webhooks.processing import payment_intent_events_unprocessed

    return payment_intent_events_unprocessed(payment_intent_id=payment.stripe_payment_intent_id or "")


def payments_sweep_awaiting_intent() -> int:
    """Re-enqueue payments still waiting for a PaymentIntent (the broker was down, or a task was lost)."""
    return enqueue_stale(
        Payment.objects.filter(status=Payment.Status.AWAITING_INTENT, stripe_payment_intent_id__isnull=True),
        stamp_field="intent_requested_at",
        enqueue=lambda pk: payment_intent_enqueue(payment_id=pk),
    )
