"""Test support for Stripe webhooks: objects shaped like Stripe's own samples (every top-level key of
`payment_intent`, `charge`, `refund` and `event` in Stripe's published fixtures), signed exactly as
Stripe signs a delivery (`t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`).

payment_intent.* events are applied from the intent read from Stripe, so their tests use real
PaymentIntents on the emulator (the `stripe_emulator` fixture): `intent_payment` creates one as our
worker does, `intent_confirm` / `intent_cancel` move it on Stripe, and `intent_event` wraps the intent
as Stripe holds it at that moment in an event (optionally forged or aged with `**payload`).

Used by the tests and the benchmark; nothing here runs in production.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

from django.conf import settings

from billing.models import Payment, WebhookEvent

API_VERSION = "2024-06-20"


def stripe_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def _address() -> dict:
    return {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}


def payment_intent_object(
    *,
    payment: Payment | None = None,
    intent_id: str | None = None,
    amount: int | None = None,
    status: str = "succeeded",
    latest_charge: str | None = None,
    last_payment_error: dict | None = None,
    created: int | None = None,
) -> dict:
    """A PaymentIntent as Stripe sends it; from our payment's ids and amounts when given."""
    intent_id = intent_id or (payment.stripe_payment_intent_id if payment else None) or stripe_id("pi")
    amount = amount if amount is not None else (payment.amount if payment else 3000)
    metadata = {}
    if payment is not None:
        metadata = {
            "booking_id": str(payment.booking_id),
            "payment_id": str(payment.pk),
            "app_fee": str(payment.app_fee),
        }
    succeeded = status == "succeeded"
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": amount if succeeded else 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": {"enabled": True},
        "canceled_at": int(time.time()) if status == "canceled" else None,
        "cancellation_reason": "requested_by_customer" if status == "canceled" else None,
        "capture_method": "automatic",
        "client_secret": f"{intent_id}_secret_{uuid.uuid4().hex[:24]}",
        "confirmation_method": "automatic",
        "created": created or int(time.time()),
        "currency": payment.currency if payment else "usd",
        "customer": stripe_id("cus"),
        "customer_account": None,
        "description": f"Talkpay booking #{payment.booking_id}" if payment else None,
        "excluded_payment_method_types": None,
        "last_payment_error": last_payment_error,
        "latest_charge": latest_charge if latest_charge is not None else (stripe_id("ch") if succeeded else None),
        "livemode": False,
        "managed_payments": {"enabled": False},
        "metadata": metadata,
        "next_action": {"type": "use_stripe_sdk", "use_stripe_sdk": {}} if status == "requires_action" else None,
        "on_behalf_of": None,
        "payment_method": "pm_card_visa" if status != "requires_payment_method" else None,
        "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": f"booking-{payment.booking_id}" if payment else None,
    }


def card_declined_error(*, charge_id: str | None = None, decline_code: str = "generic_decline") -> dict:
    return {
        "charge": charge_id or stripe_id("ch"),
        "code": "card_declined",
        "decline_code": decline_code,
        "doc_url": "https://stripe.com/docs/error-codes/card-declined",
        "message": "Your card was declined.",
        "type": "card_error",
    }


def refund_object(
    *,
    charge_id: str,
    payment_intent_id: str | None,
    amount: int,
    refund_id: str | None = None,
    status: str = "succeeded",
    metadata: dict | None = None,
    created: int | None = None,
) -> dict:
    return {
        "id": refund_id or stripe_id("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": stripe_id("txn"),
        "charge": charge_id,
        "created": created or int(time.time()),
        "currency": "usd",
        "customer": None,
        "customer_account": None,
        "destination_details": {"card": {"type": "refund"}, "type": "card"},
        "metadata": metadata or {},
        "payment_intent": payment_intent_id,
        "payment_method": "pm_card_visa",
        "reason": "requested_by_customer",
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": status,
        "transfer_reversal": None,
    }


def charge_object(*, charge_id: str, payment_intent_id: str, amount: int, refunds: list[dict] | None = None) -> dict:
    """A succeeded card charge; with `refunds`, refunded by their succeeded total (listed newest first)."""
    refunds = sorted(refunds or [], key=lambda refund: (refund["created"], refund["id"]), reverse=True)
    refunded = sum(refund["amount"] for refund in refunds if refund["status"] == "succeeded")
    return {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": refunded,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": stripe_id("txn"),
        "billing_details": {"address": _address(), "email": None, "name": "Jenny Rosen", "phone": None, "tax_id": None},
        "calculated_statement_descriptor": "TALKPAY",
        "captured": True,
        "created": int(time.time()),
        "currency": "usd",
        "customer": None,
        "description": None,
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "livemode": False,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": True,
        "payment_intent": payment_intent_id,
        "payment_method": "pm_card_visa",
        "payment_method_details": {"card": {"brand": "visa", "last4": "4242", "exp_month": 8, "exp_year": 2030}},
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": None,
        "refunded": refunded >= amount,
        "refunds": {
            "object": "list",
            "data": refunds,
            "has_more": False,
            "total_count": len(refunds),
            "url": f"/v1/charges/{charge_id}/refunds",
        },
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }


def stripe_event(
    event_type: str,
    obj: dict,
    *,
    event_id: str | None = None,
    created: int | None = None,
    previous: dict | None = None,
    account: str | None = None,
) -> dict:
    event = {
        "id": event_id or stripe_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": created or int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": stripe_id("req"), "idempotency_key": None},
        "type": event_type,
    }
    if previous is not None:
        event["data"]["previous_attributes"] = previous
    if account:
        event["account"] = account
    return event


