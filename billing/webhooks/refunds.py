"""charge.refunded / charge.refund.updated: record the refund and reverse the split, exact to the cent.

The reversal is computed from the cumulative refunded amount, never refund by refund: the app's
part of everything refunded so far is `proportion(refunded, total, app_fee)`, the listener's part is
the rest, and what is booked for one refund is that target minus what earlier reversals already
booked. Rounding therefore never drifts, the reversals of a payment never exceed its original
shares, and a full refund reverses exactly the original split. Each booking is keyed by Stripe's
refund id (`refund-re_…`), so it happens once.

`refund_apply` is the service the refund-creating worker, disputes and clawbacks can call too.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Q, Sum

from billing import ledger, money
from billing.models import LedgerEntry, Payment, Refund
from billing.stripe_gateway import webhook_reads
from billing.webhooks.payments import IGNORED, PROCESSED, _object_id, payment_succeed
from booking.models import Booking

logger = logging.getLogger(__name__)

LEDGER_KIND_REFUND = "refund"
# A refund that had succeeded and then failed on Stripe: its reversal is undone.
LEDGER_KIND_REFUND_FAILED = "refund_failed"
REFUND_KINDS = (LEDGER_KIND_REFUND, LEDGER_KIND_REFUND_FAILED)

R = Refund.Status
_FROM_STRIPE = {
    "pending": R.REQUESTED,
    "requires_action": R.REQUESTED,
    "succeeded": R.SUCCEEDED,
    "failed": R.FAILED,
    "canceled": R.CANCELED,
}
# A refund moves only up; a succeeded card refund can still fail later (Stripe sends it back).
REFUND_RANK = {R.PENDING: 0, R.REQUESTED: 1, R.SUCCEEDED: 2, R.FAILED: 3, R.CANCELED: 3}


class RefundMismatch(Exception):
    """Stripe and our books disagree in a way no retry will fix (the event stays failed, visibly)."""


def refund_reversal_key(*, stripe_refund_id: str, status: str) -> str:
    return f"refund-{stripe_refund_id}" if status == R.SUCCEEDED else f"refund-{stripe_refund_id}-{status}"


def _refund_row_locked(*, payment: Payment, stripe_refund: dict) -> tuple[Refund, bool]:
    """Our Refund row for Stripe's refund, created when Stripe made it (the dashboard); moved forward."""
    stripe_id = stripe_refund["id"]
    status = _FROM_STRIPE.get(stripe_refund.get("status") or "", R.REQUESTED)
    rows = Refund.objects.select_for_update()
    refund = rows.filter(stripe_refund_id=stripe_id).first()
    if refund is None:
        refund_id = str((stripe_refund.get("metadata") or {}).get("refund_id") or "")
        if refund_id.isdigit():
            refund = rows.filter(
                Q(stripe_refund_id__isnull=True) | Q(stripe_refund_id=stripe_id), pk=int(refund_id), payment=payment
            ).first()
    if refund is None:
        refund = Refund.objects.create(
            payment=payment,
            amount=stripe_refund["amount"],
            currency=stripe_refund.get("currency") or payment.currency,
            reason=(stripe_refund.get("reason") or "refunded on Stripe")[:255],
            status=status,
            stripe_refund_id=stripe_id,
            failure_reason=(stripe_refund.get("failure_reason") or "")[:255],
        )
        return refund, True
    if refund.payment_id != payment.pk:
        raise RefundMismatch(f"refund {stripe_id} belongs to payment {refund.payment_id}, not {payment.pk}")
    fields = []
    if refund.stripe_refund_id != stripe_id:
        refund.stripe_refund_id = stripe_id
        fields.append("stripe_refund_id")
    if REFUND_RANK[status] > REFUND_RANK[refund.status]:
        refund.status = status
        fields.append("status")
        if stripe_refund.get("failure_reason"):
            refund.failure_reason = stripe_refund["failure_reason"][:255]
            fields.append("failure_reason")
    if refund.amount != stripe_refund["amount"]:
        # Stripe's amount is what moved, whatever we asked for.
        refund.amount = stripe_refund["amount"]
        fields.append("amount")
    if fields:
        refund.save(update_fields=[*fields, "updated_at"])
    return refund, bool(fields)


def _reversals_booked(*, payment_id: int) -> dict[str, int]:
    rows = (
        LedgerEntry.objects.filter(transaction__payment_id=payment_id, transaction__kind__in=REFUND_KINDS)
        .values("account__code")
        .annotate(total=Sum("amount"))
    )
    return {row["account__code"]: row["total"] for row in rows}


