"""payment_intent.* events: find our payment by the intent id we stored and apply the intent's state
(`billing.payments.payment_intent_apply`)."""

from __future__ import annotations

import logging

from django.db import transaction

from billing.payments import payment_intent_apply, payment_lock_for_intent
from billing.webhooks.outcomes import IGNORED, PROCESSED

logger = logging.getLogger(__name__)


def handle_payment_intent(event: dict) -> str:
    intent = event["data"]["object"]
    with transaction.atomic(savepoint=False):  # joins the dispatcher's transaction
        payment = payment_lock_for_intent(payment_intent_id=intent["id"], metadata=intent.get("metadata"))
        if payment is None:
            logger.info("%s %s: no payment of ours for %s", event["type"], event["id"], intent["id"])
            return IGNORED
        return PROCESSED if payment_intent_apply(payment=payment, intent=intent, fresh=False) else IGNORED


HANDLERS = {
    "payment_intent.succeeded": handle_payment_intent,
    "payment_intent.payment_failed": handle_payment_intent,
    "payment_intent.canceled": handle_payment_intent,
    "payment_intent.requires_action": handle_payment_intent,
    "payment_intent.processing": handle_payment_intent,
    "payment_intent.amount_capturable_updated": handle_payment_intent,
}
