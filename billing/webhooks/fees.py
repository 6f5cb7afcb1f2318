"""charge.updated: Stripe settled something on a charge of ours (its balance transaction, a refund's
failure): book the fees it carries (`billing.fees`). The event is only the trigger: the worker reads
the balance transactions from Stripe."""

from __future__ import annotations

from django.db import transaction

from billing.fees import payment_charge_fee_booked, payment_fees_enqueue_on_commit
from billing.models import Payment
from billing.payments import object_id
from billing.webhooks.outcomes import IGNORED, PROCESSED


def handle_charge_updated(event: dict) -> str:
    charge = event["data"]["object"]
    payment_id = (
        Payment.objects.filter(stripe_charge_id=charge["id"], status=Payment.Status.SUCCEEDED)
        .values_list("pk", flat=True)
        .first()
    )
    if payment_id is None or not object_id(charge.get("balance_transaction")):
        return IGNORED
    if payment_charge_fee_booked(payment_id=payment_id):
        # Booked already (the payment's follow-up found the charge settled). A refund's fee, or a failed
        # refund's, is booked by the refund's own change (billing.refunds), not from this event.
        return PROCESSED
    with transaction.atomic(savepoint=False):
        payment_fees_enqueue_on_commit(payment_id=payment_id)
    return PROCESSED


HANDLERS = {"charge.updated": handle_charge_updated}