def _reversal_sync(*, payment: Payment, refund: Refund) -> bool:
    """Book what the refunds succeeded so far still need reversed, and bring the payment, the
    earning and the booking in line. Called under the payment's lock."""
    from payouts.earnings import earning_refund_sync

    refunded = Refund.objects.filter(payment=payment, status=R.SUCCEEDED).aggregate(total=Sum("amount"))["total"] or 0
    if refunded > payment.amount:
        raise RefundMismatch(f"payment {payment.pk}: refunds total {refunded}, more than the {payment.amount} paid")
    booking = Booking.objects.select_for_update().get(pk=payment.booking_id)
    listener_code = ledger.listener_payable(booking.listener_id)
    target_app = money.proportion(refunded, payment.amount, payment.app_fee)
    target_listener = refunded - target_app
    booked = _reversals_booked(payment_id=payment.pk)
    # Reversals debit revenue and the listener's payable (positive entries).
    delta_app = target_app - booked.get(ledger.APP_REVENUE, 0)
    delta_listener = target_listener - booked.get(listener_code, 0)
    changed = False
    if delta_app or delta_listener:
        key = refund_reversal_key(stripe_refund_id=refund.stripe_refund_id, status=refund.status)
        _, created = ledger.ledger_post(
            key=key,
            kind=LEDGER_KIND_REFUND if refund.status == R.SUCCEEDED else LEDGER_KIND_REFUND_FAILED,
            lines=[
                ledger.debit(ledger.APP_REVENUE, delta_app),
                ledger.debit(listener_code, delta_listener),
                ledger.credit(ledger.PLATFORM_CASH, delta_app + delta_listener),
            ],
            currency=payment.currency,
            description=f"Booking #{booking.pk}: refund {refund.stripe_refund_id} ({refund.status})",
            booking_id=booking.pk,
            payment_id=payment.pk,
            metadata={"refund_id": refund.pk, "refunded_total": refunded},
        )
        if not created:
            raise RefundMismatch(
                f"{key} is booked already, yet payment {payment.pk} still needs {delta_app + delta_listener}"
            )
        changed = True
    if payment.amount_refunded != refunded:
        payment.amount_refunded = refunded
        payment.save(update_fields=["amount_refunded", "updated_at"])
        changed = True
    fully_refunded = refunded == payment.amount
    if fully_refunded and booking.status not in (Booking.Status.REFUNDED, Booking.Status.DISPUTED):
        booking.status = Booking.Status.REFUNDED
        booking.save(update_fields=["status", "updated_at"])
        changed = True
    earning_refund_sync(
        payment_id=payment.pk,
        reversed_now=delta_listener,
        fully_refunded=fully_refunded,
        cause=f"refund-{refund.pk}" if refund.status == R.SUCCEEDED else f"refund-{refund.pk}-{refund.status}",
    )
    return changed


def refund_apply(*, payment_id: int, stripe_refund: dict) -> bool:
    """Apply Stripe's refund object (as the gateway returns it) to a payment: record or move our
    Refund row, then reverse the split for everything refunded so far. Idempotent; returns whether
    anything changed. Locks the payment, so call it before locking the refund, booking or earning."""
    with transaction.atomic(savepoint=False):
        payment = Payment.objects.select_for_update(of=("self",)).select_related("booking").get(pk=payment_id)
        if payment.status != Payment.Status.SUCCEEDED and stripe_refund.get("status") in ("succeeded", "pending"):
            # A refund exists, so the charge was paid, whatever order the events came in.
            payment_succeed(payment=payment, charge_id=_object_id(stripe_refund.get("charge")))
        refund, row_changed = _refund_row_locked(payment=payment, stripe_refund=stripe_refund)
        return _reversal_sync(payment=payment, refund=refund) or row_changed


def _payment_lock_for_charge(*, charge_id: str, payment_intent_id: str) -> Payment | None:
    match = Q(pk__in=[])
    if payment_intent_id:
        match |= Q(stripe_payment_intent_id=payment_intent_id)
    if charge_id:
        match |= Q(stripe_charge_id=charge_id)
    return Payment.objects.select_for_update(of=("self",)).filter(match).order_by("pk").first()


def _listed_refunds(charge: dict) -> list[dict]:
    """The charge's refunds: from the payload when it lists them all (older API versions do),
    otherwise read from Stripe."""
    listed = charge.get("refunds")
    if isinstance(listed, dict) and not listed.get("has_more") and isinstance(listed.get("data"), list):
        data = listed["data"]
        succeeded = sum(refund["amount"] for refund in data if refund.get("status") == "succeeded")
        if succeeded >= (charge.get("amount_refunded") or 0):
            return sorted(data, key=lambda refund: (refund.get("created") or 0, refund["id"]))
    return webhook_reads.refunds_list_for_charge(charge["id"])


def handle_charge_refunded(event: dict) -> str:
    charge = event["data"]["object"]
    with transaction.atomic(savepoint=False):
        payment = _payment_lock_for_charge(
            charge_id=charge["id"], payment_intent_id=_object_id(charge.get("payment_intent"))
        )
        if payment is None:
            logger.info("%s %s: no payment of ours for charge %s", event["type"], event["id"], charge["id"])
            return IGNORED
        changed = False
        for stripe_refund in _listed_refunds(charge):
            changed = refund_apply(payment_id=payment.pk, stripe_refund=stripe_refund) or changed
        return PROCESSED if changed else IGNORED


def handle_charge_refund_updated(event: dict) -> str:
    stripe_refund = event["data"]["object"]
    charge_id = _object_id(stripe_refund.get("charge"))
    with transaction.atomic(savepoint=False):
        payment = _payment_lock_for_charge(
            charge_id=charge_id, payment_intent_id=_object_id(stripe_refund.get("payment_intent"))
        )
        if payment is None:
            known = Refund.objects.filter(stripe_refund_id=stripe_refund["id"]).values_list("payment_id", flat=True)
            payment_id = known.first()
            if payment_id is None and charge_id:
                # Our payment may not know its charge id yet: ask Stripe which intent the charge belongs to.
                charge = webhook_reads.charge_retrieve(charge_id)
                payment = _payment_lock_for_charge(
                    charge_id="", payment_intent_id=_object_id(charge.get("payment_intent"))
                )
            elif payment_id is not None:
                payment = Payment.objects.select_for_update().get(pk=payment_id)
        if payment is None:
            logger.info("%s %s: no payment of ours for refund %s", event["type"], event["id"], stripe_refund["id"])
            return IGNORED
        return PROCESSED if refund_apply(payment_id=payment.pk, stripe_refund=stripe_refund) else IGNORED


HANDLERS = {
    "charge.refunded": handle_charge_refunded,
    "charge.refund.updated": handle_charge_refund_updated,
}
