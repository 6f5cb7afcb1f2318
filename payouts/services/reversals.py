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
    """Stripe reversed (part of) a payout's transfer: the money is back in our balance. Booked once per
    new reversed total; never re-pays by itself.

    What our clawbacks reversed (their reversals carry `clawback_id`) settles what the listener owed
    for a refund or a lost dispute: it is credited to their payable. A reversal nobody here asked for
    (an operator on the dashboard) has no earning behind it: it is booked to
    `platform:unrequested_reversals`, recorded on the payout and logged for an operator, and a later
    clawback of the same payout uses it instead of reversing again (`clawbacks.clawback_execute`)."""
    payout = Payout.objects.select_for_update().filter(stripe_transfer_id=transfer["id"]).first()
    if payout is None:
        # Not recorded yet (a crash between Stripe's answer and our save): applied when the sweeper records it.
        return False
    new_total = min(int(transfer.get("amount_reversed") or 0), payout.amount)
    delta = new_total - payout.amount_reversed
    if delta <= 0:
        return False
    requested = min(_requested_total(transfer), new_total)
    unrequested_total = max(payout.amount_reversed_unrequested, new_total - requested)
    delta_unrequested = unrequested_total - payout.amount_reversed_unrequested
    delta_requested = delta - delta_unrequested
    ledger.ledger_post(
        key=f"transfer-reversal-payout-{payout.pk}-{new_total}",
        kind=LedgerKind.PAYOUT_TRANSFER_REVERSAL,
        currency=payout.currency,
        description=f"Reversal of payout #{payout.pk} ({delta} of {payout.amount})",
        lines=[
            ledger.debit(ledger.PLATFORM_CASH, delta),
            ledger.credit(ledger.listener_payable(payout.listener_id), delta_requested),
            ledger.credit(ledger.UNREQUESTED_REVERSALS, delta_unrequested),
        ],
        metadata={"payout_id": payout.pk, "transfer_id": transfer["id"], "amount_reversed": new_total},
    )
    payout.amount_reversed = new_total
    payout.amount_reversed_unrequested = unrequested_total
    if delta_unrequested:
        payout.failure_reason = (
            f"Stripe reversed {unrequested_total} cents of transfer {transfer['id']} that Talkpay did not ask "
            "for: review it (the listener is not owed it again automatically)."
        )
        logger.error("payout %s: %s", payout.pk, payout.failure_reason)
    if new_total >= payout.amount:
        payout.status = Payout.Status.REVERSED
    payout.save(
        update_fields=["amount_reversed", "amount_reversed_unrequested", "failure_reason", "status", "updated_at"]
    )
    return True


def _requested_total(transfer: dict) -> int:
    """What our clawbacks reversed of this transfer, from its reversals (read from Stripe when the
    payload does not list them all)."""
    listed = transfer.get("reversals")
    if not (isinstance(listed, dict) and isinstance(listed.get("data"), list) and not listed.get("has_more")):
        from billing.stripe_gateway import reversals

        listed = reversals.transfer_retrieve(transfer["id"]).get("reversals") or {}
    return sum(
        int(reversal.get("amount") or 0)
        for reversal in listed.get("data") or []
        if (reversal.get("metadata") or {}).get("clawback_id")
    )