def sign(body: bytes | str, *, secret: str | None = None, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header Stripe computes for this raw body."""
    body = body.decode("utf-8") if isinstance(body, bytes) else body
    timestamp = int(time.time()) if timestamp is None else timestamp
    secret = secret or settings.STRIPE_WEBHOOK_SECRET
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def signed_body(event: dict, **sign_options) -> tuple[bytes, str]:
    """The raw body as Stripe sends it (pretty-printed JSON) and its signature header."""
    body = json.dumps(event, indent=2).encode()
    return body, sign(body, **sign_options)


def deliver(event: dict) -> str:
    """Deliver one event through the intake (verified, stored) and process it as the worker does.
    Returns the stored event's status."""
    from billing.webhooks.intake import webhook_receive
    from billing.webhooks.processing import webhook_event_process

    body, signature = signed_body(event)
    receipt = webhook_receive(body=body, signature_header=signature, headers={"Content-Type": "application/json"})
    webhook_event_process(webhook_event_id=receipt.webhook_event_id)
    return WebhookEvent.objects.get(pk=receipt.webhook_event_id).status


# --- Real PaymentIntents on the emulator -------------------------------------------------------------

# Where a redirecting payment method would send the talker back; given at every server-side confirm,
# as Stripe requires for an intent with automatic payment methods.
RETURN_URL = "https://talkpay.test/payments/return"


def intent_payment(*, booking=None, **booking_fields) -> Payment:
    """Our payment for a booking with its PaymentIntent created on the emulator, exactly as our worker
    creates it (customer, metadata, idempotency key): waiting for the card."""
    from billing.payments import payment_intent_create
    from billing.tests.factories import PaymentFactory
    from booking.tests.factories import BookingFactory

    payment = PaymentFactory(booking=booking or BookingFactory(**booking_fields))
    payment = payment_intent_create(payment_id=payment.pk)
    assert payment.stripe_payment_intent_id, payment.failure_message
    return payment


def _intent_id(payment_or_id: Payment | str) -> str:
    return payment_or_id if isinstance(payment_or_id, str) else payment_or_id.stripe_payment_intent_id


def intent_confirm(payment_or_id: Payment | str, *, payment_method: str = "pm_card_visa") -> dict:
    """The talker pays with a test card on Stripe; a declined card leaves the intent waiting for another.
    Returns the intent as Stripe holds it afterwards (latest charge expanded)."""
    from billing import stripe_gateway

    intent_id = _intent_id(payment_or_id)
    try:
        stripe_gateway.call(
            stripe_gateway.client().v1.payment_intents.confirm,
            intent_id,
            params={"payment_method": payment_method, "return_url": RETURN_URL},
        )
    except stripe_gateway.PermanentStripeError as error:
        if error.http_status != 402:  # a card error: the intent waits for another card
            raise
    return stripe_gateway.payment_intent_retrieve(intent_id, expand=("latest_charge",))


def intent_cancel(payment_or_id: Payment | str, *, reason: str = "abandoned") -> dict:
    from billing import stripe_gateway

    intent_id = _intent_id(payment_or_id)
    stripe_gateway.call(
        stripe_gateway.client().v1.payment_intents.cancel, intent_id, params={"cancellation_reason": reason}
    )
    return stripe_gateway.payment_intent_retrieve(intent_id)


def intent_update(payment_or_id: Payment | str, **params) -> dict:
    """Change the intent on Stripe (someone holding our key, or a bug, altering amount, customer, metadata)."""
    from billing import stripe_gateway

    intent_id = _intent_id(payment_or_id)
    stripe_gateway.call(stripe_gateway.client().v1.payment_intents.update, intent_id, params=params)
    return stripe_gateway.payment_intent_retrieve(intent_id)


def intent_charge_id(payment_or_id: Payment | str) -> str:
    from billing import stripe_gateway

    return stripe_gateway.payment_intent_retrieve(_intent_id(payment_or_id))["latest_charge"]


def intent_event(event_type: str, payment_or_id: Payment | str, *, previous: dict | None = None, **payload) -> dict:
    """A `payment_intent.*` event carrying the intent as Stripe holds it now (what Stripe would send at
    this moment); `payload` overrides fields of that snapshot, to forge or age an event."""
    from billing import stripe_gateway

    intent = stripe_gateway.payment_intent_retrieve(_intent_id(payment_or_id))
    return stripe_event(event_type, {**intent, **payload}, previous=previous)


def foreign_intent(payment: Payment, *, payment_method: str | None = "pm_card_visa") -> dict:
    """Someone else's PaymentIntent on Stripe (not created by us) whose metadata claims our payment,
    paid with a card unless `payment_method` is None. Returns it as Stripe holds it."""
    from billing import stripe_gateway

    params: dict = {
        "amount": payment.amount,
        "currency": payment.currency,
        "payment_method_types": ["card"],
        "metadata": {"booking_id": str(payment.booking_id), "payment_id": str(payment.pk)},
    }
    if payment_method:
        params.update(payment_method=payment_method, confirm=True)
    intent = stripe_gateway.call(stripe_gateway.client().v1.payment_intents.create, params=params)
    return stripe_gateway.payment_intent_retrieve(intent.id)
