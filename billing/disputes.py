"""Disputes (chargebacks): Stripe's `charge.dispute.*` events and what they do to bookings, earnings
and the ledger.

- A dispute that is open freezes the booking (`disputed`) and holds the listener's earning, so it is
  not paid out while the bank decides.
- Stripe's money moves are booked from the dispute's own balance transactions, each once (key
  `dispute-bt-<txn id>`): the withdrawal of the disputed amount plus Stripe's dispute fee, and the
  reinstatement when it is won. Both go to `platform:dispute_fees`, the app's expense, because the app
  bears the dispute while it is open; the fee stays there for good.
- Closed and won (or an inquiry closed without a chargeback): the booking and the earning go back to
  what they were. Closed and lost: the split is reversed for the disputed amount (key
  `dispute-lost-<id>`) — the app gives up its fee, the listener's earning shrinks — and what was
  already transferred to the listener is clawed back (payouts.services.clawbacks).

An event is only the trigger: the dispute it names is read from Stripe (with its balance transactions)
and must be of the payment we matched by our stored ids, or the event is flagged and nothing booked.
Our row is brought up to date with Stripe's dispute, whatever arrived before; the closed statuses are
terminal and each effect happens once, so duplicated or reordered events change nothing more.

Rows are locked in the order payment → booking → earning → dispute, the order of the other webhook
handlers and of cancellations.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.db.models import Q
from django.utils import timezone

from billing import ledger, money, owners, stripe_gateway
from billing.models import Dispute, LedgerKind, Payment
from billing.payments import payment_intent_apply
from billing.stripe_gateway import webhook_reads
from billing.webhooks.outcomes import IGNORED, PROCESSED, EventFlagged
from common import locks
from workers.notify import notification_enqueue

logger = logging.getLogger(__name__)

RELEASED = (Dispute.Status.WON, Dispute.Status.WARNING_CLOSED)


def _timestamp(value) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _payment_for(obj: dict) -> Payment | None:
    charge_id = obj.get("charge") or ""
    intent_id = obj.get("payment_intent") or ""
    if isinstance(charge_id, dict):
        charge_id = charge_id.get("id", "")
    if isinstance(intent_id, dict):
        intent_id = intent_id.get("id", "")
    condition = Q(stripe_charge_id=charge_id) if charge_id else Q(pk__in=[])
    if intent_id:
        condition |= Q(stripe_payment_intent_id=intent_id)
    return Payment.objects.filter(condition).first()


def _dispute_now(dispute_id: str, *, payment: Payment) -> dict:
    """The dispute as Stripe holds it, checked to be of `payment`; otherwise the event is flagged."""
    try:
        dispute = webhook_reads.dispute_retrieve(dispute_id)
    except stripe_gateway.PermanentStripeError as error:
        if error.http_status == 404:
            raise EventFlagged(f"dispute {dispute_id} is not on Stripe") from error
        raise
    owner = _payment_for(dispute)
    if owner is None or owner.pk != payment.pk:
        raise EventFlagged(f"dispute {dispute_id} is not of our payment #{payment.pk} on Stripe")
    return dispute


def _book_balance_transactions(*, dispute: Dispute, obj: dict, payment: Payment) -> list[str]:
    """Book each of Stripe's balance transactions for this dispute once. Stripe reports them as a
    list on the dispute: a withdrawal (net negative: amount and fee leave our balance) and, when
    won, a reinstatement (net positive). Booking by `net` works whichever way Stripe splits the fee."""
    booked = []
    for txn in obj.get("balance_transactions") or []:
        if not isinstance(txn, dict) or not txn.get("id") or not txn.get("net"):
            continue
        net = int(txn["net"])
        if net < 0:
            lines = [ledger.debit(ledger.DISPUTE_FEES, -net), ledger.credit(ledger.PLATFORM_CASH, -net)]
        else:
            lines = [ledger.debit(ledger.PLATFORM_CASH, net), ledger.credit(ledger.DISPUTE_FEES, net)]
        _, created = ledger.ledger_post(
            key=f"dispute-bt-{txn['id']}",
            kind=LedgerKind.DISPUTE_FUNDS_WITHDRAWN if net < 0 else LedgerKind.DISPUTE_FUNDS_REINSTATED,
            lines=lines,
            currency=payment.currency,
            description=f"Dispute {dispute.stripe_dispute_id}: {txn.get('description') or txn.get('type', '')}"[:255],
            booking_id=payment.booking_id,
            payment_id=payment.pk,
            metadata={"stripe_dispute_id": dispute.stripe_dispute_id, "balance_transaction": txn["id"]},
        )
        if created:
            booked.append(txn["id"])
            if net < 0:
                dispute.funds_withdrawn = True
            else:
                dispute.funds_reinstated = True
            dispute.fee += int(txn.get("fee") or 0)
    return booked


def _freeze(*, dispute: Dispute, payment: Payment) -> None:
    """Mark the booking disputed and hold the earning, remembering what they were."""
    if dispute.booking_status_before:
        return
    dispute.booking_status_before = owners.bookings().booking_dispute_freeze(booking_id=payment.booking_id)
    dispute.earning_status_before = owners.payouts().earning_hold(payment_id=payment.pk)


def _release(*, dispute: Dispute, payment: Payment) -> None:
    if dispute.booking_status_before:
        owners.bookings().booking_dispute_release(
            booking_id=payment.booking_id, restore_to=dispute.booking_status_before
        )
    owners.payouts().earning_release(payment_id=payment.pk, restore_to=dispute.earning_status_before)


def _reverse_lost(*, dispute: Dispute, payment: Payment, listener_id: int) -> None:
    """The talker's bank took the money back for good: reverse the split for the disputed amount.

    The app's part is the disputed amount's proportion of the app fee (rounded half up by the money
    module) and the listener's part the rest, so the two add up to the disputed amount; the listener
    never gives back more than their earning still holds, the app bears any difference.
    """
    refunded = payment.amount_refunded
    amount = max(0, min(dispute.amount, payment.amount - refunded))
    # Counted on top of what refunds already reversed, so the reversals of a payment add up to its
    # original shares exactly, whatever the rounding of each.
    app_part = money.proportion(refunded + amount, payment.amount, payment.app_fee) - money.proportion(
        refunded, payment.amount, payment.app_fee
    )
    key = f"dispute-lost-{dispute.pk}"
    if ledger.transaction_exists(key=key):
        return
    # The payouts owner takes what the earning still holds (never more) and claws back what was paid.
    listener_part = owners.payouts().earning_reverse(
        payment_id=payment.pk, cents=amount - app_part, cause=f"dispute-{dispute.pk}"
    )
    if dispute.earning_status_before:
        # A partial chargeback: what is left of the earning is the listener's again.
        owners.payouts().earning_release(payment_id=payment.pk, restore_to=dispute.earning_status_before)
    lines = [ledger.debit(ledger.APP_REVENUE, app_part), ledger.credit(ledger.DISPUTE_FEES, app_part + listener_part)]
    if listener_part:
        lines.append(ledger.debit(ledger.listener_payable(listener_id), listener_part))
    if app_part + listener_part == 0:
        return
    ledger.ledger_post(
        key=key,
        kind=LedgerKind.DISPUTE_LOST,
        lines=lines,
        currency=payment.currency,
        description=f"Dispute {dispute.stripe_dispute_id} lost: split reversed",
        booking_id=payment.booking_id,
        payment_id=payment.pk,
        metadata={"stripe_dispute_id": dispute.stripe_dispute_id, "app": app_part, "listener": listener_part},
    )


def dispute_event_apply(event: dict) -> str:
    """Bring our dispute up to date with the object in any `charge.dispute.*` event and apply what
    changed. Runs inside the webhook worker's transaction."""
    claimed = event["data"]["object"]
    located = _payment_for(claimed)
    if located is None:
        logger.warning("dispute %s on unknown charge %s: ignored", claimed.get("id"), claimed.get("charge"))
        return IGNORED
    obj = _dispute_now(claimed["id"], payment=located)

    # The lock order (common.locks): payment, booking, earning, then the dispute.
    payment = locks.lock(Payment.objects.select_related("booking").filter(pk=located.pk)).get()
    owners.bookings().booking_lock(booking_id=payment.booking_id)
    owners.payouts().earning_lock(payment_id=payment.pk)
    if payment.status != Payment.Status.SUCCEEDED and payment.stripe_payment_intent_id:
        # A dispute means the charge was paid, whatever order the events came in: apply the payment's
        # success (read from Stripe) first, so the state a won dispute restores is the paid one.
        intent = stripe_gateway.payment_intent_retrieve(payment.stripe_payment_intent_id)
        payment_intent_apply(payment=payment, intent=intent, fresh=True)
        payment.booking.refresh_from_db()
    dispute, created = Dispute.objects.select_for_update().get_or_create(
        stripe_dispute_id=obj["id"],
        defaults={
            "payment": payment,
            "amount": int(obj["amount"]),
            "currency": obj.get("currency") or payment.currency,
            "reason": obj.get("reason") or "",
            "status": obj["status"],
        },
    )

    if created:
        notification_enqueue("billing.notify_dispute_opened", dispute.pk)
    if not dispute.is_closed:  # Stripe's state now: newer than any event, so applied whatever the order
        dispute.status = obj["status"]
        dispute.amount = int(obj["amount"])
        dispute.reason = obj.get("reason") or ""
        dispute.stripe_updated = max(dispute.stripe_updated, int(event.get("created") or 0))
    due_by = (obj.get("evidence_details") or {}).get("due_by")
    if due_by:
        dispute.evidence_due_by = _timestamp(due_by)

    _book_balance_transactions(dispute=dispute, obj=obj, payment=payment)

    if not dispute.is_closed:
        _freeze(dispute=dispute, payment=payment)
    elif dispute.closed_at is None:
        dispute.closed_at = timezone.now()
        if dispute.status in RELEASED:
            _release(dispute=dispute, payment=payment)
        else:
            # First seen already lost (events reordered): the booking was charged back all the same.
            frozen = owners.bookings().booking_dispute_freeze(booking_id=payment.booking_id)
            if frozen != "disputed":
                dispute.booking_status_before = dispute.booking_status_before or frozen
            _reverse_lost(dispute=dispute, payment=payment, listener_id=payment.booking.listener_id)
            if payment.amount - payment.amount_refunded > dispute.amount and dispute.booking_status_before:
                # A partial chargeback: the rest of the payment stands, and so does the booking (the
                # listener's remaining earning is paid out like any other).
                owners.bookings().booking_dispute_release(
                    booking_id=payment.booking_id, restore_to=dispute.booking_status_before
                )
    dispute.save()
    return PROCESSED
