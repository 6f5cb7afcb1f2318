"""The only place that imports `stripe`.

Small functions that take our own ids and plain values and return plain dicts, so the rest of the
code never sees an SDK object. Errors come out as `TransientStripeError` (retry with backoff:
network, 429, 5xx) or `PermanentStripeError` (record the reason, do not retry).

With `STRIPE_API_BASE` set, the SDK speaks to that address (the Stripe emulator); empty, to Stripe.
"""

from __future__ import annotations

import functools
from typing import Any

import stripe
from django.conf import settings


class StripeGatewayError(Exception):
    def __init__(self, message: str, *, code: str = "", decline_code: str = "", http_status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or ""
        self.decline_code = decline_code or ""
        self.http_status = http_status


class TransientStripeError(StripeGatewayError):
    """Worth retrying: the network, a rate limit, or Stripe's own trouble."""


class PermanentStripeError(StripeGatewayError):
    """Retrying with the same parameters would fail the same way."""


class SignatureError(Exception):
    pass


@functools.lru_cache(maxsize=8)
def _client_for(api_key: str, api_base: str, timeout: float, retries: int) -> stripe.StripeClient:
    base_addresses = {"api": api_base, "connect": api_base, "files": api_base} if api_base else None
    return stripe.StripeClient(
        api_key,
        base_addresses=base_addresses,
        max_network_retries=retries,
        http_client=stripe.RequestsClient(timeout=timeout),
    )


def client() -> stripe.StripeClient:
    return _client_for(
        settings.STRIPE_SECRET_KEY,
        settings.STRIPE_API_BASE,
        settings.STRIPE_TIMEOUT_SECONDS,
        settings.STRIPE_MAX_NETWORK_RETRIES,
    )


def _translate(error: stripe.StripeError) -> StripeGatewayError:
    status = getattr(error, "http_status", None)
    code = getattr(error, "code", "") or ""
    decline_code = ""
    if isinstance(error, stripe.CardError):
        decline_code = getattr(error, "decline_code", "") or ""
    message = getattr(error, "user_message", None) or str(error)
    transient = (
        isinstance(error, (stripe.APIConnectionError, stripe.RateLimitError))
        or (isinstance(error, stripe.APIError) and (status is None or status >= 500))
        or (status is not None and (status == 429 or status >= 500))
    )
    # An idempotency key still in flight on Stripe's side answers 409 with `idempotency_key_in_use`.
    if code == "idempotency_key_in_use" or code == "lock_timeout":
        transient = True
    kind = TransientStripeError if transient else PermanentStripeError
    return kind(message, code=code, decline_code=decline_code, http_status=status)


def call(fn, *args, **kwargs) -> Any:
    """Run one SDK call, turning SDK errors into the gateway's two kinds."""
    try:
        return fn(*args, **kwargs)
    except stripe.StripeError as error:
        raise _translate(error) from error


def as_dict(obj: Any) -> dict:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def options(idempotency_key: str | None = None, stripe_account: str | None = None) -> dict:
    opts: dict[str, Any] = {}
    if idempotency_key:
        opts["idempotency_key"] = idempotency_key
    if stripe_account:
        opts["stripe_account"] = stripe_account
    return opts


# --- Customers and PaymentIntents ------------------------------------------------------------------


def customer_create(*, user_id: int, email: str, name: str) -> str:
    customer = call(
        client().v1.customers.create,
        params={"email": email, "name": name, "metadata": {"user_id": str(user_id)}},
        options=options(f"customer-user-{user_id}"),
    )
    return customer.id


def payment_intent_create(
    *,
    payment_id: int,
    booking_id: int,
    amount: int,
    currency: str,
    customer_id: str,
    application_fee: int,
    description: str,
) -> dict:
    intent = call(
        client().v1.payment_intents.create,
        params={
            "amount": amount,
            "currency": currency,
            "customer": customer_id,
            "description": description,
            "automatic_payment_methods": {"enabled": True},
            "transfer_group": f"booking-{booking_id}",
            "metadata": {
                "booking_id": str(booking_id),
                "payment_id": str(payment_id),
                "app_fee": str(application_fee),
            },
        },
        options=options(f"pi-payment-{payment_id}"),
    )
    return as_dict(intent)


def payment_intent_retrieve(payment_intent_id: str, *, expand: tuple[str, ...] = ()) -> dict:
    """The PaymentIntent as Stripe holds it now; `expand` (e.g. `("latest_charge",)`) inlines objects
    in the same request instead of one more call per object."""
    params = {"expand": list(expand)} if expand else None
    return as_dict(call(client().v1.payment_intents.retrieve, payment_intent_id, params=params))


# --- Webhooks -----------------------------------------------------------------------------------------


def webhook_verify(*, payload: bytes, signature_header: str | None, secrets: list[str], tolerance: int) -> dict:
    """Check `Stripe-Signature` against each configured secret (several during a rotation)."""
    if not signature_header:
        raise SignatureError("missing Stripe-Signature header")
    last_error: Exception | None = None
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload.decode("utf-8"), signature_header, secret, tolerance)
        except stripe.SignatureVerificationError as error:
            last_error = error
            continue
        except UnicodeDecodeError as error:
            raise SignatureError("body is not UTF-8") from error
        return {"verified": True}
    raise SignatureError(str(last_error) if last_error else "no webhook secret configured")
