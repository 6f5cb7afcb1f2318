"""Stripe's processing fees, booked from Stripe's balance transactions.

Stripe takes its fee (2.9 % + 30 ¢ on US cards) out of the charge: the platform's balance grows by
the charge's `net`, not its amount. The split stays computed from the gross price (DESIGN money rule
2): the fee is the platform's cost, booked debit `platform:processing_fees`, credit `platform:cash`,
once per balance transaction (key `stripe-fee-<txn id>`). On a refund Stripe keeps the fee (the
refund's balance transaction has no fee); whatever fee a refund's or a failed refund's balance
transaction does carry (returned fees are negative) is booked the same way, so `platform:cash`
follows what Stripe holds.

The charge's balance transaction may not exist yet when the payment succeeds (capture is settled
asynchronously): `payment_fees_book` raises `FeesNotSettled` and its task retries with backoff; the
beat sweeper (`payment_fees_sweep`) enqueues again any succeeded payment whose fee is still not
booked, and `ledger_check` reports one left unbooked past a grace period.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from billing import ledger
from billing.models import LedgerKind, LedgerTransaction, Payment
from billing.stripe_gateway import fees as gateway
from common import locks
from workers.outbox import enqueue_or_leave_to_sweeper

logger = logging.getLogger(__name__)

KEY_PREFIX = "stripe-fee-"
# The sweeper looks this far back; ledger_check reports a fee unbooked after the grace period.
SWEEP_BACK = timedelta(days=7)
GRACE = timedelta(minutes=30)


class FeesNotSettled(Exception):
    """Stripe has not settled the charge's balance transaction yet: asked again later."""


def fee_key(txn_id: str) -> str:
    return f"{KEY_PREFIX}{txn_id}"


def payment_fees_enqueue_on_commit(*, payment_id: int) -> None:
    """Book the payment's fees once this transaction commits (a succeeded payment, a refund)."""
    transaction.on_commit(
        lambda: enqueue_or_leave_to_sweeper("billing.payment_fees_book", payment_id, what="fee booking")
    )


def payment_fees_book(*, payment_id: int) -> int:
    """Book every fee of the payment's charge and refunds that is not booked yet. Returns the number
    of balance transactions booked now. Safe to repeat and to run concurrently (the key is unique)."""
    payment = Payment.objects.get(pk=payment_id)
    if not payment.stripe_charge_id:
        if payment.status == Payment.Status.SUCCEEDED:
            raise FeesNotSettled(f"payment {payment_id} has no charge id yet")
        return 0
    charge_txn, refund_txns = gateway.charge_balance_transactions(payment.stripe_charge_id)
    booked = sum(_book(payment, txn) for txn in refund_txns)
    if charge_txn is None:
        raise FeesNotSettled(f"charge {payment.stripe_charge_id} has no balance transaction yet")
    return booked + _book(payment, charge_txn)


@transaction.atomic
def _book(payment: Payment, txn: dict) -> int:
    fee = int(txn.get("fee") or 0)
    if not fee:
        return 0
    # The payment's lock first (common.locks order): the ledger rows' foreign keys take share locks on the
    # booking and the payment, in the wrong order for a cancellation that holds the payment and wants the
    # booking; holding the payment makes that cancellation wait here instead of deadlocking.
    locks.lock(Payment.objects.filter(pk=payment.pk)).get()
    _, created = ledger.ledger_post(
        key=fee_key(txn["id"]),
        kind=LedgerKind.PROCESSING_FEE,
        # Signed: a returned fee (negative) books the other way round.
        lines=[ledger.debit(ledger.PROCESSING_FEES, fee), ledger.credit(ledger.PLATFORM_CASH, fee)],
        currency=payment.currency,
        description=f"Stripe fee on {txn.get('type')} {txn.get('source')}"[:255],
        booking_id=payment.booking_id,
        payment_id=payment.pk,
        metadata={"balance_transaction": txn["id"], "source": txn.get("source"), "type": txn.get("type"), "fee": fee},
    )
    return int(created)


def _charge_fees_booked():
    return LedgerTransaction.objects.filter(kind=LedgerKind.PROCESSING_FEE, metadata__type="charge")


def payment_charge_fee_booked(*, payment_id: int) -> bool:
    """Whether the fee of the payment's charge is booked (a refund's fees are booked on their own)."""
    return _charge_fees_booked().filter(payment_id=payment_id).exists()


def payments_fees_unbooked():
    """Succeeded payments whose charge fee is not booked yet."""
    booked = _charge_fees_booked().filter(payment_id=OuterRef("pk"))
    return Payment.objects.filter(status=Payment.Status.SUCCEEDED).exclude(Exists(booked))


def payment_fees_sweep() -> int:
    """Enqueue again fee bookings that never happened (a lost task, Stripe slow to settle)."""
    since = timezone.now() - SWEEP_BACK
    ids = list(payments_fees_unbooked().filter(succeeded_at__gte=since).values_list("pk", flat=True)[:500])
    for payment_id in ids:
        enqueue_or_leave_to_sweeper("billing.payment_fees_book", payment_id, what="fee booking")
    return len(ids)
