"""payment_intent.* events: the event is the trigger, Stripe's PaymentIntent the truth.

1. Match: our payment by the intent id we stored, and only by it (`payment_lock_for_intent`): an
   intent we never created is ignored, or flagged when its metadata claims one of our payments.
2. Fetch: the intent as Stripe holds it now, one request, with its latest charge expanded (the
   charge id to record, and the refunds Stripe has made of it).
3. Check: a payload claiming a final state (`succeeded`, `canceled`) that Stripe does not hold is
   forged or broken, and an intent that disagrees with our payment (metadata, customer, amount,
   currency) is not ours to book: both are flagged for an operator and change nothing.
4. Apply what Stripe holds, only forward (`payment_intent_apply`), so a late or repeated event applies
   the current truth once: a `payment_failed` delivered after the success changes nothing, a
   `succeeded` delivered after a refund books the payment and the refund Stripe made, each once.

A payment already succeeded is final here (nothing moves it back), so its events cost no request; one
claiming it canceled contradicts what Stripe told us and is flagged.
"""

from __future__ import annotations

import logging

from django.db import transaction

from billing import stripe_gateway
from billing.models import Payment
from billing.payments import (
    STRIPE_FINAL,
    payment_intent_apply,
    payment_intent_disagreement,
    payment_lock_for_intent,
    payment_review_mark,
)
from billing.refunds import listed_refunds, refund_apply
from billing.webhooks.outcomes import IGNORED, PROCESSED, EventFlagged

logger = logging.getLogger(__name__)

_CLAIMED_BY_TYPE = {"payment_intent.succeeded": "succeeded", "payment_intent.canceled": "canceled"}


def _final_claims(event: dict) -> set[str]:
    """The final states the event asserts, by its type or its payload."""
    claims = {_CLAIMED_BY_TYPE.get(event["type"]), event["data"]["object"].get("status")}
    return {claim for claim in claims if isinstance(claim, str) and claim in STRIPE_FINAL}


def _intent_now(intent_id: str) -> dict:
    try:
        return stripe_gateway.payment_intent_retrieve(intent_id, expand=("latest_charge",))
    except stripe_gateway.PermanentStripeError as error:
        if error.http_status == 404:
            raise EventFlagged(f"our PaymentIntent {intent_id} is not on Stripe") from error
        raise


def _refunds_catch_up(*, payment: Payment, intent: dict) -> bool:
    """Refunds Stripe made of the charge that our books do not show yet (their events are late)."""
    charge = intent.get("latest_charge")
    if not isinstance(charge, dict) or (charge.get("amount_refunded") or 0) <= payment.amount_refunded:
        return False
    changed = False
    for stripe_refund in listed_refunds(charge):
        changed = refund_apply(payment_id=payment.pk, stripe_refund=stripe_refund) or changed
    return changed


def handle_payment_intent(event: dict) -> str:
    claimed = event["data"]["object"]
    with transaction.atomic(savepoint=False):  # joins the dispatcher's transaction
        payment = payment_lock_for_intent(payment_intent_id=claimed["id"], metadata=claimed.get("metadata"))
        if payment is None:
            logger.info("%s %s: no payment of ours for %s", event["type"], event["id"], claimed["id"])
            return IGNORED
        if payment.status == Payment.Status.SUCCEEDED:
            # Final: the success and its effects were applied together, once; Stripe can say no more.
            if "canceled" in _final_claims(event):
                raise EventFlagged(f"{event['type']} says PaymentIntent {claimed['id']} is canceled; it succeeded")
            return IGNORED
        intent = _intent_now(claimed["id"])  # the id we stored: the payment was matched by it
        for claim in _final_claims(event):
            if intent.get("status") != claim:
                raise EventFlagged(
                    f"{event['type']} says PaymentIntent {intent['id']} is {claim}; Stripe says {intent.get('status')}"
                )
        disagreement = payment_intent_disagreement(payment=payment, intent=intent)
        if disagreement:
            payment_id = payment.pk
            raise EventFlagged(
                disagreement, on_flag=lambda: payment_review_mark(payment_id=payment_id, reason=disagreement)
            )
        changed = payment_intent_apply(payment=payment, intent=intent, fresh=True)
        if payment.status == Payment.Status.SUCCEEDED:
            changed = _refunds_catch_up(payment=payment, intent=intent) or changed
        return PROCESSED if changed else IGNORED


HANDLERS = {
    "payment_intent.succeeded": handle_payment_intent,
    "payment_intent.payment_failed": handle_payment_intent,
    "payment_intent.canceled": handle_payment_intent,
    "payment_intent.requires_action": handle_payment_intent,
    "payment_intent.processing": handle_payment_intent,
    "payment_intent.amount_capturable_updated": handle_payment_intent,
}
