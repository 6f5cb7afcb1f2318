"""Transfer reversals: Stripe took back (part of) a payout's transfer."""

from __future__ import annotations

import logging

from django.db import transaction

from billing import ledger
from billing.models import LedgerKind
from payouts.models import Payout

logger = logging.getLogger(__name__)


@transaction.atomic
def payout_transfer_reversed(*, transfer: dict) -> bool:
    """Stripe reversed (part of) a payout's transfer: the money is back in our balance and owed to the
    listener again, as the ledger shows. Booked once per new reversed total; never re-pays by itself
    (a reversal is a decision, by us for a refund or by an operator)."""
    payout = Payout.objects.select_for_update().filter(stripe_transfer_id=transfer["id"]).first()
    if payout is None:
        return False
    new_total = min(int(transfer.get("amount_reversed") or 0), payout.amount)
    delta = new_total - payout.amount_reversed
    if delta <= 0:
        return False
    ledger.ledger_post(
        key=f"transfer-reversal-payout-{payout.pk}-{new_total}",
        kind=LedgerKind.PAYOUT_TRANSFER_REVERSAL,
        currency=payout.currency,
        description=f"Reversal of payout #{payout.pk} ({delta} of {payout.amount})",
        lines=[
            ledger.debit(ledger.PLATFORM_CASH, delta),
            ledger.credit(ledger.listener_payable(payout.listener_id), delta),
        ],
        metadata={"payout_id": payout.pk, "transfer_id": transfer["id"], "amount_reversed": new_total},
    )
    payout.amount_reversed = new_total
    if new_total >= payout.amount:
        payout.status = Payout.Status.REVERSED
    payout.save(update_fields=["amount_reversed", "status", "updated_at"])
    return True
