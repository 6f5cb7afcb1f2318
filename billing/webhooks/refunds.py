"""charge.refunded / charge.refund.updated: the event names a charge or a refund; we find our payment
by the ids we stored, read the charge's refunds (or the refund) from Stripe, check they belong to that
payment, and apply what Stripe holds (`billing.refunds.refund_apply`). The payload is never booked: a
signed event listing a refund Stripe never made, or naming our intent for someone else's refund,
changes nothing (flagged when it claims one of our payments)."""

from __future__ import annotations

import logging

from django.db import transaction

from billing.models import Payment, Refund
from billing.payments import object_id
from billing.refunds import payment_lock_for_charge, refund_apply
from billing.stripe_gateway import PermanentStripeError, webhook_reads
from billing.webhooks.outcomes import IGNORED, PROCESSED, EventFlagged

logger = logging.getLogger(__name__)


def _belongs_to(payment: Payment, stripe_object: dict) -> bool:
    """Whether a charge or refund read from Stripe is of our payment's intent."""
    intent_id = object_id(stripe_object.get("payment_intent"))
    if not intent_id and stripe_object.get("object") == "refund" and object_id(stripe_object.get("charge")):
        charge_id = object_id(stripe_object.get("charge"))
        if payment.stripe_charge_id and charge_id == payment.stripe_charge_id:
            return True
        intent_id = object_id(webhook_reads.charge_retrieve(charge_id).get("payment_intent"))
    return bool(intent_id) and intent_id == payment.stripe_payment_intent_id


def _read(reader, object_name: str, object_id_: str) -> dict:
    try:
        return reader(object_id_)
    except PermanentStripeError as error:
        if error.http_status == 404:
            raise EventFlagged(f"{object_name} {object_id_} is not on Stripe") from error
        raise


def handle_charge_refunded(event: dict) -> str:
    claimed = event["data"]["object"]
    with transaction.atomic(savepoint=False):
        payment = payment_lock_for_charge(
            charge_id=claimed["id"], payment_intent_id=object_id(claimed.get("payment_intent"))
        )
        if payment is None:
            logger.info("%s %s: no payment of ours for charge %s", event["type"], event["id"], claimed["id"])
            return IGNORED
        charge = _read(webhook_reads.charge_retrieve, "charge", claimed["id"])
        if not _belongs_to(payment, charge):
            raise EventFlagged(f"charge {claimed['id']} is not of our payment #{payment.pk} on Stripe")
        changed = False
        for stripe_refund in webhook_reads.refunds_list_for_charge(charge["id"]):
            changed = refund_apply(payment_id=payment.pk, stripe_refund=stripe_refund) or changed
        return PROCESSED if changed else IGNORED


def handle_charge_refund_updated(event: dict) -> str:
    claimed = event["data"]["object"]
    charge_id = object_id(claimed.get("charge"))
    with transaction.atomic(savepoint=False):
        payment = payment_lock_for_charge(
            charge_id=charge_id, payment_intent_id=object_id(claimed.get("payment_intent"))
        )
        if payment is None:
            known = Refund.objects.filter(stripe_refund_id=claimed["id"]).values_list("payment_id", flat=True).first()
            if known is not None:
                payment = Payment.objects.select_for_update(of=("self",)).get(pk=known)
        stripe_refund = None
        if payment is None and charge_id:
            # Our payment may not know its charge id yet: Stripe says which intent the refund is of.
            stripe_refund = _read(webhook_reads.refund_retrieve, "refund", claimed["id"])
            payment = payment_lock_for_charge(
                charge_id="", payment_intent_id=object_id(stripe_refund.get("payment_intent"))
            )
        if payment is None:
            logger.info("%s %s: no payment of ours for refund %s", event["type"], event["id"], claimed["id"])
            return IGNORED
        stripe_refund = stripe_refund or _read(webhook_reads.refund_retrieve, "refund", claimed["id"])
        if not _belongs_to(payment, stripe_refund):
            raise EventFlagged(f"refund {claimed['id']} is not of our payment #{payment.pk} on Stripe")
        return PROCESSED if refund_apply(payment_id=payment.pk, stripe_refund=stripe_refund) else IGNORED


HANDLERS = {
    "charge.refunded": handle_charge_refunded,
    "charge.refund.updated": handle_charge_refund_updated,
}
