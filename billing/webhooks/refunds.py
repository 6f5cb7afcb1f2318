"""charge.refunded / charge.refund.updated: find our payment by the ids we stored and apply each of
Stripe's refunds (`billing.refunds.refund_apply`)."""

from __future__ import annotations

import logging

from django.db import transaction

from billing.models import Payment, Refund
from billing.payments import object_id
from billing.refunds import listed_refunds, payment_lock_for_charge, refund_apply
from billing.stripe_gateway import webhook_reads
from billing.webhooks.outcomes import IGNORED, PROCESSED

logger = logging.getLogger(__name__)


def handle_charge_refunded(event: dict) -> str:
    charge = event["data"]["object"]
    with transaction.atomic(savepoint=False):
        payment = payment_lock_for_charge(
            charge_id=charge["id"], payment_intent_id=object_id(charge.get("payment_intent"))
        )
        if payment is None:
            logger.info("%s %s: no payment of ours for charge %s", event["type"], event["id"], charge["id"])
            return IGNORED
        changed = False
        for stripe_refund in listed_refunds(charge):
            changed = refund_apply(payment_id=payment.pk, stripe_refund=stripe_refund) or changed
        return PROCESSED if changed else IGNORED


def handle_charge_refund_updated(event: dict) -> str:
    stripe_refund = event["data"]["object"]
    charge_id = object_id(stripe_refund.get("charge"))
    with transaction.atomic(savepoint=False):
        payment = payment_lock_for_charge(
            charge_id=charge_id, payment_intent_id=object_id(stripe_refund.get("payment_intent"))
        )
        if payment is None:
            known = Refund.objects.filter(stripe_refund_id=stripe_refund["id"]).values_list("payment_id", flat=True)
            payment_id = known.first()
            if payment_id is None and charge_id:
                # Our payment may not know its charge id yet: ask Stripe which intent the charge belongs to.
                charge = webhook_reads.charge_retrieve(charge_id)
                payment = payment_lock_for_charge(
                    charge_id="", payment_intent_id=object_id(charge.get("payment_intent"))
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
