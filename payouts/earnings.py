"""Listener earnings: created when a payment succeeds, shrunk by refunds, read for the earnings API.

An earning (`ListenerPayout`) is the listener's share of one paid booking. It is created once per
payment, in the same transaction that books the split in the ledger, so the listener's payable
balance in the ledger always equals the net amount of their unpaid earnings (`billing.invariants`).
The figures the API shows come from the ledger, not from these rows.
"""

from __future__ import annotations

from django.db.models import QuerySet, Sum

from billing import ledger
from billing.models import LedgerEntry, Payment
from payouts.models import ListenerPayout

# Ledger transaction kinds that make up what a listener earned: the share booked when a payment
# succeeds, and its reversals by refunds and lost disputes (negative). Payout transfers are not
# earnings, so they are not here.
EARNING_KINDS = ("payment_succeeded", "refund", "refund_failed", "dispute_lost")


def earning_create_for_payment(
    *, payment: Payment, listener_id: int, known_new: bool = False
) -> tuple[ListenerPayout, bool]:
    """The listener's earning for a succeeded payment, once (one earning per payment). Called under
    the payment's row lock, which is what makes the get-then-create safe. `known_new`: the caller
    just booked the payment's split in this transaction, so no earning can exist yet (and the
    one-earning-per-payment constraint would refuse a second anyway)."""
    existing = None if known_new else ListenerPayout.objects.filter(payment_id=payment.pk).first()
    if existing is not None:
        return existing, False
    earning = ListenerPayout.objects.create(
        listener_id=listener_id,
        booking_id=payment.booking_id,
        payment_id=payment.pk,
        amount=payment.listener_amount,
        currency=payment.currency,
        status=ListenerPayout.Status.PENDING,
    )
    return earning, True


def earning_refund_sync(
    *, payment_id: int, reversed_now: int, fully_refunded: bool, cause: str
) -> ListenerPayout | None:
    """Shrink the earning by `reversed_now` cents a refund just took back from the listener (negative
    when a refund failed and gives it back); cancel it when the payment is fully refunded, and bring
    it back to pending if a refund that cancelled it failed. A paid earning keeps its status: what
    was already transferred is clawed back (`billing.clawback`, once per `cause`)."""
    earning = ListenerPayout.objects.select_for_update().filter(payment_id=payment_id).first()
    if earning is None:
        return None
    fields = []
    if reversed_now:
        earning.amount_reversed = min(earning.amount, max(0, earning.amount_reversed + reversed_now))
        fields.append("amount_reversed")
    unpaid_open = (ListenerPayout.Status.PENDING, ListenerPayout.Status.PAYABLE, ListenerPayout.Status.HELD)
    if fully_refunded and earning.status in unpaid_open:
        earning.status = ListenerPayout.Status.CANCELLED
        fields.append("status")
    elif not fully_refunded and earning.status == ListenerPayout.Status.CANCELLED and earning.net_amount > 0:
        earning.status = ListenerPayout.Status.PENDING
        fields.append("status")
    if fields:
        earning.save(update_fields=[*fields, "updated_at"])
    if earning.status == ListenerPayout.Status.PAID and reversed_now > 0:
        from billing.clawback import clawback_request

        clawback_request(earning=earning, amount=reversed_now, key=cause)
    return earning


# --- Selectors -----------------------------------------------------------------------------------


def earning_list_for_listener(*, listener_id: int) -> QuerySet[ListenerPayout]:
    return (
        ListenerPayout.objects.filter(listener_id=listener_id)
        .select_related("booking", "payment", "payout")
        .order_by("-created_at", "-id")
    )


def listener_earnings_summary(*, listener_id: int) -> dict[str, int]:
    """From the ledger, in cents: `pending_earnings` is what the platform owes the listener now (their
    payable balance), `total_earned` everything ever credited to them minus refund reversals."""
    code = ledger.listener_payable(listener_id)
    earned = (
        LedgerEntry.objects.filter(account__code=code, transaction__kind__in=EARNING_KINDS).aggregate(
            total=Sum("amount")
        )["total"]
        or 0
    )
    return {"pending_earnings": ledger.balance(code), "total_earned": -earned}
