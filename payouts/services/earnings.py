"""Listener earnings: the only writer of `ListenerPayout` rows outside a payout run.

An earning is the listener's share of one paid booking. It is created once per payment, in the
transaction that books the split in the ledger, so the listener's payable balance always equals the
net of their unpaid earnings (`billing.invariants`). Billing asks for every change through these
services (through `billing.owners`): create, reverse (refunds and lost disputes alike), hold and
release (disputes). Callers hold the payment's lock (see `common.locks` for the order).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from billing.models import Payment
from common import locks
from common.prepared import row_insert
from payouts.models import ListenerPayout, ListenerPayoutSettings, Payout

E = ListenerPayout.Status
# Earnings not yet paid out that a refund or a chargeback can still shrink or cancel.
UNPAID_OPEN = (E.PENDING, E.PAYABLE, E.HELD)


def earning_lock(*, payment_id: int) -> ListenerPayout | None:
    """The payment's earning, row-locked (only its own row)."""
    return locks.lock(ListenerPayout.objects.filter(payment_id=payment_id)).first()


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
    earning = row_insert(
        ListenerPayout,
        listener_id=listener_id,
        booking_id=payment.booking_id,
        payment_id=payment.pk,
        amount=payment.listener_amount,
        currency=payment.currency,
        status=E.PENDING,
    )
    return earning, True


def earning_session_completed(*, booking_id: int, completed_at: datetime) -> int:
    """The session happened: the earning becomes payable once the configured hold has passed."""
    return ListenerPayout.objects.filter(booking_id=booking_id, status=E.PENDING).update(
        payable_at=completed_at + timedelta(hours=settings.PAYOUT_HOLD_HOURS)
    )


def earning_reverse(*, payment_id: int, cents: int, cause: str) -> int:
    """Take `cents` of the payment's earning back from the listener (a refund or a lost dispute; a
    negative amount gives back what a failed refund had taken). Returns what was actually taken,
    clamped so the earning never goes below zero nor above its amount.

    An unpaid earning left with nothing is cancelled, a cancelled one that is owed something again
    comes back to pending; a paid one keeps its status and what was already transferred is clawed
    back, once per `cause` (`payouts.services.clawbacks`)."""
    from payouts.services.clawbacks import clawback_request, clawbacks_shrink

    earning = earning_lock(payment_id=payment_id)
    if earning is None:
        return 0
    before, status_before = earning.amount_reversed, earning.status
    earning.amount_reversed = min(earning.amount, max(0, before + cents))
    taken = earning.amount_reversed - before
    in_flight = _in_flight(earning)
    if in_flight:
        # Its transfer is being sent with the amount fixed at claim time: recorded as paid, then clawed back.
        pass
    elif earning.status in UNPAID_OPEN and earning.net_amount == 0:
        earning.status = E.CANCELLED
    elif earning.status == E.CANCELLED and earning.net_amount > 0:
        earning.status = E.PENDING
    if taken or earning.status != status_before:
        earning.save(update_fields=["amount_reversed", "status", "updated_at"])
    if (earning.status == E.PAID or in_flight) and taken > 0:
        clawback_request(earning=earning, amount=taken, key=cause)
    elif (earning.status == E.PAID or in_flight) and taken < 0:
        clawbacks_shrink(earning=earning, amount=-taken, cause=cause)
    return taken


def _in_flight(earning: ListenerPayout) -> bool:
    """Attached to a payout whose transfer has been claimed (PROCESSING): Stripe may be paying it now."""
    return (
        earning.payout_id is not None
        and earning.status != E.PAID
        and Payout.objects.filter(pk=earning.payout_id, status=Payout.Status.PROCESSING).exists()
    )


def earning_hold(*, payment_id: int) -> str:
    """Hold an unpaid earning while its payment is disputed. Returns the status it had ("" when there
    was nothing to hold: no earning, already paid, cancelled or held)."""
    earning = earning_lock(payment_id=payment_id)
    if earning is None or earning.status not in (E.PENDING, E.PAYABLE) or _in_flight(earning):
        # Paid, or being paid right now: a lost dispute claws it back.
        return ""
    before = earning.status
    earning.status = E.HELD
    # Out of a pending payout (its transfer re-checks anyway): paid when the dispute is won, by a later run.
    earning.payout = None
    earning.save(update_fields=["status", "payout", "updated_at"])
    return before


def earning_release(*, payment_id: int, restore_to: str) -> bool:
    """The dispute is over for this earning: a held one goes back to `restore_to`."""
    earning = earning_lock(payment_id=payment_id)
    if earning is None or not restore_to or earning.status != E.HELD:
        return False
    earning.status = restore_to
    earning.save(update_fields=["status", "updated_at"])
    return True


# --- An operator's hold on all of a listener's payouts ------------------------------------------


def listener_payouts_hold(*, listener_id: int, reason: str) -> ListenerPayoutSettings:
    payout_settings, _ = ListenerPayoutSettings.objects.get_or_create(listener_id=listener_id)
    payout_settings.payouts_held = True
    payout_settings.hold_reason = reason[:255]
    payout_settings.save(update_fields=["payouts_held", "hold_reason"])
    return payout_settings


def listener_payouts_release(*, listener_id: int) -> ListenerPayoutSettings:
    payout_settings, _ = ListenerPayoutSettings.objects.get_or_create(listener_id=listener_id)
    payout_settings.payouts_held = False
    payout_settings.hold_reason = ""
    payout_settings.save(update_fields=["payouts_held", "hold_reason"])
    return payout_settings
