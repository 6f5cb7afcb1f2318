"""Stripe Billing for subscription plans: Products, recurring Prices, Subscriptions and their Invoices.

Every create carries an idempotency key derived from our row (`product-plan-7`, `price-plan-7-3000-week`,
`subscription-12`). Plain dicts out, as the rest of the gateway.
"""

from __future__ import annotations

from billing.stripe_gateway import as_dict, call, client, options


def product_create(*, plan_id: int, name: str) -> str:
    product = call(
        client().v1.products.create,
        params={"name": name, "metadata": {"plan_id": str(plan_id)}},
        options=options(f"product-plan-{plan_id}"),
    )
    return product.id


def product_update(*, product_id: str, name: str, active: bool) -> None:
    call(client().v1.products.update, product_id, params={"name": name, "active": active})


def price_create(*, plan_id: int, product_id: str, amount: int, currency: str, interval: str) -> str:
    """Prices are immutable on Stripe: a new amount or interval is a new Price (keyed by them)."""
    price = call(
        client().v1.prices.create,
        params={
            "product": product_id,
            "currency": currency,
            "unit_amount": amount,
            "recurring": {"interval": interval},
            "metadata": {"plan_id": str(plan_id)},
        },
        options=options(f"price-plan-{plan_id}-{amount}-{currency}-{interval}"),
    )
    return price.id


def price_deactivate(*, price_id: str) -> None:
    call(client().v1.prices.update, price_id, params={"active": False})


def price_activate(*, price_id: str) -> None:
    call(client().v1.prices.update, price_id, params={"active": True})


def subscription_create(*, subscription_id: int, customer_id: str, price_id: str) -> dict:
    """Incomplete until the talker confirms the first invoice's PaymentIntent; the card is saved on the
    subscription for the off-session renewals."""
    sub = call(
        client().v1.subscriptions.create,
        params={
            "customer": customer_id,
            "items": [{"price": price_id}],
            "payment_behavior": "default_incomplete",
            "payment_settings": {"save_default_payment_method": "on_subscription"},
            "metadata": {"subscription_id": str(subscription_id)},
            "expand": ["latest_invoice.confirmation_secret"],
        },
        options=options(f"subscription-{subscription_id}"),
    )
    return as_dict(sub)


def subscription_retrieve(stripe_subscription_id: str) -> dict:
    return as_dict(
        call(
            client().v1.subscriptions.retrieve,
            stripe_subscription_id,
            params={"expand": ["latest_invoice.confirmation_secret"]},
        )
    )


def subscription_update(*, stripe_subscription_id: str, idempotency_key: str, **params) -> dict:
    params["expand"] = ["latest_invoice.confirmation_secret"]
    return as_dict(
        call(
            client().v1.subscriptions.update,
            stripe_subscription_id,
            params=params,
            options=options(idempotency_key),
        )
    )


def subscription_pause(*, stripe_subscription_id: str, idempotency_key: str) -> dict:
    """Status `paused`: no invoices until resumed. The current period stays paid (no credit for its rest:
    its session is kept)."""
    return as_dict(
        call(
            client().v1.subscriptions.pause,
            stripe_subscription_id,
            params={
                "type": "subscription",
                "bill_for": {"unused_time_from": {"type": "none"}},
                "expand": ["latest_invoice.confirmation_secret"],
            },
            options=options(idempotency_key),
        )
    )


def subscription_resume(*, stripe_subscription_id: str, idempotency_key: str) -> dict:
    """Active again on its billing anchor: the period under way is not billed, the next one renews as usual."""
    return as_dict(
        call(
            client().v1.subscriptions.resume,
            stripe_subscription_id,
            params={
                "billing_cycle_anchor": {"type": "unchanged"},
                "proration_behavior": "none",
                "expand": ["latest_invoice.confirmation_secret"],
            },
            options=options(idempotency_key),
        )
    )


def subscription_cancel(*, stripe_subscription_id: str) -> dict:
    return as_dict(call(client().v1.subscriptions.cancel, stripe_subscription_id))


def invoice_retrieve(stripe_invoice_id: str) -> dict:
    """With its payments and confirmation secret (includable fields in this API version)."""
    return as_dict(
        call(
            client().v1.invoices.retrieve,
            stripe_invoice_id,
            params={"expand": ["payments", "confirmation_secret"]},
        )
    )


def invoices_list_for_subscription(stripe_subscription_id: str) -> list[dict]:
    page = call(client().v1.invoices.list, params={"subscription": stripe_subscription_id, "limit": 100})
    return [as_dict(invoice) for invoice in page.auto_paging_iter()]


def invoice_ids_changed_since(*, created_gte: int) -> set[str]:
    """The invoices Stripe sent an `invoice.*` event for since `created_gte` (Stripe keeps events 30 days)."""
    page = call(client().v1.events.list, params={"type": "invoice.*", "created": {"gte": created_gte}, "limit": 100})
    objects = (as_dict(event)["data"]["object"] for event in page.auto_paging_iter())
    return {str(invoice["id"]) for invoice in objects if invoice.get("id")}  # invoice.upcoming's has none


def invoice_subscription_id(invoice: dict) -> str:
    """The subscription an invoice bills, where this API version puts it."""
    details = ((invoice.get("parent") or {}).get("subscription_details")) or {}
    sub = details.get("subscription")
    if isinstance(sub, dict):
        return sub.get("id") or ""
    return sub or ""


def invoice_payment_intent_id(invoice: dict) -> str:
    """The PaymentIntent that paid the invoice (or is asked to): its paid payment, else the default one."""
    payments = ((invoice.get("payments") or {}).get("data")) or []
    chosen = next((p for p in payments if p.get("status") == "paid"), None) or next(
        (p for p in payments if p.get("is_default")), None
    )
    if not chosen:
        return ""
    intent = (chosen.get("payment") or {}).get("payment_intent")
    return (intent.get("id") if isinstance(intent, dict) else intent) or ""


def invoice_payment_invoice_id(invoice_payment: dict) -> str:
    inv = invoice_payment.get("invoice")
    return (inv.get("id") if isinstance(inv, dict) else inv) or ""


def schedule_create_from_subscription(*, stripe_subscription_id: str, idempotency_key: str) -> dict:
    """A schedule of the subscription as it stands (one phase: the current period), to plan a change on."""
    return as_dict(
        call(
            client().v1.subscription_schedules.create,
            params={"from_subscription": stripe_subscription_id},
            options=options(idempotency_key),
        )
    )


def schedule_retrieve(schedule_id: str) -> dict:
    return as_dict(call(client().v1.subscription_schedules.retrieve, schedule_id))


def schedule_update(*, schedule_id: str, idempotency_key: str, **params) -> dict:
    return as_dict(
        call(client().v1.subscription_schedules.update, schedule_id, params=params, options=options(idempotency_key))
    )


def schedule_release(schedule_id: str) -> dict:
    return as_dict(call(client().v1.subscription_schedules.release, schedule_id))


def schedule_subscription_id(schedule: dict) -> str:
    """The subscription a schedule manages, or managed until it was released."""
    sub = schedule.get("subscription") or schedule.get("released_subscription")
    if isinstance(sub, dict):
        return sub.get("id") or ""
    return sub or ""
