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
  already transferred to the listener is clawed back (billing.clawback).

Every event carries the whole dispute object, so each handler brings our row up to date with it,
whatever arrived before; the closed statuses are terminal and each effect happens once, so
duplicated or reordered events change nothing more.

Rows are locked in the order payment → booking → earning → dispute, the order of the other webhook
handlers and of cancellations.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.db.models import Q
from django.utils import timezone

from billing import ledger, money
from billing.clawback import clawback_request
from billing.models import Dispute, Payment
from booking.models import Booking
from payouts.models import ListenerPayout

logger = logging.getLogger(__name__)

OPEN_EARNING_STATUSES = (ListenerPayout.Status.PENDING, ListenerPayout.Status.PAYABLE)
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
            kind="dispute_funds_withdrawn" if net < 0 else "dispute_funds_reinstated",
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


def _freeze(*, dispute: Dispute, booking: Booking, earning: ListenerPayout | None) -> None:
    """Mark the booking disputed and hold the earning, remembering what they were."""
    if dispute.booking_status_before:
        return
    dispute.booking_status_before = booking.status
    if booking.status != Booking.Status.DISPUTED:
        booking.status = Booking.Status.DISPUTED
        booking.save(update_fields=["status", "updated_at"])
    if earning is not None and earning.status in OPEN_EARNING_STATUSES:
        dispute.earning_status_before = earning.status
        earning.status = ListenerPayout.Status.HELD
        earning.save(update_fields=["status", "updated_at"])


def _release(*, dispute: Dispute, booking: Booking, earning: ListenerPayout | None) -> None:
    if dispute.booking_status_before and booking.status == Booking.Status.DISPUTED:
        booking.status = dispute.booking_status_before
        booking.save(update_fields=["status", "updated_at"])
    if earning is not None and dispute.earning_status_before and earning.status == ListenerPayout.Status.HELD:
        earning.status = dispute.earning_status_before
        earning.save(update_fields=["status", "updated_at"])


def _reverse_lost(*, dispute: Dispute, booking: Booking, payment: Payment, earning: ListenerPayout | None) -> None:
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
    listener_part = amount - app_part
    if earning is not None:
        listener_part = min(listener_part, earning.net_amount)
    else:
        listener_part = 0
    lines = [ledger.debit(ledger.APP_REVENUE, app_part), ledger.credit(ledger.DISPUTE_FEES, app_part + listener_part)]
    if listener_part:
        lines.append(ledger.debit(ledger.listener_payable(booking.listener_id), listener_part))
    if app_part + listener_part == 0:
        return
    _, created = ledger.ledger_post(
        key=f"dispute-lost-{dispute.pk}",
        kind="dispute_lost",
        lines=lines,
        currency=payment.currency,
        description=f"Dispute {dispute.stripe_dispute_id} lost: split reversed",
        booking_id=booking.pk,
        payment_id=payment.pk,
        metadata={"stripe_dispute_id": dispute.stripe_dispute_id, "app": app_part, "listener": listener_part},
    )
    if not created or earning is None or listener_part == 0:
        return
    was_paid = earning.status == ListenerPayout.Status.PAID
    earning.amount_reversed += listener_part
    if was_paid:
        clawback_request(earning=earning, amount=listener_part, key=f"dispute-{dispute.pk}")
    elif earning.amount_reversed >= earning.amount:
        earning.status = ListenerPayout.Status.CANCELLED
    elif earning.status == ListenerPayout.Status.HELD and dispute.earning_status_before:
        # A partial chargeback: what is left of the earning is the listener's again.
        earning.status = dispute.earning_status_before
    earning.save(update_fields=["amount_reversed", "status", "updated_at"])


def dispute_event_apply(event: dict) -> str:
    """Bring our dispute up to date with the object in any `charge.dispute.*` event and apply what
    changed. Runs inside the webhook worker's transaction."""
    obj = event["data"]["object"]
    located = _payment_for(obj)
    if located is None:
        logger.warning("dispute %s on unknown charge %s: ignored", obj.get("id"), obj.get("charge"))
        return "ignored"

    payment = Payment.objects.select_for_update().get(pk=located.pk)
    booking = Booking.objects.select_for_update().get(pk=located.booking_id)
    earning = ListenerPayout.objects.select_for_update().filter(payment_id=payment.pk).first()
    dispute, _ = Dispute.objects.select_for_update().get_or_create(
        stripe_dispute_id=obj["id"],
        defaults={
            "payment": payment,
            "amount": int(obj["amount"]),
            "currency": obj.get("currency") or payment.currency,
            "reason": obj.get("reason") or "",
            "status": obj["status"],
        },
    )

    event_created = int(event.get("created") or 0)
    if not dispute.is_closed and event_created >= dispute.stripe_updated:
        dispute.status = obj["status"]
        dispute.amount = int(obj["amount"])
        dispute.reason = obj.get("reason") or ""
        dispute.stripe_updated = event_created
    due_by = (obj.get("evidence_details") or {}).get("due_by")
    if due_by:
        dispute.evidence_due_by = _timestamp(due_by)

    _book_balance_transactions(dispute=dispute, obj=obj, payment=payment)

    if not dispute.is_closed:
        _freeze(dispute=dispute, booking=booking, earning=earning)
    elif dispute.closed_at is None:
        dispute.closed_at = timezone.now()
        if dispute.status in RELEASED:
            _release(dispute=dispute, booking=booking, earning=earning)
        else:
            if booking.status != Booking.Status.DISPUTED:
                # First seen already lost (events reordered): the booking was charged back all the same.
                dispute.booking_status_before = dispute.booking_status_before or booking.status
                booking.status = Booking.Status.DISPUTED
                booking.save(update_fields=["status", "updated_at"])
            _reverse_lost(dispute=dispute, booking=booking, payment=payment, earning=earning)
    dispute.save()
    return "processed"


def handle(event: dict) -> str:
    return dispute_event_apply(event)


HANDLERS = {
    "charge.dispute.created": handle,
    "charge.dispute.updated": handle,
    "charge.dispute.closed": handle,
    "charge.dispute.funds_withdrawn": handle,
    "charge.dispute.funds_reinstated": handle,
}
