"""Reads the webhook handlers make: an event is only the trigger, so the charge, refund or dispute it
names is read from Stripe before anything is applied. Plain dicts out, like the rest of the gateway."""

from __future__ import annotations

from billing.stripe_gateway import as_dict, call, client


def charge_retrieve(charge_id: str) -> dict:
    return as_dict(call(client().v1.charges.retrieve, charge_id))


def refund_retrieve(refund_id: str) -> dict:
    return as_dict(call(client().v1.refunds.retrieve, refund_id))


def dispute_retrieve(dispute_id: str) -> dict:
    """The dispute with its balance transactions (Stripe always includes them)."""
    return as_dict(call(client().v1.disputes.retrieve, dispute_id))


def refunds_list_for_charge(charge_id: str) -> list[dict]:
    """All refunds of a charge, oldest first (Stripe lists newest first, 100 a page)."""
    refunds: list[dict] = []
    params: dict = {"charge": charge_id, "limit": 100}
    while True:
        page = as_dict(call(client().v1.refunds.list, params=params))
        refunds.extend(page.get("data") or [])
        if not page.get("has_more") or not page.get("data"):
            break
        params = {**params, "starting_after": page["data"][-1]["id"]}
    return sorted(refunds, key=lambda refund: (refund.get("created") or 0, refund["id"]))
